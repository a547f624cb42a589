//! The Argo CD health check for regie's kinds (`examples/gitops/argocd/health/regie.lua`), run by
//! the real Lua interpreters — `lua5.1`, the dialect of Argo CD's gopher-lua, and `lua5.4` —
//! against the sample objects of `e2e/lua/` (Argo CD's own `health_test.yaml` format), and the
//! generated `argocd-cm` snippets, checked against the script and regenerated for drift.
//!
//! Needs `lua5.1` and `lua5.4` (Debian packages of those names); without them the tests fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use regie_e2e::cluster::repo_root;
use serde_json::Value;

#[path = "../lua/runner.rs"]
mod runner;
use runner::{INTERPRETERS, run_health};
const KEY_PREFIX: &str = "resource.customizations.health.regie.dev_";

fn script_path() -> PathBuf {
    repo_root().join("examples/gitops/argocd/health/regie.lua")
}

fn lua_dir() -> PathBuf {
    repo_root().join("e2e/lua")
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

struct Case {
    input: PathBuf,
    object: Value,
    status: String,
    message: String,
}

fn cases() -> Vec<Case> {
    let spec = read_yaml(&lua_dir().join("health_test.yaml"));
    let tests = spec["tests"]
        .as_array()
        .expect("health_test.yaml has a tests list");
    assert!(!tests.is_empty());
    tests
        .iter()
        .map(|t| {
            let input = lua_dir().join(t["inputPath"].as_str().expect("inputPath"));
            Case {
                object: read_yaml(&input),
                input,
                status: t["healthStatus"]["status"]
                    .as_str()
                    .expect("status")
                    .to_string(),
                message: t["healthStatus"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            }
        })
        .collect()
}

fn check_cases(script: &Path, label: &str) {
    let mut failures = Vec::new();
    for case in cases() {
        for lua in INTERPRETERS {
            let (status, message) = run_health(lua, script, &case.object);
            if status != case.status || message != case.message {
                failures.push(format!(
                    "{label}, {lua}, {}:\n  want {} {:?}\n  got  {status} {message:?}",
                    case.input.file_name().unwrap_or_default().to_string_lossy(),
                    case.status,
                    case.message
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_health_check_gives_the_expected_status_and_message_in_lua51_and_lua54() {
    check_cases(&script_path(), "health/regie.lua");
}

#[test]
fn every_kind_and_every_health_status_has_cases() {
    let cases = cases();
    let kinds: BTreeSet<String> = cases
        .iter()
        .map(|c| c.object["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    for crd in regie_crds::crd::crds() {
        assert!(
            kinds.contains(&crd.spec.names.kind),
            "no health case for {}",
            crd.spec.names.kind
        );
    }
    let statuses: BTreeSet<&str> = cases.iter().map(|c| c.status.as_str()).collect();
    for s in ["Healthy", "Progressing", "Degraded"] {
        assert!(statuses.contains(s), "no case expects {s}");
    }
}

/// Checks `value` against an OpenAPI schema node: every field must be declared.
fn undeclared_fields(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
                return;
            }
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in map {
                    match props.get(k) {
                        Some(s) => undeclared_fields(v, s, &format!("{path}.{k}"), out),
                        None => out.push(format!("{path}.{k}")),
                    }
                }
            } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for (k, v) in map {
                    undeclared_fields(v, s, &format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    undeclared_fields(v, s, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// The samples use the fields the CRDs really have, so the script reads what regie writes.
#[test]
fn the_samples_match_the_crd_schemas() {
    let crds = regie_crds::crd::crds_with_rules();
    let mut problems = Vec::new();
    for case in cases() {
        let kind = case.object["kind"].as_str().unwrap_or_default();
        let crd = crds
            .iter()
            .find(|c| c["spec"]["names"]["kind"] == kind)
            .unwrap_or_else(|| panic!("{}: unknown kind {kind}", case.input.display()));
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        for part in ["spec", "status"] {
            if let Some(v) = case.object.get(part) {
                let mut found = Vec::new();
                undeclared_fields(v, &schema["properties"][part], part, &mut found);
                problems.extend(
                    found
                        .into_iter()
                        .map(|f| format!("{}: {f} is not in the {kind} CRD", case.input.display())),
                );
            }
        }
        assert_eq!(
            case.object["apiVersion"],
            regie_crds::API_VERSION,
            "{}",
            case.input.display()
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn generate_into(dir: &Path) {
    let out = Command::new(repo_root().join("examples/gitops/argocd/generate"))
        .arg("--out")
        .arg(dir)
        .output()
        .expect("run examples/gitops/argocd/generate");
    assert!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_argocd_snippets_are_generated_from_the_script() {
    let dir = tempfile::tempdir().expect("temp dir");
    generate_into(dir.path());
    for (file, home) in [
        ("argocd-cm-health.yaml", "examples/gitops/argocd"),
        ("argocd-values-health.yaml", "docs/guides"),
    ] {
        let fresh = std::fs::read_to_string(dir.path().join(file)).expect("generated");
        let committed = std::fs::read_to_string(repo_root().join(home).join(file))
            .unwrap_or_else(|e| panic!("{home}/{file}: {e}"));
        assert!(
            fresh == committed,
            "{home}/{file} is out of date: run examples/gitops/argocd/generate"
        );
    }
}

/// Every key of both snippets holds a script that behaves exactly like `regie.lua`, and there is
/// one key per regie kind.
#[test]
fn every_kind_has_a_key_whose_script_passes_every_case() {
    let cm = read_yaml(&repo_root().join("examples/gitops/argocd/argocd-cm-health.yaml"));
    let values = read_yaml(&repo_root().join("docs/guides/argocd-values-health.yaml"));
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    let want: BTreeSet<String> = regie_crds::crd::crds()
        .iter()
        .map(|c| format!("{KEY_PREFIX}{}", c.spec.names.kind))
        .collect();
    for (label, data) in [
        ("argocd-cm-health.yaml", &cm["data"]),
        ("argocd-values-health.yaml", &values["configs"]["cm"]),
    ] {
        let map = data
            .as_object()
            .unwrap_or_else(|| panic!("{label}: no data"));
        let have: BTreeSet<String> = map.keys().cloned().collect();
        assert_eq!(have, want, "{label}: keys differ from the regie kinds");
        let dir = tempfile::tempdir().expect("temp dir");
        for (key, script) in map {
            let path = dir
                .path()
                .join(format!("{}.lua", key.trim_start_matches(KEY_PREFIX)));
            std::fs::write(&path, script.as_str().expect("a script")).expect("write");
            check_cases(&path, &format!("{label} {key}"));
        }
    }
}

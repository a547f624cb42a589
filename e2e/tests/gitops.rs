//! The GitOps repository layout of `examples/gitops/`, tested for real:
//! - every example file is in a Kustomize base, and the three layers (catalogue, Tenants,
//!   namespaced objects) built by the real kustomize (`kubectl kustomize`) hold every regie object
//!   of the examples exactly once, with the Argo CD sync wave of their layer;
//! - `regie validate` reads the whole repository (Kustomizations, Argo CD and Flux objects
//!   included) without a problem or a duplicate;
//! - applied layer by layer to a real control plane with `regie run` reconciling, as Argo CD's
//!   sync waves and Flux's dependsOn apply them, every object becomes healthy by regie's Argo CD
//!   health check before the next layer goes;
//! - the `argocd-cm` patch merges into an existing argocd-cm with the documented command;
//! - the pull-request script validates, diffs and writes the comment, and fails on bad input.
//!
//! Needs kubectl (with its built-in kustomize), git, lua5.4, and what `e2e/cluster` needs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regie_e2e::cluster::{Cluster, regie_bin, repo_root, shared};
use serde_json::Value;

#[path = "../lua/runner.rs"]
mod runner;

fn examples() -> PathBuf {
    repo_root().join("examples")
}

fn gitops() -> PathBuf {
    examples().join("gitops")
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .filter(|v: &Value| v.is_object())
        .collect()
}

/// `kubectl kustomize DIR`: the real kustomize, built into kubectl.
fn kustomize(dir: &Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl is installed (its kustomize builds the layers)");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    yaml_docs(&String::from_utf8_lossy(&out.stdout))
}

fn identity(o: &Value) -> String {
    match o["metadata"]["namespace"].as_str() {
        Some(ns) => format!(
            "{}/{ns}/{}",
            o["kind"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        ),
        None => format!(
            "{}/{}",
            o["kind"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        ),
    }
}

/// The files listed, when every path could be read.
fn readable((files, problems): (Vec<PathBuf>, Vec<regie::input::Problem>)) -> Vec<PathBuf> {
    assert!(problems.is_empty(), "{problems:?}");
    files
}

/// Every regie object written in the example folders the repository layout builds from.
fn example_objects() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let files = readable(regie::input::yaml_files(&[
        examples().join("catalogue"),
        examples().join("tenants"),
    ]));
    for f in files {
        for doc in yaml_docs(&std::fs::read_to_string(&f).expect("readable")) {
            if doc["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("regie.dev/"))
            {
                assert!(
                    out.insert(identity(&doc), doc).is_none(),
                    "duplicate in {}",
                    f.display()
                );
            }
        }
    }
    out
}

fn kustomization_resources(dir: &Path) -> BTreeSet<String> {
    let k = &yaml_docs(
        &std::fs::read_to_string(dir.join("kustomization.yaml"))
            .unwrap_or_else(|e| panic!("{}/kustomization.yaml: {e}", dir.display())),
    )[0];
    k["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(String::from))
        .collect()
}

#[test]
fn every_example_file_is_in_a_kustomization_and_every_participant_is_listed() {
    let mut dirs = vec![examples().join("catalogue")];
    let mut participants = BTreeSet::new();
    for e in std::fs::read_dir(examples().join("tenants")).expect("examples/tenants") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            participants.insert(format!(
                "../../tenants/{}",
                p.file_name().expect("name").to_string_lossy()
            ));
            dirs.push(p);
        }
    }
    for dir in dirs {
        let listed = kustomization_resources(&dir);
        let present: BTreeSet<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
            .filter(|n| (n.ends_with(".yaml") || n.ends_with(".yml")) && n != "kustomization.yaml")
            .collect();
        assert_eq!(
            listed,
            present,
            "{}/kustomization.yaml must list exactly its YAML files",
            dir.display()
        );
    }
    assert_eq!(
        kustomization_resources(&gitops().join("participants")),
        participants,
        "gitops/participants lists every tenants/<name>"
    );
}

fn wave(o: &Value) -> &str {
    o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        .as_str()
        .unwrap_or("")
}

#[test]
fn the_layers_build_and_hold_every_example_object_once_in_its_wave() {
    let want = example_objects();
    let layers: Vec<(&str, &str, BTreeSet<&str>)> = vec![
        (
            "catalogue",
            "-1",
            BTreeSet::from(["ServiceLevel", "PriceList", "CostPool"]),
        ),
        ("tenants", "0", BTreeSet::from(["Tenant"])),
        (
            "workloads",
            "1",
            BTreeSet::from(["WorkplacePackage", "HostingComponent", "ServiceOrder"]),
        ),
    ];
    let mut seen = BTreeMap::new();
    for (layer, w, kinds) in &layers {
        let objects = kustomize(&gitops().join("layers").join(layer));
        assert!(!objects.is_empty(), "layer {layer} is empty");
        for o in objects {
            let kind = o["kind"].as_str().unwrap_or_default();
            assert!(kinds.contains(kind), "layer {layer} holds a {kind}");
            assert_eq!(wave(&o), *w, "{} in layer {layer}", identity(&o));
            let id = identity(&o);
            let original = want
                .get(&id)
                .unwrap_or_else(|| panic!("{id} of layer {layer} is not an example object"));
            assert_eq!(
                o["spec"], original["spec"],
                "{id}: the layer changed its spec"
            );
            assert!(
                seen.insert(id.clone(), o).is_none(),
                "{id} is in two layers"
            );
        }
    }
    let missing: Vec<&String> = want.keys().filter(|k| !seen.contains_key(*k)).collect();
    assert!(missing.is_empty(), "objects in no layer: {missing:?}");

    // Argo CD's Application syncs all three layers at once; Flux applies them one by one.
    let app: BTreeSet<String> = kustomize(&gitops().join("argocd/app"))
        .iter()
        .map(identity)
        .collect();
    assert_eq!(app, seen.keys().cloned().collect::<BTreeSet<_>>());
    // The catalogue survives its removal from git, in both tools.
    for o in kustomize(&gitops().join("layers/catalogue")) {
        assert_eq!(
            o["metadata"]["annotations"]["argocd.argoproj.io/sync-options"],
            "Prune=false"
        );
        assert_eq!(
            o["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/prune"],
            "disabled"
        );
    }
}

#[test]
fn the_flux_kustomizations_apply_the_layers_in_order() {
    let docs = yaml_docs(
        &std::fs::read_to_string(gitops().join("flux/regie.yaml")).expect("flux/regie.yaml"),
    );
    let ks: BTreeMap<String, &Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Kustomization")
        .map(|d| {
            (
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                d,
            )
        })
        .collect();
    let deps = |name: &str| -> Vec<String> {
        ks[name]["spec"]["dependsOn"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["name"].as_str().map(String::from))
            .collect()
    };
    assert_eq!(deps("regie-catalogue"), Vec::<String>::new());
    assert_eq!(deps("regie-tenants"), vec!["regie-catalogue"]);
    assert_eq!(deps("regie-workloads"), vec!["regie-tenants"]);
    for (name, layer) in [
        ("regie-catalogue", "catalogue"),
        ("regie-tenants", "tenants"),
        ("regie-workloads", "workloads"),
    ] {
        let spec = &ks[name]["spec"];
        assert_eq!(spec["path"], format!("./gitops/layers/{layer}"));
        assert_eq!(spec["wait"], true, "{name} waits for health");
        // The path is relative to the repository root, which examples/ stands for.
        assert!(
            examples()
                .join(spec["path"].as_str().expect("path"))
                .join("kustomization.yaml")
                .exists()
        );
    }
    let exprs = &ks["regie-tenants"]["spec"]["healthCheckExprs"][0];
    assert_eq!(exprs["kind"], "Tenant");
    assert!(
        exprs["current"]
            .as_str()
            .is_some_and(|c| c.contains("ChildStalled"))
    );
}

#[test]
fn regie_validate_reads_the_whole_repository_without_problems_or_duplicates() {
    let (problems, count) = regie::cli::validate::check(&[examples()]);
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        lines.is_empty(),
        "regie validate examples/:\n{}",
        lines.join("\n")
    );
    let files = readable(regie::input::yaml_files(&[examples()]));
    let written: usize = files
        .iter()
        .map(|f| {
            yaml_docs(&std::fs::read_to_string(f).expect("readable"))
                .iter()
                .filter(|d| {
                    d["apiVersion"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("regie.dev/"))
                })
                .count()
        })
        .sum();
    assert_eq!(count, written, "validate must read each regie object once");
}

// ---------------------------------------------------------------------------------------------
// On a real control plane

/// `regie run` as a separate process against `cluster`, killed when dropped.
struct Operator {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    fn start(cluster: &Cluster) -> Operator {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("regie.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(regie_bin())
            .args(["run", "--metrics-addr=127.0.0.1:0", "--leader-elect=false"])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start regie run");
        Operator {
            child,
            log,
            _dir: dir,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn apply(cluster: &Cluster, objects: &[Value], dir: &Path, name: &str) {
    let path = dir.join(format!("{name}.yaml"));
    let text: String = objects
        .iter()
        .map(|o| format!("---\n{}", serde_yaml::to_string(o).expect("YAML")))
        .collect();
    std::fs::write(&path, text).expect("write layer");
    cluster
        .kubectl_ok(&[
            "apply",
            "--server-side",
            "--field-manager=gitops-test",
            "-f",
            &path.display().to_string(),
        ])
        .unwrap_or_else(|e| panic!("applying layer {name}: {e}"));
}

fn live(cluster: &Cluster, o: &Value) -> Value {
    let kind = o["kind"].as_str().expect("kind").to_lowercase();
    let resource = format!("{kind}.regie.dev");
    let name = o["metadata"]["name"].as_str().expect("name");
    let mut args = vec!["get", &resource, name, "-o", "json"];
    if let Some(ns) = o["metadata"]["namespace"].as_str() {
        args.extend(["-n", ns]);
    }
    serde_json::from_str(&cluster.kubectl_ok(&args).expect("kubectl get")).expect("JSON")
}

/// Waits until regie's Argo CD health check calls every object of the layer Healthy, as Argo CD
/// does between sync waves; fails at once on Degraded.
fn wait_healthy(cluster: &Cluster, operator: &Operator, objects: &[Value], layer: &str) {
    let script = gitops().join("argocd/health/regie.lua");
    let start = Instant::now();
    loop {
        let mut waiting = Vec::new();
        for o in objects {
            let (status, message) = runner::run_health("lua5.4", &script, &live(cluster, o));
            match status.as_str() {
                "Healthy" => {}
                "Degraded" => panic!(
                    "{} is Degraded: {message}\nregie's log:\n{}",
                    identity(o),
                    operator.log_tail()
                ),
                _ => waiting.push(format!("{} {status}: {message}", identity(o))),
            }
        }
        if waiting.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "layer {layer} not healthy after 120 s:\n{}\nregie's log:\n{}",
            waiting.join("\n"),
            operator.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_layers_apply_in_order_to_a_real_control_plane_and_become_healthy() {
    let cluster = shared();
    let operator = Operator::start(cluster);
    let tmp = tempfile::tempdir().expect("temp dir");
    for layer in ["catalogue", "tenants", "workloads"] {
        let objects = kustomize(&gitops().join("layers").join(layer));
        apply(cluster, &objects, tmp.path(), layer);
        wait_healthy(cluster, &operator, &objects, layer);
    }
    // regie made a namespace per Tenant, and the Tenants roll their components up.
    for t in kustomize(&gitops().join("layers/tenants")) {
        let live = live(cluster, &t);
        let ns = live["status"]["namespace"]
            .as_str()
            .expect("status.namespace");
        cluster
            .kubectl_ok(&["get", "namespace", ns])
            .expect("the tenant's namespace");
        let summary = live["status"]["componentsSummary"]
            .as_str()
            .unwrap_or_default();
        let (ready, total) = summary
            .split_once('/')
            .expect("componentsSummary is ready/total");
        assert_eq!(ready, total, "{}: components {summary}", identity(&t));
    }
}

#[test]
fn the_argocd_cm_patch_merges_into_argocd_cm() {
    let cluster = shared();
    let ns = "argocd";
    let out = cluster.kubectl(&["create", "namespace", ns]);
    assert!(out.status.success() || String::from_utf8_lossy(&out.stderr).contains("AlreadyExists"));
    let _ = cluster.kubectl(&[
        "-n",
        ns,
        "delete",
        "configmap",
        "argocd-cm",
        "--ignore-not-found",
    ]);
    cluster
        .kubectl_ok(&[
            "-n",
            ns,
            "create",
            "configmap",
            "argocd-cm",
            "--from-literal=url=https://argocd.example.org",
        ])
        .expect("an argocd-cm as Argo CD installs it");
    let patch = gitops().join("argocd/argocd-cm-health.yaml");
    // The command the snippet's header and docs/guides/gitops.md give.
    cluster
        .kubectl_ok(&[
            "-n",
            ns,
            "patch",
            "configmap",
            "argocd-cm",
            "--patch-file",
            &patch.display().to_string(),
        ])
        .expect("kubectl patch --patch-file");
    let cm: Value = serde_json::from_str(
        &cluster
            .kubectl_ok(&["-n", ns, "get", "configmap", "argocd-cm", "-o", "json"])
            .expect("get"),
    )
    .expect("JSON");
    assert_eq!(
        cm["data"]["url"], "https://argocd.example.org",
        "the patch must keep Argo CD's own settings"
    );
    let snippet = &yaml_docs(&std::fs::read_to_string(&patch).expect("snippet"))[0];
    for crd in regie_crds::crd::crds() {
        let key = format!(
            "resource.customizations.health.regie.dev_{}",
            crd.spec.names.kind
        );
        assert_eq!(cm["data"][&key], snippet["data"][&key], "{key}");
        assert!(
            cm["data"][&key]
                .as_str()
                .is_some_and(|s| s.contains("return result("))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The pull-request script

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(repo)
        .args([
            "-c",
            "user.name=regie test",
            "-c",
            "user.email=test@example.org",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git is installed");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository laid out as an organisation copies it: examples/ is its root.
fn copied_repository() -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("temp dir");
    for part in ["catalogue", "tenants", "gitops"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(examples().join(part))
            .arg(repo.path())
            .status()
            .expect("cp");
        assert!(status.success());
    }
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "the regie repository"]);
    repo
}

fn set_level(repo: &Path, tenant: &str, level: &str) {
    let path = repo.join(format!("tenants/{tenant}/tenant.yaml"));
    let text = std::fs::read_to_string(&path).expect("tenant.yaml");
    let changed: String = text
        .lines()
        .map(|l| {
            if l.starts_with("  serviceLevel:") {
                format!("  serviceLevel: {level}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(
        text.trim_end(),
        changed,
        "{tenant} has a spec.serviceLevel line"
    );
    std::fs::write(&path, changed + "\n").expect("write");
}

fn pull_request(repo: &Path, base: &str) -> (i32, String) {
    let out = Command::new(repo.join("gitops/ci/pull-request"))
        .current_dir(repo)
        .arg(base)
        .arg("comment.md")
        .env("REGIE", regie_bin())
        .output()
        .expect("run gitops/ci/pull-request");
    let comment = std::fs::read_to_string(repo.join("comment.md")).unwrap_or_default();
    assert!(
        !repo.join(".regie-base").exists(),
        "the base worktree is removed"
    );
    (out.status.code().unwrap_or(-1), comment)
}

#[test]
fn the_pull_request_script_validates_diffs_and_writes_the_comment() {
    let repo = copied_repository();
    let base = git(repo.path(), &["rev-parse", "HEAD"]);

    // "Tholen wants gold."
    set_level(repo.path(), "tholen", "gold");
    git(repo.path(), &["commit", "-q", "-am", "Tholen: gold"]);
    let (rc, comment) = pull_request(repo.path(), &base);
    assert_eq!(rc, 0, "{comment}");
    assert!(
        comment.starts_with("<!-- regie-pull-request -->\n## regie"),
        "{comment}"
    );
    assert!(comment.contains("**Validation passed:**"), "{comment}");
    // The comment carries exactly what `regie diff BASE HEAD` says, run the same way.
    git(
        repo.path(),
        &["worktree", "add", "--detach", ".regie-base", &base],
    );
    let diff = Command::new(regie_bin())
        .current_dir(repo.path())
        .args(["diff", ".regie-base", "."])
        .output()
        .expect("regie diff");
    git(
        repo.path(),
        &["worktree", "remove", "--force", ".regie-base"],
    );
    if diff.status.success() {
        let md = String::from_utf8_lossy(&diff.stdout);
        assert!(
            comment.contains(md.trim()),
            "the comment lacks regie diff's output:\n{comment}"
        );
        assert!(
            md.contains("tholen"),
            "regie diff does not mention tholen:\n{md}"
        );
    } else {
        assert!(
            comment.contains(String::from_utf8_lossy(&diff.stderr).trim()),
            "{comment}"
        );
    }

    // A mistake: a level that does not exist.
    set_level(repo.path(), "tholen", "platinum");
    git(repo.path(), &["commit", "-q", "-am", "Tholen: platinum"]);
    let (rc, comment) = pull_request(repo.path(), &base);
    assert_eq!(rc, 1, "an invalid pull request fails:\n{comment}");
    assert!(
        comment.contains("**Validation failed**") && comment.contains("platinum"),
        "{comment}"
    );

    // A wrong base revision is a usage error, not a validation result.
    let (rc, _) = pull_request(repo.path(), "no-such-revision");
    assert_eq!(rc, 2);
}

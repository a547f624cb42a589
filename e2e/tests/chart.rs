//! The Helm chart (`charts/regie/`), tested for real:
//! - its generated files (CRDs, RBAC, ServiceLevels, values table) equal a fresh run of
//!   `charts/regie/generate`;
//! - the real Helm library (the PyPI wheel helm-sdkpy, through `e2e/helm/helm.py`) lints it and
//!   refuses wrong values;
//! - it installs into a real control plane (kube-apiserver v1.20.2 from `e2e/cluster`), with the
//!   hardened Deployment, least-privilege RBAC, NetworkPolicy, PodDisruptionBudget (the v1beta1 API
//!   this server offers) and the CRDs kept on uninstall; it upgrades to every option on
//!   (ServiceMonitor, dashboards, ServiceLevels, changed resources) and back; wrong values fail
//!   with a clear message; it uninstalls and installs again over the kept CRDs.
//!
//! Needs python3 with helm-sdkpy 0.1.32 and PyYAML, kubectl, and what `e2e/cluster` needs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use regie_e2e::cluster::{Cluster, regie_bin, repo_root};
use serde_json::{Value, json};

const RELEASE: &str = "regie";
const NAMESPACE: &str = "regie-system";

fn chart_dir() -> PathBuf {
    repo_root().join("charts/regie")
}

// ---------------------------------------------------------------------------------------------
// Helm through helm-sdkpy

/// Runs `e2e/helm/helm.py ARGS`; Ok(JSON answer) or Err(Helm's message).
fn helm(args: &[&str]) -> Result<Value, String> {
    let out = Command::new("python3")
        .arg(repo_root().join("e2e/helm/helm.py"))
        .args(args)
        .output()
        .expect("python3 is installed");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Ok(serde_json::from_slice(&out.stdout).expect("helm.py prints JSON")),
        Some(1) => Err(stderr),
        _ => panic!("e2e/helm/helm.py cannot run ({}): {stderr}", out.status),
    }
}

fn values_file(dir: &Path, name: &str, values: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(values).expect("JSON")).expect("write values");
    path.display().to_string()
}

/// The objects of a rendered manifest (a release's `manifest`).
fn manifest_objects(manifest: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(manifest)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|v: &Value| v.is_object())
        .collect()
}

fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Generated files

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out.sort();
    out
}

#[test]
fn generated_chart_files_are_up_to_date() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = Command::new(chart_dir().join("generate"))
        .arg("--out")
        .arg(tmp.path())
        .env("REGIE", regie_bin())
        .output()
        .expect("run charts/regie/generate");
    assert!(
        out.status.success(),
        "charts/regie/generate failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = files_under(tmp.path());
    assert!(generated.len() >= 13, "generate wrote only {generated:?}");
    let mut stale = Vec::new();
    for g in &generated {
        let rel = g.strip_prefix(tmp.path()).expect("under out");
        let committed = std::fs::read_to_string(chart_dir().join(rel)).unwrap_or_default();
        if committed != std::fs::read_to_string(g).expect("generated file") {
            stale.push(rel.display().to_string());
        }
    }
    // Nothing generated earlier and no longer produced may linger.
    for dir in ["templates/crds"] {
        let fresh: BTreeSet<_> = generated
            .iter()
            .filter_map(|g| g.strip_prefix(tmp.path()).ok())
            .map(Path::to_path_buf)
            .collect();
        let committed = chart_dir().join(dir);
        if committed.is_dir() {
            for f in files_under(&committed) {
                let rel = f.strip_prefix(chart_dir()).expect("in chart").to_path_buf();
                if f.extension().is_some_and(|e| e == "yaml") && !fresh.contains(&rel) {
                    stale.push(format!("{} (no longer generated)", rel.display()));
                }
            }
        }
    }
    let rules = chart_dir().join("files/prometheusrule.yaml");
    if rules.exists() && !tmp.path().join("files/prometheusrule.yaml").exists() {
        stale.push("files/prometheusrule.yaml (no longer generated)".into());
    }
    assert!(
        stale.is_empty(),
        "out of date, run charts/regie/generate: {stale:?}"
    );
}

/// The hand-written alerts on the operator pass the real promtool (Debian's `prometheus`).
#[test]
fn the_operator_alerts_pass_promtool() {
    promtool(
        &["check", "rules", "--lint-fatal"],
        &chart_dir().join("files/operator-alerts.yaml"),
    );
}

/// Runs the real promtool on `file`; fails the test with its output unless it succeeds.
fn promtool(args: &[&str], file: &Path) {
    let out = Command::new("promtool")
        .args(args)
        .arg(file)
        .output()
        .expect("promtool is installed (Debian package prometheus)");
    assert!(
        out.status.success(),
        "promtool {} {}:\n{}{}",
        args.join(" "),
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `promtool test rules` with `tests` (the YAML under `tests:`) on the operator's alerts.
fn operator_alerts_test(name: &str, tests: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let rules = chart_dir().join("files/operator-alerts.yaml");
    let file = tmp.path().join(name);
    let body = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n{tests}",
        rules.display()
    );
    std::fs::write(&file, body).expect("write the promtool test");
    promtool(&["test", "rules"], &file);
}

/// `RegieInvoicingFailing` fires when every invoicing pass of an hour failed — also when none
/// ever completed, so that the `complete` series does not exist — and not while some complete.
#[test]
fn the_invoicing_alert_fires_only_when_no_pass_completes() {
    operator_alerts_test(
        "invoicing-test.yaml",
        r#"  - interval: 1m
    input_series:
      - series: 'regie_invoicing_passes_total{result="failed", pod="never"}'
        values: '0+1x180'
      - series: 'regie_leader{identity="a"}'
        values: '1x180'
    alert_rule_test:
      - eval_time: 90m
        alertname: RegieInvoicingFailing
        exp_alerts:
          - exp_labels:
              severity: ticket
            exp_annotations:
              summary: "regie's invoicing has failed every pass for an hour; draft invoices are not kept up to date (see the InvoicingFailed Warning events on the Tenants)."
  - interval: 1m
    input_series:
      - series: 'regie_invoicing_passes_total{result="failed"}'
        values: '0+1x180'
      - series: 'regie_invoicing_passes_total{result="complete"}'
        values: '0+0x60 1+0x120'
      - series: 'regie_leader{identity="a"}'
        values: '1x180'
    alert_rule_test:
      - eval_time: 90m
        alertname: RegieInvoicingFailing
        exp_alerts: []
"#,
    );
}

/// `RegieTenantsUnpriced` fires when some tenants' invoices could not be priced for an hour,
/// and not for a moment's failure or none.
#[test]
fn the_unpriced_tenants_alert_fires_after_an_hour() {
    operator_alerts_test(
        "unpriced-test.yaml",
        r#"  - interval: 1m
    input_series:
      - series: 'regie_invoicing_unpriced_tenants{pod="leader"}'
        values: '0x10 2x120'
      - series: 'regie_invoicing_unpriced_tenants{pod="standby"}'
        values: '0x130'
      - series: 'regie_leader{identity="a"}'
        values: '1x130'
    alert_rule_test:
      - eval_time: 40m
        alertname: RegieTenantsUnpriced
        exp_alerts: []
      - eval_time: 90m
        alertname: RegieTenantsUnpriced
        exp_alerts:
          - exp_labels:
              severity: ticket
            exp_annotations:
              summary: "regie cannot price the invoices of 2 tenant(s); theirs stay as they were (see the InvoicingFailed Warning events on those Tenants)."
"#,
    );
}

/// `RegieStalledObjects` fires while objects stay Stalled for a quarter of an hour (a stall of
/// days keeps it firing), and not for a stall fixed within minutes.
#[test]
fn the_stalled_objects_alert_fires_while_a_stall_lasts() {
    operator_alerts_test(
        "stalled-test.yaml",
        r#"  - interval: 1m
    input_series:
      - series: 'regie_stalled_objects{kind="HostingComponent", reason="ProbeTargetRefused", pod="leader"}'
        values: '0x10 1x300'
      - series: 'regie_stalled_objects{kind="Tenant", reason="InvalidSpec", pod="leader"}'
        values: '0x10 1x5 0x300'
    alert_rule_test:
      - eval_time: 20m
        alertname: RegieStalledObjects
        exp_alerts: []
      - eval_time: 300m
        alertname: RegieStalledObjects
        exp_alerts:
          - exp_labels:
              severity: ticket
              kind: HostingComponent
              reason: ProbeTargetRefused
            exp_annotations:
              summary: "1 HostingComponent object(s) Stalled (ProbeTargetRefused) for a quarter of an hour: see kubectl get regie -A"
"#,
    );
}

/// The CRD templates are exactly `regie crds`, one CRD per file, plus the chart's metadata.
#[test]
fn every_crd_has_a_template_that_is_kept_on_uninstall() {
    for crd in regie_crds::crd::crds() {
        let plural = &crd.spec.names.plural;
        let path = chart_dir().join(format!("templates/crds/{plural}.yaml"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            text.starts_with("{{- if .Values.crds.install }}"),
            "{plural}: not gated by crds.install"
        );
        assert!(
            text.contains("helm.sh/resource-policy: keep"),
            "{plural}: not kept on uninstall"
        );
        assert!(
            text.contains(&format!("  name: {plural}.regie.dev\n")),
            "{plural}: wrong name"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Lint (no cluster)

fn chart_copy_with_values(overrides: &Value) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    let status = Command::new("cp")
        .arg("-r")
        .arg(chart_dir())
        .arg(tmp.path().join("regie"))
        .status()
        .expect("cp");
    assert!(status.success());
    let values_path = tmp.path().join("regie/values.yaml");
    let mut values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(&values_path).expect("values.yaml"))
            .expect("YAML");
    merge(&mut values, overrides);
    std::fs::write(&values_path, serde_yaml::to_string(&values).expect("YAML"))
        .expect("write values");
    tmp
}

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[test]
fn the_chart_lints_and_lint_refuses_wrong_values() {
    let ok = helm(&["lint", &chart_dir().display().to_string()]).expect("lint runs");
    assert_eq!(
        ok["errors"], 0,
        "helm lint found errors in charts/regie: {ok}"
    );

    for bad in [
        json!({"replicaCount": "two"}),
        json!({"securityContext": {"readOnlyRootFilesystem": false}}),
        json!({"imag": {}}),
        json!({"operator": {"mallocTunables": "arena_max=1"}}),
        // A tenant role that lets the tenant's groups change their namespace itself.
        json!({"operator": {"tenantRole": "cluster-admin"}}),
        json!({"operator": {"tenantRole": "admin"}}),
        json!({"operator": {"tenantRole": "system:aggregate-to-edit"}}),
        // Pod security weakened by a property the schema does not list.
        json!({"podSecurityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
        json!({"podSecurityContext": {"seLinuxOptions": {"type": "spc_t"}}}),
    ] {
        let copy = chart_copy_with_values(&bad);
        let res =
            helm(&["lint", &copy.path().join("regie").display().to_string()]).expect("lint runs");
        let errors = res["errors"].as_u64().unwrap_or(0);
        assert!(errors > 0, "lint accepted {bad}: {res}");
        assert!(
            res["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["path"] == "values.yaml" && m["severity"] == 3),
            "lint did not blame values.yaml for {bad}: {res}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A real control plane

/// A control plane of this test's own, without regie's CRDs: the chart installs them, as on a
/// fresh cluster. Stopped when dropped (and by `e2e/cluster`'s watchdog if this process dies).
struct BareCluster {
    cluster: Cluster,
    _dir: tempfile::TempDir,
}

impl BareCluster {
    fn start() -> BareCluster {
        let dir = tempfile::Builder::new()
            .prefix("regie-chart-")
            .tempdir()
            .expect("temp dir");
        let state = dir.path().join("cluster");
        let out = Command::new(repo_root().join("e2e/cluster"))
            .arg("up")
            .arg("--dir")
            .arg(&state)
            .arg("--owner-pid")
            .arg(std::process::id().to_string())
            .output()
            .expect("run e2e/cluster up");
        assert!(
            out.status.success(),
            "e2e/cluster up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let kubeconfig = PathBuf::from(
            stdout
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .expect("a kubeconfig path")
                .trim(),
        );
        assert!(kubeconfig.exists(), "e2e/cluster up printed {kubeconfig:?}");
        BareCluster {
            cluster: Cluster {
                dir: state,
                kubeconfig,
            },
            _dir: dir,
        }
    }

    fn kubeconfig(&self) -> String {
        self.cluster.kubeconfig.display().to_string()
    }

    fn get(&self, args: &[&str]) -> Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.cluster.kubectl_ok(&a).expect("kubectl get")).expect("JSON")
    }

    fn exists(&self, args: &[&str]) -> bool {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        let out = self.cluster.kubectl(&a);
        if out.status.success() {
            return true;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("NotFound") || err.contains("not found"),
            "kubectl get {args:?}: {err}"
        );
        false
    }

    /// Waits (up to 60 s) until `kubectl get ARGS` finds nothing; deletion of namespaced objects
    /// by Helm is immediate, but garbage collection of owned objects takes a moment.
    fn wait_gone(&self, args: &[&str]) {
        let start = Instant::now();
        while self.exists(args) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{args:?} still exists after 60 s"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn helm(&self, verb: &str, extra: &[&str]) -> Result<Value, String> {
        let kc = self.kubeconfig();
        let mut args = vec![verb, "--kubeconfig", &kc, "--namespace", NAMESPACE];
        args.extend_from_slice(extra);
        helm(&args)
    }
}

impl Drop for BareCluster {
    fn drop(&mut self) {
        self.cluster.down();
    }
}

fn container(deploy: &Value) -> &Value {
    &deploy["spec"]["template"]["spec"]["containers"][0]
}

fn args_of(deploy: &Value) -> Vec<String> {
    container(deploy)["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// The chart's arguments parse with the real `regie` command line: every flag the chart passes
/// exists in this regie and every value is accepted. (`--help` after them makes clap stop after
/// parsing, with exit code 0 only when everything before it parsed.)
fn assert_regie_accepts(args: &[String]) {
    let argv: Vec<String> = args
        .iter()
        .map(|a| a.replace("$(POD_NAMESPACE)", NAMESPACE))
        .collect();
    let out = Command::new(regie_bin())
        .args(&argv)
        .arg("--help")
        .output()
        .expect("run regie");
    assert!(
        out.status.success(),
        "regie does not accept the chart's arguments {argv:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The container's environment variable `name`, as written in the Deployment.
fn env_var<'a>(deploy: &'a Value, name: &str) -> Option<&'a Value> {
    container(deploy)["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

fn env_value<'a>(deploy: &'a Value, name: &str) -> Option<&'a str> {
    env_var(deploy, name).and_then(|e| e["value"].as_str())
}

/// The chart's allocator settings are names and values this machine's glibc (the distroless
/// image's Debian 12 release) knows: glibc ignores a misspelt tunable silently, so only its
/// dynamic loader's own listing shows that each one took.
fn assert_glibc_applies(tunables: &str) {
    let loader = Path::new("/lib64/ld-linux-x86-64.so.2");
    let listed = Command::new(loader)
        .arg("--list-tunables")
        .env("GLIBC_TUNABLES", tunables)
        .output();
    let out = match listed {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            eprintln!(
                "{} cannot list tunables here (glibc before 2.33): not checked",
                loader.display()
            );
            return;
        }
    };
    for setting in tunables.split(':') {
        let (name, value) = setting.split_once('=').expect("name=value");
        let value: u64 = value.parse().expect("a number");
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("glibc knows no tunable {name}"));
        assert!(
            line.contains(&format!(": {value:#x} ")),
            "glibc did not take {setting}: {line}"
        );
    }
}

/// What every install of the chart must have, whatever the values.
fn assert_hardened(c: &BareCluster) -> Value {
    let deploy = c.get(&["deployment", RELEASE, "-n", NAMESPACE]);
    let pod = &deploy["spec"]["template"]["spec"];
    let ctr = container(&deploy);
    assert_eq!(pod["serviceAccountName"], RELEASE);
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let sc = &ctr["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(sc["capabilities"].get("add").is_none());
    for part in ["requests", "limits"] {
        assert!(
            ctr["resources"][part]["memory"].is_string(),
            "no memory {part}: {}",
            ctr["resources"]
        );
    }
    assert!(ctr["resources"]["requests"]["cpu"].is_string());
    assert_eq!(
        ctr["ports"],
        json!([{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(ctr["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(ctr["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(ctr["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(ctr["readinessProbe"]["httpGet"]["port"], "metrics");
    for (name, path) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let e = env_var(&deploy, name).unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], path);
    }
    let args = args_of(&deploy);
    assert_eq!(
        args[..3],
        [
            "run",
            "--metrics-addr=0.0.0.0:8080",
            "--leader-election-namespace=$(POD_NAMESPACE)"
        ],
        "the pinned arguments"
    );
    assert_regie_accepts(&args);
    deploy
}

fn rules_of(c: &BareCluster, kind: &str, name: &str, ns: Option<&str>) -> Value {
    let obj = match ns {
        Some(ns) => c.get(&[kind, name, "-n", ns]),
        None => c.get(&[kind, name]),
    };
    obj["rules"].clone()
}

/// Normalizes PolicyRules for comparison: the server drops nothing, but may order keys.
fn normalized(rules: &Value) -> Vec<Value> {
    let mut v: Vec<Value> = rules
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Some(o) = r.as_object_mut() {
                o.retain(|_, v| !v.is_null());
            }
            r
        })
        .collect();
    v.sort_by_key(|r| r.to_string());
    v
}

fn monitoring_crds(c: &BareCluster) {
    let path = repo_root().join("e2e/helm/monitoring-crds.yaml");
    c.cluster
        .kubectl_ok(&["apply", "--server-side", "-f", &path.display().to_string()])
        .expect("install the monitoring.coreos.com stand-in CRDs");
    for crd in [
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ] {
        c.cluster
            .kubectl_ok(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{crd}"),
            ])
            .expect("CRD established");
    }
}

#[test]
fn the_chart_installs_upgrades_and_uninstalls_on_a_real_control_plane() {
    let c = BareCluster::start();
    let chart = chart_dir().display().to_string();
    let tmp = tempfile::tempdir().expect("temp dir");
    let crd_names: Vec<String> = regie_crds::crd::crds()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();

    // 1. Install with the default values and the catalogue asked for: Helm cannot make a
    // ServiceLevel in the release that brings its CRD, so the catalogue waits for the next
    // upgrade (step 2), and the notes say so.
    let with_levels = values_file(
        tmp.path(),
        "levels.json",
        &json!({"serviceLevels": {"install": true}}),
    );
    let rel = c
        .helm(
            "install",
            &[
                "--create-namespace",
                RELEASE,
                &chart,
                "--values",
                &with_levels,
            ],
        )
        .unwrap_or_else(|e| panic!("install: {e}"));
    assert_eq!(rel["info"]["status"], "deployed");
    assert_eq!(rel["version"], 1);
    let notes = rel["info"]["notes"].as_str().unwrap_or_default();
    assert!(
        notes.contains("NOT installed yet") && notes.contains("--reuse-values"),
        "the notes say the catalogue comes with the next upgrade: {notes}"
    );
    assert!(!c.exists(&["servicelevel", "gold"]));
    let objects = manifest_objects(rel["manifest"].as_str().expect("manifest"));
    let want: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(kinds(&objects), want, "objects of a default install");
    assert_eq!(
        objects
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .count(),
        crd_names.len()
    );

    let deploy = assert_hardened(&c);
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(container(&deploy)["image"], "ghcr.io/regie-dev/regie:0.1.0");
    assert_eq!(container(&deploy)["resources"]["limits"]["memory"], "512Mi");
    let tunables = env_value(&deploy, "GLIBC_TUNABLES").expect("GLIBC_TUNABLES by default");
    assert!(tunables.contains("glibc.malloc.arena_max=1"), "{tunables}");
    assert_glibc_applies(tunables);

    // The server is v1.20: the PodDisruptionBudget must use the API it offers.
    let pdb = c.get(&[
        "poddisruptionbudgets.v1beta1.policy",
        RELEASE,
        "-n",
        NAMESPACE,
    ]);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
        RELEASE
    );
    let pdb_doc = objects
        .iter()
        .find(|o| o["kind"] == "PodDisruptionBudget")
        .expect("a PDB");
    assert_eq!(pdb_doc["apiVersion"], "policy/v1beta1");

    // Ingress only to the metrics port, only from the monitoring namespace; egress open.
    let np = c.get(&["networkpolicy", RELEASE, "-n", NAMESPACE]);
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    let ingress = np["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
        json!(["monitoring"])
    );

    // The least-privilege RBAC, exactly as `regie rbac` prints it.
    let cluster_role = format!("{RELEASE}-operator");
    assert_eq!(
        normalized(&rules_of(&c, "clusterrole", &cluster_role, None)),
        normalized(&regie::rbac::cluster_rules())
    );
    assert_eq!(
        normalized(&rules_of(&c, "role", &cluster_role, Some(NAMESPACE))),
        normalized(&regie::rbac::namespace_rules())
    );
    let crb = c.get(&["clusterrolebinding", &cluster_role]);
    assert_eq!(
        crb["subjects"],
        json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}])
    );
    assert_eq!(crb["roleRef"]["name"], cluster_role);
    let rb = c.get(&["rolebinding", &cluster_role, "-n", NAMESPACE]);
    assert_eq!(
        rb["subjects"],
        json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}])
    );

    let svc = c.get(&["service", &format!("{RELEASE}-metrics"), "-n", NAMESPACE]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");

    for name in &crd_names {
        let crd = c.get(&["crd", name]);
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "{name}"
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
            "{name}"
        );
    }
    // The regie kinds are served: a Tenant can be created (and read back) right away.
    assert!(
        c.cluster
            .kubectl_ok(&["get", "tenants,servicelevels,hostingcomponents", "-A"])
            .is_ok()
    );

    // 2. Upgrade with every option on (the Prometheus operator's CRDs are stand-ins here).
    monitoring_crds(&c);
    let rules_packaged = chart_dir().join("files/prometheusrule.yaml").exists();
    let all = json!({
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        "extraArgs": ["--concurrency=8"],
        "operator": {"logFormat": "json", "logLevel": "debug", "allowedNamespaces": ["monitoring", "ingress-nginx", "observability"], "mallocTunables": "",
            "probes": {"allowCidrs": ["10.20.0.0/16", "fd00:20::/32"], "denyCidrs": ["10.20.9.0/24"]}},
        "metrics": {"serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"}, "interval": "15s"}},
        "prometheusRule": {"enabled": rules_packaged, "labels": {"release": "prometheus"}},
        "dashboards": {"enabled": true, "annotations": {"grafana_folder": "regie"}},
        "serviceLevels": {"install": true},
        "networkPolicy": {"egress": {"restrict": true, "to": [
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
            {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"port": 6443, "protocol": "TCP"}]}
        ]}},
        "podDisruptionBudget": {"minAvailable": 1},
        "podAnnotations": {"example.org/team": "platform"}
    });
    let all_file = values_file(tmp.path(), "all.json", &all);
    let rel = c
        .helm("upgrade", &[RELEASE, &chart, "--values", &all_file])
        .unwrap_or_else(|e| panic!("upgrade to all options: {e}"));
    assert_eq!(rel["info"]["status"], "deployed");
    assert_eq!(rel["version"], 2);
    let objects = manifest_objects(rel["manifest"].as_str().expect("manifest"));
    let k = kinds(&objects);
    for kind in ["ServiceMonitor", "ServiceLevel"] {
        assert!(k.contains(kind), "no {kind} with every option on: {k:?}");
    }
    assert_eq!(k.contains("PrometheusRule"), rules_packaged);
    let deploy = assert_hardened(&c);
    assert_eq!(
        container(&deploy)["resources"]["limits"]["memory"],
        "1Gi",
        "the upgrade changed the resources"
    );
    assert_eq!(container(&deploy)["resources"]["requests"]["cpu"], "200m");
    assert_eq!(
        env_value(&deploy, "GLIBC_TUNABLES"),
        None,
        "an empty mallocTunables leaves glibc's defaults"
    );
    let args = args_of(&deploy);
    assert!(
        args.contains(&"--log-json".to_string()) && args.contains(&"--concurrency=8".to_string()),
        "{args:?}"
    );
    assert!(
        args.contains(&format!(
            "--allowed-namespaces={NAMESPACE},monitoring,ingress-nginx,observability"
        )),
        "{args:?}"
    );
    assert!(
        args.contains(&"--probe-allow-cidrs=10.20.0.0/16,fd00:20::/32".to_string())
            && args.contains(&"--probe-deny-cidrs=10.20.9.0/24".to_string())
            && !args.contains(&"--probe-allow-private".to_string()),
        "{args:?}"
    );
    let sm = c.get(&[
        "servicemonitors.monitoring.coreos.com",
        RELEASE,
        "-n",
        NAMESPACE,
    ]);
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s");
    let dashboards: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("dashboards"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    let cms = c.get(&["configmaps", "-n", NAMESPACE, "-l", "grafana_dashboard=1"]);
    assert_eq!(
        cms["items"].as_array().map(Vec::len),
        Some(dashboards.len()),
        "one ConfigMap per dashboard"
    );
    for d in &dashboards {
        let file = d.file_name().expect("name").to_string_lossy().to_string();
        let cm = cms["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|cm| cm["data"].get(&file).is_some());
        let cm = cm.unwrap_or_else(|| panic!("no ConfigMap holds {file}"));
        assert_eq!(
            cm["data"][&file].as_str(),
            Some(std::fs::read_to_string(d).expect("dashboard").trim_end())
        );
        assert_eq!(cm["metadata"]["annotations"]["grafana_folder"], "regie");
    }
    for level in ["bronze", "silver", "gold"] {
        let sl = c.get(&["servicelevel", level]);
        assert_eq!(
            sl["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
    if rules_packaged {
        // The SLA engine's rules arrive as `regie rules` wrote them: Helm must not read their
        // {{ $labels }} templates as its own.
        let file: Value = serde_yaml::from_str(
            &std::fs::read_to_string(chart_dir().join("files/prometheusrule.yaml")).expect("rules"),
        )
        .expect("YAML");
        let operator: Value = serde_yaml::from_str(
            &std::fs::read_to_string(chart_dir().join("files/operator-alerts.yaml"))
                .expect("alerts"),
        )
        .expect("YAML");
        let live = c.get(&[
            "prometheusrules.monitoring.coreos.com",
            RELEASE,
            "-n",
            NAMESPACE,
        ]);
        let mut want = file["spec"]["groups"].as_array().expect("groups").clone();
        want.extend(
            operator["groups"]
                .as_array()
                .expect("groups")
                .iter()
                .cloned(),
        );
        assert_eq!(
            live["spec"]["groups"],
            Value::Array(want),
            "the PrometheusRule differs from files/prometheusrule.yaml + files/operator-alerts.yaml"
        );
        assert_eq!(live["metadata"]["labels"]["release"], "prometheus");
    }
    let np = c.get(&["networkpolicy", RELEASE, "-n", NAMESPACE]);
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["egress"].as_array().map(Vec::len), Some(2));

    // PrometheusRule without rules in the chart fails with a message saying so, and changes nothing.
    if !rules_packaged {
        let with_rules = values_file(
            tmp.path(),
            "rules.json",
            &json!({"prometheusRule": {"enabled": true}}),
        );
        let err = c
            .helm("upgrade", &[RELEASE, &chart, "--values", &with_rules])
            .expect_err("no rules to install");
        assert!(err.contains("carries no rules"), "unclear message: {err}");
    }

    // 3. Wrong values fail with a message that names the value, and change nothing.
    for (bad, names) in [
        (json!({"replicaCount": "two"}), "replicaCount"),
        (
            json!({"securityContext": {"readOnlyRootFilesystem": false}}),
            "readOnlyRootFilesystem",
        ),
        (json!({"imagee": {"tag": "x"}}), "imagee"),
        (json!({"image": {"digest": "latest"}}), "digest"),
        (
            json!({"extraArgs": ["--metrics-addr=0.0.0.0:9090"]}),
            "extraArgs",
        ),
    ] {
        let f = values_file(tmp.path(), "bad.json", &bad);
        let err = c
            .helm("upgrade", &[RELEASE, &chart, "--values", &f])
            .expect_err(&format!("{bad} must be refused"));
        assert!(
            err.contains("schema") && err.contains(names),
            "the message for {bad} does not name {names}: {err}"
        );
    }
    let status = c.helm("status", &[RELEASE]).expect("status");
    assert_eq!(
        status["version"], 2,
        "a refused upgrade must not make a revision"
    );

    // 4. Back to the defaults: the optional objects go, the kept ServiceLevels stay.
    let rel = c
        .helm("upgrade", &[RELEASE, &chart])
        .unwrap_or_else(|e| panic!("upgrade to defaults: {e}"));
    assert_eq!(rel["version"], 3);
    assert!(!c.exists(&[
        "servicemonitors.monitoring.coreos.com",
        RELEASE,
        "-n",
        NAMESPACE
    ]));
    assert_eq!(
        c.get(&["configmaps", "-n", NAMESPACE, "-l", "grafana_dashboard=1"])["items"],
        json!([])
    );
    assert!(
        c.exists(&["servicelevel", "gold"]),
        "a kept ServiceLevel was deleted by the upgrade"
    );
    assert_eq!(
        container(&assert_hardened(&c))["resources"]["limits"]["memory"],
        "512Mi"
    );

    // 5. Uninstall: everything of the release goes, except what is kept.
    c.helm("uninstall", &[RELEASE])
        .unwrap_or_else(|e| panic!("uninstall: {e}"));
    for what in [
        vec!["deployment", RELEASE, "-n", NAMESPACE],
        vec!["serviceaccount", RELEASE, "-n", NAMESPACE],
        vec!["service", "regie-metrics", "-n", NAMESPACE],
        vec!["networkpolicy", RELEASE, "-n", NAMESPACE],
        vec![
            "poddisruptionbudgets.v1beta1.policy",
            RELEASE,
            "-n",
            NAMESPACE,
        ],
        vec!["role", "regie-operator", "-n", NAMESPACE],
        vec!["rolebinding", "regie-operator", "-n", NAMESPACE],
        vec!["clusterrole", "regie-operator"],
        vec!["clusterrolebinding", "regie-operator"],
    ] {
        c.wait_gone(&what);
    }
    for name in &crd_names {
        assert!(
            c.exists(&["crd", name]),
            "CRD {name} was deleted by the uninstall"
        );
    }
    assert!(
        c.exists(&["servicelevel", "gold"]),
        "the catalogue was deleted by the uninstall"
    );

    // 6. Installing again adopts the kept CRDs; with one replica there is no disruption budget
    // (one keeping it would block every node drain).
    let single = values_file(tmp.path(), "single.json", &json!({"replicaCount": 1}));
    let rel = c
        .helm("install", &[RELEASE, &chart, "--values", &single])
        .unwrap_or_else(|e| panic!("install over kept CRDs: {e}"));
    assert_eq!(rel["info"]["status"], "deployed");
    let objects = manifest_objects(rel["manifest"].as_str().expect("manifest"));
    assert!(!kinds(&objects).contains("PodDisruptionBudget"));
    assert_hardened(&c);
}

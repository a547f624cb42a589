//! Real control planes for tests, benchmarks and the demo, started through `e2e/cluster`.
//!
//! [`shared`] gives every test of one test binary the same control plane (started once; tests
//! use their own names or namespaces). [`TestCluster::start`] gives a test a control plane of its
//! own, for tests that run an operator and must not see another test's objects. Either way the
//! cluster is started with `--owner-pid` of the test process, so its watchdog tears it down when
//! the process ends — also when a test panics or the process is killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the repository")
        .to_path_buf()
}

/// A running control plane: where its kubeconfig is and how to reach it.
#[derive(Debug)]
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// Starts a control plane in `dir`, owned by this process.
    pub fn up(dir: &Path) -> Result<Cluster> {
        Cluster::up_auditing(dir, &[])
    }

    /// Starts a control plane in `dir` whose API server records every request of the given
    /// users in an audit log (read with [`Cluster::audited`]).
    pub fn up_auditing(dir: &Path, audit_users: &[&str]) -> Result<Cluster> {
        let script = repo_root().join("e2e/cluster");
        let mut command = Command::new(&script);
        command
            .arg("up")
            .arg("--dir")
            .arg(dir)
            .arg("--owner-pid")
            .arg(std::process::id().to_string());
        for user in audit_users {
            command.arg("--audit-user").arg(user);
        }
        let out = command
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "e2e/cluster up failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .context("e2e/cluster up printed no kubeconfig path")?;
        let kubeconfig = PathBuf::from(last.trim());
        if !kubeconfig.exists() {
            bail!("e2e/cluster up printed {last:?}, which is not a file");
        }
        let cluster = Cluster {
            dir: dir.to_path_buf(),
            kubeconfig,
        };
        cluster.install_crds_blocking()?;
        Ok(cluster)
    }

    /// Stops the control plane and removes its state.
    pub fn down(&self) {
        let _ = Command::new(repo_root().join("e2e/cluster"))
            .arg("down")
            .arg("--dir")
            .arg(&self.dir)
            .output();
    }

    /// A client for this cluster, bound to the caller's tokio runtime.
    pub async fn client(&self) -> Result<Client> {
        client_from(&self.kubeconfig).await
    }

    /// A client with the admin's rights that authenticates as [`OPERATOR_USER`], for an
    /// operator the test runs: the audit log (see [`Cluster::up_auditing`]) tells its requests
    /// from the test's own.
    pub async fn operator_client(&self) -> Result<Client> {
        client_from(&self.dir.join("operator.kubeconfig")).await
    }

    /// What the API server's audit log holds so far: one event per request of the audited users
    /// (see [`Cluster::up_auditing`]), at the stage its answer was complete (or, for a watch,
    /// had started). A line cut short by a write in progress is left out.
    pub fn audited(&self) -> Result<Vec<AuditEvent>> {
        let path = self.dir.join("logs/audit.log");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the audit log {}", path.display()))?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
            .filter(|e| e.stage != "RequestReceived")
            .collect())
    }

    /// Runs the real kubectl against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl is installed")
    }

    /// Like [`Cluster::kubectl`], failing with kubectl's stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl(args);
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply --server-side` of the given files in one call.
    pub fn apply_files(&self, files: &[PathBuf], extra: &[&str]) -> Result<String> {
        let mut args: Vec<String> = vec!["apply".into(), "--server-side".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        for f in files {
            args.push("-f".into());
            args.push(f.to_string_lossy().into_owned());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.kubectl_ok(&refs)
    }

    /// Writes `yaml` to `dir/file` and applies it server-side with kubectl, as a person would.
    pub fn apply_yaml(&self, dir: &Path, file: &str, yaml: &str) -> Result<String> {
        let path = dir.join(file);
        std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        self.apply_files(&[path], &[])
    }

    fn install_crds_blocking(&self) -> Result<()> {
        // A thread of its own, so this works from inside an async test as well as outside one.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    rt.block_on(async {
                        let client = self.client().await?;
                        install_crds(&client).await
                    })
                })
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("installing the CRDs panicked")))
        })
    }
}

/// The user of [`Cluster::operator_client`].
pub const OPERATOR_USER: &str = "regie-operator";

/// A client from a kubeconfig file, bound to the caller's tokio runtime.
async fn client_from(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    // Benchmarks apply thousands of objects; the default timeout is fine, throttling is not.
    config.read_timeout = Some(Duration::from_secs(60));
    // The client `regie run` uses, so that every test and benchmark goes over it.
    Ok(regie::api_client::build(config, 32)?)
}

/// One request as the API server's audit log records it (the fields tests read).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub stage: String,
    pub verb: String,
    pub request_u_r_i: String,
    pub user: AuditUser,
    #[serde(default)]
    pub object_ref: Option<AuditObjectRef>,
    #[serde(default)]
    pub response_status: Option<AuditStatus>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct AuditUser {
    pub username: String,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditObjectRef {
    #[serde(default)]
    pub api_group: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub subresource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct AuditStatus {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub message: String,
}

impl AuditEvent {
    /// `resource` or `resource/subresource`, the way RBAC rules name it.
    pub fn resource(&self) -> String {
        match &self.object_ref {
            Some(o) if !o.subresource.is_empty() => format!("{}/{}", o.resource, o.subresource),
            Some(o) => o.resource.clone(),
            None => String::new(),
        }
    }

    /// `verb group/resource[/subresource]`: what a request needs, as RBAC rules say it.
    pub fn access(&self) -> String {
        let group = self
            .object_ref
            .as_ref()
            .map_or("", |o| o.api_group.as_str());
        format!("{} {group}/{}", self.verb, self.resource())
    }

    /// The code of the answer (0 when the log does not say).
    pub fn code(&self) -> u16 {
        self.response_status.as_ref().map_or(0, |s| s.code)
    }
}

/// The `regie` binary of this checkout, built once.
pub fn regie_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .current_dir(repo_root())
            .args([
                "build",
                "-q",
                "-p",
                "regie-operator",
                "--bin",
                "regie",
                "--message-format=json",
            ])
            .output()
            .expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build of regie failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "regie")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported the regie executable")
    })
}

/// The YAML files under `dir` that hold regie objects (kustomizations and Argo CD or Flux
/// manifests beside them are left out: the test server has no CRDs for those).
pub fn regie_files(dir: &Path) -> Vec<PathBuf> {
    let files = regie::input::yaml_files(&[dir.to_path_buf()]).0;
    files
        .into_iter()
        .filter(|f| {
            std::fs::read_to_string(f).is_ok_and(|t| {
                t.contains("apiVersion: regie.dev/") && !t.contains("kind: Kustomization")
            })
        })
        .collect()
}

/// Server-side-applies every regie CRD and waits until the server serves them.
pub async fn install_crds(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let version = client.apiserver_version().await?;
    let minor: u32 = version.minor.trim_end_matches('+').parse().unwrap_or(0);
    for crd in regie_crds::crd::crds_for_server(minor) {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        api.patch(
            &name,
            &PatchParams::apply("regie-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("installing CRD {name}"))?;
    }
    for crd in regie_crds::crd::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let mut established = false;
        for _ in 0..100 {
            let c = api.get(&name).await?;
            established = c.status.and_then(|s| s.conditions).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !established {
            bail!("CRD {name} did not become Established");
        }
    }
    Ok(())
}

/// The control plane every test of this test binary shares, started on first use.
pub fn shared() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("regie-e2e-{}", std::process::id()));
        // The watchdog (owner pid) removes it when this process ends.
        Cluster::up(&dir).unwrap_or_else(|e| panic!("cannot start the shared control plane: {e:#}"))
    })
}

/// A control plane of one test's own, stopped when dropped.
#[derive(Debug)]
pub struct TestCluster {
    pub cluster: Cluster,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    pub fn start() -> Result<TestCluster> {
        TestCluster::start_auditing(&[])
    }

    /// A control plane of the test's own that audits every request of `users`.
    pub fn start_auditing(users: &[&str]) -> Result<TestCluster> {
        let dir = tempfile::Builder::new().prefix("regie-e2e-").tempdir()?;
        let cluster = Cluster::up_auditing(&dir.path().join("cluster"), users)?;
        Ok(TestCluster { cluster, _dir: dir })
    }
}

impl std::ops::Deref for TestCluster {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.cluster.down();
    }
}

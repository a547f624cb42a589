//! The operator end to end, against a real control plane of its own: examples → Ready; a tier
//! change by re-applying a changed file; a ServiceLevel changed; a component removed; bad
//! input Stalled and recovered; a tenant naming another's namespace Stalled and deleted without
//! it; a tenant moved to another namespace; a restart that writes nothing; a tenant deleted
//! with its namespace. One scenario runs after the other on one cluster, because each step
//! builds on the world the last one left.

use std::collections::BTreeMap;

use prometheus::core::Collector;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use regie::controller::Options;
use regie::controller::children::FIELD_MANAGER;
use regie_crds::status::{AVAILABLE, READY, STALLED, find};
use regie_crds::{HostingComponent, Invoice, InvoiceSpec, Tenant};
use regie_e2e::cluster::{AuditEvent, Cluster, OPERATOR_USER, TestCluster, regie_files, repo_root};
use regie_e2e::operator::{RunningOperator, eventually, tenants_ready};

const ALL: [&str; 5] = [
    "etten-leur",
    "moerdijk",
    "roosendaal",
    "tholen",
    "werkplein",
];
const WAIT: Duration = Duration::from_secs(60);

/// The tenant an object is labelled for.
fn tenant_label(o: &impl ResourceExt) -> Option<&str> {
    o.labels().get("regie.dev/tenant").map(String::as_str)
}

fn apply_examples(cluster: &Cluster, dir: &std::path::Path) {
    // The catalogue and Tenants first; regie creates the namespaces the rest goes into.
    cluster
        .apply_files(&regie_files(&dir.join("catalogue")), &[])
        .expect("catalogue applies");
    for t in ALL {
        cluster
            .kubectl_ok(&[
                "apply",
                "--server-side",
                "-f",
                &dir.join(format!("tenants/{t}/tenant.yaml"))
                    .to_string_lossy(),
            ])
            .expect("tenant applies");
    }
}

fn apply_namespaced(cluster: &Cluster, dir: &std::path::Path) {
    for t in ALL {
        for f in ["workplace.yaml", "hosting.yaml"] {
            let path = dir.join(format!("tenants/{t}/{f}"));
            let out = cluster.kubectl(&["apply", "--server-side", "-f", &path.to_string_lossy()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

async fn wait_namespaces(client: &Client) {
    let api: Api<Namespace> = Api::all(client.clone());
    eventually("tenant namespaces", WAIT, || {
        let api = api.clone();
        async move {
            for t in ALL {
                if api.get_opt(&format!("tenant-{t}")).await?.is_none() {
                    return Ok(false);
                }
            }
            Ok(true)
        }
    })
    .await
    .expect("regie creates every tenant namespace");
}

fn pdb_api(client: &Client, ns: &str, version: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("policy", version, "PodDisruptionBudget"),
        "poddisruptionbudgets",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// What regie's writes would change on each Deployment: its generation (bumped by any spec
/// change) and the time of regie's own managed-fields entry. The resourceVersion would not do:
/// kube-controller-manager keeps updating Deployment statuses after regie is done.
async fn deployment_versions(client: &Client) -> BTreeMap<String, String> {
    let api: Api<Deployment> = Api::all(client.clone());
    api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=regie"))
        .await
        .expect("list")
        .into_iter()
        .map(|d| {
            let regie_write = d
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .filter(|f| f.manager.as_deref() == Some(FIELD_MANAGER))
                .map(|f| format!("{:?}/{:?}", f.operation, f.time.as_ref().map(|t| t.0)))
                .collect::<Vec<_>>()
                .join(",");
            (
                format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any()),
                format!(
                    "generation {:?}, regie {regie_write}",
                    d.metadata.generation
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn operator_end_to_end() {
    // The operator's warnings and errors (RUST_LOG for more) go to the test's output, shown when
    // it fails: a step that times out then says what the operator saw.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube=error")),
        )
        .with_test_writer()
        .with_ansi(false)
        .try_init();
    // The operator authenticates as a user of its own, whose requests the API server audits:
    // the restart step counts its writes where they land, not only where regie counts them.
    let cluster = TestCluster::start_auditing(&[OPERATOR_USER]).expect("control plane");
    let client = cluster.client().await.expect("client");
    let operator_client = cluster.operator_client().await.expect("operator's client");
    let work = tempfile::tempdir().expect("tempdir");
    let examples = work.path().join("examples");
    copy_dir(&repo_root().join("examples"), &examples);

    // Passes over an unchanged world every 5 s instead of 2 minutes, so that step 5 can wait for
    // two of them (they write nothing unless an invoice differs).
    let first = Options {
        invoice_interval: Duration::from_secs(5),
        ..Options::default()
    };
    let op = RunningOperator::start(operator_client.clone(), first, None);
    apply_examples(&cluster, &examples);
    wait_namespaces(&client).await;
    apply_namespaced(&cluster, &examples);

    // 1. Create → Ready, with the workloads the tiers ask for.
    tenants_ready(&client, &ALL, WAIT)
        .await
        .expect("every example tenant becomes Ready");
    let tenants: Api<Tenant> = Api::all(client.clone());
    // Packages and components arrive after their tenant; the roll-up follows them.
    eventually(
        "Roosendaal's roll-up: 665 accounts, 3/3 components",
        WAIT,
        || {
            let tenants = tenants.clone();
            async move {
                let st = tenants.get("roosendaal").await?.status.unwrap_or_default();
                Ok(st.accounts == Some(665) && st.components_summary.as_deref() == Some("3/3"))
            }
        },
    )
    .await
    .expect("620 standard + 45 flex accounts and every component ready in the tenant's status");
    let roosendaal = tenants.get("roosendaal").await.expect("tenant");
    assert!(
        roosendaal
            .finalizers()
            .contains(&"regie.dev/cleanup".to_string())
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "tenant-roosendaal");
    let zaak = deployments
        .get("zaaksysteem")
        .await
        .expect("hosted component has a Deployment");
    assert_eq!(
        zaak.spec.as_ref().and_then(|s| s.replicas),
        Some(2),
        "silver floor is 2"
    );
    let labels = zaak.labels();
    assert_eq!(
        labels.get("regie.dev/tenant").map(String::as_str),
        Some("roosendaal")
    );
    assert_eq!(
        labels.get("regie.dev/service-level").map(String::as_str),
        Some("silver")
    );
    assert_eq!(
        labels.get("regie.dev/class").map(String::as_str),
        Some("applicationHosting")
    );
    let pod = zaak
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    let sc = pod.containers[0]
        .security_context
        .as_ref()
        .expect("hardened");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let tmp = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "tmp")
        .and_then(|v| v.empty_dir.as_ref())
        .and_then(|e| e.size_limit.as_ref());
    assert_eq!(
        tmp.map(|q| q.0.as_str()),
        Some(regie::desired::TMP_SIZE_LIMIT),
        "a bounded /tmp"
    );
    let gateway = deployments.get("api-gateway").await.expect("gold override");
    assert_eq!(
        gateway.spec.as_ref().and_then(|s| s.replicas),
        Some(3),
        "gold floor is 3"
    );
    let spread = gateway
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.topology_spread_constraints.clone());
    assert_eq!(
        spread.map(|s| s.len()),
        Some(2),
        "gold spreads over zones and nodes"
    );
    let pdb_version = regie::controller::children::pdb_version(&client).await;
    pdb_api(&client, "tenant-roosendaal", &pdb_version)
        .get("zaaksysteem")
        .await
        .expect("silver has a PDB");
    // No kubelet runs pods here: Available must say so, not pretend.
    let comps: Api<HostingComponent> = Api::namespaced(client.clone(), "tenant-roosendaal");
    let c = comps.get("zaaksysteem").await.expect("component");
    let avail = find(&c.status.as_ref().expect("status").conditions, AVAILABLE)
        .cloned()
        .expect("Available");
    assert_eq!(avail.status, "False");
    assert!(
        avail.message.contains("0 of 2 replicas available"),
        "{}",
        avail.message
    );
    let saas = comps.get("burgerzaken").await.expect("saas component");
    assert_eq!(
        saas.status.as_ref().and_then(|s| s.mode.as_deref()),
        Some("saas")
    );
    let svc: Api<Service> = Api::namespaced(client.clone(), "tenant-roosendaal");
    assert!(
        svc.get_opt("burgerzaken").await.expect("get").is_none(),
        "SaaS runs no workload"
    );

    // 2. A tier change is a pull request: Tholen goes gold by re-applying its changed file.
    let before = deployment_versions(&client).await;
    let tholen_file = examples.join("tenants/tholen/tenant.yaml");
    let text = std::fs::read_to_string(&tholen_file)
        .expect("read")
        .replace("serviceLevel: bronze", "serviceLevel: gold");
    std::fs::write(&tholen_file, text).expect("write");
    cluster
        .kubectl_ok(&[
            "apply",
            "--server-side",
            "-f",
            &tholen_file.to_string_lossy(),
        ])
        .expect("apply");
    let tholen: Api<Deployment> = Api::namespaced(client.clone(), "tenant-tholen");
    eventually("Tholen's archive at gold replicas", WAIT, || {
        let tholen = tholen.clone();
        async move {
            Ok(tholen
                .get("document-archive")
                .await?
                .spec
                .and_then(|s| s.replicas)
                == Some(3))
        }
    })
    .await
    .expect("tier change reaches the Deployment");
    let pdbs = pdb_api(&client, "tenant-tholen", &pdb_version);
    eventually("gold to add a PodDisruptionBudget", WAIT, || {
        let pdbs = pdbs.clone();
        async move { Ok(pdbs.get_opt("document-archive").await?.is_some()) }
    })
    .await
    .expect("gold adds a PDB");
    tenants_ready(&client, &["tholen"], WAIT)
        .await
        .expect("tholen Ready at gold");
    let after = deployment_versions(&client).await;
    for (key, version) in &before {
        if !key.starts_with("tenant-tholen/") {
            assert_eq!(
                after.get(key),
                Some(version),
                "{key} was touched by Tholen's tier change"
            );
        }
    }

    // The tier change is metered: Tholen's Usage for this month has a gold segment after bronze.
    let month = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Amsterdam").expect("tz"))
        .strftime("%Y-%m")
        .to_string();
    let usages: Api<regie_crds::Usage> = Api::all(client.clone());
    let usage_name = format!("tholen-{month}");
    eventually("Tholen's usage to show the tier change", WAIT, || {
        let usages = usages.clone();
        let usage_name = usage_name.clone();
        async move {
            let Some(u) = usages.get_opt(&usage_name).await? else {
                return Ok(false);
            };
            let segs = u.status.map(|s| s.segments).unwrap_or_default();
            Ok(segs.len() >= 2
                && segs[segs.len() - 2].service_level == "bronze"
                && segs[segs.len() - 2].to.is_some()
                && segs.last().is_some_and(|s| {
                    s.service_level == "gold"
                        && s.to.is_none()
                        && s.accounts.get("standard") == Some(&210)
                }))
        }
    })
    .await
    .expect("the Usage ledger records the tier change as a new segment");

    // A ServiceLevel changes (bronze now asks for two replicas and a disruption budget): every
    // hosted component at bronze follows — etten-leur's by its tenant's level, moerdijk's
    // datawarehouse by its own override — and no other Deployment is touched; changed back,
    // the budgets the tier no longer needs are deleted.
    let before = deployment_versions(&client).await;
    let levels_file = examples.join("catalogue/service-levels.yaml");
    let levels_text = std::fs::read_to_string(&levels_file).expect("read");
    let bronze = "workload: {minReplicas: 1, minAvailable: 0}";
    assert!(
        levels_text.find(bronze) < levels_text.find("name: silver"),
        "bronze's workload comes first in {}",
        levels_file.display()
    );
    let at_bronze = [
        ("tenant-etten-leur", "gis-viewer"),
        ("tenant-moerdijk", "datawarehouse"),
    ];
    for (workload, replicas, budget) in [
        ("workload: {minReplicas: 2, minAvailable: 1}", 2, true),
        (bronze, 1, false),
    ] {
        std::fs::write(&levels_file, levels_text.replacen(bronze, workload, 1)).expect("write");
        cluster
            .apply_files(std::slice::from_ref(&levels_file), &[])
            .expect("apply the service levels");
        for (ns, name) in at_bronze {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let pdbs = pdb_api(&client, ns, &pdb_version);
            eventually(
                &format!("{ns}/{name} at bronze's new workload"),
                WAIT,
                || {
                    let (deployments, pdbs) = (deployments.clone(), pdbs.clone());
                    async move {
                        let d = deployments.get(name).await?;
                        Ok(d.spec.and_then(|s| s.replicas) == Some(replicas)
                            && pdbs.get_opt(name).await?.is_some() == budget)
                    }
                },
            )
            .await
            .expect("a ServiceLevel's change reaches every component at that level");
        }
    }
    let after = deployment_versions(&client).await;
    for (key, version) in &before {
        if !at_bronze
            .iter()
            .any(|(ns, name)| *key == format!("{ns}/{name}"))
        {
            assert_eq!(
                after.get(key),
                Some(version),
                "{key} was touched by a change of bronze"
            );
        }
    }

    // 3. A component removed: its children go — only what regie applied: a Deployment the
    // tenant's staff made from a copy of regie's manifest carries regie's labels, and stays.
    cluster
        .apply_yaml(
            work.path(),
            "copy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: datawarehouse-copy\n  \
             namespace: tenant-moerdijk\n  labels: {app.kubernetes.io/managed-by: regie, \
             regie.dev/tenant: moerdijk, regie.dev/component: datawarehouse}\nspec:\n  \
             selector: {matchLabels: {app: copy}}\n  template:\n    metadata: {labels: {app: \
             copy}}\n    spec:\n      containers: [{name: app, image: registry.example/copy:1}]\n",
        )
        .expect("a copy");
    comps_in(&client, "tenant-moerdijk")
        .delete("datawarehouse", &DeleteParams::default())
        .await
        .expect("delete");
    let moerdijk: Api<Deployment> = Api::namespaced(client.clone(), "tenant-moerdijk");
    eventually("datawarehouse's Deployment to go", WAIT, || {
        let moerdijk = moerdijk.clone();
        async move { Ok(moerdijk.get_opt("datawarehouse").await?.is_none()) }
    })
    .await
    .expect("children of a removed component are deleted");
    let svc: Api<Service> = Api::namespaced(client.clone(), "tenant-moerdijk");
    eventually("datawarehouse's Service to go", WAIT, || {
        let svc = svc.clone();
        async move { Ok(svc.get_opt("datawarehouse").await?.is_none()) }
    })
    .await
    .expect("service pruned");
    assert!(
        moerdijk
            .get_opt("datawarehouse-copy")
            .await
            .expect("get")
            .is_some(),
        "a Deployment regie never applied is not pruned, whatever its labels"
    );
    moerdijk
        .delete("datawarehouse-copy", &DeleteParams::default())
        .await
        .expect("the staff remove their copy");

    // 4. Bad input: Stalled with the root cause, then fixed → Ready.
    let patch = serde_json::json!({"spec": {"serviceLevel": "platinum"}});
    tenants
        .patch("etten-leur", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    let t2 = tenants.clone();
    eventually("etten-leur Stalled", WAIT, || {
        let t2 = t2.clone();
        async move {
            let t = t2.get("etten-leur").await?;
            let st = t.status.unwrap_or_default();
            Ok(find(&st.conditions, STALLED).is_some_and(|c| {
                c.status == "True"
                    && c.reason == "ServiceLevelNotFound"
                    && c.message.contains("\"platinum\"")
                    && c.message.contains("bronze, gold, silver")
            }))
        }
    })
    .await
    .expect("unknown level stalls the tenant with a precise message");
    // Each new message is an Event of its own (the newest is what `kubectl events` shows); the
    // same message again joins its Event's series.
    for (level, count) in [("platinum", 1), ("diamond", 1), ("platinum", 2)] {
        let patch = serde_json::json!({"spec": {"serviceLevel": level}});
        tenants
            .patch("etten-leur", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch");
        let quoted = format!("\"{level}\"");
        eventually("a Warning naming the level", WAIT, || {
            let events = level_warnings(client.clone());
            let quoted = quoted.clone();
            async move {
                Ok(events
                    .await?
                    .iter()
                    .any(|(note, n)| note.contains(&quoted) && *n == count))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{level} warned ({count}×): {e}"));
    }
    let warnings = level_warnings(client.clone()).await.expect("events");
    assert_eq!(warnings.len(), 2, "one Event per message: {warnings:?}");
    let patch = serde_json::json!({"spec": {"serviceLevel": "bronze"}});
    tenants
        .patch("etten-leur", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    tenants_ready(&client, &["etten-leur"], WAIT)
        .await
        .expect("fixed tenant recovers by itself");

    // A component with both hosted and saas passes this v1.20 server (no CEL) but not regie.
    patch_client_portal(
        &client,
        serde_json::json!({"spec": {"saas": {"url": "https://x.example/"}}}),
    )
    .await;
    client_portal_stalled(&tenants, "exactly one of hosted and saas")
        .await
        .expect("the tenant's status names the root cause in its component");
    let still: Api<Deployment> = Api::namespaced(client.clone(), "tenant-werkplein");
    assert!(
        still.get_opt("client-portal").await.expect("get").is_some(),
        "bad input must not take a running service down"
    );
    patch_client_portal(&client, serde_json::json!({"spec": {"saas": null}})).await;
    tenants_ready(&client, &["werkplein"], WAIT)
        .await
        .expect("fixed component recovers");

    // A level no ServiceLevel has: the component is Stalled, and billed meanwhile as it runs —
    // the level its ledger recorded — never at a level no PriceList prices (that would leave
    // the month impossible to invoice, for every tenant).
    patch_client_portal(
        &client,
        serde_json::json!({"spec": {"serviceLevel": "platinum"}}),
    )
    .await;
    client_portal_stalled(&tenants, "\"platinum\"")
        .await
        .expect("a component at a missing level is Stalled, named in its tenant's status");
    // Its workload stays as it was, and its Available says what that has, not what it had.
    let portal = comps_in(&client, "tenant-werkplein")
        .get("client-portal")
        .await
        .expect("client-portal");
    let avail = find(&portal.status.expect("status").conditions, AVAILABLE)
        .cloned()
        .expect("Available");
    assert_eq!(
        (avail.status.as_str(), avail.reason.as_ref()),
        ("Unknown", "Stalled"),
        "{avail:?}"
    );
    assert!(
        avail
            .message
            .contains(" replicas available; the component is stalled"),
        "{avail:?}"
    );
    patch_client_portal(&client, serde_json::json!({"spec": {"serviceLevel": null}})).await;
    tenants_ready(&client, &["werkplein"], WAIT)
        .await
        .expect("the component at its level again");
    let ledger = usages
        .get(&format!("werkplein-{month}"))
        .await
        .expect("werkplein's usage");
    let levels: Vec<(String, String)> = ledger
        .status
        .iter()
        .flat_map(|s| s.segments.iter())
        .flat_map(|s| s.components.iter())
        .map(|c| (c.name.clone(), c.service_level.clone()))
        .collect();
    assert!(
        levels.iter().any(|(n, _)| n == "client-portal")
            && levels.iter().all(|(_, l)| l != "platinum"),
        "the ledger bills client-portal only at levels that exist: {levels:?}"
    );

    // A ledger someone broke by hand (a level no PriceList prices): that tenant's invoices
    // cannot be priced, it alone is warned, and the passes over every other tenant go on.
    let passes = || {
        op.metrics
            .invoicing_passes
            .with_label_values(&["complete"])
            .get()
    };
    let kept = ledger.status.clone().expect("a ledger");
    let mut broken = kept.clone();
    if let Some(open) = broken.segments.last_mut() {
        open.service_level = "platinum".into();
    }
    let ledger_name = format!("werkplein-{month}");
    usages
        .patch_status(
            &ledger_name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"segments": broken.segments}})),
        )
        .await
        .expect("break the ledger");
    let passes_before = passes();
    eventually("werkplein warned, and two passes complete", WAIT, || {
        let events = cluster.kubectl_ok(&[
            "get",
            "events",
            "-A",
            "--field-selector",
            "reason=InvoicingFailed",
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name}: {.message}{\"\\n\"}{end}",
        ]);
        let done = passes() >= passes_before + 2;
        async move {
            let events = events?;
            let lines: Vec<&str> = events.lines().collect();
            Ok(done
                && lines
                    .iter()
                    .any(|l| l.starts_with("werkplein: ") && l.contains("platinum"))
                && lines
                    .iter()
                    .filter(|l| l.contains("platinum"))
                    .all(|l| l.starts_with("werkplein: ")))
        }
    })
    .await
    .expect("one tenant's ledger that cannot be priced stops no one else's invoices");
    usages
        .patch_status(
            &ledger_name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"segments": kept.segments}})),
        )
        .await
        .expect("repair the ledger");

    // A tenant that moves to quarterly invoicing: the draft of its month is no longer wanted and
    // goes, the quarter's comes; and back.
    let invoices: Api<Invoice> = Api::all(client.clone());
    let (year, month_number) = month.split_once('-').expect("YYYY-MM");
    let quarter = (month_number.parse::<u32>().expect("a month") - 1) / 3 + 1;
    let monthly = format!("etten-leur-{month}");
    let quarterly = format!("etten-leur-{year}-q{quarter}");
    // Waits until invoice `present` exists and `absent` does not.
    let drafts = |present: &String, absent: &String| {
        let (present, absent, invoices) = (present.clone(), absent.clone(), invoices.clone());
        move || {
            let (present, absent, invoices) = (present.clone(), absent.clone(), invoices.clone());
            async move {
                Ok(invoices.get_opt(&present).await?.is_some()
                    && invoices.get_opt(&absent).await?.is_none())
            }
        }
    };
    eventually(
        "etten-leur's monthly draft",
        WAIT,
        drafts(&monthly, &quarterly),
    )
    .await
    .expect("a monthly draft");
    for (period, present, absent) in [
        ("quarterly", &quarterly, &monthly),
        ("monthly", &monthly, &quarterly),
    ] {
        tenants
            .patch(
                "etten-leur",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"billing": {"invoicing": period}}})),
            )
            .await
            .expect("patch");
        eventually(
            &format!("etten-leur invoiced {period}"),
            WAIT,
            drafts(present, absent),
        )
        .await
        .expect("the draft of the other period goes");
    }

    // A component in a namespace that belongs to no tenant.
    lose_component(&cluster, work.path(), "stray");
    lost_component_stalled(&client, "stray")
        .await
        .expect("a component outside any tenant's namespace is Stalled");
    // Counted, for the RegieStalledObjects alert, as a tenant's stall is.
    assert!(
        op.metrics
            .reconcile_errors
            .with_label_values(&["HostingComponent", "NoTenant"])
            .get()
            >= 1,
        "a component gone Stalled is counted in regie_reconcile_errors_total"
    );

    // 5. A tenant that names another's namespace is Stalled (its spec is refused: tenant-<other>
    // is never another tenant's to name) and takes nothing over; deleting it leaves that
    // namespace alone.
    let copycat = small_tenant(
        "copycat",
        serde_json::json!({"serviceLevel": "gold", "namespace": "tenant-tholen"}),
    );
    tenants
        .create(&Default::default(), &copycat)
        .await
        .expect("create copycat");
    let t2 = tenants.clone();
    eventually("copycat Stalled", WAIT, || {
        let t2 = t2.clone();
        async move {
            let t = t2.get("copycat").await?;
            let st = t.status.unwrap_or_default();
            Ok(find(&st.conditions, STALLED).is_some_and(|c| {
                c.status == "True"
                    && c.reason == "InvalidSpec"
                    && c.message.contains("spec.namespace")
                    && c.message.contains("namespace of a Tenant named \"tholen\"")
            }))
        }
    })
    .await
    .expect("a tenant naming another's namespace is Stalled");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let tholen_ns = namespaces.get("tenant-tholen").await.expect("namespace");
    assert_eq!(tenant_label(&tholen_ns), Some("tholen"), "still Tholen's");
    offboarded(&tenants, "copycat")
        .await
        .expect("its finalizer released");
    let tholen_ns = namespaces.get("tenant-tholen").await.expect("namespace");
    assert!(
        tholen_ns.metadata.deletion_timestamp.is_none(),
        "Tholen's namespace is not deleted with the copycat"
    );

    // A tenant naming a namespace that exists and regie did not make is Stalled and nothing is
    // written into the namespace; deleting the tenant leaves the namespace. (`default`, where
    // this operator keeps its own state, and the allowed namespaces are refused outright.)
    cluster
        .kubectl_ok(&["create", "namespace", "squatted"])
        .expect("ns");
    let squatter = small_tenant("squatter", serde_json::json!({"namespace": "squatted"}));
    tenants
        .create(&Default::default(), &squatter)
        .await
        .expect("create squatter");
    let t2 = tenants.clone();
    eventually("squatter Stalled", WAIT, || {
        let t2 = t2.clone();
        async move {
            let st = t2.get("squatter").await?.status.unwrap_or_default();
            Ok(find(&st.conditions, STALLED).is_some_and(|c| {
                c.status == "True"
                    && c.reason == "NamespaceNotOwned"
                    && c.message.contains("namespace squatted exists")
            }))
        }
    })
    .await
    .expect("a tenant naming a namespace regie did not make is Stalled");
    let squatted_ns = namespaces.get("squatted").await.expect("namespace");
    assert_eq!(
        tenant_label(&squatted_ns),
        None,
        "not labelled for the squatter"
    );
    let made = made_by_regie(&client, &pdb_version, "squatted", "squatter")
        .await
        .expect("count");
    assert_eq!(
        made, [0; 7],
        "nothing of the squatter's applied into `squatted`"
    );
    offboarded(&tenants, "squatter")
        .await
        .expect("its finalizer released");
    let squatted_ns = namespaces.get("squatted").await.expect("namespace");
    assert!(
        squatted_ns.metadata.deletion_timestamp.is_none(),
        "`squatted` is not deleted with the squatter"
    );

    // A tenant's own `tenant-<name>`, created before it by a pipeline, is taken over.
    cluster
        .kubectl_ok(&["create", "namespace", "tenant-early"])
        .expect("ns");
    let early = small_tenant("early", serde_json::json!({}));
    tenants
        .create(&Default::default(), &early)
        .await
        .expect("create early");
    tenants_ready(&client, &["early"], WAIT)
        .await
        .expect("a tenant whose own namespace was made first is Ready");
    let early_ns = namespaces.get("tenant-early").await.expect("namespace");
    assert_eq!(tenant_label(&early_ns), Some("early"), "taken over");
    tenants
        .delete("early", &DeleteParams::default())
        .await
        .expect("delete early");

    // A tenant's namespace deleted by hand: while it terminates (a component held by a
    // finalizer of someone else's keeps it so) the component says it goes with it, not Ready,
    // and the tenant waits; once it is gone regie makes it again.
    onboarded(&client, &tenants, "holder")
        .await
        .expect("holder Ready");
    let held = "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: held, namespace: tenant-holder, finalizers: [e2e.regie.dev/hold]}\nspec: {class: applicationHosting, saas: {url: \"https://held.example/\"}}\n";
    cluster
        .apply_yaml(work.path(), "held.yaml", held)
        .expect("apply");
    let held_comps = comps_in(&client, "tenant-holder");
    eventually("held Ready", WAIT, || {
        let held_comps = held_comps.clone();
        async move {
            let st = held_comps.get("held").await?.status.unwrap_or_default();
            Ok(find(&st.conditions, READY).is_some_and(|c| c.status == "True"))
        }
    })
    .await
    .expect("a component in the holder's namespace Ready");
    namespaces
        .delete("tenant-holder", &DeleteParams::default())
        .await
        .expect("delete the holder's namespace by hand");
    eventually("held going with its namespace", WAIT, || {
        let (held_comps, tenants) = (held_comps.clone(), tenants.clone());
        async move {
            let st = held_comps.get("held").await?.status.unwrap_or_default();
            let tenant = tenants.get("holder").await?.status.unwrap_or_default();
            Ok(find(&st.conditions, READY)
                .is_some_and(|c| c.status == "False" && c.reason == "NamespaceTerminating")
                && find(&tenant.conditions, READY).is_some_and(|c| c.status == "False"))
        }
    })
    .await
    .expect("a component in a terminating namespace is not Ready, nor is its tenant");
    held_comps
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("release held");
    eventually("the holder's namespace made again", WAIT, || {
        let namespaces = namespaces.clone();
        async move {
            let ns = namespaces.get_opt("tenant-holder").await?;
            Ok(ns.is_some_and(|n| n.metadata.deletion_timestamp.is_none()))
        }
    })
    .await
    .expect("a tenant's namespace deleted by hand is made again");
    tenants_ready(&client, &["holder"], WAIT)
        .await
        .expect("holder Ready again");
    offboarded(&tenants, "holder")
        .await
        .expect("holder offboarded");

    // Two tenants created at the same moment naming one new namespace: one gets it, the other
    // is Stalled without having applied anything into it (no RoleBinding for its groups, not
    // even for a moment); when the first goes, the second takes the namespace over.
    let twin = |name: &str| small_tenant(name, serde_json::json!({"namespace": "shared-twins"}));
    let (twin_a, twin_b, pp) = (twin("twin-a"), twin("twin-b"), Default::default());
    let (a, b) = tokio::join!(tenants.create(&pp, &twin_a), tenants.create(&pp, &twin_b));
    a.expect("create twin-a");
    b.expect("create twin-b");
    let condition = |t: &Tenant, kind: &str| {
        t.status
            .as_ref()
            .and_then(|s| find(&s.conditions, kind))
            .filter(|c| c.status == "True")
            .map(|c| (c.reason.to_string(), c.message.clone()))
    };
    let decided = |a: &Tenant, b: &Tenant| {
        let conflict = |t: &Tenant| {
            condition(t, STALLED).is_some_and(|(reason, _)| reason == "NamespaceConflict")
        };
        match (condition(a, READY), condition(b, READY)) {
            (Some(_), None) if conflict(b) => Some(("twin-a", "twin-b")),
            (None, Some(_)) if conflict(a) => Some(("twin-b", "twin-a")),
            _ => None,
        }
    };
    eventually("one twin Ready, the other Stalled", WAIT, || {
        let t2 = tenants.clone();
        async move { Ok(decided(&t2.get("twin-a").await?, &t2.get("twin-b").await?).is_some()) }
    })
    .await
    .expect("one namespace, one tenant");
    let (winner, loser) = decided(
        &tenants.get("twin-a").await.expect("twin-a"),
        &tenants.get("twin-b").await.expect("twin-b"),
    )
    .expect("still decided");
    let shared = namespaces.get("shared-twins").await.expect("namespace");
    assert_eq!(tenant_label(&shared), Some(winner));
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), "shared-twins");
    for rb in bindings.list(&ListParams::default()).await.expect("list") {
        let subjects: Vec<_> = rb
            .subjects
            .iter()
            .flatten()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            subjects,
            [format!("{winner}:ict")],
            "RoleBinding {} names only the namespace's tenant's groups",
            rb.name_any()
        );
        assert_eq!(tenant_label(&rb), Some(winner));
    }
    tenants
        .delete(winner, &DeleteParams::default())
        .await
        .expect("delete the winner");
    tenants_ready(&client, &[loser], WAIT)
        .await
        .expect("the other twin takes the namespace over once it is free");
    let shared = namespaces.get("shared-twins").await.expect("namespace");
    assert_eq!(tenant_label(&shared), Some(loser));
    tenants
        .delete(loser, &DeleteParams::default())
        .await
        .expect("delete the other twin");
    let t2 = tenants.clone();
    eventually("both twins gone", WAIT, || {
        let t2 = t2.clone();
        async move { Ok(t2.get_opt(loser).await?.is_none() && t2.get_opt(winner).await?.is_none()) }
    })
    .await
    .expect("their finalizers released");

    // A tenant moved to another namespace: its own children are made there and go from the old
    // one, one by one, with the workloads of the components left behind, which are Stalled (the
    // old namespace stays while they are in it: deleting it would delete them); once they are
    // moved too, the old namespace goes; a tenant naming it meanwhile waits for that. Then its
    // component becomes SaaS.
    let mover = "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: mover}\nspec: {displayName: Mover, serviceLevel: silver, inhabitants: 1000, namespace: mover-first, membership: {joined: \"2026-01-01\"}, access: {groups: [\"mover:ict\"]}}\n";
    let web = |ns: &str| {
        format!(
            "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {{name: web, namespace: {ns}}}\nspec: {{class: applicationHosting, hosted: {{image: \"registry.example/web:1.0\", port: 8080, healthPath: /healthz}}}}\n"
        )
    };
    let (old_ns, new_ns, pv) = ("mover-first", "mover-elsewhere", pdb_version.as_str());
    // Every kind of child once, the component's included, in namespace `ns`.
    let all_children_in = |ns: &'static str, what: &'static str| {
        let client = client.clone();
        async move {
            eventually(what, WAIT, || {
                let client = client.clone();
                async move { Ok(made_by_regie(&client, pv, ns, "mover").await? == [1; 7]) }
            })
            .await
        }
    };
    cluster
        .apply_yaml(work.path(), "mover.yaml", mover)
        .expect("apply");
    eventually("mover's namespace", WAIT, || {
        let namespaces = namespaces.clone();
        async move { Ok(namespaces.get_opt(old_ns).await?.is_some()) }
    })
    .await
    .expect("the moving tenant's first namespace");
    cluster
        .apply_yaml(work.path(), "web.yaml", &web(old_ns))
        .expect("apply");
    all_children_in(old_ns, "mover's children in its first namespace")
        .await
        .expect("a tenant's children in its namespace");
    tenants
        .patch(
            "mover",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"namespace": new_ns}})),
        )
        .await
        .expect("move the tenant");
    let old_comps = comps_in(&client, old_ns);
    eventually("mover's children moved, web left behind", WAIT, || {
        let (client, old_comps) = (client.clone(), old_comps.clone());
        async move {
            let st = old_comps.get("web").await?.status.unwrap_or_default();
            Ok(
                made_by_regie(&client, pv, new_ns, "mover").await? == [1, 1, 1, 1, 0, 0, 0]
                    && made_by_regie(&client, pv, old_ns, "mover").await? == [0; 7]
                    && find(&st.conditions, STALLED)
                        .is_some_and(|c| c.status == "True" && c.reason == "NoTenant"),
            )
        }
    })
    .await
    .expect("a moved tenant's children follow it; the components left behind are Stalled");
    let left = namespaces.get(old_ns).await.expect("the namespace left");
    assert!(
        left.metadata.deletion_timestamp.is_none(),
        "a namespace left with components in it stays"
    );
    // A tenant naming the namespace left does not take it over while the mover's component is
    // in it: that would make the component its own, and give its groups `edit` over it.
    tenants
        .create(
            &Default::default(),
            &small_tenant("heir", serde_json::json!({"namespace": old_ns})),
        )
        .await
        .expect("create heir");
    eventually("the heir Stalled, web still of no tenant", WAIT, || {
        let (tenants, old_comps) = (tenants.clone(), old_comps.clone());
        async move {
            let heir = tenants.get("heir").await?;
            let web = old_comps.get("web").await?.status.unwrap_or_default();
            Ok(condition(&heir, STALLED).is_some_and(|(reason, message)| {
                reason == "NamespaceConflict" && message.contains("left there")
            }) && find(&web.conditions, STALLED)
                .is_some_and(|c| c.status == "True" && c.reason == "NoTenant"))
        }
    })
    .await
    .expect("a namespace left holding components is nobody else's");
    let left = namespaces.get(old_ns).await.expect("the namespace left");
    assert_eq!(tenant_label(&left), Some("mover"));
    assert_eq!(
        made_by_regie(&client, pv, old_ns, "heir")
            .await
            .expect("heir's"),
        [0; 7],
        "the heir applied nothing into the namespace left"
    );
    offboarded(&tenants, "heir").await.expect("heir offboarded");
    // Out of the old namespace first: nothing else would make the tenant look at it again.
    old_comps
        .delete("web", &DeleteParams::default())
        .await
        .expect("web moved out of the namespace left");
    eventually("the namespace left goes", WAIT, || {
        let namespaces = namespaces.clone();
        async move {
            let left = namespaces.get_opt(old_ns).await?;
            Ok(left.is_none_or(|n| n.metadata.deletion_timestamp.is_some()))
        }
    })
    .await
    .expect("once nothing of regie's input is left in it, the namespace left is deleted");
    cluster
        .apply_yaml(work.path(), "web.yaml", &web(new_ns))
        .expect("apply");
    all_children_in(new_ns, "web runs in the new namespace")
        .await
        .expect("the moved component's workload in the tenant's new namespace");
    // The component handed to a SaaS supplier: its workload, Service and budget go.
    comps_in(&client, new_ns)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "spec": {"hosted": null, "saas": {"url": "https://web.mover.example/"}}
            })),
        )
        .await
        .expect("web to SaaS");
    eventually("web's workload gone, web SaaS", WAIT, || {
        let (client, comps) = (client.clone(), comps_in(&client, new_ns));
        async move {
            let st = comps.get("web").await?.status.unwrap_or_default();
            Ok(
                made_by_regie(&client, pv, new_ns, "mover").await? == [1, 1, 1, 1, 0, 0, 0]
                    && st.mode.as_deref() == Some("saas"),
            )
        }
    })
    .await
    .expect("a component that becomes SaaS keeps no workload");
    tenants_ready(&client, &["mover"], WAIT)
        .await
        .expect("the moved tenant Ready");
    tenants
        .delete("mover", &DeleteParams::default())
        .await
        .expect("delete mover");
    let t2 = tenants.clone();
    eventually("mover gone", WAIT, || {
        let t2 = t2.clone();
        async move { Ok(t2.get_opt("mover").await?.is_none()) }
    })
    .await
    .expect("the moved tenant offboarded");

    // A tenant deleted while a namespace it left still holds a component: the finalizer is
    // released only once both its namespaces are gone.
    onboarded(&client, &tenants, "leaver")
        .await
        .expect("leaver Ready");
    let lost_in_left = "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: lost, namespace: tenant-leaver}\nspec: {class: applicationHosting, saas: {url: \"https://lost.example/\"}}\n";
    cluster
        .apply_yaml(work.path(), "leaver-lost.yaml", lost_in_left)
        .expect("apply");
    tenants
        .patch(
            "leaver",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"namespace": "leaver-elsewhere"}})),
        )
        .await
        .expect("move leaver");
    lost_component_stalled(&client, "tenant-leaver")
        .await
        .expect("the component left behind Stalled");
    tenants_ready(&client, &["leaver"], WAIT)
        .await
        .expect("leaver Ready in its new namespace");
    offboarded(&tenants, "leaver")
        .await
        .expect("leaver offboarded");
    for ns in ["tenant-leaver", "leaver-elsewhere"] {
        assert!(
            namespaces.get_opt(ns).await.expect("get").is_none(),
            "namespace {ns} of an offboarded tenant is gone before its finalizer is released"
        );
    }

    // A hosted component whose name cannot name a Service (DNS-1035: a letter first) is
    // refused by regie itself, the field named; the rest of its tenant is untouched.
    let misnamed = "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: 2fa, namespace: tenant-moerdijk}\nspec: {class: applicationHosting, hosted: {image: \"registry.example/2fa:1.0\", port: 8080, healthPath: /healthz}}\n";
    cluster
        .apply_yaml(work.path(), "misnamed.yaml", misnamed)
        .expect("apply");
    let moerdijk_comps = comps_in(&client, "tenant-moerdijk");
    eventually("2fa Stalled by its name", WAIT, || {
        let api = moerdijk_comps.clone();
        async move {
            let c = api.get("2fa").await?;
            let st = c.status.unwrap_or_default();
            Ok(find(&st.conditions, STALLED).is_some_and(|c| {
                c.status == "True"
                    && c.reason == "InvalidSpec"
                    && c.message.contains("metadata.name: \"2fa\" cannot name")
            }))
        }
    })
    .await
    .expect("a misnamed component is Stalled, the field named");
    moerdijk_comps
        .delete("2fa", &DeleteParams::default())
        .await
        .expect("delete 2fa");

    // A child the API server refuses (here a platform team's quota allows no more Services):
    // the tenant is Stalled with the server's message, not retried every few seconds in
    // silence; without the component it is Ready again.
    let freeze = "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: platform-freeze, namespace: tenant-moerdijk}\nspec: {hard: {services: \"0\"}}\n";
    cluster
        .apply_yaml(work.path(), "freeze.yaml", freeze)
        .expect("apply");
    // Quota admission enforces a quota only once the controller-manager has written its
    // status; before that, a Service would be admitted.
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "tenant-moerdijk");
    eventually("the freeze enforced", WAIT, || {
        let quotas = quotas.clone();
        async move {
            let q = quotas.get("platform-freeze").await?;
            Ok(q.status
                .and_then(|s| s.hard)
                .is_some_and(|h| h.contains_key("services")))
        }
    })
    .await
    .expect("the controller-manager counts the quota");
    let intake = "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: intake, namespace: tenant-moerdijk}\nspec: {class: applicationHosting, hosted: {image: \"registry.example/intake:1.0\", port: 8080, healthPath: /healthz}}\n";
    cluster
        .apply_yaml(work.path(), "refused.yaml", intake)
        .expect("apply");
    let t2 = tenants.clone();
    eventually("moerdijk Stalled by a refused Service", WAIT, || {
        let t2 = t2.clone();
        async move {
            let t = t2.get("moerdijk").await?;
            let st = t.status.unwrap_or_default();
            Ok(find(&st.conditions, STALLED).is_some_and(|c| {
                c.status == "True"
                    && c.reason == "ApplyRejected"
                    && c.message
                        .contains("Service tenant-moerdijk/intake refused by the API server")
            }))
        }
    })
    .await
    .expect("a refused child stalls its tenant with the server's message");
    moerdijk_comps
        .delete("intake", &DeleteParams::default())
        .await
        .expect("delete intake");
    tenants_ready(&client, &["moerdijk"], WAIT)
        .await
        .expect("moerdijk Ready without the refused component");
    cluster
        .kubectl_ok(&[
            "-n",
            "tenant-moerdijk",
            "delete",
            "resourcequota",
            "platform-freeze",
        ])
        .expect("the foreign quota, which regie left alone, deleted");

    // A tenant quota too small for its components (zaaksysteem's replicas; datawarehouse went
    // in step 3), and zaaksysteem asking for a third: that pod is refused, and its Available
    // condition says why, announced once by a Warning. (Pods that exist stay: a quota only
    // refuses new ones.)
    // Moerdijk's quota of pods (its default when null) and zaaksysteem's replicas, set.
    let set_pods_and_replicas = |pods: serde_json::Value, replicas: i64| {
        let (tenants, comps) = (tenants.clone(), moerdijk_comps.clone());
        async move {
            let quota = if pods.is_null() {
                pods
            } else {
                serde_json::json!({"pods": pods})
            };
            tenants
                .patch(
                    "moerdijk",
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"spec": {"quota": quota}})),
                )
                .await
                .expect("moerdijk's quota");
            comps
                .patch(
                    "zaaksysteem",
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"spec": {"hosted": {"replicas": replicas}}})),
                )
                .await
                .expect("zaaksysteem's replicas");
        }
    };
    set_pods_and_replicas(serde_json::json!(1), 3).await;
    let available_names_quota = |named: bool| {
        let comps = moerdijk_comps.clone();
        move || {
            let comps = comps.clone();
            async move {
                let c = comps.get("zaaksysteem").await?;
                let st = c.status.unwrap_or_default();
                Ok(find(&st.conditions, "Available").is_some_and(|c| {
                    c.reason == "ReplicasUnavailable"
                        && c.message.contains(
                            "ResourceQuota cannot hold its components' replicas, some pods are \
                             refused: pods 1 is less than the components' pods, 3",
                        ) == named
                }))
            }
        }
    };
    eventually(
        "zaaksysteem's Available names the quota",
        WAIT,
        available_names_quota(true),
    )
    .await
    .expect("a quota too small is named on the component");
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "tenant-moerdijk");
    eventually("a QuotaExceeded warning", WAIT, || {
        let events = events.clone();
        async move {
            let list = events
                .list(&ListParams::default().fields("reason=QuotaExceeded"))
                .await?;
            Ok(list.items.iter().any(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("zaaksysteem")
                    && e.type_.as_deref() == Some("Warning")
            }))
        }
    })
    .await
    .expect("the shortfall announced");
    set_pods_and_replicas(serde_json::Value::Null, 2).await;
    eventually(
        "zaaksysteem's Available without the quota",
        WAIT,
        available_names_quota(false),
    )
    .await
    .expect("the quota's default fits");

    // 6. Restart: a full resync of an unchanged world writes nothing.
    tenants_ready(&client, &ALL, WAIT)
        .await
        .expect("all ready before restart");
    let invoices_api: Api<Invoice> = Api::all(client.clone());
    // Invoicing gathers changes for up to ten times what a pass costs (seconds in a debug
    // build), and defers drafts while reconciles run: wait until two passes have completed
    // since every tenant was Ready — the second began after it — and then for the invoices not
    // to have changed for 10 s, so that the world really is unchanged before the restart.
    let complete_passes = || {
        op.metrics
            .invoicing_passes
            .with_label_values(&["complete"])
            .get()
    };
    let passes_when_ready = complete_passes();
    eventually(
        "two complete invoicing passes after all tenants were Ready",
        WAIT,
        || {
            let done = complete_passes() >= passes_when_ready + 2;
            async move { Ok(done) }
        },
    )
    .await
    .expect("invoicing passes");
    let mut invoices_before = invoice_specs(&invoices_api).await;
    let mut stable_for = Duration::ZERO;
    let mut waited = Duration::ZERO;
    while stable_for < Duration::from_secs(10) && waited < WAIT {
        tokio::time::sleep(Duration::from_secs(2)).await;
        waited += Duration::from_secs(2);
        let now = invoice_specs(&invoices_api).await;
        if now == invoices_before {
            stable_for += Duration::from_secs(2);
        } else {
            stable_for = Duration::ZERO;
            invoices_before = now;
        }
    }
    // The stray component is still Stalled: the gauge the RegieStalledObjects alert reads says
    // so (refreshed once a minute).
    let stalled = op.metrics.stalled_objects.clone();
    eventually("regie_stalled_objects to count the stray", WAIT, || {
        let stalled = stalled.clone();
        async move {
            Ok(stalled
                .with_label_values(&["HostingComponent", "NoTenant"])
                .get()
                >= 1)
        }
    })
    .await
    .expect("a component Stalled now is in regie_stalled_objects");
    let first_metrics = op.metrics.clone();
    op.stop().await.expect("graceful stop");
    // Every write of steps 1–5 that landed, regie counted, and none that did not: the counter
    // the benchmarks read writes per tenant and idle writes from.
    let audited = cluster.audited().expect("audit log");
    assert_eq!(
        landed_writes(&audited),
        counted_writes(&first_metrics),
        "the writes the API server took from the operator (left) are the ones regie counted \
         (right)"
    );
    let audited_before_restart = audited.len();
    let op = RunningOperator::start(operator_client.clone(), Options::default(), None);
    let metrics = op.metrics.clone();
    eventually(
        "the restarted operator to look at every tenant",
        WAIT,
        || {
            let metrics = metrics.clone();
            async move {
                Ok(metrics
                    .reconciles
                    .with_label_values(&["Tenant", "ok"])
                    .get()
                    >= ALL.len() as u64)
            }
        },
    )
    .await
    .expect("resync");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // SlaReport writes are the prober recording measurements (time passes, probes fail: the
    // world is not unchanged for it), and after a restart the prober re-asserts each probed
    // component's Available once (a known cost, see the closing note of issue 4). A draft
    // Invoice follows the SLA credits of those measurements, so it may change too — but only in
    // its credit lines and totals. Everything else — children, tenants, packages, usage,
    // events — must see zero writes.
    let invoices_after = invoice_specs(&invoices_api).await;
    let mut invoices_changed = 0;
    for (name, after) in &invoices_after {
        let Some(before) = invoices_before.get(name) else {
            panic!("the restarted operator created Invoice {name} in an unchanged world");
        };
        if before != after {
            invoices_changed += 1;
            assert_eq!(
                without_credits(before),
                without_credits(after),
                "Invoice {name} changed in more than its SLA credits"
            );
        }
    }
    let counted_since_restart = counted_writes(&op.metrics);
    let writes = |kind: &str| counted_since_restart.get(kind).copied().unwrap_or(0);
    assert!(
        writes("Invoice") <= invoices_changed,
        "Invoices were rewritten unchanged:\n{}",
        op.metrics.render()
    );
    let all_writes: u64 = counted_since_restart.values().sum();
    let reconcile_writes =
        all_writes - writes("SlaReport") - writes("HostingComponent") - writes("Invoice");
    assert_eq!(
        reconcile_writes,
        0,
        "a restart over an unchanged world wrote:\n{}",
        op.metrics.render()
    );

    // The same where the writes land: the API server's audit log of the operator's user since
    // the restart holds the writes regie counted, kind by kind, and no other (read when regie's
    // count stood still across the read: SLA reports go on being written).
    let mut landed = BTreeMap::new();
    let mut counted = counted_writes(&op.metrics);
    for _ in 0..50 {
        let events = cluster.audited().expect("audit log");
        landed = landed_writes(&events[audited_before_restart.min(events.len())..]);
        let now = counted_writes(&op.metrics);
        if now == counted {
            break;
        }
        counted = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        landed, counted,
        "the writes the API server took from the restarted operator (left) are the ones regie \
         counted (right)"
    );

    // A change by someone else after the restart is corrected: the restarted operator knows
    // nothing of its own applies, and takes what it listed as its own. The tenant's staff scale
    // the Deployment to nothing and point the Service at other pods (their `edit` role allows
    // both); regie puts both back. A Service has no `generation`: its `resourceVersion` shows it.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "tenant-tholen");
    let services: Api<Service> = Api::namespaced(client.clone(), "tenant-tholen");
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let replicas = |d: &Deployment| d.spec.as_ref().and_then(|s| s.replicas);
    let selector = |s: &Service| s.spec.as_ref().and_then(|s| s.selector.clone());
    let want_replicas = replicas(&deployments.get("document-archive").await.expect("get"));
    let want_selector = selector(&services.get("document-archive").await.expect("get"));
    let by_staff = PatchParams::apply("tholen-staff").force();
    deployments
        .patch(
            "document-archive",
            &by_staff,
            &Patch::Apply(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 0}
            })),
        )
        .await
        .expect("scale to 0");
    services
        .patch(
            "document-archive",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "spec": {"selector": {"regie.dev/component": "staff-test"}}
            })),
        )
        .await
        .expect("other pods");
    eventually("regie to undo the staff's edits", WAIT, || {
        let (deployments, services) = (deployments.clone(), services.clone());
        let want_selector = want_selector.clone();
        async move {
            let d = deployments.get("document-archive").await?;
            let s = services.get("document-archive").await?;
            Ok(replicas(&d) == want_replicas && selector(&s) == want_selector)
        }
    })
    .await
    .expect("changes by someone else after a restart are corrected");

    // A component put in a namespace of no tenant while no regie ran has no watch event to
    // come: the restarted operator marks it all the same. A Deployment scaled to nothing while
    // no regie ran is scaled back by the restarted operator.
    op.stop().await.expect("stop");
    lose_component(&cluster, work.path(), "stray-while-down");
    deployments
        .patch(
            "document-archive",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale to 0 while no regie runs");
    // The Service pointed at other pods and the namespace's Pod Security level lowered, while no
    // regie ran: the managed fields of both show another manager's change after regie's apply,
    // and the restarted operator puts both back.
    services
        .patch(
            "document-archive",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "spec": {"selector": {"regie.dev/component": "staff-while-down"}}
            })),
        )
        .await
        .expect("other pods while no regie runs");
    let enforce = |n: &Namespace| {
        n.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-security.kubernetes.io/enforce").cloned())
    };
    let want_enforce = enforce(&ns_api.get("tenant-tholen").await.expect("namespace"));
    assert_eq!(want_enforce.as_deref(), Some("restricted"));
    ns_api
        .patch(
            "tenant-tholen",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}
            })),
        )
        .await
        .expect("a lower Pod Security level while no regie runs");
    let op = RunningOperator::start(operator_client.clone(), Options::default(), None);
    lost_component_stalled(&client, "stray-while-down")
        .await
        .expect("a component outside any tenant's namespace is Stalled after a restart too");
    eventually("regie to scale back what was scaled while it was down", WAIT, || {
        let deployments = deployments.clone();
        async move { Ok(replicas(&deployments.get("document-archive").await?) == want_replicas) }
    })
    .await
    .expect("a Deployment scaled while no regie ran is scaled back after the restart");
    eventually(
        "regie to undo what was changed while it was down",
        WAIT,
        || {
            let (services, ns_api) = (services.clone(), ns_api.clone());
            let (want_selector, want_enforce) = (want_selector.clone(), want_enforce.clone());
            async move {
                let s = services.get("document-archive").await?;
                let n = ns_api.get("tenant-tholen").await?;
                Ok(selector(&s) == want_selector && enforce(&n) == want_enforce)
            }
        },
    )
    .await
    .expect("children changed while no regie ran are corrected after the restart");

    // 7. A tenant deleted: its namespace goes, then the finalizer is released.
    tenants
        .delete("tholen", &DeleteParams::default())
        .await
        .expect("delete");
    let ns: Api<Namespace> = Api::all(client.clone());
    eventually(
        "tholen and its namespace to be gone",
        Duration::from_secs(120),
        || {
            let ns = ns.clone();
            let tenants = tenants.clone();
            async move {
                Ok(tenants.get_opt("tholen").await?.is_none()
                    && ns.get_opt("tenant-tholen").await?.is_none())
            }
        },
    )
    .await
    .expect("offboarding removes the namespace and releases the finalizer");
    let closed = usages
        .get(&usage_name)
        .await
        .expect("usage outlives its tenant");
    let st = closed.status.expect("status");
    assert!(
        st.closed && st.segments.last().is_some_and(|s| s.to.is_some()),
        "offboarding closes the usage: {st:?}"
    );
    op.stop().await.expect("stop");

    // Least privilege, both halves, over everything this test made the operator do: every
    // request it sent is one `regie rbac`'s rules allow, and every verb they grant was used —
    // but for the few only other tests exercise, each named with where.
    let audited = cluster.audited().expect("audit log");
    let listed = |rules: serde_json::Value| rules.as_array().cloned().unwrap_or_default();
    // The ClusterRole's rules hold everywhere, the Role's only in regie's own namespace.
    let cluster_rules = listed(regie::rbac::cluster_rules());
    let rules: Vec<serde_json::Value> = [
        cluster_rules.clone(),
        listed(regie::rbac::namespace_rules()),
    ]
    .concat();
    let own_namespace = Options::default().namespace;
    let mut used = std::collections::BTreeSet::new();
    let mut not_allowed = std::collections::BTreeSet::new();
    for e in audited.iter().filter(|e| e.user.username == OPERATOR_USER) {
        let Some(o) = &e.object_ref else { continue };
        let rules_here = if o.namespace == own_namespace {
            &rules
        } else {
            &cluster_rules
        };
        let resource = e.resource();
        // A server-side apply that creates is authorized as a create too.
        let mut verbs = vec![e.verb.as_str()];
        if e.verb == "patch" && e.code() == 201 {
            verbs.push("create");
        }
        for verb in verbs {
            let access = format!("{verb} {}/{resource}", o.api_group);
            if !allows(rules_here, verb, &o.api_group, &resource, &o.name) {
                not_allowed.insert(format!("{access} {}/{}", o.namespace, o.name));
            }
            used.insert(access);
        }
    }
    assert!(
        not_allowed.is_empty(),
        "the operator sent requests its RBAC does not allow: {not_allowed:#?}"
    );
    let exercised_elsewhere = [
        // Leader election: e2e/tests/leader.rs (this operator runs without).
        "create coordination.k8s.io/leases",
        "get coordination.k8s.io/leases",
        "update coordination.k8s.io/leases",
        // The billing system's token and invoice delivery: e2e/tests/delivery.rs.
        "get /secrets",
        "patch regie.dev/invoices/status",
        // Reading a stored SlaReport to resume a component's history after a restart:
        // e2e/tests/sla_live.rs (here only when a probe comes round before the restarted
        // operator is stopped, which the timing decides).
        "get regie.dev/slareports",
        // Deleting final daily and weekly SlaReports past their retention: e2e/tests/sla_live.rs.
        "delete regie.dev/slareports",
        // `bind` is checked when a RoleBinding to `edit` is written, never sent as a request.
        "bind rbac.authorization.k8s.io/clusterroles",
    ];
    let unused: Vec<String> = granted(&rules)
        .into_iter()
        .filter(|a| !used.contains(a) && !exercised_elsewhere.contains(&a.as_str()))
        .collect();
    assert_eq!(
        unused,
        Vec::<String>::new(),
        "verbs the RBAC grants that the operator never used (used: {used:#?})"
    );
}

/// Whether `rules` (PolicyRules as JSON) allow `verb` on `group`/`resource` named `name`.
fn allows(
    rules: &[serde_json::Value],
    verb: &str,
    group: &str,
    resource: &str,
    name: &str,
) -> bool {
    let has = |rule: &serde_json::Value, field: &str, value: &str| {
        rule[field]
            .as_array()
            .is_some_and(|vs| vs.iter().any(|v| v == value))
    };
    rules.iter().any(|r| {
        has(r, "verbs", verb)
            && has(r, "apiGroups", group)
            && has(r, "resources", resource)
            && (r.get("resourceNames").is_none() || has(r, "resourceNames", name))
    })
}

/// Every `verb group/resource` the rules grant.
fn granted(rules: &[serde_json::Value]) -> Vec<String> {
    let list = |r: &serde_json::Value, field: &str| -> Vec<String> {
        r[field]
            .as_array()
            .map(|vs| {
                vs.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = std::collections::BTreeSet::new();
    for r in rules {
        for verb in list(r, "verbs") {
            for group in list(r, "apiGroups") {
                for resource in list(r, "resources") {
                    out.insert(format!("{verb} {group}/{resource}"));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The operator's writes by kind, as its `regie_api_writes_total` counts them.
fn counted_writes(metrics: &regie::metrics::Metrics) -> BTreeMap<String, u64> {
    let mut by_kind = BTreeMap::new();
    for m in metrics
        .api_writes
        .collect()
        .iter()
        .flat_map(|f| f.get_metric())
    {
        let kind = m
            .get_label()
            .iter()
            .find(|l| l.name() == "kind")
            .map(|l| l.value().to_string())
            .unwrap_or_default();
        let n = m.get_counter().get_value() as u64;
        if n > 0 {
            *by_kind.entry(kind).or_insert(0) += n;
        }
    }
    by_kind
}

/// The operator's writes the API server took (answered 2xx), by kind, from its audit log.
fn landed_writes(events: &[AuditEvent]) -> BTreeMap<String, u64> {
    let mut by_kind = BTreeMap::new();
    for e in events {
        let write = matches!(
            e.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        );
        if e.user.username != OPERATOR_USER || !write || !(200..300).contains(&e.code()) {
            continue;
        }
        let resource = e
            .object_ref
            .as_ref()
            .map(|o| o.resource.as_str())
            .unwrap_or_default();
        let kind = match resource {
            "namespaces" => "Namespace",
            "resourcequotas" => "ResourceQuota",
            "limitranges" => "LimitRange",
            "networkpolicies" => "NetworkPolicy",
            "rolebindings" => "RoleBinding",
            "deployments" => "Deployment",
            "services" => "Service",
            "poddisruptionbudgets" => "PodDisruptionBudget",
            "tenants" => "Tenant",
            "workplacepackages" => "WorkplacePackage",
            "hostingcomponents" => "HostingComponent",
            "usages" => "Usage",
            "invoices" => "Invoice",
            "slareports" => "SlaReport",
            "events" => "Event",
            "configmaps" => "ConfigMap",
            "leases" => "Lease",
            other => other,
        };
        *by_kind.entry(kind.to_string()).or_insert(0) += 1;
    }
    by_kind
}

/// A bronze Tenant of the steps that make their own, its group `<name>:ict`, with `spec`'s
/// fields set over these.
fn small_tenant(name: &str, spec: serde_json::Value) -> Tenant {
    let mut body = serde_json::json!({
        "apiVersion": "regie.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": name},
        "spec": {"displayName": name, "serviceLevel": "bronze", "inhabitants": 1000,
                 "membership": {"joined": "2026-01-01"},
                 "access": {"groups": [format!("{name}:ict")]}}
    });
    if let Some(fields) = spec.as_object() {
        for (k, v) in fields {
            body["spec"][k] = v.clone();
        }
    }
    serde_json::from_value(body).expect("a tenant")
}

/// Creates a small tenant `name` and waits until it is Ready.
async fn onboarded(client: &Client, tenants: &Api<Tenant>, name: &str) -> anyhow::Result<()> {
    let tenant = small_tenant(name, serde_json::json!({}));
    tenants.create(&Default::default(), &tenant).await?;
    tenants_ready(client, &[name], WAIT).await
}

/// Deletes tenant `name` and waits until it is gone: its cleanup done, its finalizer released.
async fn offboarded(tenants: &Api<Tenant>, name: &str) -> anyhow::Result<()> {
    tenants.delete(name, &DeleteParams::default()).await?;
    eventually(&format!("{name} gone"), WAIT, || {
        let tenants = tenants.clone();
        let name = name.to_string();
        async move { Ok(tenants.get_opt(&name).await?.is_none()) }
    })
    .await
}

/// The Warning events about etten-leur's missing service level: note and occurrences.
async fn level_warnings(client: Client) -> anyhow::Result<Vec<(String, i32)>> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
    let list = events
        .list(&ListParams::default().fields("reason=ServiceLevelNotFound"))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("etten-leur")
                && e.type_.as_deref() == Some("Warning")
        })
        .map(|e| {
            let count = e.series.map_or(1, |s| s.count);
            (e.note.unwrap_or_default(), count)
        })
        .collect())
}

/// Merge-patches Werkplein's component client-portal.
async fn patch_client_portal(client: &Client, patch: serde_json::Value) {
    comps_in(client, "tenant-werkplein")
        .patch(
            "client-portal",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("patch client-portal");
}

/// Waits until Werkplein's status says it is not Ready because of client-portal, for `cause`.
async fn client_portal_stalled(tenants: &Api<Tenant>, cause: &str) -> anyhow::Result<()> {
    eventually(
        "werkplein to name client-portal and its cause",
        WAIT,
        || {
            let tenants = tenants.clone();
            async move {
                let st = tenants.get("werkplein").await?.status.unwrap_or_default();
                Ok(find(&st.conditions, READY).is_some_and(|c| {
                    c.status == "False"
                        && c.message.contains("HostingComponent client-portal")
                        && c.message.contains(cause)
                }))
            }
        },
    )
    .await
}

/// How many objects labelled for `tenant` are in namespace `ns`, by kind: ResourceQuota,
/// LimitRange, NetworkPolicy, RoleBinding, Deployment, Service, PodDisruptionBudget.
/// `pdb_version` is the PodDisruptionBudget API version the server offers.
async fn made_by_regie(
    client: &Client,
    pdb_version: &str,
    ns: &str,
    tenant: &str,
) -> kube::Result<[usize; 7]> {
    let labelled = ListParams::default().labels(&format!("regie.dev/tenant={tenant}"));
    let lp = &labelled;
    let pdbs = pdb_api(client, ns, pdb_version);
    Ok([
        count::<ResourceQuota>(client, ns, lp).await?,
        count::<LimitRange>(client, ns, lp).await?,
        count::<NetworkPolicy>(client, ns, lp).await?,
        count::<RoleBinding>(client, ns, lp).await?,
        count::<Deployment>(client, ns, lp).await?,
        count::<Service>(client, ns, lp).await?,
        pdbs.list(lp).await?.items.len(),
    ])
}

async fn count<K>(client: &Client, ns: &str, lp: &ListParams) -> kube::Result<usize>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .list(lp)
        .await?
        .items
        .len())
}

/// Creates namespace `ns`, which no tenant names, with a SaaS component `lost` in it.
fn lose_component(cluster: &TestCluster, dir: &std::path::Path, ns: &str) {
    cluster
        .kubectl_ok(&["create", "namespace", ns])
        .expect("ns");
    let yaml = format!(
        "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {{name: lost, \
         namespace: {ns}}}\nspec: {{class: applicationHosting, saas: {{url: \
         \"https://lost.example/\"}}}}\n"
    );
    cluster
        .apply_yaml(dir, &format!("{ns}.yaml"), &yaml)
        .expect("apply");
}

/// Waits until component `lost` of namespace `ns` is Stalled for belonging to no tenant.
async fn lost_component_stalled(client: &Client, ns: &str) -> anyhow::Result<()> {
    let lost = comps_in(client, ns);
    eventually(&format!("{ns}/lost Stalled"), WAIT, || {
        let lost = lost.clone();
        async move {
            let c = lost.get("lost").await?;
            Ok(c.status.is_some_and(|s| {
                find(&s.conditions, STALLED)
                    .is_some_and(|c| c.status == "True" && c.reason == "NoTenant")
            }))
        }
    })
    .await
}

fn comps_in(client: &Client, ns: &str) -> Api<HostingComponent> {
    Api::namespaced(client.clone(), ns)
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Every Invoice's spec by name.
async fn invoice_specs(api: &Api<Invoice>) -> BTreeMap<String, InvoiceSpec> {
    api.list(&ListParams::default())
        .await
        .expect("list invoices")
        .into_iter()
        .map(|i| (i.name_any(), i.spec))
        .collect()
}

/// An invoice's lines other than SLA credits; the totals follow the credits, so they go too.
fn without_credits(spec: &InvoiceSpec) -> InvoiceSpec {
    let mut s = spec.clone();
    s.lines.retain(|l| l.kind != "credit");
    s.subtotal.clear();
    s.vat.clear();
    s.total.clear();
    s
}

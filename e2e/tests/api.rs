//! The regie API on a real kube-apiserver (v1.20.2, built by `e2e/cluster`): the CRDs install,
//! every example applies server-side — with the real kubectl and through kube::Client — and
//! reads back unchanged, kubectl shows the columns and docs a person expects, and the server's
//! schema refuses invalid objects with a readable message.

use std::path::PathBuf;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use regie_e2e::cluster::{Cluster, regie_files, repo_root, shared};
use serde_json::Value;

fn example_docs() -> Vec<(PathBuf, Value)> {
    let files = regie_files(&repo_root().join("examples"));
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(doc).expect("examples are YAML");
            if v["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("regie.dev/"))
            {
                out.push((f.clone(), v));
            }
        }
    }
    out
}

fn ensure_tenant_namespaces(cluster: &Cluster) {
    for (_, doc) in example_docs() {
        if let Some(ns) = doc["metadata"]["namespace"].as_str() {
            let out = cluster.kubectl(&["create", "namespace", ns]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() || err.contains("AlreadyExists"),
                "{err}"
            );
        }
    }
}

/// The spec as regie reads it: serde defaults match schema defaults, so a server that added
/// defaults still reads back equal.
fn typed_spec(doc: &Value) -> Value {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let yaml = serde_yaml::to_string(doc).expect("serializes");
    let mut loaded = regie::input::Loaded::default();
    regie::input::parse_into(std::path::Path::new("x.yaml"), &yaml, &mut loaded);
    assert!(loaded.problems.is_empty(), "{kind}: {:?}", loaded.problems);
    let (_, obj) = loaded.objects.pop().expect("one object");
    use regie::input::Object::*;
    match obj {
        ServiceLevel(o) => serde_json::to_value(o.spec),
        Tenant(o) => serde_json::to_value(o.spec),
        WorkplacePackage(o) => serde_json::to_value(o.spec),
        HostingComponent(o) => serde_json::to_value(o.spec),
        PriceList(o) => serde_json::to_value(o.spec),
        CostPool(o) => serde_json::to_value(o.spec),
        ServiceOrder(o) => serde_json::to_value(o.spec),
        Usage(o) => serde_json::to_value(o.spec),
        Invoice(o) => serde_json::to_value(o.spec),
        SlaReport(o) => serde_json::to_value(o.spec),
    }
    .expect("serializes")
}

fn api_for(client: &kube::Client, doc: &Value) -> Api<DynamicObject> {
    let (group, version) = doc["apiVersion"]
        .as_str()
        .and_then(|a| a.split_once('/'))
        .expect("apiVersion");
    let kind = doc["kind"].as_str().expect("kind");
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    match doc["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

#[tokio::test]
async fn examples_apply_with_kubectl_server_side_and_read_back_unchanged() {
    let cluster = shared();
    ensure_tenant_namespaces(cluster);
    cluster
        .apply_files(
            &regie_files(&repo_root().join("examples")),
            &["--field-manager=e2e-kubectl"],
        )
        .expect("kubectl apply --server-side of examples/");
    let client = cluster.client().await.expect("client");
    for (file, doc) in example_docs() {
        let api = api_for(&client, &doc);
        let name = doc["metadata"]["name"].as_str().expect("name");
        let live = api
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{}: {name}: {e}", file.display()));
        let live = serde_json::to_value(&live).expect("serializes");
        assert_eq!(
            typed_spec(&live),
            typed_spec(&doc),
            "{}: {name} changed on the server",
            file.display()
        );
    }
}

#[tokio::test]
async fn examples_apply_through_kube_client_and_read_back_unchanged() {
    let cluster = shared();
    ensure_tenant_namespaces(cluster);
    let client = cluster.client().await.expect("client");
    for (file, doc) in example_docs() {
        let api = api_for(&client, &doc);
        let name = doc["metadata"]["name"].as_str().expect("name");
        let applied = api
            .patch(
                name,
                &PatchParams::apply("e2e-client").force(),
                &Patch::Apply(&doc),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {name}: {e}", file.display()));
        let applied = serde_json::to_value(&applied).expect("serializes");
        assert_eq!(
            typed_spec(&applied),
            typed_spec(&doc),
            "{}: {name}",
            file.display()
        );
    }
}

#[tokio::test]
async fn kubectl_shows_columns_and_documentation() {
    let cluster = shared();
    ensure_tenant_namespaces(cluster);
    cluster
        .apply_files(
            &regie_files(&repo_root().join("examples")),
            &["--field-manager=e2e-columns", "--force-conflicts"],
        )
        .expect("apply");
    let tenants = cluster
        .kubectl_ok(&["get", "tenants"])
        .expect("get tenants");
    let header = tenants.lines().next().unwrap_or_default();
    for col in [
        "NAME",
        "DISPLAY NAME",
        "LEVEL",
        "READY",
        "ACCOUNTS",
        "COMPONENTS",
        "AGE",
    ] {
        assert!(
            header.contains(col),
            "`kubectl get tenants` lacks {col}: {header}"
        );
    }
    assert!(
        tenants.contains("tholen")
            && tenants.contains("Gemeente Tholen")
            && tenants.contains("bronze"),
        "{tenants}"
    );

    let comps = cluster
        .kubectl_ok(&["get", "hostingcomponents", "-A"])
        .expect("get hostingcomponents");
    let header = comps.lines().next().unwrap_or_default();
    for col in [
        "NAMESPACE",
        "NAME",
        "CLASS",
        "LEVEL",
        "READY",
        "AVAILABLE",
        "AGE",
    ] {
        assert!(
            header.contains(col),
            "`kubectl get hostingcomponents -A` lacks {col}: {header}"
        );
    }
    assert!(
        comps.contains("tenant-roosendaal") && comps.contains("applicationHosting"),
        "{comps}"
    );

    let levels = cluster
        .kubectl_ok(&["get", "servicelevels"])
        .expect("get servicelevels");
    assert!(
        levels.contains("99.9") && levels.contains("gold"),
        "{levels}"
    );

    let explain = cluster
        .kubectl_ok(&["explain", "tenant.spec"])
        .expect("explain");
    for text in [
        "serviceLevel",
        "Name of the ServiceLevel",
        "membership",
        "municipalityCode",
        "GM",
    ] {
        assert!(
            explain.contains(text),
            "`kubectl explain tenant.spec` lacks {text:?}:\n{explain}"
        );
    }
    let explain = cluster
        .kubectl_ok(&["explain", "hostingcomponent.spec.saas"])
        .expect("explain");
    assert!(explain.contains("SaaS application"), "{explain}");
}

/// Applies one YAML document with kubectl and returns its stderr, expecting a refusal.
fn refused(cluster: &Cluster, yaml: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("bad.yaml");
    std::fs::write(&f, yaml).expect("write");
    // --validate=false: the point is the server's answer, not kubectl's client-side check.
    let out = cluster.kubectl(&[
        "apply",
        "--server-side",
        "--validate=false",
        "-f",
        &f.to_string_lossy(),
    ]);
    assert!(!out.status.success(), "the server accepted:\n{yaml}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_server_schema_refuses_invalid_objects_readably() {
    let cluster = shared();
    let _ = cluster.kubectl(&["create", "namespace", "tenant-schema"]);
    let tenant = |spec: &str| {
        format!(
            "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: schema}}\nspec:\n{spec}"
        )
    };
    let e = refused(
        cluster,
        &tenant("  displayName: X\n  membership: {joined: \"2026-01-01\"}\n"),
    );
    assert!(
        e.contains("spec.serviceLevel") && e.contains("Required"),
        "required field: {e}"
    );
    let e = refused(
        cluster,
        &tenant(
            "  displayName: X\n  serviceLevel: gold\n  municipalityCode: XX12\n  membership: {joined: \"2026-01-01\"}\n",
        ),
    );
    assert!(
        e.contains("spec.municipalityCode") && e.contains("should match"),
        "pattern: {e}"
    );
    let e = refused(
        cluster,
        &tenant("  displayName: X\n  serviceLevel: gold\n  membership: {joined: \"1 jan\"}\n"),
    );
    assert!(e.contains("spec.membership.joined"), "date pattern: {e}");

    let pkg = |accounts: &str| {
        format!(
            "apiVersion: regie.dev/v1alpha1\nkind: WorkplacePackage\nmetadata: {{name: p, namespace: tenant-schema}}\nspec: {{profile: standard, accounts: {accounts}}}\n"
        )
    };
    let e = refused(cluster, &pkg("many"));
    assert!(
        e.contains("spec.accounts") && (e.contains("integer") || e.contains("numeric")),
        "type: {e}"
    );
    let e = refused(cluster, &pkg("-3"));
    assert!(
        e.contains("spec.accounts") && e.contains("greater than or equal to 0"),
        "minimum: {e}"
    );

    let comp = "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: c, namespace: tenant-schema}\nspec: {class: mainframe, saas: {url: \"https://x.example/\"}}\n";
    let e = refused(cluster, comp);
    assert!(
        e.contains("spec.class") && e.contains("Unsupported value"),
        "enum: {e}"
    );
    let comp = "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: c, namespace: tenant-schema}\nspec: {class: applicationHosting, saas: {url: \"ftp://x.example/\"}}\n";
    let e = refused(cluster, comp);
    assert!(e.contains("spec.saas.url"), "url pattern: {e}");

    let price = "apiVersion: regie.dev/v1alpha1\nkind: PriceList\nmetadata: {name: bad}\nspec: {currency: EUR, effectiveFrom: \"2026-01-01\", rates: [{item: account, per: year, amount: \"12,50\"}]}\n";
    let e = refused(cluster, price);
    assert!(
        e.contains("amount") && e.contains("should match"),
        "money pattern: {e}"
    );
    let level = "apiVersion: regie.dev/v1alpha1\nkind: ServiceLevel\nmetadata: {name: bad}\nspec: {rank: 1, serviceHours: [\"Mon-Fri 25:00-17:00\"], responseTimes: {urgent: 1h, other: 1d}, kpiReport: monthly, availability: {target: \"99\"}, probe: {interval: 30s, timeout: 5s}}\n";
    let e = refused(cluster, level);
    assert!(
        e.contains("serviceHours") && e.contains("should match"),
        "window pattern: {e}"
    );
}

/// v1.20 drops CEL rules (`x-kubernetes-validations` came in 1.25), so a HostingComponent with
/// both `hosted` and `saas` passes this server's schema. The same rule runs in Rust — in
/// `regie validate` and in the controller — and is tested here against what the server stored.
#[tokio::test]
async fn cel_rules_run_in_rust_where_the_server_cannot() {
    use regie_crds::validate::Validate;
    let cluster = shared();
    let _ = cluster.kubectl(&["create", "namespace", "tenant-cel"]);
    let both = "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: both, namespace: tenant-cel}\nspec:\n  class: applicationHosting\n  saas: {url: \"https://x.example/\"}\n  hosted: {image: x, port: 8080, healthPath: /}\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("both.yaml");
    std::fs::write(&f, both).expect("write");
    cluster
        .kubectl_ok(&[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            &f.to_string_lossy(),
        ])
        .expect("v1.20 accepts what only CEL would refuse");
    let client = cluster.client().await.expect("client");
    let api: Api<regie_crds::HostingComponent> = Api::namespaced(client, "tenant-cel");
    let stored = api.get("both").await.expect("stored");
    let errors = stored.spec.validate();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "spec");
    assert!(errors[0].message.contains("exactly one of hosted and saas"));
    // And the rule is published as CEL for servers that do run it.
    let crds = regie_crds::crd::crds_yaml();
    assert!(crds.contains("has(self.hosted) != has(self.saas)"));
}

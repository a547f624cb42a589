//! `regie validate` on bad input: every rule of the foundation issue gives one precise line,
//! `FILE: KIND/NAME: field.path: message`, and never a panic.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo")
        .to_path_buf()
}

/// The examples plus one extra file; the problems `check` finds.
fn problems_with(extra: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("extra.yaml"), extra).expect("write");
    let (problems, _) =
        regie::cli::validate::check(&[repo().join("examples"), dir.path().to_path_buf()]);
    problems
        .iter()
        .map(|p| {
            p.to_string()
                .replace(&dir.path().display().to_string(), "TMP")
        })
        .collect()
}

fn one(extra: &str) -> String {
    let p = problems_with(extra);
    assert_eq!(p.len(), 1, "{p:#?}");
    p[0].clone()
}

#[test]
fn the_examples_are_valid() {
    let (problems, count) = regie::cli::validate::check(&[repo().join("examples")]);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(count >= 30, "{count}");
}

/// A catalogue read on its own has pools and no tenant to allocate them over: not a problem.
#[test]
fn the_catalogue_alone_is_valid() {
    let (problems, _) = regie::cli::validate::check(&[repo().join("examples/catalogue")]);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn unknown_service_level() {
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: bergen}\nspec: {displayName: Bergen op Zoom, serviceLevel: platinum, membership: {joined: \"2026-01-01\"}}\n",
    );
    assert_eq!(
        p,
        "TMP/extra.yaml: Tenant/bergen: spec.serviceLevel: unknown ServiceLevel \"platinum\" (known: bronze, gold, silver)"
    );
}

#[test]
fn bad_windows() {
    let level = |hours: &str| {
        format!(
            "apiVersion: regie.dev/v1alpha1\nkind: ServiceLevel\nmetadata: {{name: tin}}\nspec: {{rank: 0, serviceHours: [\"{hours}\"], responseTimes: {{urgent: 1h, other: 2d}}, kpiReport: monthly, availability: {{target: \"98\"}}, probe: {{interval: 60s, timeout: 10s}}}}\n"
        )
    };
    let p = one(&level("Mon-Fri 25:00-17:00"));
    assert!(
        p.starts_with("TMP/extra.yaml: ServiceLevel/tin: spec.serviceHours[0]: ")
            && p.contains("start time \"25:00\" is out of range"),
        "{p}"
    );
    let p = one(&level("Mon-Fri 17:00-08:00"));
    assert!(
        p.contains("spec.serviceHours[0]")
            && p.contains("end time 08:00 must be after start time 17:00"),
        "{p}"
    );
}

#[test]
fn negative_accounts() {
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: WorkplacePackage\nmetadata: {name: extra, namespace: tenant-tholen}\nspec: {profile: standard, accounts: -5}\n",
    );
    assert_eq!(
        p,
        "TMP/extra.yaml: WorkplacePackage/tenant-tholen/extra: spec.accounts: must be 0 or more, not -5"
    );
}

/// A quantity the API server would reject (and with it the quota or Deployment, on every
/// retry) is named with its field before anything is applied.
#[test]
fn malformed_quantities() {
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: extra}\nspec: {displayName: Extra, serviceLevel: bronze, inhabitants: 1000, membership: {joined: \"2026-01-01\"}, access: {groups: [\"extra:ict\"]}, quota: {cpu: eight, memory: 16Gi}}\n",
    );
    assert_eq!(
        p,
        "TMP/extra.yaml: Tenant/extra: spec.quota.cpu: \"eight\" is not a quantity of zero or more such as \"8\", \"250m\" or \"16Gi\""
    );
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: extra, namespace: tenant-tholen}\nspec: {class: applicationHosting, hosted: {image: \"registry.example/app:1.0\", port: 8080, healthPath: /healthz, resources: {requests: {cpu: 250m, memory: \"256 Mi\"}}}}\n",
    );
    assert!(
        p.starts_with(
            "TMP/extra.yaml: HostingComponent/tenant-tholen/extra: spec.hosted.resources.requests.memory: \"256 Mi\" is not a quantity"
        ),
        "{p}"
    );
    for good in [
        "8", "250m", "0.5", ".5", "16Gi", "1e3", "1E-2", "+2", "100k", "0",
    ] {
        assert!(regie_crds::validate::check_quantity(good).is_ok(), "{good}");
    }
    for bad in [
        "", "eight", "-1", "1..5", "16gi", "1e", "m", "1 Gi", "1Gi2", ".",
    ] {
        assert!(
            regie_crds::validate::check_quantity(bad).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn a_hosted_components_name_must_name_a_service() {
    let component = |name: &str, kind: &str| {
        format!(
            "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {{name: \"{name}\", namespace: tenant-tholen}}\nspec: {{class: applicationHosting, {kind}}}\n"
        )
    };
    let hosted = "hosted: {image: \"registry.example/app:1.0\", port: 8080, healthPath: /healthz}";
    let p = one(&component("2fa", hosted));
    assert_eq!(
        p,
        "TMP/extra.yaml: HostingComponent/tenant-tholen/2fa: metadata.name: \"2fa\" cannot name a hosted component's Service: at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"
    );
    let long = format!("a{}", "b".repeat(63));
    assert!(one(&component(&long, hosted)).contains("metadata.name"));
    // A SaaS component names no Service.
    let saas = "saas: {url: \"https://saas.example.nl/\"}";
    assert_eq!(problems_with(&component("2fa", saas)), Vec::<String>::new());
    assert_eq!(
        problems_with(&component("fa2-x", hosted)),
        Vec::<String>::new()
    );
}

#[test]
fn malformed_amounts() {
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: CostPool\nmetadata: {name: bad}\nspec: {amount: \"12,50\", from: \"2026-01-01\", until: \"2026-12-31\", allocation: equalShares}\n",
    );
    assert!(
        p.starts_with("TMP/extra.yaml: CostPool/bad: spec.amount: ")
            && p.contains("is not a decimal amount"),
        "{p}"
    );
}

#[test]
fn both_hosted_and_saas() {
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: both, namespace: tenant-tholen}\nspec: {class: applicationHosting, saas: {url: \"https://x.example/\"}, hosted: {image: x, port: 8080, healthPath: /}}\n",
    );
    assert_eq!(
        p,
        "TMP/extra.yaml: HostingComponent/tenant-tholen/both: spec: exactly one of hosted and saas may be set, not both"
    );
}

#[test]
fn component_in_a_namespace_of_no_tenant() {
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: lost, namespace: tenant-bergen}\nspec: {class: applicationHosting, saas: {url: \"https://x.example/\"}}\n",
    );
    assert!(p.starts_with("TMP/extra.yaml: HostingComponent/tenant-bergen/lost: metadata.namespace: namespace tenant-bergen belongs to no Tenant"), "{p}");
}

#[test]
fn duplicates_and_type_errors_never_panic() {
    let p = problems_with(
        "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: tholen}\nspec: {displayName: Tholen again, serviceLevel: gold, membership: {joined: \"2026-01-01\"}}\n---\napiVersion: regie.dev/v1alpha1\nkind: WorkplacePackage\nmetadata: {name: x, namespace: tenant-tholen}\nspec: {profile: standard, accounts: lots}\n",
    );
    assert!(
        p.iter()
            .any(|l| l.contains("Tenant/tholen: metadata.name: duplicate: also defined in")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|l| l.contains("WorkplacePackage/tenant-tholen/x: spec.accounts: invalid type")),
        "{p:#?}"
    );
}

#[test]
fn a_tenant_namespace_that_breaks_isolation_is_refused() {
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: bergen}\nspec: {displayName: Bergen op Zoom, serviceLevel: gold, namespace: monitoring, membership: {joined: \"2026-01-01\"}}\n",
    );
    assert!(
        p.starts_with("TMP/extra.yaml: Tenant/bergen: spec.namespace: \"monitoring\" is one of the namespaces every tenant admits traffic from"),
        "{p}"
    );
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: bergen}\nspec: {displayName: Bergen op Zoom, serviceLevel: gold, namespace: tenant-halderberge, membership: {joined: \"2026-01-01\"}}\n",
    );
    assert!(
        p.starts_with("TMP/extra.yaml: Tenant/bergen: spec.namespace: \"tenant-halderberge\" is the namespace of a Tenant named \"halderberge\""),
        "{p}"
    );
}

/// `regie validate --allowed-namespaces` judges tenants as that installation's `regie run`
/// would: a namespace it admits traffic from is no tenant's.
#[test]
fn the_installations_allowed_namespaces_are_refused_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tenant = "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: bergen}\nspec: {displayName: Bergen op Zoom, serviceLevel: gold, namespace: observability, membership: {joined: \"2026-01-01\"}}\n";
    std::fs::write(dir.path().join("extra.yaml"), tenant).expect("write");
    let paths = [repo().join("examples"), dir.path().to_path_buf()];
    let (by_default, _) = regie::cli::validate::check(&paths);
    assert!(by_default.is_empty(), "{by_default:#?}");
    let allowed = ["regie-system".to_string(), "observability".to_string()];
    let (here, _) = regie::cli::validate::check_with(&paths, &allowed);
    assert_eq!(here.len(), 1, "{here:#?}");
    assert_eq!(here[0].field, "spec.namespace");
}

#[test]
fn tenant_names_that_make_no_namespace_are_refused() {
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: gemeente.bergen}\nspec: {displayName: Bergen op Zoom, serviceLevel: gold, membership: {joined: \"2026-01-01\"}}\n",
    );
    assert!(
        p.starts_with("TMP/extra.yaml: Tenant/gemeente.bergen: metadata.name: \"gemeente.bergen\" cannot name a tenant"),
        "{p}"
    );
}

#[test]
fn cost_pools_billing_cannot_allocate_are_refused() {
    // fixedShares without a share for a tenant the selector picks.
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: CostPool\nmetadata: {name: shared}\nspec: {amount: \"1000.00\", from: \"2026-01-01\", until: \"2026-12-31\", allocation: fixedShares, shares: {roosendaal: \"2\", tholen: \"1\"}, tenantSelector: {matchLabels: {regie.dev/organisation: ict-wbw}}}\n",
    );
    assert!(
        p.starts_with(
            "TMP/extra.yaml: CostPool/shared: spec.shares: has no share for Tenant \"etten-leur\""
        ),
        "{p}"
    );
    // perInhabitant over tenants that all have 0 inhabitants.
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: lab, labels: {kind: lab}}\nspec: {displayName: Lab, serviceLevel: gold, inhabitants: 0, membership: {joined: \"2026-01-01\"}}\n---\napiVersion: regie.dev/v1alpha1\nkind: CostPool\nmetadata: {name: labs}\nspec: {amount: \"1000.00\", from: \"2026-01-01\", until: \"2026-12-31\", allocation: perInhabitant, tenantSelector: {matchLabels: {kind: lab}}}\n",
    );
    assert!(
        p.starts_with("TMP/extra.yaml: CostPool/labs: spec.allocation: the weights of the selected tenants add up to zero"),
        "{p}"
    );
    // A selector that picks no member.
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: CostPool\nmetadata: {name: nobody}\nspec: {amount: \"1000.00\", from: \"2026-01-01\", until: \"2026-12-31\", allocation: equalShares, tenantSelector: {matchLabels: {kind: nobody}}}\n",
    );
    assert!(
        p.starts_with("TMP/extra.yaml: CostPool/nobody: spec.tenantSelector: selects no tenant"),
        "{p}"
    );
}

#[test]
fn misspelt_fields_are_reported() {
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: bergen}\nspec: {displayName: Bergen op Zoom, serviceLevel: gold, membership: {joined: \"2026-01-01\"}, acess: {groups: [gem-bergen]}}\n",
    );
    assert_eq!(
        p,
        "TMP/extra.yaml: Tenant/bergen: spec.acess: unknown field: Tenant has no such field (misspelt?)"
    );
}

/// tholen's March report, as `kubectl get slareport -o yaml` gives it back, named `name`, with
/// a credit for `component`.
fn report(name: &str, period: &str, component: &str) -> String {
    format!(
        "apiVersion: regie.dev/v1alpha1\nkind: SlaReport\nmetadata: {{name: {name}}}\nspec: {{tenant: tholen, period: \"{period}\", from: \"2026-03-01T00:00:00+01:00\", to: \"2026-04-01T00:00:00+02:00\"}}\nstatus:\n  components:\n  - {{component: {component}, serviceLevel: bronze, windowSeconds: 1, downSeconds: 0, availability: \"96.0\", target: \"99.0\", met: false, creditPercent: 10}}\n"
    )
}

#[test]
fn sla_reports_read_back_count_once_and_name_what_they_credit() {
    assert!(problems_with(&report("tholen-2026-03", "2026-03", "website")).is_empty());
    // The same report twice (two exports): its credit would count twice.
    let twice = format!(
        "{}---\n{}",
        report("tholen-2026-03", "2026-03", "website"),
        report("tholen-march", "2026-03", "website")
    );
    assert_eq!(
        one(&twice),
        "TMP/extra.yaml: SlaReport/tholen-march: spec.period: Tenant tholen has another report of 2026-03: SlaReport/tholen-2026-03 (TMP/extra.yaml); its credits would count twice"
    );
    // A credit no line takes was lost without a word: the bill of its month refuses it (a
    // report of another month, or of a tenant offboarded since, is not billed, not checked).
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.yaml");
    std::fs::write(&file, report("tholen-2026-03", "2026-03", "zaaksysteme")).expect("write");
    assert!(problems_with(&report("tholen-2026-03", "2026-03", "zaaksysteme")).is_empty());
    let now = "2026-06-01T00:00:00Z".parse().expect("now");
    let paths = [repo().join("examples"), file];
    let refused = regie::cli::bill::bill_paths(&paths, "2026-03", now).expect_err("refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].ends_with("SlaReport/tholen-2026-03: status.components[0].component: a credit for Tenant tholen's HostingComponent \"zaaksysteme\", which the input has neither in its files nor in its ledgers"),
        "{refused:?}"
    );
    assert!(regie::cli::bill::bill_paths(&paths, "2026-04", now).is_ok());
    assert_eq!(
        one(&report("tholen-2026-03", "2026-3", "website")),
        "TMP/extra.yaml: SlaReport/tholen-2026-03: spec.period: \"2026-3\" is not a month (YYYY-MM), an ISO week (YYYY-Www) or a day (YYYY-MM-DD)"
    );
    assert!(problems_with(&report("tholen-2026-w11", "2026-W11", "website")).is_empty());
}

#[test]
fn usage_ledgers_read_back_hold_counts_a_package_may_have() {
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: Usage\nmetadata: {name: tholen-2026-03}\nspec: {tenant: tholen, period: \"2026-03\"}\nstatus:\n  segments:\n  - {from: \"2026-03-01T00:00:00+01:00\", to: \"2026-03-10T00:00:00+01:00\", serviceLevel: bronze, accounts: {standard: 210}}\n  - {from: \"2026-03-16T00:00:00+01:00\", serviceLevel: bronze, accounts: {standard: -100}}\n",
    );
    assert_eq!(
        p,
        "TMP/extra.yaml: Usage/tholen-2026-03: status.segments[1].accounts.standard: must be 0 to 10000000, not -100"
    );
    let p = one(
        "apiVersion: regie.dev/v1alpha1\nkind: Usage\nmetadata: {name: tholen-2026-03}\nspec: {tenant: tholen, period: \"2026-03\"}\nstatus:\n  segments:\n  - {from: \"2026-03-10T00:00:00+01:00\", to: \"2026-03-01T00:00:00+01:00\", serviceLevel: bronze, accounts: {standard: 210}}\n",
    );
    assert!(
        p.starts_with("TMP/extra.yaml: Usage/tholen-2026-03: status.segments[0] ends"),
        "{p}"
    );
}

#[test]
fn two_price_lists_taking_effect_together_are_refused() {
    let examples = std::fs::read_to_string(repo().join("examples/catalogue/pricelist-2026.yaml"))
        .expect("the 2026 price list");
    let copy = examples.replacen("name: pricelist-2026", "name: pricelist-2026-copy", 1);
    assert_ne!(copy, examples);
    // The one read second is reported, naming the first and its file.
    let p = one(&copy);
    assert!(
        p.contains(
            ": spec.effectiveFrom: takes effect at the same instant as PriceList/pricelist-2026"
        ),
        "{p}"
    );
}

#[test]
fn components_beyond_their_tenants_quota_are_refused() {
    let tenant = "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: bergen}\nspec: {displayName: Bergen op Zoom, serviceLevel: silver, membership: {joined: \"2026-01-01\"}}\n---\n";
    let component = |requests: &str| {
        format!(
            "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {{name: web, namespace: tenant-bergen}}\nspec: {{class: applicationHosting, hosted: {{image: web, port: 8080, healthPath: /, resources: {{requests: {requests}}}}}}}\n"
        )
    };
    // Two silver replicas of 2 CPUs and 4Gi, and room for one more in a rollout (of two
    // replicas none may be unavailable): 6 CPUs, 12Gi of the default 8 and 16Gi.
    assert_eq!(
        problems_with(&format!(
            "{tenant}{}",
            component("{cpu: \"2\", memory: 4Gi}")
        )),
        Vec::<String>::new()
    );
    // 26 replicas of the default 512Mi limit, 13Gi: a rollout of them takes six down at a time.
    let many = format!(
        "{tenant}{}",
        component("{}").replace("healthPath: /,", "healthPath: /, replicas: 26,")
    );
    assert_eq!(problems_with(&many), Vec::<String>::new());
    // Of 4 CPUs and 8Gi: the first two fill the quota, a rollout never ends.
    assert_eq!(
        problems_with(&format!(
            "{tenant}{}",
            component("{cpu: \"4\", memory: 8Gi}")
        )),
        [
            "TMP/extra.yaml: Tenant/bergen: spec.quota: limits.memory 16Gi is less than the components' memory limits with room for a rolling update's next pod, 24Gi",
            "TMP/extra.yaml: Tenant/bergen: spec.quota: requests.cpu 8 is less than the components' CPU requests with room for a rolling update's next pod, 12",
            "TMP/extra.yaml: Tenant/bergen: spec.quota: requests.memory 16Gi is less than the components' memory requests with room for a rolling update's next pod, 24Gi",
        ]
    );
}

#[test]
fn names_and_labels_the_api_server_refuses_are_refused() {
    let p = problems_with(
        "apiVersion: regie.dev/v1alpha1\nkind: WorkplacePackage\nmetadata: {name: Std Pkg, namespace: tenant-tholen, labels: {\"Bad Key\": x, team: ICT WBW}}\nspec: {profile: standard, accounts: 3}\n",
    );
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(
        p[0].contains(
            "WorkplacePackage/tenant-tholen/Std Pkg: metadata.labels.Bad Key: is no label key"
        ),
        "{p:#?}"
    );
    assert!(
        p[1].contains("metadata.labels.team: \"ICT WBW\" is no label value"),
        "{p:#?}"
    );
    assert!(
        p[2].contains("metadata.name: \"Std Pkg\" cannot name a WorkplacePackage"),
        "{p:#?}"
    );
}

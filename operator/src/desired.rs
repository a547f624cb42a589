//! Desired state: the Kubernetes objects a tenant and its hosted components should have.
//!
//! These build functions are pure: they take validated regie objects and parsed tiers and
//! return objects. `regie render`, `regie diff` and the controller call the very same functions,
//! so what a pull request shows is what the cluster gets.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction,
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceQuota, ResourceQuotaSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Service, ServicePort, ServiceSpec, TopologySpreadConstraint, Volume,
    VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use regie_crds::{HostingComponent, Tenant};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use crate::inventory::{Inventory, tenant_namespace};
use crate::tier::Tier;

pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "regie";
pub const LABEL_TENANT: &str = "regie.dev/tenant";
pub const LABEL_LEVEL: &str = "regie.dev/service-level";
pub const LABEL_CLASS: &str = "regie.dev/class";
pub const LABEL_COMPONENT: &str = "regie.dev/component";
/// `regie.dev/class` of the tenant-wide objects (namespace, quota, policy, access).
pub const CLASS_TENANT: &str = "tenant";

/// Choices of the installation, not of a tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Namespaces (by name) whose pods may reach every tenant: monitoring, ingress, regie itself.
    pub allowed_namespaces: Vec<String>,
    /// ClusterRole bound to the tenant's groups in its namespace.
    pub tenant_cluster_role: String,
    pub default_quota_cpu: String,
    pub default_quota_memory: String,
    pub default_quota_pods: i32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allowed_namespaces: vec![
                "regie-system".into(),
                "monitoring".into(),
                "ingress-nginx".into(),
            ],
            tenant_cluster_role: "edit".into(),
            default_quota_cpu: "8".into(),
            default_quota_memory: "16Gi".into(),
            default_quota_pods: 50,
        }
    }
}

/// One object to apply: its identity and its full body (apiVersion, kind, metadata, spec).
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub body: Value,
}

impl Child {
    fn new<K: Serialize + k8s_openapi::Resource>(
        obj: &K,
        namespace: Option<String>,
        name: String,
    ) -> Child {
        let mut body = serde_json::to_value(obj).expect("k8s objects always serialize");
        body["apiVersion"] = Value::String(K::API_VERSION.into());
        body["kind"] = Value::String(K::KIND.into());
        Child {
            api_version: K::API_VERSION.into(),
            kind: K::KIND.into(),
            namespace,
            name,
            body,
        }
    }

    /// `Kind/name` or `Kind/namespace/name`.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.kind, ns, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }

    /// Labels of the object.
    pub fn labels(&self) -> BTreeMap<String, String> {
        serde_json::from_value(self.body["metadata"]["labels"].clone()).unwrap_or_default()
    }
}

fn labels(tenant: &str, level: &str, class: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.into(), MANAGER.into()),
        (LABEL_TENANT.into(), tenant.into()),
        (LABEL_LEVEL.into(), level.into()),
        (LABEL_CLASS.into(), class.into()),
    ])
}

fn meta(name: &str, namespace: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn q(s: &str) -> Quantity {
    Quantity(s.into())
}

/// The name of the RoleBinding that gives a tenant's groups `role` in its namespace:
/// `regie-tenant-edit` for the default. The role is in the name because a RoleBinding's
/// `roleRef` cannot change: with another `--tenant-role` each tenant gets a binding of the new
/// name, made before the old one is pruned, where an apply over the old one would be refused.
pub fn tenant_binding_name(role: &str) -> String {
    format!("regie-tenant-{role}")
}

/// The tenant-wide objects: namespace, quota, limits, isolation, access.
pub fn tenant_children(tenant: &Tenant, tier: &Tier, settings: &Settings) -> Vec<Child> {
    let name = tenant.name_any();
    let ns = tenant_namespace(tenant);
    let l = labels(&name, &tier.name, CLASS_TENANT);
    let mut out = Vec::new();

    let mut ns_labels = l.clone();
    // Pod Security admission enforces the same hardening regie builds into every Deployment.
    ns_labels.insert(
        "pod-security.kubernetes.io/enforce".into(),
        "restricted".into(),
    );
    ns_labels.insert(
        "pod-security.kubernetes.io/enforce-version".into(),
        "latest".into(),
    );
    let namespace = Namespace {
        metadata: meta(&ns, None, ns_labels),
        ..Namespace::default()
    };
    out.push(Child::new(&namespace, None, ns.clone()));

    let quota = tenant
        .spec
        .quota
        .clone()
        .unwrap_or(regie_crds::tenancy::Quota {
            cpu: None,
            memory: None,
            pods: None,
        });
    let cpu = quota
        .cpu
        .unwrap_or_else(|| settings.default_quota_cpu.clone());
    let memory = quota
        .memory
        .unwrap_or_else(|| settings.default_quota_memory.clone());
    let pods = quota.pods.unwrap_or(settings.default_quota_pods);
    let rq = ResourceQuota {
        metadata: meta("regie-quota", Some(&ns), l.clone()),
        spec: Some(ResourceQuotaSpec {
            hard: Some(BTreeMap::from([
                ("requests.cpu".into(), q(&cpu)),
                ("requests.memory".into(), q(&memory)),
                ("limits.memory".into(), q(&memory)),
                ("pods".into(), q(&pods.to_string())),
                ("services.loadbalancers".into(), q("0")),
                ("services.nodeports".into(), q("0")),
            ])),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    };
    out.push(Child::new(&rq, Some(ns.clone()), "regie-quota".into()));

    let lr = LimitRange {
        metadata: meta("regie-limits", Some(&ns), l.clone()),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some(BTreeMap::from([
                    ("cpu".into(), q(LIMIT_RANGE_CPU)),
                    ("memory".into(), q("512Mi")),
                ])),
                default_request: Some(BTreeMap::from([
                    ("cpu".into(), q("100m")),
                    ("memory".into(), q("128Mi")),
                ])),
                ..LimitRangeItem::default()
            }],
        }),
    };
    out.push(Child::new(&lr, Some(ns.clone()), "regie-limits".into()));

    let mut peers = vec![NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }];
    if !settings.allowed_namespaces.is_empty() {
        peers.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "kubernetes.io/metadata.name".into(),
                    operator: "In".into(),
                    values: Some(settings.allowed_namespaces.clone()),
                }]),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        });
    }
    let np = NetworkPolicy {
        metadata: meta("regie-isolation", Some(&ns), l.clone()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(peers),
                ..NetworkPolicyIngressRule::default()
            }]),
            ..NetworkPolicySpec::default()
        }),
    };
    out.push(Child::new(&np, Some(ns.clone()), "regie-isolation".into()));

    if !tenant.spec.access.groups.is_empty() {
        let binding = tenant_binding_name(&settings.tenant_cluster_role);
        let rb = RoleBinding {
            metadata: meta(&binding, Some(&ns), l),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: settings.tenant_cluster_role.clone(),
            },
            subjects: Some(
                tenant
                    .spec
                    .access
                    .groups
                    .iter()
                    .map(|g| Subject {
                        api_group: Some("rbac.authorization.k8s.io".into()),
                        kind: "Group".into(),
                        name: g.clone(),
                        namespace: None,
                    })
                    .collect(),
            ),
        };
        out.push(Child::new(&rb, Some(ns), binding));
    }
    out
}

/// Defaults of a container: requests, and limits (memory here; CPU through the namespace's
/// LimitRange, whose default applies to a container that sets no CPU limit of its own).
/// The most a hosted component's pod may write to its `/tmp`, its only writable place.
pub const TMP_SIZE_LIMIT: &str = "256Mi";
const DEFAULT_REQUESTS: [(&str, &str); 2] = [("cpu", "100m"), ("memory", "128Mi")];
const DEFAULT_LIMITS: [(&str, &str); 2] = [("cpu", LIMIT_RANGE_CPU), ("memory", "512Mi")];
/// The LimitRange's default CPU limit.
const LIMIT_RANGE_CPU: &str = "500m";

/// A hosted container's requests and limits: the component's own, and the defaults for what it
/// leaves out — but a default never clashes with what it gives, for the API server refuses a
/// request above its limit (the tenant would stall, or its pods never be created): a default
/// limit is raised to the request (`requests: {memory: 1Gi}` gets a 1Gi limit, `cpu: "2"` a
/// limit of 2 instead of the LimitRange's 500m), and a default request lowered to the limit.
/// Validation refuses a request above an explicit limit.
fn container_resources(
    resources: Option<&regie_crds::tenancy::Resources>,
) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    use regie_crds::validate::quantity_value;
    let own = resources.cloned().unwrap_or_default();
    let above = |a: &str, b: &str| match (quantity_value(a), quantity_value(b)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    };
    let mut requests: BTreeMap<String, Quantity> = BTreeMap::new();
    for (resource, default) in DEFAULT_REQUESTS {
        let value = match own.limits.get(resource) {
            Some(limit) if above(default, limit) => limit.as_str(),
            _ => default,
        };
        requests.insert(resource.into(), q(value));
    }
    requests.extend(own.requests.iter().map(|(k, v)| (k.clone(), q(v))));
    let mut limits: BTreeMap<String, Quantity> = BTreeMap::new();
    for (resource, default) in DEFAULT_LIMITS {
        match own.requests.get(resource) {
            Some(request) if above(request, default) => {
                limits.insert(resource.into(), q(request));
            }
            // CPU is left to the LimitRange unless it must be raised.
            _ if resource == "cpu" => {}
            _ => {
                limits.insert(resource.into(), q(default));
            }
        }
    }
    limits.extend(own.limits.iter().map(|(k, v)| (k.clone(), q(v))));
    (requests, limits)
}

/// Replicas a hosted component runs: its wish, but never fewer than the tier's floor.
pub fn replicas(component: &HostingComponent, tier: &Tier) -> i32 {
    let wish = component
        .spec
        .hosted
        .as_ref()
        .and_then(|h| h.replicas)
        .unwrap_or(1);
    wish.max(tier.min_replicas)
}

/// The workload objects of a hosted component; none for SaaS.
pub fn component_children(
    tenant: &Tenant,
    component: &HostingComponent,
    tier: &Tier,
) -> Vec<Child> {
    let Some(hosted) = &component.spec.hosted else {
        return vec![];
    };
    let tenant_name = tenant.name_any();
    let ns = tenant_namespace(tenant);
    let name = component.name_any();
    let mut l = labels(&tenant_name, &tier.name, component.spec.class.as_str());
    l.insert(LABEL_COMPONENT.into(), name.clone());
    l.insert("app.kubernetes.io/name".into(), name.clone());
    let selector = BTreeMap::from([
        (LABEL_TENANT.to_string(), tenant_name.clone()),
        (LABEL_COMPONENT.to_string(), name.clone()),
    ]);
    let replicas = replicas(component, tier);

    let http_probe = |initial: i32, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(hosted.health_path.clone()),
            port: IntOrString::String("http".into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let (requests, limits) = container_resources(hosted.resources.as_ref());

    let container = Container {
        name: "app".into(),
        image: Some(hosted.image.clone()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: hosted.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: (!hosted.env.is_empty()).then(|| {
            hosted
                .env
                .iter()
                .map(|(k, v)| EnvVar {
                    name: k.clone(),
                    value: Some(v.clone()),
                    ..EnvVar::default()
                })
                .collect()
        }),
        readiness_probe: Some(http_probe(2, 10, 3)),
        liveness_probe: Some(http_probe(15, 20, 6)),
        resources: Some(ResourceRequirements {
            requests: Some(requests),
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        }]),
        ..Container::default()
    };
    let spread = tier.spread.then(|| {
        let sel = LabelSelector {
            match_labels: Some(selector.clone()),
            ..LabelSelector::default()
        };
        vec![
            TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "topology.kubernetes.io/zone".into(),
                when_unsatisfiable: "ScheduleAnyway".into(),
                label_selector: Some(sel.clone()),
                ..TopologySpreadConstraint::default()
            },
            TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "kubernetes.io/hostname".into(),
                when_unsatisfiable: "DoNotSchedule".into(),
                label_selector: Some(sel),
                ..TopologySpreadConstraint::default()
            },
        ]
    });
    let deployment = Deployment {
        metadata: meta(&name, Some(&ns), l.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(l.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![Volume {
                        name: "tmp".into(),
                        // Bounded: an unbounded /tmp lets one tenant's pod fill its node's disk,
                        // and the kubelet's evictions under disk pressure hit other tenants.
                        empty_dir: Some(EmptyDirVolumeSource {
                            size_limit: Some(q(TMP_SIZE_LIMIT)),
                            ..EmptyDirVolumeSource::default()
                        }),
                        ..Volume::default()
                    }]),
                    topology_spread_constraints: spread,
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let mut out = vec![Child::new(&deployment, Some(ns.clone()), name.clone())];

    let service = Service {
        metadata: meta(&name, Some(&ns), l.clone()),
        spec: Some(ServiceSpec {
            selector: Some(selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    out.push(Child::new(&service, Some(ns.clone()), name.clone()));

    if tier.min_available > 0 {
        let pdb = PodDisruptionBudget {
            metadata: meta(&name, Some(&ns), l),
            spec: Some(PodDisruptionBudgetSpec {
                min_available: Some(IntOrString::Int(
                    tier.min_available.min(replicas - 1).max(0),
                )),
                selector: Some(LabelSelector {
                    match_labels: Some(selector),
                    ..LabelSelector::default()
                }),
                ..PodDisruptionBudgetSpec::default()
            }),
            ..PodDisruptionBudget::default()
        };
        out.push(Child::new(&pdb, Some(ns), name));
    }
    out
}

/// The level in force for a component: its own, or its tenant's.
pub fn component_level<'a>(tenant: &'a Tenant, component: &'a HostingComponent) -> &'a str {
    component
        .spec
        .service_level
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(&tenant.spec.service_level)
}

/// The in-cluster host name of a hosted component's Service: `<component>.<namespace>.svc`.
pub fn service_host(tenant: &Tenant, component: &HostingComponent) -> String {
    format!("{}.{}.svc", component.name_any(), tenant_namespace(tenant))
}

/// The in-cluster URL the prober uses for a hosted component (through its Service).
pub fn hosted_probe_url(tenant: &Tenant, component: &HostingComponent) -> Option<String> {
    let hosted = component.spec.hosted.as_ref()?;
    let path = component
        .spec
        .probe
        .as_ref()
        .and_then(|p| p.path.as_deref())
        .unwrap_or(&hosted.health_path);
    Some(format!("http://{}{path}", service_host(tenant, component)))
}

/// Every object for a whole (valid) inventory, per tenant in name order.
/// Tenants or components whose level is unknown are left out: `check` reports them.
pub fn render(inv: &Inventory, settings: &Settings) -> BTreeMap<String, Vec<Child>> {
    let tiers = inv.tiers();
    let mut out = BTreeMap::new();
    let mut tenants: Vec<_> = inv.tenants.iter().map(|t| &t.object).collect();
    tenants.sort_by_key(|t| t.name_any());
    for tenant in tenants {
        let Some(tier) = tiers.get(&tenant.spec.service_level) else {
            continue;
        };
        let mut children = tenant_children(tenant, tier, settings);
        for c in inv.components_of(tenant) {
            if let Some(t) = tiers.get(component_level(tenant, c)) {
                children.extend(component_children(tenant, c, t));
            }
        }
        out.insert(tenant.name_any(), children);
    }
    out
}

/// What a tenant's rendered children ask of its ResourceQuota beyond what it holds, one line
/// per resource: every Deployment at its replicas, and room for the one more pod a rolling
/// update of one to three replicas needs (a quarter of them, rounded down, may be unavailable:
/// none) — the largest such pod — when `rollout_room`. Beyond the quota the pods past it are
/// refused by the API server, and a rollout with no room for its next pod never ends; rollouts
/// of several Deployments at once (a tier change) take turns as each frees its room.
pub fn quota_shortfalls<'a, I>(children: I, rollout_room: bool) -> Vec<String>
where
    I: IntoIterator<Item = &'a Child>,
    I::IntoIter: Clone,
{
    use regie_crds::validate::quantity_value;
    let children = children.into_iter();
    let hard = children
        .clone()
        .find(|c| c.kind == "ResourceQuota")
        .and_then(|c| c.body.pointer("/spec/hard"));
    let Some(hard) = hard else {
        return Vec::new();
    };
    let value = |v: &Value| v.as_str().and_then(quantity_value);
    // Each Deployment's replicas, whether its rollout needs a pod more, and its containers.
    let workloads: Vec<(Decimal, bool, &[Value])> = children
        .filter(|c| c.kind == "Deployment")
        .filter_map(|d| {
            let replicas = d.body.pointer("/spec/replicas").and_then(Value::as_i64)?;
            let containers = d
                .body
                .pointer("/spec/template/spec/containers")?
                .as_array()?;
            let surges = rollout_room && (1..=3).contains(&replicas);
            Some((Decimal::from(replicas), surges, &containers[..]))
        })
        .collect();
    let asked = |pointer: &str| -> Option<Decimal> {
        let mut total = Decimal::ZERO;
        let mut surge = Decimal::ZERO;
        for (replicas, surges, containers) in &workloads {
            let per_pod =
                containers
                    .iter()
                    .try_fold(Decimal::ZERO, |sum, c| match c.pointer(pointer) {
                        Some(v) => sum.checked_add(value(v)?),
                        None => Some(sum),
                    })?;
            total = total.checked_add(per_pod.checked_mul(*replicas)?)?;
            if *surges {
                surge = surge.max(per_pod);
            }
        }
        total.checked_add(surge)
    };
    let mut out = Vec::new();
    let pods = workloads
        .iter()
        .map(|(replicas, _, _)| *replicas)
        .sum::<Decimal>()
        + Decimal::from(u8::from(workloads.iter().any(|(_, surges, _)| *surges)));
    for (quota, total, what) in [
        (
            "requests.cpu",
            asked("/resources/requests/cpu"),
            "CPU requests",
        ),
        (
            "requests.memory",
            asked("/resources/requests/memory"),
            "memory requests",
        ),
        (
            "limits.memory",
            asked("/resources/limits/memory"),
            "memory limits",
        ),
        ("pods", Some(pods), "pods"),
    ] {
        let (Some(held), Some(total)) = (hard.get(quota).and_then(value), total) else {
            continue;
        };
        if total > held {
            let room = if rollout_room {
                " with room for a rolling update's next pod"
            } else {
                ""
            };
            out.push(format!(
                "{quota} {} is less than the components' {what}{room}, {}",
                hard[quota].as_str().unwrap_or_default(),
                in_binary_units(total)
            ));
        }
    }
    out
}

/// `v` in the largest binary unit it is a whole number of (`24Gi`), else as it is.
fn in_binary_units(v: Decimal) -> String {
    for (unit, power) in [("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        let size = Decimal::from(1u64 << power);
        if v >= size && (v % size).is_zero() {
            return format!("{}{unit}", (v / size).normalize());
        }
    }
    v.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(yaml: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let r: regie_crds::tenancy::Resources = serde_yaml::from_str(yaml).expect("resources");
        let (requests, limits) = container_resources(Some(&r));
        let plain = |m: BTreeMap<String, Quantity>| m.into_iter().map(|(k, v)| (k, v.0)).collect();
        (plain(requests), plain(limits))
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_tenant_binding_is_named_after_its_role() {
        // A binding's roleRef cannot change: another role must be another binding.
        let tenant: Tenant = serde_yaml::from_str(
            "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: tholen}\nspec: {displayName: Tholen, serviceLevel: bronze, membership: {joined: \"2026-01-01\"}, access: {groups: [\"tholen:ict\"]}}\n",
        )
        .unwrap();
        for (role, name) in [
            ("edit", "regie-tenant-edit"),
            ("regie-tenant", "regie-tenant-regie-tenant"),
        ] {
            let settings = Settings {
                tenant_cluster_role: role.into(),
                ..Settings::default()
            };
            let tier = Tier::from_level(&crate::tier::tests::gold()).unwrap();
            let bindings: Vec<_> = tenant_children(&tenant, &tier, &settings)
                .into_iter()
                .filter(|c| c.kind == "RoleBinding")
                .collect();
            assert_eq!(bindings.len(), 1);
            assert_eq!(bindings[0].name, name);
            assert_eq!(bindings[0].body["roleRef"]["name"], role);
        }
    }

    #[test]
    fn default_limits_never_fall_below_the_requests() {
        // The reviewer's case: a 1Gi request had a 512Mi limit, a CPU request of 2 the
        // LimitRange's 500m.
        let (requests, limits) = resources("{requests: {memory: 1Gi, cpu: \"2\"}}");
        assert_eq!(requests, map(&[("cpu", "2"), ("memory", "1Gi")]));
        assert_eq!(limits, map(&[("cpu", "2"), ("memory", "1Gi")]));
        // Below the defaults, the defaults stay (CPU left to the LimitRange).
        let (requests, limits) = resources("{requests: {memory: 256Mi, cpu: 500m}}");
        assert_eq!(requests, map(&[("cpu", "500m"), ("memory", "256Mi")]));
        assert_eq!(limits, map(&[("memory", "512Mi")]));
        // A limit below a default request lowers that request.
        let (requests, limits) = resources("{limits: {memory: 64Mi, cpu: 50m}}");
        assert_eq!(requests, map(&[("cpu", "50m"), ("memory", "64Mi")]));
        assert_eq!(limits, map(&[("cpu", "50m"), ("memory", "64Mi")]));
        // Nothing given: the defaults as before.
        let (requests, limits) = container_resources(None);
        assert_eq!(requests.len(), 2);
        assert_eq!(limits.keys().collect::<Vec<_>>(), ["memory"]);
    }
}

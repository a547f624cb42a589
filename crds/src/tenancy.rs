//! Tenancy: `Tenant` (a participant, cluster-scoped), and in its namespace the `WorkplacePackage`
//! (accounts billed per profile) and `HostingComponent` (a hosted workload or a monitored SaaS).

use std::collections::BTreeMap;

use crate::condition::{Condition, Text};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

/// Prefix of the namespace a tenant's objects live in, unless `spec.namespace` says otherwise.
pub const NAMESPACE_PREFIX: &str = "tenant-";

/// One participant of the shared-service organisation.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "regie.dev",
    version = "v1alpha1",
    kind = "Tenant",
    doc = "A participant of the shared-service organisation (a municipality or regional body): its service level, membership, billing details and access groups. regie gives it a namespace, quota, isolation and access.",
    plural = "tenants",
    shortname = "tn",
    category = "regie",
    status = "TenantStatus",
    printcolumn = r#"{"name":"Display Name","type":"string","jsonPath":".spec.displayName"}"#,
    printcolumn = r#"{"name":"Level","type":"string","jsonPath":".spec.serviceLevel"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Accounts","type":"integer","jsonPath":".status.accounts"}"#,
    printcolumn = r#"{"name":"Components","type":"string","jsonPath":".status.componentsSummary"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// The participant's name as people write it, e.g. "Gemeente Roosendaal".
    pub display_name: String,
    /// CBS municipality code, `GM` and four digits (absent for bodies that are not a municipality).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^GM[0-9]{4}$"))]
    pub municipality_code: Option<String>,
    /// Number of inhabitants, the key of per-inhabitant cost pools.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub inhabitants: i64,
    /// Name of the ServiceLevel the participant takes (bronze, silver, gold).
    #[schemars(length(min = 1))]
    pub service_level: String,
    /// Namespace for the tenant's workloads; `tenant-<name>` when absent. Never `default`,
    /// `kube-*`, one of the operator's allowed namespaces or another tenant's `tenant-<other>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub namespace: Option<String>,
    pub membership: Membership,
    #[serde(default)]
    pub billing: TenantBilling,
    #[serde(default)]
    pub access: Access,
    /// Compute the tenant's namespace may use; tier defaults apply when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// First day of membership.
    #[schemars(schema_with = "schema::date")]
    pub joined: String,
    /// Last day of membership (inclusive), when the participant leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_date")]
    pub leaves: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantBilling {
    /// The participant's customer number in the organisation's ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_reference: Option<String>,
    /// Electronic address for e-invoicing (Peppol), e.g. scheme 0190 (OIN) and the identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub electronic_address: Option<ElectronicAddress>,
    /// Purchase-order reference to quote on invoices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_order_reference: Option<String>,
    /// How often the participant is invoiced.
    #[serde(default)]
    pub invoicing: InvoicingPeriod,
    /// Postal address lines and contact for the invoice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<PostalAddress>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElectronicAddress {
    /// Peppol EAS code, e.g. "0190" (Dutch OIN) or "0106" (KvK).
    #[schemars(regex(pattern = r"^[0-9]{4}$"))]
    pub scheme: String,
    #[schemars(length(min = 1))]
    pub id: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostalAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2, "NL" by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum InvoicingPeriod {
    #[default]
    Monthly,
    Quarterly,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Access {
    /// The participant's own staff groups; they get edit rights in the tenant's namespace only.
    /// Kubernetes's own `system:*` groups are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// CPU requests allowed in the namespace, e.g. "8".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory requests allowed in the namespace, e.g. "16Gi".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Pods allowed in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<i32>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The namespace the tenant's workloads live in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The level in force (after validation).
    // Shared text, like the conditions' words: one copy for every tenant at the level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level: Option<Text>,
    /// Total accounts over all workplace packages (the billing basis of each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Rollup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<Rollup>,
    /// `ready/total` of the components, for `kubectl get`.
    // Shared text: a handful of values for all tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components_summary: Option<Text>,
}

/// How many children there are and how many are ready; names the ones that are not.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollup {
    pub total: i32,
    pub ready: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ready: Vec<String>,
}

/// A workplace package: a number of accounts of one profile.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "regie.dev",
    version = "v1alpha1",
    kind = "WorkplacePackage",
    doc = "A number of standard workplace accounts of one profile, declared and optionally measured, billed per account.",
    plural = "workplacepackages",
    shortname = "wp",
    category = "regie",
    namespaced,
    status = "WorkplacePackageStatus",
    printcolumn = r#"{"name":"Profile","type":"string","jsonPath":".spec.profile"}"#,
    printcolumn = r#"{"name":"Declared","type":"integer","jsonPath":".spec.accounts"}"#,
    printcolumn = r#"{"name":"Measured","type":"integer","jsonPath":".status.measuredAccounts"}"#,
    printcolumn = r#"{"name":"Billed","type":"integer","jsonPath":".status.billedAccounts"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct WorkplacePackageSpec {
    /// Account profile, e.g. `standard` or `flex`; prices are per profile.
    #[schemars(regex(pattern = r"^[a-z][a-z0-9-]*$"))]
    pub profile: String,
    /// Accounts the participant declares.
    #[schemars(range(min = 0))]
    pub accounts: i64,
    /// Where measured account counts come from (an HTTP JSON endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_source: Option<AccountSource>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountSource {
    /// HTTP(S) URL that answers JSON holding the number of accounts.
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: String,
    /// JSON pointer to the count in the answer, `/accounts` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<String>,
    /// How often to fetch, `15m` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_duration")]
    pub interval: Option<String>,
    /// How long one fetch may take, `10s` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_duration")]
    pub timeout: Option<String>,
    /// Which count is billed: `declared`, `measured`, or the `max` of both (default).
    #[serde(default)]
    pub basis: AccountBasis,
    /// Secret in the tenant's namespace with a `token` key, sent as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AccountBasis {
    Declared,
    Measured,
    #[default]
    Max,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkplacePackageStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Last count read from `accountSource`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_accounts: Option<i64>,
    /// When `measuredAccounts` was read (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<String>,
    /// The count billing uses, after applying the basis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_accounts: Option<i64>,
}

/// A hosted application or a monitored SaaS application of one tenant.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "regie.dev",
    version = "v1alpha1",
    kind = "HostingComponent",
    doc = "An application of a tenant: hosted (regie runs it as a hardened Deployment) or SaaS (monitored and directed). Probed and billed at its service level.",
    plural = "hostingcomponents",
    shortname = "hc",
    category = "regie",
    namespaced,
    status = "HostingComponentStatus",
    printcolumn = r#"{"name":"Class","type":"string","jsonPath":".spec.class"}"#,
    printcolumn = r#"{"name":"Level","type":"string","jsonPath":".status.serviceLevel"}"#,
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".status.mode"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct HostingComponentSpec {
    /// Which hosting line of the budget this component belongs to.
    pub class: ComponentClass,
    /// Overrides the tenant's service level for this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level: Option<String>,
    /// A workload the organisation runs. Exactly one of `hosted` and `saas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted: Option<Hosted>,
    /// A SaaS application the organisation monitors and directs. Exactly one of `hosted` and `saas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saas: Option<Saas>,
    /// What a healthy answer looks like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ComponentProbe>,
}

#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ComponentClass {
    ApplicationHosting,
    SystemIntegration,
    DataManagement,
}

impl ComponentClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentClass::ApplicationHosting => "applicationHosting",
            ComponentClass::SystemIntegration => "systemIntegration",
            ComponentClass::DataManagement => "dataManagement",
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hosted {
    /// Container image, preferably pinned by digest.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Port the container listens on.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// HTTP path for readiness and for the SLA probe, e.g. `/healthz`.
    #[schemars(regex(pattern = r"^/"))]
    pub health_path: String,
    /// Replicas wished for; the tier's `minReplicas` is the floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Extra environment variables (plain values only: secrets belong in Secrets, not in specs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// e.g. {cpu: "250m", memory: "256Mi"}
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Saas {
    /// The application's URL; it is probed, so it must be http or https.
    #[schemars(regex(pattern = r"^https?://"))]
    pub url: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentProbe {
    /// Path to probe; the hosted `healthPath` or the SaaS URL's own path when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/"))]
    pub path: Option<String>,
    /// HTTP status that counts as up; any 2xx when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: Option<i32>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostingComponentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The level in force: the component's own or its tenant's.
    // Shared text, like the conditions' words: one copy for every component at the level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level: Option<Text>,
    /// `hosted` or `saas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Text>,
    /// Replicas asked of the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Replicas the Deployment reports available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// The URL the prober uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_url: Option<String>,
    /// Month-to-date availability in percent inside service hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
}

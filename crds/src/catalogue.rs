//! The service catalogue: `ServiceLevel`, one cluster-scoped object per tier (bronze, silver, gold).
//!
//! A ServiceLevel holds the contract of a tier: service hours, response times, KPI cadence, the
//! descriptive support lines of the source table, and the technical defaults regie enforces
//! (availability target, probe timing, replicas, disruption budget, service credits).

use crate::condition::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;

/// The contract of one tier.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "regie.dev",
    version = "v1alpha1",
    kind = "ServiceLevel",
    doc = "A tier of the service catalogue (bronze, silver, gold): service hours, response times, KPI cadence, availability target, probe timing, workload policy and service credits.",
    plural = "servicelevels",
    shortname = "sl",
    category = "regie",
    status = "ServiceLevelStatus",
    printcolumn = r#"{"name":"Rank","type":"integer","jsonPath":".spec.rank"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.availability.target"}"#,
    printcolumn = r#"{"name":"Hours","type":"string","jsonPath":".spec.serviceHours[*]"}"#,
    printcolumn = r#"{"name":"Report","type":"string","jsonPath":".spec.kpiReport"}"#,
    printcolumn = r#"{"name":"Tenants","type":"integer","jsonPath":".status.tenants"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLevelSpec {
    /// Order of the tiers: higher is better. A move to a higher rank is an upgrade.
    pub rank: i32,
    /// IANA time zone the windows are read in.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Windows in which the service is delivered and availability is measured.
    #[schemars(schema_with = "schema::window_list")]
    pub service_hours: Vec<String>,
    /// Public holidays (YYYY-MM-DD, local dates) excluded from `serviceHours`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::date_list")]
    pub holidays: Vec<String>,
    pub response_times: ResponseTimes,
    /// How often a KPI report (an SlaReport) is produced.
    pub kpi_report: KpiCadence,
    /// Local support, as agreed (descriptive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_support: Option<String>,
    /// Security management, as agreed (descriptive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_management: Option<String>,
    /// Supplier management, as agreed (descriptive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier_management: Option<String>,
    /// When connectivity is watched and alerts page: `none`, `12x5` (Mon-Fri 07:00-19:00),
    /// `24x7`, or comma-separated windows such as `Mon-Fri 07:00-22:00, Sat 08:00-12:00`.
    #[serde(default = "default_monitoring")]
    pub monitoring: String,
    pub availability: Availability,
    pub probe: ProbeTiming,
    #[serde(default)]
    pub workload: WorkloadPolicy,
    /// Service credits: the largest `percent` whose `below` exceeds the month's availability applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credits: Vec<CreditStep>,
}

fn default_time_zone() -> String {
    "Europe/Amsterdam".into()
}

fn default_monitoring() -> String {
    "none".into()
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResponseTimes {
    /// Response time for urgent calls, e.g. `60m`.
    #[schemars(schema_with = "schema::duration")]
    pub urgent: String,
    /// Response time for other calls, e.g. `48h`.
    #[schemars(schema_with = "schema::duration")]
    pub other: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum KpiCadence {
    Monthly,
    Weekly,
    Daily,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    /// Monthly availability target in percent, measured inside `serviceHours`, e.g. "99.5".
    #[schemars(schema_with = "schema::decimal")]
    pub target: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeTiming {
    /// Time between two probes of one component, e.g. `30s`.
    #[schemars(schema_with = "schema::duration")]
    pub interval: String,
    /// How long one probe may take before it counts as failed, e.g. `5s`.
    #[schemars(schema_with = "schema::duration")]
    pub timeout: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadPolicy {
    /// Hosted components run at least this many replicas.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    /// A PodDisruptionBudget keeps this many replicas available; 0 means no budget.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_available: i32,
    /// Spread replicas over zones and nodes (topology spread constraints).
    #[serde(default)]
    pub spread: bool,
}

fn one() -> i32 {
    1
}

impl Default for WorkloadPolicy {
    fn default() -> Self {
        WorkloadPolicy {
            min_replicas: 1,
            min_available: 0,
            spread: false,
        }
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditStep {
    /// Availability in percent below which this credit applies, e.g. "99.9".
    #[schemars(schema_with = "schema::decimal")]
    pub below: String,
    /// Credit as a percentage of the component's charges for the month.
    #[schemars(range(min = 0, max = 100))]
    pub percent: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceLevelStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Tenants whose own level is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<i32>,
}

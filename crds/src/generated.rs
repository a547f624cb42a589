//! Kinds the controller writes: `Usage` (the billable timeline of one tenant in one month),
//! `Invoice` (priced lines for a billing period) and `SlaReport` (measured compliance for a KPI
//! report period). People read them; nobody writes them by hand.

use std::collections::BTreeMap;

use crate::condition::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;
use crate::tenancy::ComponentClass;

/// The billable timeline of one tenant in one calendar month, named `<tenant>-<yyyy-mm>`.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "regie.dev",
    version = "v1alpha1",
    kind = "Usage",
    doc = "Written by regie: the billable timeline of one tenant in one calendar month.",
    plural = "usages",
    category = "regie",
    status = "UsageStatus",
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenant"}"#,
    printcolumn = r#"{"name":"Period","type":"string","jsonPath":".spec.period"}"#,
    printcolumn = r#"{"name":"Segments","type":"integer","jsonPath":".status.segmentCount"}"#,
    printcolumn = r#"{"name":"Closed","type":"boolean","jsonPath":".status.closed"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct UsageSpec {
    pub tenant: String,
    #[schemars(schema_with = "schema::period")]
    pub period: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Consecutive, non-overlapping stretches of constant billable state.
    #[serde(default)]
    pub segments: Vec<Segment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_count: Option<i32>,
    /// True once the month is over or the tenant has left; no segment changes after that.
    #[serde(default)]
    pub closed: bool,
    /// How many of `segments`, from the first, the billing system has accepted (set by the
    /// delivery; absent before the first). A tenant made again in the month it left adds
    /// segments, which are delivered on their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_segments: Option<i32>,
}

/// One stretch of time in which nothing billable changed.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// Start, RFC 3339.
    pub from: String,
    /// End (exclusive), RFC 3339; absent while the segment is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub service_level: String,
    /// Billed accounts per profile.
    #[serde(default)]
    pub accounts: BTreeMap<String, i64>,
    /// Measured accounts per profile, where a package has an account source.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub measured_accounts: BTreeMap<String, i64>,
    #[serde(default)]
    pub components: Vec<SegmentComponent>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentComponent {
    pub name: String,
    pub class: ComponentClass,
    pub service_level: String,
}

/// Priced lines for one tenant and one billing period.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "regie.dev",
    version = "v1alpha1",
    kind = "Invoice",
    doc = "Written by regie: the priced lines of one tenant for one billing period.",
    plural = "invoices",
    shortname = "inv",
    category = "regie",
    status = "InvoiceStatus",
    printcolumn = r#"{"name":"Number","type":"string","jsonPath":".spec.number"}"#,
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenant"}"#,
    printcolumn = r#"{"name":"Period","type":"string","jsonPath":".spec.period"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".spec.state"}"#,
    printcolumn = r#"{"name":"Total","type":"string","jsonPath":".spec.total"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceSpec {
    pub tenant: String,
    /// `YYYY-MM`, `YYYY-Qn` or `YYYY`.
    pub period: String,
    /// Unique, sequential; assigned when the invoice becomes final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub state: InvoiceState,
    pub currency: String,
    #[serde(default)]
    pub lines: Vec<InvoiceLine>,
    /// Sum of the rounded lines, before VAT.
    pub subtotal: String,
    pub vat: String,
    pub total: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum InvoiceState {
    Draft,
    Final,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLine {
    /// account, component, flexibleHour, pool, credit, notice, correction.
    pub kind: String,
    pub description: String,
    pub quantity: String,
    pub unit: String,
    pub unit_price: String,
    pub amount: String,
    pub from: String,
    pub to: String,
    /// UNCL 5305 VAT category of the line (`S`, `Z`, `E`, …), from the PriceList that priced
    /// it; `S` when absent (invoices written before lines carried their VAT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_category: Option<String>,
    /// VAT rate of the line in percent; 21 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_percent: Option<String>,
    /// Why a line outside categories S and Z carries no VAT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_exemption_reason: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the invoice was sent to the billing system (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

/// Measured compliance of one tenant for one KPI report period.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "regie.dev",
    version = "v1alpha1",
    kind = "SlaReport",
    doc = "Written by regie: measured availability, incidents and service credits of one tenant for one KPI report period.",
    plural = "slareports",
    shortname = "slr",
    category = "regie",
    status = "SlaReportStatus",
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenant"}"#,
    printcolumn = r#"{"name":"Period","type":"string","jsonPath":".spec.period"}"#,
    printcolumn = r#"{"name":"Met","type":"boolean","jsonPath":".status.met"}"#,
    printcolumn = r#"{"name":"Worst","type":"string","jsonPath":".status.worstAvailability"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SlaReportSpec {
    pub tenant: String,
    /// `YYYY-MM`, `YYYY-Www` or `YYYY-MM-DD`, after the tier's KPI cadence.
    pub period: String,
    /// Start of the period, RFC 3339.
    pub from: String,
    /// End of the period (exclusive), RFC 3339.
    pub to: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlaReportStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub components: Vec<ComponentCompliance>,
    /// True when every component met its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worst_availability: Option<String>,
    /// Measured up to this instant (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_until: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentCompliance {
    pub component: String,
    pub service_level: String,
    /// Start of the part of the period this entry measures (RFC 3339), when the component's
    /// service level changed within the period: each level held gets an entry of its own,
    /// measured in its own service hours against its own target. Absent: from the period's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// End of that part (exclusive, RFC 3339) for a level the component no longer holds.
    /// Absent: to the period's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub window_seconds: i64,
    pub down_seconds: i64,
    /// Percent, e.g. "99.95".
    pub availability: String,
    pub target: String,
    pub met: bool,
    pub credit_percent: i32,
    #[serde(default)]
    pub incidents: Vec<Incident>,
    /// Run state that lets a restarted operator go on where it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sample: Option<LastSample>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    pub start: String,
    /// Absent while the incident goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    pub duration_seconds: i64,
    /// Seconds of the incident that fell inside service hours.
    pub in_service_hours_seconds: i64,
    pub in_service_hours: bool,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastSample {
    pub time: String,
    pub success: bool,
}

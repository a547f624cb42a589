//! The commercial catalogue: `PriceList` (rates in force from a date), `CostPool` (shared or
//! one-off costs allocated over tenants by a key) and `ServiceOrder` (flexible work by the hour).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::condition::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema;
use crate::tenancy::ComponentClass;

/// Rates in force from `effectiveFrom`; a later list (an interim increase) supersedes it from then.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "regie.dev",
    version = "v1alpha1",
    kind = "PriceList",
    doc = "Rates in force from effectiveFrom: per account, per component and per flexible hour, by service level. A later PriceList is an interim price change.",
    plural = "pricelists",
    shortname = "pl",
    category = "regie",
    status = "CommonStatus",
    printcolumn = r#"{"name":"Currency","type":"string","jsonPath":".spec.currency"}"#,
    printcolumn = r#"{"name":"From","type":"string","jsonPath":".spec.effectiveFrom"}"#,
    printcolumn = r#"{"name":"Until","type":"string","jsonPath":".spec.effectiveUntil"}"#,
    printcolumn = r#"{"name":"Notice","type":"string","jsonPath":".spec.noticePeriod"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PriceListSpec {
    pub currency: Currency,
    /// First instant the rates apply: a date (midnight, Europe/Amsterdam) or an RFC 3339 time.
    #[schemars(schema_with = "schema::date_or_time")]
    pub effective_from: String,
    /// First instant the rates no longer apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_date_or_time")]
    pub effective_until: Option<String>,
    /// A downgrade or a cut in accounts is billed at the previous level until this much time
    /// after the change has passed (the bonus-malus incentive to plan ahead), e.g. `90d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_duration")]
    pub notice_period: Option<String>,
    /// VAT treatment of invoices priced with this list.
    #[serde(default)]
    pub vat: Vat,
    pub rates: Vec<Rate>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Currency {
    #[default]
    EUR,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Vat {
    /// UNCL 5305 category: S (standard), Z (zero), E (exempt), O (outside scope), AE (reverse charge).
    #[serde(default = "standard_vat")]
    pub category: String,
    /// VAT rate in percent, e.g. "21".
    #[serde(default = "standard_rate")]
    #[schemars(schema_with = "schema::decimal")]
    pub percent: String,
    /// Exemption reason printed for categories E, O and AE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption_reason: Option<String>,
}

impl Default for Vat {
    fn default() -> Self {
        Vat {
            category: standard_vat(),
            percent: standard_rate(),
            exemption_reason: None,
        }
    }
}

fn standard_vat() -> String {
    "S".into()
}

fn standard_rate() -> String {
    "21".into()
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    pub item: RateItem,
    /// Applies to this level only; any level when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level: Option<String>,
    /// For `component` rates: the hosting line; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ComponentClass>,
    /// For `account` rates: the account profile; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    pub per: RatePer,
    /// Price per unit, a decimal string such as "2135.00".
    #[schemars(schema_with = "schema::decimal")]
    pub amount: String,
}

#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum RateItem {
    Account,
    Component,
    FlexibleHour,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RatePer {
    Month,
    Hour,
    Year,
}

/// A shared or one-off cost allocated over the tenants its selector picks.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "regie.dev",
    version = "v1alpha1",
    kind = "CostPool",
    doc = "A shared or one-off cost allocated over the tenants its selector picks: per inhabitant, per account, in equal or fixed shares, once or in instalments.",
    plural = "costpools",
    shortname = "cp",
    category = "regie",
    status = "CostPoolStatus",
    printcolumn = r#"{"name":"Amount","type":"string","jsonPath":".spec.amount"}"#,
    printcolumn = r#"{"name":"From","type":"string","jsonPath":".spec.from"}"#,
    printcolumn = r#"{"name":"Until","type":"string","jsonPath":".spec.until"}"#,
    printcolumn = r#"{"name":"Key","type":"string","jsonPath":".spec.allocation"}"#,
    printcolumn = r#"{"name":"Tenants","type":"integer","jsonPath":".status.tenants"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CostPoolSpec {
    /// What the pool pays for, printed on invoice lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The whole amount to allocate, e.g. "640000.00".
    #[schemars(schema_with = "schema::decimal")]
    pub amount: String,
    /// First day of the pool's period.
    #[schemars(schema_with = "schema::date")]
    pub from: String,
    /// Last day of the pool's period (inclusive).
    #[schemars(schema_with = "schema::date")]
    pub until: String,
    pub allocation: AllocationKey,
    /// Weights per tenant name for `fixedShares`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shares: BTreeMap<String, String>,
    /// Which tenants share the pool; all tenants when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_selector: Option<LabelSelector>,
    #[serde(default)]
    pub instalments: Instalments,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AllocationKey {
    PerInhabitant,
    PerAccount,
    EqualShares,
    FixedShares,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Instalments {
    #[default]
    Once,
    Quarterly,
    Monthly,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostPoolStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Tenants the selector picks now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<i32>,
}

/// Flexible work on assignment, billed by the hour.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "regie.dev",
    version = "v1alpha1",
    kind = "ServiceOrder",
    doc = "Flexible work on assignment, billed by the hour.",
    plural = "serviceorders",
    shortname = "so",
    category = "regie",
    namespaced,
    status = "CommonStatus",
    printcolumn = r#"{"name":"Date","type":"string","jsonPath":".spec.date"}"#,
    printcolumn = r#"{"name":"Hours","type":"string","jsonPath":".spec.hours"}"#,
    printcolumn = r#"{"name":"Description","type":"string","jsonPath":".spec.description"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceOrderSpec {
    /// The day the work was done.
    #[schemars(schema_with = "schema::date")]
    pub date: String,
    /// Hours worked, a decimal string such as "7.5".
    #[schemars(schema_with = "schema::decimal")]
    pub hours: String,
    #[schemars(length(min = 1))]
    pub description: String,
    /// Hourly rate agreed for this order; the price list's `flexibleHour` rate when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::optional_decimal")]
    pub rate: Option<String>,
}

/// Status of kinds the controller only validates and acknowledges.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

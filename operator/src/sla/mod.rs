//! The SLA engine: service windows in local time, compliance per calendar month, incidents,
//! credits, KPI reports, Prometheus rules, and the prober that feeds them.
//!
//! The metric names below are the contract between the prober (which exports them), the
//! generated Prometheus rules and the committed Grafana dashboards; they live here, once, so the
//! three cannot drift apart. Every series carries the labels in [`LABELS`].

/// Labels every regie SLA series carries.
pub const LABELS: [&str; 3] = ["tenant", "component", "service_level"];

/// Counter of probes, with `result="success"|"failure"` besides [`LABELS`].
pub const PROBE_TOTAL: &str = "regie_probe_total";
/// Gauge 0/1: the outcome of the last probe.
pub const PROBE_SUCCESS: &str = "regie_probe_success";
/// Histogram of probe durations in seconds.
pub const PROBE_DURATION_SECONDS: &str = "regie_probe_duration_seconds";
/// Gauge 0/1: the component's service window is open now.
pub const SLA_IN_SERVICE_WINDOW: &str = "regie_sla_in_service_window";
/// Gauge 0/1: the component's monitoring window (when alerts may page) is open now.
pub const SLA_IN_MONITORING_WINDOW: &str = "regie_sla_in_monitoring_window";
/// Gauge: month-to-date availability in percent (100 when no window time has passed yet).
pub const SLA_AVAILABILITY_PERCENT: &str = "regie_sla_availability_percent";
/// Gauge: the tier's availability target in percent.
pub const SLA_TARGET_PERCENT: &str = "regie_sla_target_percent";
/// Gauge: share of the month's error budget left: 1 untouched, 0 spent, negative overspent.
pub const SLA_ERROR_BUDGET_REMAINING_RATIO: &str = "regie_sla_error_budget_remaining_ratio";

/// The value of the `result` label of [`PROBE_TOTAL`] for a successful probe.
pub const RESULT_SUCCESS: &str = "success";
/// The value of the `result` label of [`PROBE_TOTAL`] for a failed probe.
pub const RESULT_FAILURE: &str = "failure";

/// Every metric name regie exports for the SLA engine, as exported (histograms by base name).
pub const METRICS: [&str; 8] = [
    PROBE_TOTAL,
    PROBE_SUCCESS,
    PROBE_DURATION_SECONDS,
    SLA_IN_SERVICE_WINDOW,
    SLA_IN_MONITORING_WINDOW,
    SLA_AVAILABILITY_PERCENT,
    SLA_TARGET_PERCENT,
    SLA_ERROR_BUDGET_REMAINING_RATIO,
];

pub mod calendar;
pub mod compliance;
pub mod history;
pub mod metrics;
pub mod offline;
pub mod prober;
pub mod report;
pub mod rules;
pub mod scheduler;
pub mod target;

//! The SLA engine's Prometheus series: probe results and durations per component, the SLA
//! gauges (in service window, in monitoring window, availability, target, error budget), and
//! the scheduler's own health. This module owns registering them on the operator's registry,
//! recording each probe event, and removing a component's series when it goes away, so the
//! number of series follows the number of components instead of growing forever.

use prometheus::core::Collector;
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

use super::prober::ProbeResult;
use super::scheduler::ProbeEvent;
use super::target::TargetLabels;
use super::{
    LABELS, PROBE_DURATION_SECONDS, PROBE_SUCCESS, PROBE_TOTAL, RESULT_FAILURE, RESULT_SUCCESS,
    SLA_AVAILABILITY_PERCENT, SLA_ERROR_BUDGET_REMAINING_RATIO, SLA_IN_MONITORING_WINDOW,
    SLA_IN_SERVICE_WINDOW, SLA_TARGET_PERCENT,
};

/// How far from their slots the scheduler starts probes, early or late (no per-target labels:
/// one histogram for the process).
pub const PROBE_START_ERROR_SECONDS: &str = "regie_probe_start_error_seconds";
/// Probes not run, by reason (`busy`: the previous one still ran; `saturated`: no free slot).
pub const PROBE_SKIPPED_TOTAL: &str = "regie_probe_skipped_total";
/// Probes refused by the probe policy (see the component's `Stalled` condition).
pub const PROBE_REFUSED_TOTAL: &str = "regie_probe_refused_total";

/// Buckets for probe durations: from a fast in-cluster answer to the longest timeout.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const START_ERROR_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// The SLA figures of one component, as the compliance engine computes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlaGauges {
    pub in_service_window: bool,
    pub in_monitoring_window: bool,
    /// Month to date, percent; 100 before any window time has passed.
    pub availability_percent: f64,
    pub target_percent: f64,
    /// 1 untouched, 0 spent, negative overspent.
    pub error_budget_remaining_ratio: f64,
}

/// The probe and SLA series, registered on one registry.
#[derive(Clone)]
pub struct ProbeMetrics {
    total: IntCounterVec,
    success: IntGaugeVec,
    duration: HistogramVec,
    in_service_window: IntGaugeVec,
    in_monitoring_window: IntGaugeVec,
    availability: GaugeVec,
    target: GaugeVec,
    budget: GaugeVec,
    start_error: Histogram,
    skipped: IntCounterVec,
    refused: IntCounterVec,
}

impl std::fmt::Debug for ProbeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeMetrics")
    }
}

impl ProbeMetrics {
    /// Creates the series and registers them; fails if the registry already holds these names.
    pub fn register(registry: &Registry) -> Result<ProbeMetrics, prometheus::Error> {
        let mut with_result = LABELS.to_vec();
        with_result.push("result");
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &LABELS);
        let fgauge = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), &LABELS);
        let m = ProbeMetrics {
            total: IntCounterVec::new(
                Opts::new(PROBE_TOTAL, "Probes run, by result"),
                &with_result,
            )?,
            success: gauge(PROBE_SUCCESS, "1 when the last probe succeeded, else 0")?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    PROBE_DURATION_SECONDS,
                    "How long probes took, redirects included",
                )
                .buckets(DURATION_BUCKETS.to_vec()),
                &LABELS,
            )?,
            in_service_window: gauge(
                SLA_IN_SERVICE_WINDOW,
                "1 while the component's service window is open",
            )?,
            in_monitoring_window: gauge(
                SLA_IN_MONITORING_WINDOW,
                "1 while the component's monitoring window (when alerts may page) is open",
            )?,
            availability: fgauge(
                SLA_AVAILABILITY_PERCENT,
                "Month-to-date availability inside service windows, percent",
            )?,
            target: fgauge(
                SLA_TARGET_PERCENT,
                "The service level's availability target, percent",
            )?,
            budget: fgauge(
                SLA_ERROR_BUDGET_REMAINING_RATIO,
                "Share of the month's error budget left: 1 untouched, 0 spent, negative overspent",
            )?,
            start_error: Histogram::with_opts(
                HistogramOpts::new(
                    PROBE_START_ERROR_SECONDS,
                    "How far from their scheduled time probes started, early or late",
                )
                .buckets(START_ERROR_BUCKETS.to_vec()),
            )?,
            skipped: IntCounterVec::new(
                Opts::new(PROBE_SKIPPED_TOTAL, "Due probes not run, by reason"),
                &["reason"],
            )?,
            refused: IntCounterVec::new(
                Opts::new(PROBE_REFUSED_TOTAL, "Probes refused by the probe policy"),
                &LABELS,
            )?,
        };
        let collectors: [Box<dyn Collector>; 11] = [
            Box::new(m.total.clone()),
            Box::new(m.success.clone()),
            Box::new(m.duration.clone()),
            Box::new(m.in_service_window.clone()),
            Box::new(m.in_monitoring_window.clone()),
            Box::new(m.availability.clone()),
            Box::new(m.target.clone()),
            Box::new(m.budget.clone()),
            Box::new(m.start_error.clone()),
            Box::new(m.skipped.clone()),
            Box::new(m.refused.clone()),
        ];
        for c in collectors {
            registry.register(c)?;
        }
        Ok(m)
    }

    /// Records one scheduler event: a probe's result, or the retirement of a target's labels.
    pub fn observe(&self, event: &ProbeEvent) {
        match event {
            ProbeEvent::Retired { labels, .. } => self.remove(labels),
            ProbeEvent::Probed(report) => {
                let labels = &report.target.labels;
                match &report.result {
                    ProbeResult::Probed(outcome) => {
                        self.start_error
                            .observe(report.start_error.unsigned_abs().as_secs_f64());
                        self.record(labels, outcome.success, outcome.duration.as_secs_f64());
                    }
                    ProbeResult::Refused(_) => {
                        self.refused.with_label_values(&labels.values()).inc()
                    }
                    ProbeResult::Skipped(why) => {
                        self.skipped.with_label_values(&[why.as_str()]).inc()
                    }
                }
            }
        }
    }

    /// Records one probe of a target.
    pub fn record(&self, labels: &TargetLabels, success: bool, duration_seconds: f64) {
        let v = labels.values();
        let result = if success {
            RESULT_SUCCESS
        } else {
            RESULT_FAILURE
        };
        self.total
            .with_label_values(&[v[0], v[1], v[2], result])
            .inc();
        self.success.with_label_values(&v).set(i64::from(success));
        self.duration
            .with_label_values(&v)
            .observe(duration_seconds);
    }

    /// Sets the SLA gauges of a component.
    pub fn set_sla(&self, labels: &TargetLabels, sla: &SlaGauges) {
        let v = labels.values();
        self.in_service_window
            .with_label_values(&v)
            .set(i64::from(sla.in_service_window));
        self.in_monitoring_window
            .with_label_values(&v)
            .set(i64::from(sla.in_monitoring_window));
        self.availability
            .with_label_values(&v)
            .set(sla.availability_percent);
        self.target.with_label_values(&v).set(sla.target_percent);
        self.budget
            .with_label_values(&v)
            .set(sla.error_budget_remaining_ratio);
    }

    /// Drops every series of a target (a deleted component, or its old service level).
    pub fn remove(&self, labels: &TargetLabels) {
        let v = labels.values();
        // A series that was never written is absent; removing it is not an error here.
        for result in [RESULT_SUCCESS, RESULT_FAILURE] {
            let _ = self.total.remove_label_values(&[v[0], v[1], v[2], result]);
        }
        let _ = self.success.remove_label_values(&v);
        let _ = self.duration.remove_label_values(&v);
        let _ = self.in_service_window.remove_label_values(&v);
        let _ = self.in_monitoring_window.remove_label_values(&v);
        let _ = self.availability.remove_label_values(&v);
        let _ = self.target.remove_label_values(&v);
        let _ = self.budget.remove_label_values(&v);
        let _ = self.refused.remove_label_values(&v);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use prometheus::{Encoder, TextEncoder};

    use super::*;
    use crate::sla::prober::{ProbeOutcome, SkipReason};
    use crate::sla::scheduler::ProbeReport;
    use crate::sla::target::ProbeTarget;

    fn text(registry: &Registry) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    fn report(labels: &TargetLabels, result: ProbeResult) -> ProbeEvent {
        let target = ProbeTarget::new(
            "http://a.example/",
            Duration::from_secs(10),
            Duration::from_secs(3),
        )
        .unwrap()
        .with_labels(labels.clone());
        ProbeEvent::Probed(ProbeReport {
            key: "ns/a".into(),
            target: Arc::new(target),
            start_error: jiff::SignedDuration::from_micros(-700),
            result,
        })
    }

    fn outcome(success: bool) -> ProbeResult {
        ProbeResult::Probed(ProbeOutcome {
            at: "2026-03-02T08:00:00Z".parse().unwrap(),
            success,
            duration: Duration::from_millis(20),
            status: Some(if success { 200 } else { 503 }),
            error: None,
        })
    }

    #[test]
    fn records_the_pinned_series_with_their_labels() {
        let registry = Registry::new();
        let m = ProbeMetrics::register(&registry).unwrap();
        let l = TargetLabels::new("roosendaal", "zaaksysteem", "gold");
        m.observe(&report(&l, outcome(true)));
        m.observe(&report(&l, outcome(false)));
        m.set_sla(
            &l,
            &SlaGauges {
                in_service_window: true,
                in_monitoring_window: false,
                availability_percent: 99.95,
                target_percent: 99.9,
                error_budget_remaining_ratio: 0.5,
            },
        );
        let t = text(&registry);
        let labels = r#"component="zaaksysteem",service_level="gold",tenant="roosendaal""#;
        for line in [
            r#"regie_probe_total{component="zaaksysteem",result="success",service_level="gold",tenant="roosendaal"} 1"#.to_string(),
            r#"regie_probe_total{component="zaaksysteem",result="failure",service_level="gold",tenant="roosendaal"} 1"#.to_string(),
            format!("regie_probe_success{{{labels}}} 0"),
            format!("regie_probe_duration_seconds_count{{{labels}}} 2"),
            format!("regie_sla_in_service_window{{{labels}}} 1"),
            format!("regie_sla_in_monitoring_window{{{labels}}} 0"),
            format!("regie_sla_availability_percent{{{labels}}} 99.95"),
            format!("regie_sla_target_percent{{{labels}}} 99.9"),
            format!("regie_sla_error_budget_remaining_ratio{{{labels}}} 0.5"),
            "regie_probe_start_error_seconds_count 2".to_string(),
        ] {
            assert!(t.contains(&line), "missing {line} in\n{t}");
        }
    }

    #[test]
    fn retiring_a_target_removes_its_series() {
        let registry = Registry::new();
        let m = ProbeMetrics::register(&registry).unwrap();
        let old = TargetLabels::new("tholen", "gis", "silver");
        let new = TargetLabels::new("tholen", "gis", "gold");
        m.observe(&report(&old, outcome(true)));
        m.observe(&report(
            &old,
            ProbeResult::Refused(crate::sla::target::Refused::new("x")),
        ));
        m.observe(&report(&new, outcome(true)));
        m.observe(&ProbeEvent::Retired {
            key: "ns/gis".into(),
            labels: old.clone(),
        });
        let t = text(&registry);
        assert!(!t.contains("service_level=\"silver\""), "{t}");
        assert!(t.contains("service_level=\"gold\""));
        // Removing what was never there is fine.
        m.remove(&TargetLabels::new("nobody", "nothing", "bronze"));
    }

    #[test]
    fn skips_are_counted_by_reason() {
        let registry = Registry::new();
        let m = ProbeMetrics::register(&registry).unwrap();
        let l = TargetLabels::new("a", "b", "c");
        m.observe(&report(&l, ProbeResult::Skipped(SkipReason::Busy)));
        m.observe(&report(&l, ProbeResult::Skipped(SkipReason::Saturated)));
        let t = text(&registry);
        assert!(
            t.contains("regie_probe_skipped_total{reason=\"busy\"} 1"),
            "{t}"
        );
        assert!(
            t.contains("regie_probe_skipped_total{reason=\"saturated\"} 1"),
            "{t}"
        );
    }

    #[test]
    fn registering_twice_on_one_registry_fails_cleanly() {
        let registry = Registry::new();
        ProbeMetrics::register(&registry).unwrap();
        assert!(ProbeMetrics::register(&registry).is_err());
    }
}

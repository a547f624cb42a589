//! The SLA engine's Prometheus series: probe results and durations per component, the SLA
//! gauges (in service window, in monitoring window, availability, target, error budget), and
//! the scheduler's own health. This module owns registering them on the operator's registry,
//! recording each probe event into a component's numbers ([`Series`]), and writing them.
//!
//! The per-component series are plain numbers that the prober keeps in its own record of each
//! component (`controller::probing`), so a component's series go when it does and the number of
//! series follows the number of components. A labelled child of the prometheus crate keeps its
//! own copy of its family's description and labels, about 9 KiB for the nine series of one
//! component, which at thousands of components was the operator's largest memory cost; here a
//! component costs a few numbers beside labels it already has. They are written as text at
//! scrape time ([`pages`]): built as the crate's protobuf values first, a scrape allocated about
//! 9 KiB per tenant, the operator's peak heap at 400 tenants (heaptrack), which the allocator
//! kept afterwards. And a page at a time, so that `/metrics` never holds the whole text of a
//! scrape. The window gauges are not kept at all: the scrape's copy of a component's numbers gets
//! them from its tier's calendar at the scrape's instant ([`Series::set_windows`]), so they say
//! whether a window is open now, not at the last report write.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

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
    /// Month to date, percent; 100 before any window time has passed.
    pub availability_percent: f64,
    pub target_percent: f64,
    /// 1 untouched, 0 spent, negative overspent.
    pub error_budget_remaining_ratio: f64,
}

/// Whether a component's windows are open at the instant of a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    pub in_service: bool,
    pub in_monitoring: bool,
}

/// The probe and SLA families, registered on one registry, and the scheduler's own series.
#[derive(Clone)]
pub struct ProbeMetrics {
    start_error: Histogram,
    skipped: IntCounterVec,
}

impl std::fmt::Debug for ProbeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeMetrics")
    }
}

impl ProbeMetrics {
    /// Creates the series and registers them; fails if the registry already holds these names.
    pub fn register(registry: &Registry) -> Result<ProbeMetrics, prometheus::Error> {
        let m = ProbeMetrics {
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
        };
        // The names are reserved on the registry (a second registration fails); the series are
        // written by `pages`, not gathered.
        registry.register(Box::new(Reserved(family_descs()?)))?;
        registry.register(Box::new(m.start_error.clone()))?;
        registry.register(Box::new(m.skipped.clone()))?;
        Ok(m)
    }

    /// Records the scheduler's part of an event: how late a probe started, a skipped probe.
    /// The component's own numbers are its [`Series`]'.
    pub fn observe(&self, event: &ProbeEvent) {
        let ProbeEvent::Probed(report) = event else {
            return;
        };
        match &report.result {
            ProbeResult::Probed(_) => self
                .start_error
                .observe(report.start_error.unsigned_abs().as_secs_f64()),
            ProbeResult::Skipped(why) => self.skipped.with_label_values(&[why.as_str()]).inc(),
            ProbeResult::Refused(_) => {}
        }
    }
}

/// What one component's series hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// None until the first probe result.
    probes: Option<ProbeCounts>,
    /// None until the first SLA figures.
    sla: Option<SlaGauges>,
    /// Set only on the copy a scrape takes, from the tier's calendar at that instant
    /// ([`Series::set_windows`]): figures written with the reports would be as old as the last
    /// write, ten minutes and more, and paging past a window's end. Two bytes inside the
    /// record's padding.
    windows: Option<Windows>,
    refused: Count,
}

/// A counter of one component's series. 32 bits: a probe every second would take 136 years to
/// wrap, and a wrap reads to Prometheus as a counter reset, which `rate()` handles. Half the
/// width of the crate's counters matters here: there are two series per tenant, each with a
/// dozen histogram buckets.
type Count = u32;

#[derive(Clone, Debug, Default, PartialEq)]
struct ProbeCounts {
    successes: Count,
    failures: Count,
    last_success: bool,
    /// Cumulative, as Prometheus exposes them: probes at most as long as each bound.
    buckets: [Count; DURATION_BUCKETS.len()],
    duration_sum: f64,
}

impl Series {
    /// Counts a probe's result (a skipped probe is the scheduler's, see
    /// [`ProbeMetrics::observe`]).
    pub fn observe(&mut self, result: &ProbeResult) {
        match result {
            ProbeResult::Probed(outcome) => {
                self.record(outcome.success, outcome.duration.as_secs_f64())
            }
            ProbeResult::Refused(r) => {
                self.refused = self.refused.wrapping_add(1);
                // Refused when its name resolved: a failed probe for the SLA (see
                // `ProbeResult::sla_sample`), so the error ratios and alerts agree with the
                // reports. Nothing was sent: no time spent.
                if r.at.is_some() {
                    self.record(false, 0.0);
                }
            }
            ProbeResult::Skipped(_) => {}
        }
    }

    /// Records one probe.
    fn record(&mut self, success: bool, duration_seconds: f64) {
        let p = self.probes.get_or_insert_with(ProbeCounts::default);
        if success {
            p.successes = p.successes.wrapping_add(1);
        } else {
            p.failures = p.failures.wrapping_add(1);
        }
        p.last_success = success;
        for (bound, count) in DURATION_BUCKETS.iter().zip(p.buckets.iter_mut()) {
            if duration_seconds <= *bound {
                *count = count.wrapping_add(1);
            }
        }
        p.duration_sum += duration_seconds;
    }

    /// Sets the SLA gauges.
    pub fn set_sla(&mut self, sla: &SlaGauges) {
        self.sla = Some(*sla);
    }

    /// Sets the window gauges, on a scrape's copy.
    pub fn set_windows(&mut self, windows: Windows) {
        self.windows = Some(windows);
    }
}

/// The per-component families: name, help, type.
const FAMILIES: [(&str, &str, MetricType); 9] = [
    (PROBE_TOTAL, "Probes run, by result", MetricType::COUNTER),
    (
        PROBE_SUCCESS,
        "1 when the last probe succeeded, else 0",
        MetricType::GAUGE,
    ),
    (
        PROBE_DURATION_SECONDS,
        "How long probes took, redirects included",
        MetricType::HISTOGRAM,
    ),
    (
        SLA_IN_SERVICE_WINDOW,
        "1 while the component's service window is open",
        MetricType::GAUGE,
    ),
    (
        SLA_IN_MONITORING_WINDOW,
        "1 while the component's monitoring window (when alerts may page) is open",
        MetricType::GAUGE,
    ),
    (
        SLA_AVAILABILITY_PERCENT,
        "Month-to-date availability inside service windows, percent",
        MetricType::GAUGE,
    ),
    (
        SLA_TARGET_PERCENT,
        "The service level's availability target, percent",
        MetricType::GAUGE,
    ),
    (
        SLA_ERROR_BUDGET_REMAINING_RATIO,
        "Share of the month's error budget left: 1 untouched, 0 spent, negative overspent",
        MetricType::GAUGE,
    ),
    (
        PROBE_REFUSED_TOTAL,
        "Probes refused by the probe policy",
        MetricType::COUNTER,
    ),
];

/// The per-component families' descriptions, with their labels.
fn family_descs() -> Result<Vec<Desc>, prometheus::Error> {
    FAMILIES
        .iter()
        .map(|(name, help, _)| {
            let mut labels: Vec<String> = LABELS.iter().map(|l| l.to_string()).collect();
            if *name == PROBE_TOTAL {
                labels.push("result".into());
            }
            Desc::new(name.to_string(), help.to_string(), labels, HashMap::new())
        })
        .collect()
}

/// Holds the per-component families' names on a registry, so that nothing else registers
/// them; collects nothing (see [`pages`]).
struct Reserved(Vec<Desc>);

impl Collector for Reserved {
    fn desc(&self) -> Vec<&Desc> {
        self.0.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        Vec::new()
    }
}

/// A label value as the text format escapes it.
fn escaped(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '\n', '"']) {
        return value.into();
    }
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' | '\n' | '"' => out.extend(c.escape_default()),
            _ => out.push(c),
        }
    }
    out.into()
}

/// A sample's name, with a histogram's suffix where it has one.
type SampleName<'a> = (&'a str, &'a str);

/// One sample line: `name{component=…,[result=…,]service_level=…,tenant=…[,le=…]} value`.
fn sample(
    out: &mut String,
    (name, suffix): SampleName,
    l: &TargetLabels,
    result: Option<&str>,
    le: Option<&str>,
    value: f64,
) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "{name}{suffix}{{component=\"{}\"",
        escaped(&l.component)
    );
    if let Some(r) = result {
        let _ = write!(out, ",result=\"{r}\"");
    }
    let _ = write!(
        out,
        ",service_level=\"{}\",tenant=\"{}\"",
        escaped(&l.service_level),
        escaped(&l.tenant)
    );
    if let Some(le) = le {
        let _ = write!(out, ",le=\"{le}\"");
    }
    let _ = writeln!(out, "}} {value}");
}

/// The per-component series' text in pages, for the numbers of `series` as the caller copied
/// them when the scrape began (see [`Pages`]). Registered with
/// [`crate::metrics::Metrics::add_pages`] they follow the registry's families at `/metrics`.
pub fn pages(mut series: Vec<(TargetLabels, Series)>) -> Pages {
    // By labels, so that a scrape's order is stable.
    series.sort_by(|(a, _), (b, _)| {
        (&a.component, &a.service_level, &a.tenant).cmp(&(
            &b.component,
            &b.service_level,
            &b.tenant,
        ))
    });
    Pages {
        series,
        // The bounds as text once per scrape, not once per component.
        bounds: DURATION_BUCKETS.iter().map(f64::to_string).collect(),
        family: 0,
        next: 0,
        header: false,
    }
}

/// About how much text a page of a scrape holds (a page ends after the series that reaches it).
const PAGE_BYTES: usize = 64 * 1024;

/// The per-component series' text, a page at a time. At a thousand tenants the whole text is
/// about 3.7 MB; a scrape sent page by page holds one page and a copy of the numbers (about
/// 160 bytes per component), and the lock of their owner only while the copy is taken, not
/// while the text is written.
pub struct Pages {
    series: Vec<(TargetLabels, Series)>,
    bounds: Vec<String>,
    /// The family being written, and its next series.
    family: usize,
    next: usize,
    /// Whether the family's `# HELP` and `# TYPE` lines are written.
    header: bool,
}

impl Iterator for Pages {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let mut out = String::new();
        while self.family < FAMILIES.len() && out.len() < PAGE_BYTES {
            let Some((l, s)) = self.series.get(self.next) else {
                (self.family, self.next, self.header) = (self.family + 1, 0, false);
                continue;
            };
            write_series(&mut out, self.family, l, s, &self.bounds, &mut self.header);
            self.next += 1;
        }
        (!out.is_empty()).then_some(out)
    }
}

/// Appends the samples of family `family` of one component, after the family's header if
/// `header` says it is not written yet.
fn write_series(
    out: &mut String,
    family: usize,
    l: &TargetLabels,
    s: &Series,
    bounds: &[String],
    header: &mut bool,
) {
    use std::fmt::Write as _;
    let (name, help, kind) = FAMILIES[family];
    let mut head = |out: &mut String| {
        if !*header {
            *header = true;
            let kind = format!("{kind:?}").to_lowercase();
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        }
    };
    let flag = |b: bool| f64::from(u8::from(b));
    match (family, &s.probes, &s.sla) {
        (3 | 4, _, _) => {
            if let Some(w) = s.windows {
                head(out);
                let open = if family == 3 {
                    w.in_service
                } else {
                    w.in_monitoring
                };
                sample(out, (name, ""), l, None, None, flag(open));
            }
        }
        (0, p, _) => {
            // Both results from 0, from the moment the component is followed (before its first
            // probe): `rate()` and `increase()` need a sample before the first increase, so a
            // series that appeared at 1 would hide that first failure from every error ratio.
            let (failures, successes) = p.as_ref().map_or((0, 0), |p| (p.failures, p.successes));
            head(out);
            for (result, n) in [(RESULT_FAILURE, failures), (RESULT_SUCCESS, successes)] {
                sample(out, (name, ""), l, Some(result), None, f64::from(n));
            }
        }
        (1, Some(p), _) => {
            head(out);
            sample(out, (name, ""), l, None, None, flag(p.last_success));
        }
        (2, Some(p), _) => {
            head(out);
            let bucket: SampleName = (name, "_bucket");
            for (le, count) in bounds.iter().zip(p.buckets) {
                sample(out, bucket, l, None, Some(le), f64::from(count));
            }
            let count = f64::from(p.successes) + f64::from(p.failures);
            sample(out, bucket, l, None, Some("+Inf"), count);
            sample(out, (name, "_sum"), l, None, None, p.duration_sum);
            sample(out, (name, "_count"), l, None, None, count);
        }
        (5..=7, _, Some(sla)) => {
            let value = match family {
                5 => sla.availability_percent,
                6 => sla.target_percent,
                _ => sla.error_budget_remaining_ratio,
            };
            head(out);
            sample(out, (name, ""), l, None, None, value);
        }
        (8, _, _) if s.refused > 0 => {
            head(out);
            sample(out, (name, ""), l, None, None, f64::from(s.refused));
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use prometheus::proto::{self, LabelPair};
    use prometheus::{Encoder, TextEncoder};

    use super::*;
    use crate::sla::prober::{ProbeOutcome, SkipReason};
    use crate::sla::scheduler::ProbeReport;
    use crate::sla::target::ProbeTarget;

    /// Components' numbers by labels, kept the way the prober keeps them.
    type Components = HashMap<TargetLabels, Series>;

    /// What the prober does with an event: the scheduler's part to the metrics, the result to
    /// the component's numbers.
    fn observe(m: &ProbeMetrics, components: &mut Components, event: &ProbeEvent) {
        m.observe(event);
        if let ProbeEvent::Probed(r) = event {
            components
                .entry(r.target.labels.clone())
                .or_default()
                .observe(&r.result);
        }
    }

    fn copy(components: &Components) -> Vec<(TargetLabels, Series)> {
        components
            .iter()
            .map(|(l, s)| (l.clone(), s.clone()))
            .collect()
    }

    /// The components' series as a scrape writes them.
    fn written(components: &Components) -> String {
        pages(copy(components)).collect()
    }

    fn text(registry: &Registry, components: &Components) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap() + &written(components)
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
        let mut components = Components::new();
        let l = TargetLabels::new("roosendaal", "zaaksysteem", "gold");
        observe(&m, &mut components, &report(&l, outcome(true)));
        observe(&m, &mut components, &report(&l, outcome(false)));
        components
            .entry(l.clone())
            .or_default()
            .set_sla(&SlaGauges {
                availability_percent: 99.95,
                target_percent: 99.9,
                error_budget_remaining_ratio: 0.5,
            });
        components
            .entry(l.clone())
            .or_default()
            .set_windows(Windows {
                in_service: true,
                in_monitoring: false,
            });
        let t = text(&registry, &components);
        let labels = r#"component="zaaksysteem",service_level="gold",tenant="roosendaal""#;
        for line in [
            r#"regie_probe_total{component="zaaksysteem",result="success",service_level="gold",tenant="roosendaal"} 1"#.to_string(),
            r#"regie_probe_total{component="zaaksysteem",result="failure",service_level="gold",tenant="roosendaal"} 1"#.to_string(),
            format!("regie_probe_success{{{labels}}} 0"),
            format!("regie_probe_duration_seconds_count{{{labels}}} 2"),
            format!("regie_probe_duration_seconds_sum{{{labels}}} 0.04"),
            format!("regie_probe_duration_seconds_bucket{{{labels},le=\"0.01\"}} 0"),
            format!("regie_probe_duration_seconds_bucket{{{labels},le=\"0.025\"}} 2"),
            format!("regie_probe_duration_seconds_bucket{{{labels},le=\"30\"}} 2"),
            format!("regie_probe_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 2"),
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

    /// A component's first failure must be a visible increase to `rate()`: both result series
    /// are there at 0 before any probe, and the failure series stays once a success came first.
    #[test]
    fn both_results_are_exported_from_zero() {
        let registry = Registry::new();
        let m = ProbeMetrics::register(&registry).unwrap();
        let mut components = Components::new();
        let l = TargetLabels::new("tholen", "website", "bronze");
        let total = |result: &str, n: u32| {
            format!(
                "regie_probe_total{{component=\"website\",result=\"{result}\",service_level=\"bronze\",tenant=\"tholen\"}} {n}\n"
            )
        };
        // Followed, not probed yet.
        components.entry(l.clone()).or_default();
        let t = written(&components);
        assert!(t.contains(&total("failure", 0)), "{t}");
        assert!(t.contains(&total("success", 0)), "{t}");
        observe(&m, &mut components, &report(&l, outcome(true)));
        let t = written(&components);
        assert!(t.contains(&total("failure", 0)), "{t}");
        assert!(t.contains(&total("success", 1)), "{t}");
        observe(&m, &mut components, &report(&l, outcome(false)));
        let t = written(&components);
        assert!(t.contains(&total("failure", 1)), "{t}");
    }

    /// A probe refused because the name resolved to a refused address is a failed probe for
    /// the error ratios (the SLA counts it as down); one refused as written is not.
    #[test]
    fn a_refusal_when_resolved_counts_as_a_failure() {
        use crate::sla::target::Refused;
        let mut s = Series::default();
        s.observe(&ProbeResult::Refused(Refused::new("x")));
        assert_eq!(s.probes, None);
        assert_eq!(s.refused, 1);
        let at = "2026-03-02T08:00:00Z".parse().unwrap();
        s.observe(&ProbeResult::Refused(Refused::new("x").when_probed(at)));
        let p = s.probes.as_ref().unwrap();
        assert_eq!((p.failures, p.successes, p.last_success), (1, 0, false));
        assert_eq!(s.refused, 2);
    }

    #[test]
    fn skips_are_counted_by_reason() {
        let registry = Registry::new();
        let m = ProbeMetrics::register(&registry).unwrap();
        let mut components = Components::new();
        let l = TargetLabels::new("a", "b", "c");
        let busy = report(&l, ProbeResult::Skipped(SkipReason::Busy));
        observe(&m, &mut components, &busy);
        let saturated = report(&l, ProbeResult::Skipped(SkipReason::Saturated));
        observe(&m, &mut components, &saturated);
        let t = text(&registry, &components);
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

    /// Many components' series come a page at a time: each page about `PAGE_BYTES`, together
    /// the text written whole, each family's header once; a page taken after a series changed
    /// still shows the numbers copied when the scrape began.
    #[test]
    fn a_scrape_comes_a_page_at_a_time() {
        let registry = Registry::new();
        let m = ProbeMetrics::register(&registry).unwrap();
        let mut components = Components::new();
        let labels: Vec<TargetLabels> = (0..800)
            .map(|i| TargetLabels::new(format!("tenant-{i:04}"), "zaaksysteem", "gold"))
            .collect();
        for l in &labels {
            observe(&m, &mut components, &report(l, outcome(true)));
        }
        let whole = written(&components);
        let mut pages = pages(copy(&components));
        let first = pages.next().unwrap();
        observe(&m, &mut components, &report(&labels[799], outcome(false)));
        let rest: Vec<String> = pages.collect();
        assert!(rest.len() >= 3, "{} pages", rest.len() + 1);
        for page in std::iter::once(&first).chain(&rest) {
            assert!(page.len() < PAGE_BYTES + 2048, "{}", page.len());
        }
        assert_eq!(first + &rest.concat(), whole);
        for (name, _, _) in FAMILIES.iter().take(3) {
            assert_eq!(
                whole.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{name}"
            );
        }
        assert_ne!(written(&components), whole, "a new scrape shows the change");
    }

    #[test]
    fn the_text_is_what_the_crates_encoder_writes() {
        let registry = Registry::new();
        let m = ProbeMetrics::register(&registry).unwrap();
        let mut components = Components::new();
        let gold = TargetLabels::new("roosendaal", "zaaksysteem", "gold");
        // Same component name in two tenants; a label value that needs escaping.
        let other = TargetLabels::new("tholen", "zaaksysteem", "gold");
        let odd = TargetLabels::new("etten-leur", "portaal \"nieuw\"\\x", "bronze");
        for (l, ok) in [(&gold, true), (&gold, false), (&other, true), (&odd, false)] {
            observe(&m, &mut components, &report(l, outcome(ok)));
        }
        let refused = ProbeResult::Refused(crate::sla::target::Refused::new("x"));
        observe(&m, &mut components, &report(&odd, refused));
        let sla = SlaGauges {
            availability_percent: 99.95,
            target_percent: 99.9,
            error_budget_remaining_ratio: -0.25,
        };
        components.entry(gold.clone()).or_default().set_sla(&sla);
        let sla_only = TargetLabels::new("moerdijk", "gis", "silver");
        components.entry(sla_only).or_default().set_sla(&sla);
        let windows = Windows {
            in_service: false,
            in_monitoring: true,
        };
        components
            .entry(gold.clone())
            .or_default()
            .set_windows(windows);
        // A component not written to its reports yet has its windows, not its figures.
        let windows_only = TargetLabels::new("moerdijk", "kaart", "gold");
        components
            .entry(windows_only)
            .or_default()
            .set_windows(windows);
        let written = written(&components);
        let families: Vec<MetricFamily> = collect(&components)
            .into_iter()
            .filter(|f| !f.get_metric().is_empty())
            .collect();
        let encoded = TextEncoder::new().encode_to_string(&families).unwrap();
        let lines = |t: &str| {
            let mut v: Vec<String> = t.lines().map(str::to_string).collect();
            v.sort();
            v
        };
        assert_eq!(lines(&written), lines(&encoded), "{written}");
        assert!(
            written.contains(r#"component="portaal \"nieuw\"\\x""#),
            "{written}"
        );
        // Each family once, in one block.
        let heads: Vec<&str> = written
            .lines()
            .filter(|l| l.starts_with("# TYPE"))
            .collect();
        assert_eq!(heads.len(), 9, "{written}");
        assert!(
            text(&registry, &components)
                .matches("# TYPE regie_probe_total ")
                .count()
                == 1,
            "the registry must not gather the series as well"
        );
    }

    /// Label pairs sorted by name, as the text format expects them.
    fn label_pairs(l: &TargetLabels, result: Option<&str>) -> Vec<LabelPair> {
        let pair = |name: &str, value: &str| {
            let mut p = LabelPair::default();
            p.set_name(name.to_string());
            p.set_value(value.to_string());
            p
        };
        let mut pairs = vec![pair("component", &l.component)];
        if let Some(r) = result {
            pairs.push(pair("result", r));
        }
        pairs.push(pair("service_level", &l.service_level));
        pairs.push(pair("tenant", &l.tenant));
        pairs
    }

    fn gauge_metric(l: &TargetLabels, value: f64) -> proto::Metric {
        let mut g = proto::Gauge::default();
        g.set_value(value);
        let mut m = proto::Metric::from_gauge(g);
        m.set_label(label_pairs(l, None));
        m
    }

    fn counter_metric(l: &TargetLabels, result: Option<&str>, value: Count) -> proto::Metric {
        let mut c = proto::Counter::default();
        c.set_value(f64::from(value));
        let mut m = proto::Metric::from_label(label_pairs(l, result));
        m.set_counter(c);
        m
    }

    fn histogram_metric(l: &TargetLabels, p: &ProbeCounts) -> proto::Metric {
        let mut h = proto::Histogram::default();
        h.set_sample_count(u64::from(p.successes) + u64::from(p.failures));
        h.set_sample_sum(p.duration_sum);
        h.set_bucket(
            DURATION_BUCKETS
                .iter()
                .zip(p.buckets)
                .map(|(bound, count)| {
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(*bound);
                    b.set_cumulative_count(u64::from(count));
                    b
                })
                .collect(),
        );
        let mut m = proto::Metric::from_label(label_pairs(l, None));
        m.set_histogram(h);
        m
    }

    /// The families as the crate's values: the reference the written text is checked against.
    fn collect(components: &Components) -> Vec<MetricFamily> {
        let mut families: Vec<MetricFamily> = FAMILIES
            .iter()
            .map(|(name, help, kind)| {
                let mut f = MetricFamily::default();
                f.set_name(name.to_string());
                f.set_help(help.to_string());
                f.set_field_type(*kind);
                f
            })
            .collect();
        for (l, s) in components {
            let (successes, failures) = s
                .probes
                .as_ref()
                .map_or((0, 0), |p| (p.successes, p.failures));
            let totals = families[0].mut_metric();
            for (result, n) in [(RESULT_SUCCESS, successes), (RESULT_FAILURE, failures)] {
                totals.push(counter_metric(l, Some(result), n));
            }
            if let Some(p) = &s.probes {
                let success = f64::from(u8::from(p.last_success));
                families[1].mut_metric().push(gauge_metric(l, success));
                families[2].mut_metric().push(histogram_metric(l, p));
            }
            let flag = |b: bool| f64::from(u8::from(b));
            if let Some(w) = &s.windows {
                for (i, v) in [(3, flag(w.in_service)), (4, flag(w.in_monitoring))] {
                    families[i].mut_metric().push(gauge_metric(l, v));
                }
            }
            if let Some(sla) = &s.sla {
                for (i, v) in [
                    (5, sla.availability_percent),
                    (6, sla.target_percent),
                    (7, sla.error_budget_remaining_ratio),
                ] {
                    families[i].mut_metric().push(gauge_metric(l, v));
                }
            }
            if s.refused > 0 {
                families[8]
                    .mut_metric()
                    .push(counter_metric(l, None, s.refused));
            }
        }
        families
    }
}

//! The operator's own Prometheus metrics: reconciles, errors by reason, durations, managed
//! objects, tenants by service level, and every write regie makes to the API server.
//!
//! One [`prometheus::Registry`] is created per process and passed around, never a global, so
//! tests can run several operators in one process and read each one's figures.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::Collector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: IntCounterVec,
    pub reconcile_errors: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    pub api_writes: IntCounterVec,
    pub managed_objects: IntGaugeVec,
    /// Tenants, components and packages whose `Stalled` condition is True, by kind and reason.
    pub stalled_objects: IntGaugeVec,
    pub tenants: IntGaugeVec,
    pub leader: IntGaugeVec,
    pub invoicing_passes: IntCounterVec,
    /// Tenants the last invoicing pass over all of them could not price (see
    /// `regie_invoicing_unpriced_tenants`).
    pub unpriced_tenants: IntGauge,
    /// Series written as text at scrape time, after the registry's (see [`Metrics::add_pages`]).
    texts: Arc<Mutex<Vec<TextSeries>>>,
}

/// Series in the text format, a page at a time, for one scrape.
pub type TextPages = Box<dyn Iterator<Item = String> + Send>;

/// Gives a scrape its pages of series in the text format.
type TextSeries = Box<dyn Fn() -> TextPages + Send + Sync>;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "regie_reconcile_total",
                "Reconciles by kind and result (ok, stalled, error)",
            ),
            &["kind", "result"],
        )
        .expect("valid metric");
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "regie_reconcile_errors_total",
                "Failed or stalled reconciles by reason",
            ),
            &["kind", "reason"],
        )
        .expect("valid metric");
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "regie_reconcile_duration_seconds",
                "Time one reconcile takes",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["kind"],
        )
        .expect("valid metric");
        let api_writes = IntCounterVec::new(
            Opts::new(
                "regie_api_writes_total",
                "Writes regie made to the API server, by verb and kind",
            ),
            &["verb", "kind"],
        )
        .expect("valid metric");
        let managed_objects = IntGaugeVec::new(
            Opts::new("regie_managed_objects", "Objects regie manages, by kind"),
            &["kind"],
        )
        .expect("valid metric");
        let stalled_objects = IntGaugeVec::new(
            Opts::new(
                "regie_stalled_objects",
                "Tenants, HostingComponents and WorkplacePackages Stalled now, by kind and reason \
                 (on the leader, refreshed every minute)",
            ),
            &["kind", "reason"],
        )
        .expect("valid metric");
        let tenants = IntGaugeVec::new(
            Opts::new("regie_tenants", "Tenants by service level"),
            &["service_level"],
        )
        .expect("valid metric");
        let leader = IntGaugeVec::new(
            Opts::new(
                "regie_leader",
                "1 while this process holds the leader lease",
            ),
            &["identity"],
        )
        .expect("valid metric");
        let invoicing_passes = IntCounterVec::new(
            Opts::new(
                "regie_invoicing_passes_total",
                "Invoicing passes by result (complete, interrupted: gave way to reconciles and \
                 runs again, failed)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let unpriced_tenants = IntGauge::new(
            "regie_invoicing_unpriced_tenants",
            "Tenants whose invoices the last invoicing pass could not price (an input of their \
             own: the InvoicingFailed Warning event on each says why); their invoices stay as \
             they were",
        )
        .expect("valid metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_errors.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(api_writes.clone()),
            Box::new(managed_objects.clone()),
            Box::new(stalled_objects.clone()),
            Box::new(tenants.clone()),
            Box::new(leader.clone()),
            Box::new(invoicing_passes.clone()),
            Box::new(unpriced_tenants.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            api_writes,
            managed_objects,
            stalled_objects,
            tenants,
            leader,
            invoicing_passes,
            unpriced_tenants,
            texts: Arc::default(),
        }
    }

    /// Counts one write to the API server.
    pub fn write(&self, verb: &str, kind: &str) {
        self.api_writes.with_label_values(&[verb, kind]).inc();
    }

    /// Counts one invoicing pass by how it ended.
    pub fn invoicing_pass(&self, result: &str) {
        self.invoicing_passes.with_label_values(&[result]).inc();
    }

    /// Sum of all API writes so far.
    pub fn total_writes(&self) -> u64 {
        self.api_writes
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// Adds series that `pages` gives every scrape in the text format, a page at a time,
    /// after the registry's families; their names should be reserved on the registry.
    pub fn add_pages(&self, pages: impl Fn() -> TextPages + Send + Sync + 'static) {
        self.texts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(pages));
    }

    /// One scrape a page at a time: the registry's families, then the text series' pages,
    /// written as the reader takes them. Each source of pages takes its copy of its numbers
    /// when the scrape begins.
    pub fn scrape(&self) -> impl Iterator<Item = String> + Send + 'static {
        let mut first = String::new();
        if let Err(e) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut first)
        {
            first = format!("# encoding metrics failed: {e}\n");
        }
        let rest: Vec<TextPages> = self
            .texts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|pages| pages())
            .collect();
        std::iter::once(first).chain(rest.into_iter().flatten())
    }

    /// The text exposition of every metric in the registry, and of the text series, whole.
    pub fn render(&self) -> String {
        self.scrape().collect()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

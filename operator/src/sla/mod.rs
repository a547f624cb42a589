//! The SLA engine: service windows in local time, compliance per calendar month, incidents,
//! credits, KPI reports, Prometheus rules, and the prober that feeds them.

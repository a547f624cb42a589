//! A ServiceLevel made ready to use: windows parsed, target and credits as decimals, durations
//! as durations. Built once from a validated ServiceLevel and shared by desired state, the SLA
//! engine and billing.

use std::time::Duration;

use regie_crds::ServiceLevel;
use regie_crds::catalogue::KpiCadence;
use regie_crds::duration::parse_duration;
use regie_crds::validate::{FieldError, parse_decimal};
use regie_crds::window::{Monitoring, Window};
use rust_decimal::Decimal;

/// The parsed contract of one tier.
#[derive(Clone, Debug, PartialEq)]
pub struct Tier {
    pub name: String,
    pub rank: i32,
    pub time_zone: jiff::tz::TimeZone,
    pub service_hours: Vec<Window>,
    /// Local dates on which there are no service hours.
    pub holidays: Vec<jiff::civil::Date>,
    pub monitoring: Vec<Window>,
    pub monitoring_label: String,
    /// Percent, e.g. 99.5.
    pub target: Decimal,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub min_replicas: i32,
    pub min_available: i32,
    pub spread: bool,
    pub kpi_report: KpiCadence,
    /// (below, percent), as written.
    pub credits: Vec<(Decimal, i32)>,
}

impl Tier {
    /// Parses a ServiceLevel; fails with every field error when it is not valid.
    pub fn from_level(level: &ServiceLevel) -> Result<Tier, Vec<FieldError>> {
        // The name too: it is the `regie.dev/service-level` label of every child.
        let errors = regie_crds::validate::service_level(level);
        if !errors.is_empty() {
            return Err(errors);
        }
        let s = &level.spec;
        // Validation above guarantees every parse below succeeds; map defensively all the same.
        let fail = |path: &str, m: String| {
            vec![FieldError {
                path: path.into(),
                message: m,
            }]
        };
        let monitoring: Monitoring = s
            .monitoring
            .parse()
            .map_err(|e: regie_crds::window::WindowError| fail("spec.monitoring", e.0))?;
        Ok(Tier {
            name: level.metadata.name.clone().unwrap_or_default(),
            rank: s.rank,
            time_zone: jiff::tz::TimeZone::get(&s.time_zone)
                .map_err(|e| fail("spec.timeZone", e.to_string()))?,
            service_hours: s
                .service_hours
                .iter()
                .map(|w| w.parse::<Window>())
                .collect::<Result<_, _>>()
                .map_err(|e| fail("spec.serviceHours", e.0))?,
            holidays: s
                .holidays
                .iter()
                .map(|d| regie_crds::validate::parse_date(d))
                .collect::<Result<_, _>>()
                .map_err(|m| fail("spec.holidays", m))?,
            monitoring_label: monitoring.to_string(),
            monitoring: monitoring.windows(),
            target: parse_decimal(&s.availability.target)
                .map_err(|m| fail("spec.availability.target", m))?,
            probe_interval: parse_duration(&s.probe.interval)
                .map_err(|m| fail("spec.probe.interval", m))?,
            probe_timeout: parse_duration(&s.probe.timeout)
                .map_err(|m| fail("spec.probe.timeout", m))?,
            min_replicas: s.workload.min_replicas,
            min_available: s.workload.min_available,
            spread: s.workload.spread,
            kpi_report: s.kpi_report,
            credits: s
                .credits
                .iter()
                .map(|c| parse_decimal(&c.below).map(|b| (b, c.percent)))
                .collect::<Result<_, _>>()
                .map_err(|m| fail("spec.credits", m))?,
        })
    }

    /// The service credit for a month's availability (percent): the largest step it falls below.
    pub fn credit_percent(&self, availability: Decimal) -> i32 {
        self.credits
            .iter()
            .filter(|(below, _)| availability < *below)
            .map(|(_, p)| *p)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ServiceLevel as the examples define it, for tests across the crate.
    pub(crate) fn level(name: &str, yaml_spec: &str) -> ServiceLevel {
        let doc = format!(
            "apiVersion: regie.dev/v1alpha1\nkind: ServiceLevel\nmetadata: {{name: {name}}}\nspec:\n{yaml_spec}"
        );
        serde_yaml::from_str(&doc).expect("test level parses")
    }

    pub(crate) fn gold() -> ServiceLevel {
        level(
            "gold",
            "  rank: 3\n  serviceHours: [\"Mon-Sat 08:00-22:00\"]\n  responseTimes: {urgent: 15m, other: 12h}\n  kpiReport: daily\n  monitoring: 24x7\n  availability: {target: \"99.9\"}\n  probe: {interval: 10s, timeout: 3s}\n  workload: {minReplicas: 3, minAvailable: 2, spread: true}\n  credits: [{below: \"99.9\", percent: 5}, {below: \"99.5\", percent: 10}, {below: \"99.0\", percent: 25}]\n",
        )
    }

    #[test]
    fn parses_a_level() {
        let t = Tier::from_level(&gold()).unwrap();
        assert_eq!(t.rank, 3);
        assert_eq!(t.service_hours[0].to_string(), "Mon-Sat 08:00-22:00");
        assert_eq!(t.monitoring.len(), 1);
        assert_eq!(t.probe_interval, Duration::from_secs(10));
        assert_eq!(t.target, Decimal::new(999, 1));
    }

    #[test]
    fn largest_matching_credit_applies() {
        let t = Tier::from_level(&gold()).unwrap();
        assert_eq!(t.credit_percent(Decimal::new(9995, 2)), 0);
        assert_eq!(
            t.credit_percent(Decimal::new(999, 1)),
            0,
            "at the target is no breach"
        );
        assert_eq!(t.credit_percent(Decimal::new(9985, 2)), 5);
        assert_eq!(t.credit_percent(Decimal::new(992, 1)), 10);
        assert_eq!(t.credit_percent(Decimal::new(90, 0)), 25);
    }

    #[test]
    fn an_invalid_level_gives_all_its_errors() {
        let bad = level(
            "x",
            "  rank: 1\n  serviceHours: [\"Mon-Fri 25:00-17:00\", \"Mon-Fri 17:00-08:00\"]\n  responseTimes: {urgent: 1h, other: 2d}\n  kpiReport: monthly\n  availability: {target: \"99,5\"}\n  probe: {interval: 10s, timeout: 30s}\n",
        );
        let errs = Tier::from_level(&bad).unwrap_err();
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.serviceHours[0]",
                "spec.serviceHours[1]",
                "spec.availability.target",
                "spec.probe.timeout"
            ]
        );
    }
}

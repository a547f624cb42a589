//! Prometheus recording and alerting rules for the SLA, generated per tier: multi-window,
//! multi-burn-rate alerts in the style of Sloth and Pyrra, with error ratios that count only the
//! probes that matter, and pages only inside each tier's monitoring window.
//!
//! Two families of error ratios are recorded from `regie_probe_total`:
//! - `regie:sla_error:ratio_rate<W>` counts only probes made while the component's service window
//!   was open (`regie_sla_in_service_window == 1`): the contract's view. Tickets (slow burn)
//!   use it, so an outage at night does not eat into a budget that only runs in office hours.
//! - `regie:monitoring_error:ratio_rate<W>` counts only probes made inside the monitoring window
//!   (`regie_sla_in_monitoring_window == 1`): the watch's view. Pages use it, so a gold component
//!   (monitored 24x7) that fails at 03:00 wakes someone up before its service hours begin,
//!   while a silver one (12x5) waits for the morning.
//!
//! Over each window W the ratio is the sum of the 5-minute failure rates divided by the sum of
//! the 5-minute probe rates, both masked by the window gauge, so time outside the window simply
//! does not count. A 5-minute rate counts only when the window was open for all of its five
//! minutes: one taken just after the window opened would hold probes made before. Budgets are
//! `1 − target/100` of the tier; the burn-rate pairs are Google's SRE workbook defaults (page:
//! 14.4× over 1h and 5m, 6× over 6h and 30m; ticket: 3× over 1d and 2h, 1× over 3d and 6h).
//! The long window of a pair must hold about as much open time as it usually does: its
//! threshold is divided by the part of it the window was open, over the part of a week the
//! window is open (at most 1), so that just after a window opens after a closed spell (a Monday
//! morning) a long ratio of a few minutes' probes — one failed probe among ten — does not pass
//! for a sustained burn, while a long window as open as usual keeps the plain threshold. A tier
//! without monitoring windows (bronze) never pages, but gets the slow-burn ticket like every
//! tier.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use super::{
    PROBE_TOTAL, RESULT_FAILURE, SLA_ERROR_BUDGET_REMAINING_RATIO, SLA_IN_MONITORING_WINDOW,
    SLA_IN_SERVICE_WINDOW, SLA_TARGET_PERCENT,
};
use crate::tier::Tier;
use regie_crds::window::Window;

/// Probes per second inside the service window (5-minute rate).
pub const PROBES_IN_SERVICE_WINDOW: &str = "regie:probes_in_service_window:rate5m";
/// Failed probes per second inside the service window (5-minute rate).
pub const FAILURES_IN_SERVICE_WINDOW: &str = "regie:probe_failures_in_service_window:rate5m";
/// Probes per second inside the monitoring window (5-minute rate).
pub const PROBES_IN_MONITORING_WINDOW: &str = "regie:probes_in_monitoring_window:rate5m";
/// Failed probes per second inside the monitoring window (5-minute rate).
pub const FAILURES_IN_MONITORING_WINDOW: &str = "regie:probe_failures_in_monitoring_window:rate5m";

/// Windows of the service-window error ratio.
pub const SLA_WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];
/// Windows of the monitoring-window error ratio.
pub const MONITORING_WINDOWS: [&str; 4] = ["5m", "30m", "1h", "6h"];

/// The service-window error ratio over `window` (one of [`SLA_WINDOWS`]).
pub fn sla_error_ratio(window: &str) -> String {
    format!("regie:sla_error:ratio_rate{window}")
}

/// The monitoring-window error ratio over `window` (one of [`MONITORING_WINDOWS`]).
pub fn monitoring_error_ratio(window: &str) -> String {
    format!("regie:monitoring_error:ratio_rate{window}")
}

/// Every series the recording rules produce.
pub fn recorded_names() -> Vec<String> {
    let mut v: Vec<String> = [
        PROBES_IN_SERVICE_WINDOW,
        FAILURES_IN_SERVICE_WINDOW,
        PROBES_IN_MONITORING_WINDOW,
        FAILURES_IN_MONITORING_WINDOW,
    ]
    .map(String::from)
    .to_vec();
    v.extend(SLA_WINDOWS.iter().map(|w| sla_error_ratio(w)));
    v.extend(MONITORING_WINDOWS.iter().map(|w| monitoring_error_ratio(w)));
    v
}

/// A burn-rate condition: the error ratio exceeds `factor × budget` over both windows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Burn {
    pub long: &'static str,
    pub short: &'static str,
    pub factor: Decimal,
}

const fn burn(long: &'static str, short: &'static str, tenths: u32) -> Burn {
    Burn {
        long,
        short,
        factor: Decimal::from_parts(tenths, 0, 0, false, 1),
    }
}

/// Page when the budget burns this fast (14.4× over 1h and 5m: 2% of a 30-day budget in an
/// hour; 6× over 6h and 30m: 5% in six hours).
pub const PAGE_BURN: [Burn; 2] = [burn("1h", "5m", 144), burn("6h", "30m", 60)];
/// Ticket when the budget burns this fast (3× over 1d and 2h; 1× over 3d and 6h).
pub const TICKET_BURN: [Burn; 2] = [burn("1d", "2h", 30), burn("3d", "6h", 10)];

/// Alert names.
pub const ALERT_FAST_BURN: &str = "RegieSlaFastBurn";
pub const ALERT_SLOW_BURN: &str = "RegieSlaSlowBurn";
pub const ALERT_BUDGET_EXHAUSTED: &str = "RegieSlaErrorBudgetExhausted";
pub const ALERT_NOT_PROBED: &str = "RegieSlaNotProbed";

const BY: &str = "tenant, component, service_level";

/// A rules file: what `promtool check rules` reads.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct RuleFile {
    pub groups: Vec<RuleGroup>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// A recording rule (`record`) or an alerting rule (`alert`).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn record(name: &str, expr: String) -> Rule {
    Rule {
        record: Some(name.to_string()),
        alert: None,
        expr,
        for_: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    }
}

/// An alert of one tier. The tier's name is also set as a static `service_level` label (equal to
/// the series' own), which keeps the same alert of different tiers distinct rules.
fn alert(
    tier: &str,
    name: &str,
    expr: String,
    for_: &str,
    severity: &str,
    summary: String,
    description: String,
) -> Rule {
    Rule {
        record: None,
        alert: Some(name.to_string()),
        expr,
        for_: Some(for_.to_string()),
        labels: BTreeMap::from([
            ("severity".to_string(), severity.to_string()),
            ("service_level".to_string(), tier.to_string()),
        ]),
        annotations: BTreeMap::from([
            ("summary".to_string(), summary),
            ("description".to_string(), description),
        ]),
    }
}

/// Probe rates masked by a 0/1 window gauge: zero unless the window was open for the whole of
/// the rate's five minutes. A failure counter the prober has not created yet counts as zero
/// failures.
fn masked_rates(gauge: &str, probes: &str, failures: &str) -> [Rule; 2] {
    let mask = format!("* on ({BY}) max by ({BY}) (min_over_time({gauge}[5m]))");
    [
        record(
            probes,
            format!("sum by ({BY}) (rate({PROBE_TOTAL}[5m]))\n{mask}"),
        ),
        record(
            failures,
            format!(
                "(\n  sum by ({BY}) (rate({PROBE_TOTAL}{{result=\"{RESULT_FAILURE}\"}}[5m]))\n  or\n  0 * sum by ({BY}) (rate({PROBE_TOTAL}[5m]))\n)\n{mask}"
            ),
        ),
    ]
}

fn ratio(name: String, failures: &str, probes: &str, window: &str) -> Rule {
    let expr = if window == "5m" {
        format!("{failures}\n/\n{probes}")
    } else {
        format!("sum_over_time({failures}[{window}])\n/\nsum_over_time({probes}[{window}])")
    };
    record(&name, expr)
}

/// The recording rules, shared by all tiers.
pub fn recording_group() -> RuleGroup {
    let mut rules = Vec::new();
    rules.extend(masked_rates(
        SLA_IN_SERVICE_WINDOW,
        PROBES_IN_SERVICE_WINDOW,
        FAILURES_IN_SERVICE_WINDOW,
    ));
    rules.extend(masked_rates(
        SLA_IN_MONITORING_WINDOW,
        PROBES_IN_MONITORING_WINDOW,
        FAILURES_IN_MONITORING_WINDOW,
    ));
    for w in SLA_WINDOWS {
        rules.push(ratio(
            sla_error_ratio(w),
            FAILURES_IN_SERVICE_WINDOW,
            PROBES_IN_SERVICE_WINDOW,
            w,
        ));
    }
    for w in MONITORING_WINDOWS {
        rules.push(ratio(
            monitoring_error_ratio(w),
            FAILURES_IN_MONITORING_WINDOW,
            PROBES_IN_MONITORING_WINDOW,
            w,
        ));
    }
    RuleGroup {
        name: "regie-sla-recording".into(),
        rules,
    }
}

/// The error budget of a tier as a ratio: `1 − target/100`.
pub fn budget(tier: &Tier) -> Decimal {
    (Decimal::ONE_HUNDRED - tier.target) / Decimal::ONE_HUNDRED
}

/// The part of a week `windows` are open, 0 to 1 (4 decimals).
pub fn weekly_open_part(windows: &[Window]) -> Decimal {
    let minutes: u32 = windows.iter().map(Window::minutes_per_week).sum();
    (Decimal::from(minutes) / Decimal::from(7 * 1440))
        .min(Decimal::ONE)
        .round_dp(4)
}

/// The burn-rate conditions `pairs` on the error ratios `ratio` of the window `gauge`, open
/// `usual` of a week: the short window's ratio above `factor × budget`, and the long window's
/// above that divided by how open the long window was against `usual`, at most 1 (see the
/// module's description).
fn burn_expr(
    ratio: fn(&str) -> String,
    gauge: &str,
    usual: Decimal,
    sel: &str,
    budget: Decimal,
    pairs: &[Burn],
) -> String {
    let usual = if usual.is_zero() {
        Decimal::ONE
    } else {
        usual.normalize()
    };
    pairs
        .iter()
        .map(
            |Burn {
                 long,
                 short,
                 factor,
             }| {
                let threshold = (factor * budget).normalize();
                format!(
                    "  (\n    {}{sel}\n      > on ({BY}) ({threshold} / clamp_max(max by ({BY}) (avg_over_time({gauge}{sel}[{long}])) / {usual}, 1))\n    and\n    {}{sel} > {threshold}\n  )",
                    ratio(long),
                    ratio(short)
                )
            },
        )
        .collect::<Vec<_>>()
        .join("\n  or\n")
}

/// The alerting rules of one tier.
pub fn tier_group(tier: &Tier) -> RuleGroup {
    let name = &tier.name;
    let sel = format!("{{service_level=\"{name}\"}}");
    let budget = budget(tier);
    let who = "{{ $labels.tenant }}/{{ $labels.component }} ({{ $labels.service_level }})";
    let mut rules = Vec::new();
    if !tier.monitoring.is_empty() {
        let burn = burn_expr(
            monitoring_error_ratio,
            SLA_IN_MONITORING_WINDOW,
            weekly_open_part(&tier.monitoring),
            &sel,
            budget,
            &PAGE_BURN,
        );
        rules.push(alert(
            name,
            ALERT_FAST_BURN,
            format!(
                "(\n{burn}\n)\nand on ({BY})\n(max by ({BY}) ({SLA_IN_MONITORING_WINDOW}{sel}) == 1)"
            ),
            "2m",
            "page",
            format!("{who} is burning its error budget fast"),
            format!(
                "{{{{ $value | humanizePercentage }}}} of probes fail (error budget {}% of service-window time, target {}%). \
                 At this rate the month's budget is gone in days. Pages only inside the {name} \
                 monitoring window ({}).",
                (budget * Decimal::ONE_HUNDRED).normalize(),
                tier.target,
                tier.monitoring_label
            ),
        ));
    }
    // Every tier gets the ticket: the contract (service hours, target, credits) holds for bronze
    // too, and a steady burn is what eats its monthly budget. Only the page depends on a
    // monitoring window, which bronze does not have.
    rules.push(alert(
        name,
        ALERT_SLOW_BURN,
        format!(
            "(\n{}\n)",
            burn_expr(
                sla_error_ratio,
                SLA_IN_SERVICE_WINDOW,
                weekly_open_part(&tier.service_hours),
                &sel,
                budget,
                &TICKET_BURN
            )
        ),
        "15m",
        "ticket",
        format!("{who} is steadily burning its error budget"),
        format!(
            "{{{{ $value | humanizePercentage }}}} of probes in service hours fail; the month's \
             target of {}% will be missed if this goes on.",
            tier.target
        ),
    ));
    rules.push(alert(
        name,
        ALERT_BUDGET_EXHAUSTED,
        format!("max by ({BY}) ({SLA_ERROR_BUDGET_REMAINING_RATIO}{sel}) <= 0"),
        "5m",
        "ticket",
        format!("{who} has spent its error budget for the month"),
        format!(
            "The month-to-date availability is below the {name} target of {}%; a service credit \
             applies unless the month recovers. Budget left: {{{{ $value | humanizePercentage }}}}.",
            tier.target
        ),
    ));
    rules.push(alert(
        name,
        ALERT_NOT_PROBED,
        format!(
            "max by ({BY}) ({SLA_TARGET_PERCENT}{sel})\nunless on ({BY})\n(sum by ({BY}) (increase({PROBE_TOTAL}{sel}[15m])) > 0)"
        ),
        "10m",
        "ticket",
        format!("{who} is not being probed"),
        "No probe result in the last 15 minutes: the prober is not running or cannot keep up. \
         Compliance cannot be proven for this time. (A component whose target the probe policy \
         refuses goes Stalled and is not followed here: the operator's RegieStalledObjects \
         alert names it.)"
            .to_string(),
    ));
    RuleGroup {
        name: format!("regie-sla-{name}"),
        rules,
    }
}

/// Every rule for the given tiers (in rank order): the recording rules, then one group per tier.
pub fn rule_file(tiers: &[&Tier]) -> RuleFile {
    let mut tiers = tiers.to_vec();
    tiers.sort_by(|a, b| (a.rank, &a.name).cmp(&(b.rank, &b.name)));
    let mut groups = vec![recording_group()];
    groups.extend(tiers.iter().map(|t| tier_group(t)));
    RuleFile { groups }
}

/// The rules as a prometheus-operator `PrometheusRule`.
pub fn prometheus_rule(file: &RuleFile, name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "regie",
                "app.kubernetes.io/component": "sla",
                "app.kubernetes.io/managed-by": "regie",
            },
        },
        "spec": file,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tier::tests::{gold, level};

    #[test]
    fn gold_pages_and_tickets_with_its_budget() {
        let t = Tier::from_level(&gold()).unwrap();
        assert_eq!(budget(&t), "0.001".parse::<Decimal>().unwrap());
        let g = tier_group(&t);
        let names: Vec<_> = g
            .rules
            .iter()
            .map(|r| r.alert.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                ALERT_FAST_BURN,
                ALERT_SLOW_BURN,
                ALERT_BUDGET_EXHAUSTED,
                ALERT_NOT_PROBED
            ]
        );
        let page = &g.rules[0].expr;
        assert!(
            page.contains(
                "regie:monitoring_error:ratio_rate1h{service_level=\"gold\"}\n      > on (tenant, \
                 component, service_level) (0.0144 / clamp_max(max by (tenant, component, \
                 service_level) (avg_over_time(regie_sla_in_monitoring_window{service_level=\"gold\"}[1h])) \
                 / 1, 1))"
            ),
            "{page}"
        );
        assert!(
            page.contains("regie:monitoring_error:ratio_rate30m{service_level=\"gold\"} > 0.006"),
            "{page}"
        );
        assert!(
            page.contains("regie_sla_in_monitoring_window{service_level=\"gold\"}) == 1"),
            "{page}"
        );
        let ticket = &g.rules[1].expr;
        assert!(
            ticket.contains(
                "(0.003 / clamp_max(max by (tenant, component, service_level) \
                 (avg_over_time(regie_sla_in_service_window{service_level=\"gold\"}[1d])) / 0.5, 1))"
            ),
            "{ticket}"
        );
        assert!(
            ticket.contains("regie:sla_error:ratio_rate6h{service_level=\"gold\"} > 0.001"),
            "{ticket}"
        );
    }

    #[test]
    fn a_tier_without_monitoring_never_pages() {
        let bronze = level(
            "bronze",
            "  rank: 1\n  serviceHours: [\"Mon-Fri 08:00-17:00\"]\n  responseTimes: {urgent: 60m, other: 48h}\n  kpiReport: monthly\n  monitoring: none\n  availability: {target: \"99.0\"}\n  probe: {interval: 60s, timeout: 10s}\n  workload: {minReplicas: 1}\n",
        );
        let g = tier_group(&Tier::from_level(&bronze).unwrap());
        assert!(g.rules.iter().all(|r| r.labels["severity"] == "ticket"));
        let names: Vec<_> = g
            .rules
            .iter()
            .map(|r| r.alert.as_deref().unwrap())
            .collect();
        // No page, but the slow-burn ticket as for every tier (bronze's budget of 1%: 3% / 1%).
        assert_eq!(
            names,
            [ALERT_SLOW_BURN, ALERT_BUDGET_EXHAUSTED, ALERT_NOT_PROBED]
        );
        let ticket = &g.rules[0].expr;
        assert!(
            ticket.contains("regie:sla_error:ratio_rate2h{service_level=\"bronze\"} > 0.03"),
            "{ticket}"
        );
    }

    #[test]
    fn every_ratio_has_its_recording_rule() {
        let g = recording_group();
        let recorded: Vec<_> = g.rules.iter().map(|r| r.record.clone().unwrap()).collect();
        assert_eq!(recorded, recorded_names());
        for b in PAGE_BURN {
            assert!(recorded.contains(&monitoring_error_ratio(b.long)));
            assert!(recorded.contains(&monitoring_error_ratio(b.short)));
        }
        for b in TICKET_BURN {
            assert!(recorded.contains(&sla_error_ratio(b.long)));
            assert!(recorded.contains(&sla_error_ratio(b.short)));
        }
        assert_eq!(PAGE_BURN[0].factor.to_string(), "14.4");
        assert_eq!(TICKET_BURN[1].factor.to_string(), "1.0");
    }
}

//! The generated Prometheus rules, checked and unit-tested by the real `promtool` (Debian package
//! `prometheus`): `regie rules` for the examples, as a rules file and as a PrometheusRule, passes
//! `promtool check rules --lint-fatal`; and `promtool test rules` shows that a gold component
//! failing at night pages, a silver one failing at night does not but does in working hours, a
//! silver one does not page once its monitoring window closes (a ticket instead), bronze never
//! pages but gets the slow-burn ticket and one when its budget is spent, and an unprobed
//! component gets a ticket; and that a window opening after a closed spell neither counts what
//! failed before it nor takes one failed probe for a burn.
//!
//! The window gauges fed to promtool are computed by the real service-window calendar for real
//! instants (Tuesday 3 March 2026, 02:00 and 10:00 in Amsterdam), so the test also pins what the
//! prober exports at those moments. Without promtool the test fails: CI installs it first.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regie::inventory::Inventory;
use regie::sla::calendar::{in_monitoring_window, in_service_hours};
use regie::sla::rules::{
    self, ALERT_BUDGET_EXHAUSTED, ALERT_FAST_BURN, ALERT_NOT_PROBED, ALERT_SLOW_BURN,
};
use regie::tier::Tier;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn examples() -> Vec<PathBuf> {
    vec![
        root().join("examples/catalogue"),
        root().join("examples/tenants"),
    ]
}

fn tiers() -> BTreeMap<String, Tier> {
    let loaded = regie::input::load(&examples());
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    Inventory::new(loaded.objects).tiers()
}

fn regie_rules(format: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regie"));
    cmd.arg("rules").args(examples()).args(["-o", format]);
    let out = cmd.output().expect("regie runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn promtool(dir: &Path, args: &[&str]) -> Output {
    Command::new("promtool")
        .current_dir(dir)
        .args(args)
        .output()
        .expect(
            "promtool must be installed (Debian package prometheus; e2e/install-deps installs it)",
        )
}

fn check(out: &Output) {
    assert!(
        out.status.success(),
        "promtool failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_the_rules_file_and_the_prometheusrule() {
    let dir = tempfile::tempdir().unwrap();
    let plain = regie_rules("rules");
    std::fs::write(dir.path().join("rules.yaml"), &plain).unwrap();
    check(&promtool(
        dir.path(),
        &["check", "rules", "--lint-fatal", "rules.yaml"],
    ));

    let pr: serde_yaml::Value = serde_yaml::from_str(&regie_rules("prometheusrule")).unwrap();
    assert_eq!(pr["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(pr["kind"], "PrometheusRule");
    assert_eq!(pr["metadata"]["name"], "regie-sla");
    let spec = serde_yaml::to_string(&pr["spec"]).unwrap();
    std::fs::write(dir.path().join("spec.yaml"), &spec).unwrap();
    check(&promtool(
        dir.path(),
        &["check", "rules", "--lint-fatal", "spec.yaml"],
    ));
    let plain: serde_yaml::Value = serde_yaml::from_str(&plain).unwrap();
    assert_eq!(
        plain, pr["spec"],
        "the PrometheusRule carries the same groups"
    );

    let groups: Vec<&str> = plain["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [
            "regie-sla-recording",
            "regie-sla-bronze",
            "regie-sla-silver",
            "regie-sla-gold"
        ]
    );
}

/// Runs `promtool test rules` on the unit-test file `t` against `regie rules` for the examples.
fn promtool_test_rules(t: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), regie_rules("rules")).unwrap();
    std::fs::write(dir.path().join("test.yaml"), t).unwrap();
    let out = promtool(dir.path(), &["test", "rules", "test.yaml"]);
    // The four-day series are long: the file is shown only when it is short enough to read.
    let shown = if t.len() < 100_000 {
        t
    } else {
        "(too long to show)"
    };
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}\n{}\n--- test.yaml ---\n{shown}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One component in the promtool scenario.
struct Scenario {
    tenant: &'static str,
    component: &'static str,
    level: &'static str,
    /// Failed probes per minute (all probes fail); None: no probe series at all.
    failures_per_minute: Option<u32>,
    in_service: String,
    in_monitoring: String,
    budget_left: &'static str,
}

fn gauge(open: bool) -> String {
    format!("{}x180", u8::from(open))
}

fn series(out: &mut String, name: &str, s: &Scenario, extra: &str, values: &str) {
    let _ = writeln!(
        out,
        "      - series: '{name}{{job=\"regie\",instance=\"regie-0:9090\",tenant=\"{}\",component=\"{}\",service_level=\"{}\"{extra}}}'\n        values: '{values}'",
        s.tenant, s.component, s.level
    );
}

/// The expected alert of a scenario: labels, and the rule's annotations with the templates
/// filled in as Prometheus does.
fn expected(
    out: &mut String,
    tiers: &BTreeMap<String, Tier>,
    alert: &str,
    s: &Scenario,
    value: &str,
) {
    let group = rules::tier_group(&tiers[s.level]);
    let rule = group
        .rules
        .iter()
        .find(|r| r.alert.as_deref() == Some(alert))
        .unwrap();
    let fill = |t: &str| {
        t.replace("{{ $labels.tenant }}", s.tenant)
            .replace("{{ $labels.component }}", s.component)
            .replace("{{ $labels.service_level }}", s.level)
            .replace("{{ $value | humanizePercentage }}", value)
            .replace('\'', "''")
    };
    let _ = writeln!(
        out,
        "          - exp_labels: {{severity: {}, tenant: {}, component: {}, service_level: {}}}\n            exp_annotations:\n              summary: '{}'\n              description: '{}'",
        rule.labels["severity"],
        s.tenant,
        s.component,
        s.level,
        fill(&rule.annotations["summary"]),
        fill(&rule.annotations["description"]),
    );
}

#[test]
fn promtool_unit_tests_page_only_inside_monitoring_windows() {
    let tiers = tiers();
    let night: jiff::Timestamp = "2026-03-03T01:00:00Z".parse().unwrap(); // Tue 02:00 CET
    let day: jiff::Timestamp = "2026-03-03T09:00:00Z".parse().unwrap(); // Tue 10:00 CET
    let (gold, silver, bronze) = (&tiers["gold"], &tiers["silver"], &tiers["bronze"]);
    // What the prober exports at those instants, from the calendar itself.
    assert!(!in_service_hours(gold, night) && in_monitoring_window(gold, night));
    assert!(!in_service_hours(silver, night) && !in_monitoring_window(silver, night));
    assert!(in_service_hours(silver, day) && in_monitoring_window(silver, day));
    assert!(in_service_hours(bronze, day) && !in_monitoring_window(bronze, day));

    let scenarios = [
        Scenario {
            tenant: "werkplein",
            component: "client-portal",
            level: "gold",
            failures_per_minute: Some(6),
            in_service: gauge(in_service_hours(gold, night)),
            in_monitoring: gauge(in_monitoring_window(gold, night)),
            budget_left: "1",
        },
        Scenario {
            tenant: "roosendaal",
            component: "zaaksysteem",
            level: "silver",
            failures_per_minute: Some(2),
            in_service: gauge(in_service_hours(silver, night)),
            in_monitoring: gauge(in_monitoring_window(silver, night)),
            budget_left: "1",
        },
        Scenario {
            tenant: "moerdijk",
            component: "zaaksysteem",
            level: "silver",
            failures_per_minute: Some(2),
            in_service: gauge(in_service_hours(silver, day)),
            in_monitoring: gauge(in_monitoring_window(silver, day)),
            budget_left: "1",
        },
        // Silver between 19:00 and 22:00: service hours go on, the monitoring window closed at
        // the end of the first hour of the test.
        Scenario {
            tenant: "roosendaal",
            component: "burgerzaken",
            level: "silver",
            failures_per_minute: Some(2),
            in_service: "1x180".into(),
            in_monitoring: "1x60 0x120".into(),
            budget_left: "1",
        },
        Scenario {
            tenant: "tholen",
            component: "website",
            level: "bronze",
            failures_per_minute: Some(1),
            in_service: gauge(in_service_hours(bronze, day)),
            in_monitoring: gauge(in_monitoring_window(bronze, day)),
            budget_left: "-0.2",
        },
        Scenario {
            tenant: "werkplein",
            component: "matching",
            level: "silver",
            failures_per_minute: None,
            in_service: gauge(true),
            in_monitoring: gauge(true),
            budget_left: "1",
        },
    ];
    let mut t = String::from(
        "rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for s in &scenarios {
        if let Some(f) = s.failures_per_minute {
            series(
                &mut t,
                "regie_probe_total",
                s,
                ",result=\"failure\"",
                &format!("0+{f}x180"),
            );
            series(
                &mut t,
                "regie_probe_total",
                s,
                ",result=\"success\"",
                "0+0x180",
            );
            series(&mut t, "regie_probe_success", s, "", "0x180");
        }
        series(&mut t, "regie_sla_in_service_window", s, "", &s.in_service);
        series(
            &mut t,
            "regie_sla_in_monitoring_window",
            s,
            "",
            &s.in_monitoring,
        );
        let target = tiers[s.level].target;
        series(
            &mut t,
            "regie_sla_target_percent",
            s,
            "",
            &format!("{target}x180"),
        );
        series(
            &mut t,
            "regie_sla_error_budget_remaining_ratio",
            s,
            "",
            &format!("{}x180", s.budget_left),
        );
    }
    t.push_str("    alert_rule_test:\n");
    let [
        gold_night,
        silver_night,
        silver_day,
        silver_evening,
        bronze_day,
        unprobed,
    ] = &scenarios;
    let _ = silver_night; // expected nowhere: it must not page, nor ticket (no service hours)
    // The page: gold at night and silver in working hours; nobody else.
    t.push_str(&format!(
        "      - eval_time: 70m\n        alertname: {ALERT_FAST_BURN}\n        exp_alerts:\n"
    ));
    expected(&mut t, &tiers, ALERT_FAST_BURN, silver_day, "100%");
    expected(&mut t, &tiers, ALERT_FAST_BURN, gold_night, "100%");
    // The first failures are seen at 1m; the `for` of 2 minutes holds the page back until 3m.
    t.push_str(&format!(
        "      - eval_time: 2m\n        alertname: {ALERT_FAST_BURN}\n        exp_alerts: []\n"
    ));
    // Tickets for failures inside service hours (not at night), bronze's too: it has no page, but
    // its monthly target and credits hold all the same.
    t.push_str(&format!(
        "      - eval_time: 70m\n        alertname: {ALERT_SLOW_BURN}\n        exp_alerts:\n"
    ));
    expected(&mut t, &tiers, ALERT_SLOW_BURN, silver_day, "100%");
    expected(&mut t, &tiers, ALERT_SLOW_BURN, silver_evening, "100%");
    expected(&mut t, &tiers, ALERT_SLOW_BURN, bronze_day, "100%");
    t.push_str(&format!(
        "      - eval_time: 70m\n        alertname: {ALERT_BUDGET_EXHAUSTED}\n        exp_alerts:\n"
    ));
    expected(&mut t, &tiers, ALERT_BUDGET_EXHAUSTED, bronze_day, "-20%");
    t.push_str(&format!(
        "      - eval_time: 70m\n        alertname: {ALERT_NOT_PROBED}\n        exp_alerts:\n"
    ));
    expected(&mut t, &tiers, ALERT_NOT_PROBED, unprobed, "");
    // The recorded error ratios: only probes inside the window count.
    t.push_str("    promql_expr_test:\n");
    t.push_str("      - expr: regie:sla_error:ratio_rate1h{tenant=\"moerdijk\"}\n        eval_time: 70m\n        exp_samples:\n          - labels: 'regie:sla_error:ratio_rate1h{tenant=\"moerdijk\",component=\"zaaksysteem\",service_level=\"silver\"}'\n            value: 1\n");
    t.push_str("      - expr: regie:probes_in_service_window:rate5m{tenant=\"werkplein\"}\n        eval_time: 70m\n        exp_samples:\n          - labels: 'regie:probes_in_service_window:rate5m{tenant=\"werkplein\",component=\"client-portal\",service_level=\"gold\"}'\n            value: 0\n");
    t.push_str("      - expr: regie:probe_failures_in_monitoring_window:rate5m{tenant=\"werkplein\"}\n        eval_time: 70m\n        exp_samples:\n          - labels: 'regie:probe_failures_in_monitoring_window:rate5m{tenant=\"werkplein\",component=\"client-portal\",service_level=\"gold\"}'\n            value: 0.1\n");

    promtool_test_rules(&t);
}

/// A window that opens after a long closed spell (a night, a weekend): what happened before it
/// opened does not count, nor does one failed probe in its first minutes pass for a burn, while
/// an outage from the opening still pages within minutes. Series of one sample a minute; both
/// window gauges open at minute 1000.
#[test]
fn promtool_unit_tests_a_window_opening_neither_counts_the_night_nor_pages_on_one_failure() {
    let tiers = tiers();
    let open = "0x999 1x100";
    // tenant, component, level, failures, successes, service gauge, monitoring gauge
    let scenarios: [(&str, &str, &str, &str, &str, &str, &str); 4] = [
        // Down all night (two probes a minute, every one failing), up from the opening.
        (
            "night",
            "web",
            "silver",
            "0+2x999 1998x100",
            "0x999 0+2x100",
            open,
            open,
        ),
        // One failed probe at minute 1006, six minutes after the opening.
        (
            "blip",
            "web",
            "silver",
            "0x1005 1x94",
            "0+2x1005 2011+2x94",
            open,
            open,
        ),
        // Down from the opening on.
        (
            "outage",
            "web",
            "silver",
            "0x999 0+2x100",
            "0+2x999 1998x100",
            open,
            open,
        ),
        // Bronze (one probe a minute, no monitoring window): one failed probe at minute 1003.
        (
            "bronze-blip",
            "web",
            "bronze",
            "0x1002 1x97",
            "0+1x1002 1002+1x97",
            open,
            "0x1100",
        ),
    ];
    let mut t = String::from(
        "rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (tenant, component, level, failures, successes, service, monitoring) in scenarios {
        let labels = format!(
            "job=\"regie\",instance=\"regie-0:9090\",tenant=\"{tenant}\",component=\"{component}\",service_level=\"{level}\""
        );
        let target = tiers[level].target;
        for (name, extra, values) in [
            (
                "regie_probe_total",
                ",result=\"failure\"",
                failures.to_string(),
            ),
            (
                "regie_probe_total",
                ",result=\"success\"",
                successes.to_string(),
            ),
            ("regie_sla_in_service_window", "", service.to_string()),
            ("regie_sla_in_monitoring_window", "", monitoring.to_string()),
            ("regie_sla_target_percent", "", format!("{target}x1100")),
            (
                "regie_sla_error_budget_remaining_ratio",
                "",
                "1x1100".to_string(),
            ),
        ] {
            let _ = writeln!(
                t,
                "      - series: '{name}{{{labels}{extra}}}'\n        values: '{values}'"
            );
        }
    }
    t.push_str("    alert_rule_test:\n");
    // Only the outage pages (its first five in-window minutes at 1005, then the `for` of 2m).
    let outage = Scenario {
        tenant: "outage",
        component: "web",
        level: "silver",
        failures_per_minute: None,
        in_service: String::new(),
        in_monitoring: String::new(),
        budget_left: "1",
    };
    // At each minute: the alert, and whether the outage (and it alone) has it.
    let checks = [
        (ALERT_FAST_BURN, 1004, false),
        (ALERT_FAST_BURN, 1008, true),
        (ALERT_FAST_BURN, 1012, true),
        (ALERT_FAST_BURN, 1016, true),
        // The ticket's `for` is 15m: the outage's comes at 1020, nobody else's.
        (ALERT_SLOW_BURN, 1010, false),
        (ALERT_SLOW_BURN, 1030, true),
    ];
    for (alert, minute, outage_has_it) in checks {
        let _ = write!(
            t,
            "      - eval_time: {minute}m\n        alertname: {alert}\n        exp_alerts:"
        );
        if outage_has_it {
            t.push('\n');
            expected(&mut t, &tiers, alert, &outage, "100%");
        } else {
            t.push_str(" []\n");
        }
    }
    // The night's failures are not in the first rates after the opening.
    t.push_str("    promql_expr_test:\n");
    t.push_str("      - expr: regie:probe_failures_in_service_window:rate5m{tenant=\"night\"}\n        eval_time: 1003m\n        exp_samples:\n          - labels: 'regie:probe_failures_in_service_window:rate5m{tenant=\"night\",component=\"web\",service_level=\"silver\"}'\n            value: 0\n");

    promtool_test_rules(&t);
}

/// A steady burn through ordinary weeks still gets its ticket: bronze (Mon-Fri 08:00-17:00, one
/// probe a minute) failing one probe in forty (2.5%, above its 1% budget) inside service hours,
/// day after day. A 3-day window is never open for more than 9 of every 24 hours; it is as open
/// as a bronze week usually is, so the plain 1× threshold holds.
#[test]
fn promtool_unit_tests_a_steady_burn_over_office_days_gets_its_ticket() {
    let days = 4;
    let minutes = days * 1440;
    let open = |m: usize| (480..1020).contains(&(m % 1440));
    let (mut gauge, mut failures, mut successes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut failed, mut succeeded, mut probes) = (0, 0, 0);
    for m in 0..minutes {
        if open(m) {
            probes += 1;
            if probes % 40 == 0 {
                failed += 1;
            } else {
                succeeded += 1;
            }
        } else {
            // The prober probes around the clock; only the window's probes count.
            succeeded += 1;
        }
        gauge.push(u8::from(open(m)).to_string());
        failures.push(failed.to_string());
        successes.push(succeeded.to_string());
    }
    let labels = "job=\"regie\",instance=\"regie-0:9090\",tenant=\"steady\",component=\"web\",service_level=\"bronze\"";
    let mut t = String::from(
        "rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (name, extra, values) in [
        (
            "regie_probe_total",
            ",result=\"failure\"",
            failures.join(" "),
        ),
        (
            "regie_probe_total",
            ",result=\"success\"",
            successes.join(" "),
        ),
        ("regie_sla_in_service_window", "", gauge.join(" ")),
        ("regie_sla_in_monitoring_window", "", format!("0x{minutes}")),
        ("regie_sla_target_percent", "", format!("99.0x{minutes}")),
        (
            "regie_sla_error_budget_remaining_ratio",
            "",
            format!("1x{minutes}"),
        ),
    ] {
        let _ = writeln!(
            t,
            "      - series: '{name}{{{labels}{extra}}}'\n        values: '{values}'"
        );
    }
    // Day four, 14:00: firing.
    let at = 3 * 1440 + 840;
    let _ = writeln!(
        t,
        "    promql_expr_test:\n      - expr: count(ALERTS{{alertname=\"{ALERT_SLOW_BURN}\",alertstate=\"firing\",tenant=\"steady\"}})\n        eval_time: {at}m\n        exp_samples:\n          - value: 1"
    );
    promtool_test_rules(&t);
}

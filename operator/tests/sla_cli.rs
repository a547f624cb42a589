//! `regie sla` end to end on the examples and a committed samples fixture: the exact JSON and
//! Markdown, and clear errors with exit code 1 for bad samples and bad YAML.
//!
//! The fixture exercises, for March 2026 in Europe/Amsterdam: unsorted rows and an extra column,
//! an outage carried over from February, incidents outside service hours, an incident across the
//! spring-forward night, office hours after the change to summer time, a breach with the 5%
//! credit and one with the 10% credit, a last sample that covers one probe interval, and one cut
//! at the period's end.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sla")
        .join(name)
}

fn regie(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regie"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("regie runs")
}

fn sla(samples: &Path, extra: &[&str]) -> Output {
    let samples = samples.to_str().unwrap();
    let mut args = vec![
        "sla",
        "examples/catalogue",
        "examples/tenants",
        "--samples",
        samples,
    ];
    args.extend_from_slice(extra);
    regie(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn sla_json_matches_the_fixture_exactly() {
    let out = sla(&fixture("samples-2026-03.csv"), &["--period", "2026-03"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = String::from_utf8(out.stdout).unwrap();
    let want = std::fs::read_to_string(fixture("expected-2026-03.json")).unwrap();
    assert_eq!(got, want);
    // And the figures that matter, spelled out.
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    let row = |t: &str, c: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tenant"] == t && r["component"] == c)
            .unwrap()
            .clone()
    };
    assert_eq!(
        v["results"].as_array().unwrap().len(),
        12,
        "every component of every tenant"
    );
    let gw = row("roosendaal", "api-gateway");
    assert_eq!(
        (gw["serviceLevel"].as_str(), gw["windowSeconds"].as_i64()),
        (Some("gold"), Some(26 * 14 * 3600))
    );
    assert_eq!(
        (
            gw["downSeconds"].as_i64(),
            gw["met"].as_bool(),
            gw["creditPercent"].as_i64()
        ),
        (Some(3600), Some(false), Some(5))
    );
    assert_eq!(row("tholen", "website")["creditPercent"], 10);
    assert_eq!(row("tholen", "website")["availability"], "96.969");
    assert_eq!(
        row("etten-leur", "gis-viewer")["downSeconds"],
        3600,
        "08:00-09:00 CEST"
    );
    assert_eq!(
        row("werkplein", "client-portal")["downSeconds"],
        60,
        "carried over from February"
    );
    assert_eq!(
        row("werkplein", "matching")["downSeconds"],
        15,
        "the last sample covers one interval"
    );
    assert_eq!(row("moerdijk", "website")["availability"], "100");
    assert_eq!(row("moerdijk", "website")["target"], "99.5");
}

#[test]
fn sla_markdown_matches_the_fixture_exactly() {
    let out = sla(
        &fixture("samples-2026-03.csv"),
        &["--period", "2026-03", "-o", "markdown"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let got = String::from_utf8(out.stdout).unwrap();
    let want = std::fs::read_to_string(fixture("expected-2026-03.md")).unwrap();
    assert_eq!(got, want);
    assert!(got.contains(
        "| 2026-03-28 21:00:00 CET | 2026-03-29 04:00:00 CEST | 6h 00m 00s | 1h 00m 00s |"
    ));
}

#[test]
fn a_month_without_samples_is_fully_available() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("empty.csv");
    std::fs::write(&f, "time,tenant,component,success\n").unwrap();
    let out = sla(&f, &["--period", "2026-04"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["results"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r["availability"] == "100" && r["downSeconds"] == 0 && r["met"] == true)
    );
    // April 2026: 22 weekdays minus Good Friday, Easter Monday and King's Day for bronze.
    let bronze = rows.iter().find(|r| r["serviceLevel"] == "bronze").unwrap();
    assert_eq!(bronze["windowSeconds"], 19 * 9 * 3600);
}

#[test]
fn bad_samples_name_the_file_and_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.csv");
    std::fs::write(
        &f,
        "time,tenant,component,success\n2026-03-02T08:00:00Z,tholen,website,true\n2026-03-02T08:01:00Z,tholen,intranet,true\n2026-03-02 08:02,tholen,website,true\n",
    )
    .unwrap();
    let out = sla(&f, &["--period", "2026-03"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    let name = f.display().to_string();
    assert!(
        err.contains(&format!("{name}:3: tenant \"tholen\" has no HostingComponent \"intranet\" (it has: document-archive, website)")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{name}:4: time \"2026-03-02 08:02\" is not an RFC 3339 time"
        )),
        "{err}"
    );

    std::fs::write(&f, "timestamp,tenant,component,ok\n").unwrap();
    let out = sla(&f, &["--period", "2026-03"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(":1: header \"timestamp,tenant,component,ok\" lacks time, success"),
        "{}",
        stderr(&out)
    );

    let out = sla(&dir.path().join("missing.csv"), &["--period", "2026-03"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("missing.csv: cannot read"),
        "{}",
        stderr(&out)
    );

    let out = sla(&fixture("samples-2026-03.csv"), &["--period", "2026-13"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--period: period \"2026-13\": month 13 is not 01 to 12"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn invalid_yaml_prints_the_problems_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.yaml"),
        "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: x}\nspec: {displayName: X, serviceLevel: platinum}\n",
    )
    .unwrap();
    let samples = fixture("samples-2026-03.csv");
    let out = regie(&[
        "sla",
        "examples/catalogue",
        dir.path().to_str().unwrap(),
        "--samples",
        samples.to_str().unwrap(),
        "--period",
        "2026-03",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("t.yaml: Tenant/x: "),
        "{}",
        stderr(&out)
    );
}

/// An `SlaReport` as `kubectl get slareport NAME -o yaml` prints it (the fields regie reads).
fn stored_report(name: &str, period: &str, from: &str, to: &str, final_: bool) -> String {
    let condition = if final_ {
        "{type: Final, status: \"True\", reason: PeriodClosed, message: final, lastTransitionTime: \"2026-03-31T22:00:00Z\"}"
    } else {
        "{type: Final, status: \"False\", reason: PeriodOpen, message: open, lastTransitionTime: \"2026-03-01T23:00:00Z\"}"
    };
    format!(
        r#"apiVersion: regie.dev/v1alpha1
kind: SlaReport
metadata:
  name: {name}
  resourceVersion: "42"
spec:
  tenant: tholen
  period: "{period}"
  from: "{from}"
  to: "{to}"
status:
  conditions: [{condition}]
  measuredUntil: "2026-03-02T10:00:00Z"
  met: false
  worstAvailability: "98.5"
  components:
    - component: website
      serviceLevel: bronze
      windowSeconds: 712800
      downSeconds: 10692
      availability: "98.5"
      target: "99.0"
      met: false
      creditPercent: 5
      incidents:
        - {{start: "2026-03-02T07:00:00Z", end: "2026-03-02T09:58:12Z", durationSeconds: 10692, inServiceHoursSeconds: 10692, inServiceHours: true}}
      lastSample: {{time: "2026-03-02T09:59:00Z", success: true}}
"#
    )
}

#[test]
fn stored_reports_render_as_the_same_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let month = dir.path().join("month.yaml");
    std::fs::write(
        &month,
        stored_report(
            "tholen-2026-03",
            "2026-03",
            "2026-02-28T23:00:00Z",
            "2026-03-31T22:00:00Z",
            true,
        ),
    )
    .unwrap();
    let out = regie(&["sla", month.to_str().unwrap(), "-o", "markdown"]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(md.starts_with("# SLA report 2026-03\n"), "{md}");
    assert!(md.contains("these figures are final"), "{md}");
    assert!(
        md.contains("| website | bronze | 98.5% | 99.0% | **no** | 5% | 1 |"),
        "{md}"
    );
    assert!(
        md.contains(
            "| 2026-03-02 08:00:00 CET | 2026-03-02 10:58:12 CET | 2h 58m 12s | 2h 58m 12s |"
        ),
        "{md}"
    );
    let out = regie(&["sla", month.to_str().unwrap()]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["period"], "2026-03");
    assert_eq!(json["results"][0]["creditPercent"], 5);

    // A day's report still open: measured so far, and no credits.
    let day = dir.path().join("day.yaml");
    std::fs::write(
        &day,
        stored_report(
            "tholen-2026-03-02",
            "2026-03-02",
            "2026-03-01T23:00:00Z",
            "2026-03-02T23:00:00Z",
            false,
        )
        .replace("creditPercent: 5", "creditPercent: 0"),
    )
    .unwrap();
    let both = dir.path().to_str().unwrap();
    let out = regie(&["sla", both, "-o", "markdown"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("several periods (2026-03, 2026-03-02); choose one with --period"),
        "{}",
        stderr(&out)
    );
    let out = regie(&["sla", both, "--period", "2026-03-02", "-o", "markdown"]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        md.contains("Measured up to 2026-03-02 11:00:00 CET; the figures are not final"),
        "{md}"
    );
    assert!(
        md.contains("Service credits are settled per calendar month"),
        "{md}"
    );
}

#[test]
fn bad_stored_reports_and_missing_arguments_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        stored_report(
            "tholen-2026-03",
            "2026-03",
            "last march",
            "2026-03-31T22:00:00Z",
            true,
        ),
    )
    .unwrap();
    let out = regie(&["sla", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "bad.yaml: SlaReport/tholen-2026-03: spec.from: \"last march\" is not an RFC 3339 time"
        ),
        "{}",
        stderr(&out)
    );
    let out = regie(&["sla", "examples/catalogue"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no --samples given and no SlaReport in the inputs"),
        "{}",
        stderr(&out)
    );
    let samples = fixture("samples-2026-03.csv");
    let out = regie(&[
        "sla",
        "examples/catalogue",
        "--samples",
        samples.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--period is required with --samples"),
        "{}",
        stderr(&out)
    );
}

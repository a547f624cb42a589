//! The committed Grafana dashboards (`charts/regie/dashboards/*.json`): valid JSON with the
//! fields Grafana needs, every query using only metrics regie exports (the pinned names in
//! `regie::sla`) or records (`regie::sla::rules`), and every query valid PromQL — checked by the
//! real `promtool` on a rules file made of the dashboards' expressions (with Grafana's variables
//! filled in). Without promtool the test fails: CI installs it first.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/regie/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (p, v)
        })
        .collect()
}

/// Every PromQL expression of a dashboard: panel targets and `label_values` variable queries.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(e)) = m.get("expr") {
                out.push(e.clone());
            }
            if let Some(Value::String(d)) = m.get("definition")
                && let Some(inner) = d.strip_prefix("label_values(")
            {
                // label_values(SELECTOR, label): keep the selector.
                let sel = inner.rsplit_once(',').map_or(inner, |(s, _)| s);
                out.push(sel.to_string());
            }
            m.values().for_each(|x| exprs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

/// Grafana's variables replaced by values promtool accepts.
fn fill(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$tenant", ".*")
        .replace("$service_level", ".*")
        .replace("$component", ".*")
}

/// Removes every `(...)` group that directly follows one of `words` (e.g. `by (tenant)`).
fn drop_groups(s: &str, words: &[&str]) -> String {
    let mut out = String::new();
    let mut rest = s;
    'outer: while !rest.is_empty() {
        for w in words {
            if let Some(after) = rest.strip_prefix(w) {
                let boundary = out
                    .chars()
                    .last()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
                let trimmed = after.trim_start();
                if boundary && trimmed.starts_with('(') {
                    let close = trimmed.find(')').unwrap();
                    rest = &trimmed[close + 1..];
                    out.push(' ');
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The metric names an expression selects: identifiers that are not functions, keywords,
/// label names (inside braces or grouping clauses), strings, durations or numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut s = String::new();
    let (mut in_braces, mut in_brackets, mut in_string) = (false, false, false);
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => in_braces = true,
            '}' => in_braces = false,
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            _ if in_braces || in_brackets => {}
            _ => s.push(c),
        }
    }
    let s = drop_groups(
        &s,
        &[
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ],
    );
    let keywords = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
    let mut names = BTreeSet::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if next != Some(&'(') && !keywords.contains(&word.to_lowercase().as_str()) {
                names.insert(word);
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

fn allowed() -> BTreeSet<String> {
    let mut a: BTreeSet<String> = regie::sla::METRICS.iter().map(|m| m.to_string()).collect();
    for suffix in ["_bucket", "_sum", "_count"] {
        a.insert(format!("{}{suffix}", regie::sla::PROBE_DURATION_SECONDS));
    }
    a.extend(regie::sla::rules::recorded_names());
    a
}

#[test]
fn the_four_dashboards_exist_and_are_complete() {
    let boards = dashboards();
    let uids: Vec<&str> = boards
        .iter()
        .map(|(_, v)| v["uid"].as_str().unwrap())
        .collect();
    assert_eq!(
        uids,
        [
            "regie-probe-latency",
            "regie-sla-compliance",
            "regie-sla-error-budget",
            "regie-sla-incidents"
        ]
    );
    for (path, v) in &boards {
        let name = path.display();
        assert!(
            v["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("regie / ")),
            "{name}: title"
        );
        assert!(
            v["schemaVersion"].as_i64().unwrap() >= 36,
            "{name}: schemaVersion"
        );
        let vars: Vec<&str> = v["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert!(
            vars.starts_with(&["datasource", "tenant", "service_level"]),
            "{name}: {vars:?}"
        );
        let panels = v["panels"].as_array().unwrap();
        assert!(
            panels.iter().filter(|p| p["type"] != "row").count() >= 4,
            "{name}: panels"
        );
        let mut ids = BTreeSet::new();
        for p in panels {
            assert!(
                ids.insert(p["id"].as_i64().unwrap()),
                "{name}: duplicate panel id"
            );
            assert!(
                p["gridPos"]["w"].as_i64().unwrap() <= 24,
                "{name}: panel wider than the grid"
            );
            if p["type"] != "row" {
                assert!(
                    p["title"].as_str().is_some_and(|t| !t.is_empty()),
                    "{name}: untitled panel"
                );
                assert_eq!(
                    p["datasource"]["uid"], "${datasource}",
                    "{name}: {}",
                    p["title"]
                );
                assert!(
                    !p["targets"].as_array().unwrap().is_empty(),
                    "{name}: {} has no query",
                    p["title"]
                );
            }
        }
    }
}

#[test]
fn dashboards_use_only_the_pinned_metrics() {
    let allowed = allowed();
    let mut used = BTreeSet::new();
    for (path, v) in dashboards() {
        let mut list = Vec::new();
        exprs(&v, &mut list);
        assert!(!list.is_empty(), "{}: no queries", path.display());
        for e in &list {
            let names = metric_names(&fill(e));
            assert!(!names.is_empty(), "{}: no metric in {e}", path.display());
            for n in names {
                assert!(
                    allowed.contains(&n),
                    "{}: {n} is not a metric regie exports or records (in {e})",
                    path.display()
                );
                used.insert(n);
            }
        }
    }
    // Every exported metric shows up somewhere.
    for m in regie::sla::METRICS {
        let hit = used
            .iter()
            .any(|u| u == m || u.starts_with(&format!("{m}_")));
        assert!(hit, "no dashboard shows {m}");
    }
}

#[test]
fn the_extractor_finds_metrics_and_skips_the_rest() {
    let got = metric_names(&fill(
        "sum by (tenant, le) (rate(regie_probe_duration_seconds_bucket{tenant=~\"$tenant\"}[5m])) / on (tenant) group_left () regie:sla_error:ratio_rate1h or vector(0) > bool 1e3",
    ));
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        [
            "regie:sla_error:ratio_rate1h",
            "regie_probe_duration_seconds_bucket"
        ]
    );
}

#[test]
fn promtool_parses_every_dashboard_query() {
    let mut rules = String::from("groups:\n- name: dashboards\n  rules:\n");
    for (_, v) in dashboards() {
        let mut list = Vec::new();
        exprs(&v, &mut list);
        for (k, e) in list.iter().enumerate() {
            let e = serde_json::to_string(&fill(e)).unwrap();
            rules.push_str(&format!("  - record: dashboard:query:{k}\n    expr: {e}\n"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("queries.yaml"), &rules).unwrap();
    let out = Command::new("promtool")
        .current_dir(dir.path())
        .args(["check", "rules", "queries.yaml"])
        .output()
        .expect(
            "promtool must be installed (Debian package prometheus; e2e/install-deps installs it)",
        );
    assert!(
        out.status.success(),
        "{}\n{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

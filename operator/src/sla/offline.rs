//! Compliance from recorded probe samples, as `regie sla` computes it: reading the samples CSV
//! against the inventory, and building the report for a period with the same functions the
//! operator uses ([`down_intervals`] feeds [`RunState`](super::compliance::RunState), then
//! [`compliance_in`]).
//!
//! The CSV has a header naming at least `time`, `tenant`, `component` and `success` (in any
//! order; further columns such as `latencyMs` are ignored); `time` is RFC 3339 and `success` is
//! `true` or `false`. Rows need not be sorted. Every bad row is reported with its line number.

use std::collections::BTreeMap;
use std::io::Read;

use jiff::Timestamp;
use kube::ResourceExt;

use super::calendar::{self, Interval, Period};
use super::compliance::{Sample, compliance_in, down_intervals};
use super::report::{ComponentReport, Report, TenantReport};
use crate::desired::component_level;
use crate::inventory::Inventory;
use crate::tier::Tier;

/// Samples per (tenant, component).
pub type Samples = BTreeMap<(String, String), Vec<Sample>>;

const COLUMNS: [&str; 4] = ["time", "tenant", "component", "success"];

/// At most this many bad rows are reported; the rest are counted.
const MAX_ERRORS: usize = 20;

/// Reads a samples CSV. `file` names the input in messages (`FILE:LINE: message`). Every
/// (tenant, component) must exist in `inv`; errors list the known names.
pub fn read_samples(file: &str, input: impl Read, inv: &Inventory) -> Result<Samples, Vec<String>> {
    let mut known: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &inv.tenants {
        let comps = inv
            .components_of(&t.object)
            .iter()
            .map(|c| c.name_any())
            .collect();
        known.insert(t.object.name_any(), comps);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| vec![format!("{file}:1: cannot read the header: {e}")])?
        .clone();
    let mut col = [0usize; 4];
    let mut missing = Vec::new();
    for (k, name) in COLUMNS.iter().enumerate() {
        match header.iter().position(|h| h == *name) {
            Some(i) => col[k] = i,
            None => missing.push(*name),
        }
    }
    if !missing.is_empty() {
        let found = header.iter().collect::<Vec<_>>().join(",");
        return Err(vec![format!(
            "{file}:1: header {found:?} lacks {}; expected time,tenant,component,success (further columns allowed)",
            missing.join(", ")
        )]);
    }
    let mut out = Samples::new();
    let mut errors = Vec::new();
    let mut extra = 0usize;
    let mut fail = |errors: &mut Vec<String>, line: u64, message: String| {
        if errors.len() < MAX_ERRORS {
            errors.push(format!("{file}:{line}: {message}"));
        } else {
            extra += 1;
        }
    };
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => {
                        format!("{len} fields where the header has {expected_len}")
                    }
                    _ => e.to_string(),
                };
                fail(&mut errors, line, message);
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        let field = |k: usize| record.get(col[k]).unwrap_or("");
        let (time, tenant, component, success) = (field(0), field(1), field(2), field(3));
        if record.iter().all(str::is_empty) {
            continue;
        }
        let at = match time.parse::<Timestamp>() {
            Ok(t) => t,
            Err(e) => {
                fail(
                    &mut errors,
                    line,
                    format!("time {time:?} is not an RFC 3339 time: {e}"),
                );
                continue;
            }
        };
        let success = match success {
            "true" => true,
            "false" => false,
            other => {
                fail(
                    &mut errors,
                    line,
                    format!("success {other:?} is not true or false"),
                );
                continue;
            }
        };
        let Some(comps) = known.get(tenant) else {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            fail(
                &mut errors,
                line,
                format!("unknown tenant {tenant:?} (known: {})", names.join(", ")),
            );
            continue;
        };
        if !comps.iter().any(|c| c == component) {
            let list = if comps.is_empty() {
                "none".to_string()
            } else {
                comps.join(", ")
            };
            fail(
                &mut errors,
                line,
                format!("tenant {tenant:?} has no HostingComponent {component:?} (it has: {list})"),
            );
            continue;
        }
        out.entry((tenant.to_string(), component.to_string()))
            .or_default()
            .push(Sample { at, success });
    }
    if extra > 0 {
        errors.push(format!("{file}: {extra} more bad rows not shown"));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The report for `period` over every component of every tenant of a valid inventory. Samples
/// of other periods are used where they cover this one (a failure late on the last day of the
/// previous month covers into this one). Components without samples are 100% available. Weekly
/// and daily periods show no credit: credits are monthly.
pub fn build_report(inv: &Inventory, period: Period, samples: &Samples) -> Result<Report, String> {
    let tiers = inv.tiers();
    let monthly = matches!(period, Period::Month { .. });
    // Service windows once per tier and period, shared by all its components.
    let mut windows: BTreeMap<String, (Interval, Vec<Interval>)> = BTreeMap::new();
    let mut window_of = |name: &str, tier: &Tier| -> Result<(Interval, Vec<Interval>), String> {
        if let Some(w) = windows.get(name) {
            return Ok(w.clone());
        }
        let range = period
            .bounds(&tier.time_zone)
            .map_err(|e| format!("ServiceLevel/{name}: {e}"))?;
        let w = (range, calendar::service_intervals(tier, range));
        windows.insert(name.to_string(), w.clone());
        Ok(w)
    };
    let mut tenants: Vec<_> = inv.tenants.iter().map(|t| &t.object).collect();
    tenants.sort_by_key(|t| t.name_any());
    let mut out = Vec::new();
    let mut zone = None;
    for tenant in tenants {
        let mut components = Vec::new();
        for c in inv.components_of(tenant) {
            let level = component_level(tenant, c);
            let tier = tiers.get(level).ok_or_else(|| {
                format!(
                    "HostingComponent/{}: unknown ServiceLevel {level:?}",
                    c.name_any()
                )
            })?;
            zone.get_or_insert_with(|| tier.time_zone.clone());
            let (range, w) = window_of(level, tier)?;
            let key = (tenant.name_any(), c.name_any());
            let down = samples
                .get(&key)
                .map(|s| down_intervals(s, tier.probe_interval, range.end))
                .unwrap_or_default();
            let mut result = compliance_in(tier, &w, range, &down, None);
            if !monthly {
                // Credits are settled per calendar month, as in the operator's reports.
                result.credit_percent = 0;
            }
            components.push(ComponentReport {
                component: c.name_any(),
                service_level: level.to_string(),
                result,
            });
        }
        out.push(TenantReport {
            tenant: tenant.name_any(),
            display_name: Some(tenant.spec.display_name.clone()),
            service_level: Some(tenant.spec.service_level.clone()),
            components,
        });
    }
    let time_zone = match zone {
        Some(z) => z,
        None => jiff::tz::TimeZone::get("Europe/Amsterdam").map_err(|e| e.to_string())?,
    };
    let range = period.bounds(&time_zone).map_err(|e| e.to_string())?;
    Ok(Report {
        period: period.to_string(),
        range,
        time_zone,
        tenants: out,
        measured: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::input;
    use std::path::PathBuf;

    fn examples() -> Inventory {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let loaded = input::load(&[dir.join("catalogue"), dir.join("tenants")]);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        Inventory::new(loaded.objects)
    }

    fn read(text: &str) -> Result<Samples, Vec<String>> {
        read_samples("s.csv", text.as_bytes(), &examples())
    }

    #[test]
    fn reads_columns_by_name_and_ignores_extra_ones() {
        let s = read(
            "latencyMs,success,component,tenant,time\n12,true,website,tholen,2026-03-02T08:00:00Z\n\n13,false,website,tholen,2026-03-02T08:01:00+01:00\n",
        )
        .unwrap();
        let v = &s[&("tholen".to_string(), "website".to_string())];
        assert_eq!(v.len(), 2);
        assert!(!v[1].success);
        assert_eq!(
            v[1].at,
            "2026-03-02T07:01:00Z".parse::<Timestamp>().unwrap()
        );
    }

    #[test]
    fn bad_rows_name_their_line() {
        let errs = read(
            "time,tenant,component,success\n\
             2026-03-02T08:00:00Z,tholen,website,true\n\
             yesterday,tholen,website,true\n\
             2026-03-02T08:00:00Z,tholen,website,maybe\n\
             2026-03-02T08:00:00Z,bergen-op-zoom,website,true\n\
             2026-03-02T08:00:00Z,tholen,e-suite,true\n\
             2026-03-02T08:00:00Z,tholen\n",
        )
        .unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(
            errs[0].starts_with("s.csv:3: time \"yesterday\" is not an RFC 3339 time"),
            "{}",
            errs[0]
        );
        assert_eq!(errs[1], "s.csv:4: success \"maybe\" is not true or false");
        assert_eq!(
            errs[2],
            "s.csv:5: unknown tenant \"bergen-op-zoom\" (known: etten-leur, moerdijk, roosendaal, tholen, werkplein)"
        );
        assert_eq!(
            errs[3],
            "s.csv:6: tenant \"tholen\" has no HostingComponent \"e-suite\" (it has: document-archive, website)"
        );
        assert_eq!(errs[4], "s.csv:7: 2 fields where the header has 4");
    }

    #[test]
    fn a_wrong_header_is_refused() {
        let errs = read("when,tenant,component,ok\n").unwrap_err();
        assert_eq!(
            errs,
            vec![
                "s.csv:1: header \"when,tenant,component,ok\" lacks time, success; expected time,tenant,component,success (further columns allowed)"
            ]
        );
        assert!(
            read("").unwrap_err()[0]
                .starts_with("s.csv:1: header \"\" lacks time, tenant, component, success")
        );
    }

    #[test]
    fn many_bad_rows_are_capped() {
        let mut text = String::from("time,tenant,component,success\n");
        for _ in 0..30 {
            text.push_str("x,tholen,website,true\n");
        }
        let errs = read(&text).unwrap_err();
        assert_eq!(errs.len(), MAX_ERRORS + 1);
        assert_eq!(errs[MAX_ERRORS], "s.csv: 10 more bad rows not shown");
    }

    #[test]
    fn every_component_is_reported_even_without_samples() {
        let inv = examples();
        let r = build_report(&inv, "2026-03".parse().unwrap(), &Samples::new()).unwrap();
        let n: usize = r.tenants.iter().map(|t| t.components.len()).sum();
        assert_eq!(n, inv.components.len());
        assert!(r.tenants.iter().all(|t| t.met()));
    }
}

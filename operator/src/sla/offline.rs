//! Compliance from recorded probe samples, as `regie sla` computes it: reading the samples CSV
//! against the inventory, and building the report for a period with the same functions the
//! operator uses ([`down_intervals`] feeds [`RunState`](super::compliance::RunState), then
//! [`compliance_in`]).
//!
//! The CSV has a header naming at least `time`, `tenant`, `component` and `success` (in any
//! order; further columns such as `latencyMs` are ignored); `time` is RFC 3339 and `success` is
//! `true` or `false`. An optional `serviceLevel` column names the level each sample was taken
//! under (empty: the inventory's): where a component's level changes, its periods are split at
//! the first sample under the new level, as the operator splits them. Rows need not be sorted.
//! Every bad row is reported with its line number.

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
pub type Samples = BTreeMap<(String, String), Probed>;

/// One component's samples, in input order, and the level each was taken under where the input
/// says (`levels[k]` is that of `samples[k]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probed {
    pub samples: Vec<Sample>,
    pub levels: Vec<Option<String>>,
}

impl Probed {
    /// The samples in time order (stable), and where each level held took over: the first
    /// level (`default` when the first sample names none) from the dawn of time, each next one
    /// from its first sample.
    fn by_level<'a>(&'a self, default: &'a str) -> (Vec<Sample>, Vec<(Timestamp, &'a str)>) {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        order.sort_by_key(|k| self.samples[*k].at);
        let mut changes: Vec<(Timestamp, &str)> = Vec::new();
        for &k in &order {
            let level = self
                .levels
                .get(k)
                .and_then(Option::as_deref)
                .unwrap_or(default);
            match changes.last() {
                Some((_, l)) if *l == level => {}
                Some(_) => changes.push((self.samples[k].at, level)),
                None => changes.push((Timestamp::MIN, level)),
            }
        }
        if changes.is_empty() {
            changes.push((Timestamp::MIN, default));
        }
        (order.iter().map(|k| self.samples[*k]).collect(), changes)
    }
}

const COLUMNS: [&str; 4] = ["time", "tenant", "component", "success"];
const LEVEL_COLUMN: &str = "serviceLevel";

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
    let level_col = header.iter().position(|h| h == LEVEL_COLUMN);
    let levels = inv.tiers();
    let mut out = Samples::new();
    // The line of each sample, for a conflict's message.
    let mut lines: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
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
        let level = level_col
            .and_then(|k| record.get(k))
            .filter(|l| !l.is_empty());
        if let Some(level) = level
            && !levels.contains_key(level)
        {
            let names: Vec<&str> = levels.keys().map(String::as_str).collect();
            fail(
                &mut errors,
                line,
                format!(
                    "serviceLevel {level:?} is no ServiceLevel of the inventory (known: {})",
                    names.join(", ")
                ),
            );
            continue;
        }
        let key = (tenant.to_string(), component.to_string());
        lines.entry(key.clone()).or_default().push(line);
        let probed = out.entry(key).or_default();
        probed.samples.push(Sample { at, success });
        probed.levels.push(level.map(str::to_string));
    }
    if extra > 0 {
        errors.push(format!("{file}: {extra} more bad rows not shown"));
    }
    // Two samples of one instant that disagree: which one counts would be the row order's
    // choice, an hour of downtime or none.
    for (key, probed) in &out {
        let (tenant, component) = key;
        let rows = lines.get(key).map_or(&[][..], Vec::as_slice);
        let mut at: Vec<(&Sample, u64)> = probed.samples.iter().zip(rows.iter().copied()).collect();
        at.sort_by_key(|(s, line)| (s.at, s.success, *line));
        for w in at.windows(2) {
            let ((a, a_line), (b, b_line)) = (w[0], w[1]);
            if a.at == b.at && a.success != b.success {
                let (first, second) = (a_line.min(b_line), a_line.max(b_line));
                errors.push(format!(
                    "{file}:{first}: tenant {tenant:?} component {component:?}: two samples at {} \
                     disagree (line {second} says {})",
                    a.at,
                    if first == a_line {
                        b.success
                    } else {
                        a.success
                    }
                ));
                break;
            }
        }
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
            let tier_of = |level: &str| {
                tiers.get(level).ok_or_else(|| {
                    format!(
                        "HostingComponent/{}: unknown ServiceLevel {level:?}",
                        c.name_any()
                    )
                })
            };
            let tier = tier_of(level)?;
            zone.get_or_insert_with(|| tier.time_zone.clone());
            let key = (tenant.name_any(), c.name_any());
            let none = Probed::default();
            let (sorted, changes) = samples.get(&key).unwrap_or(&none).by_level(level);
            // The level held at the period's end (at the last sample) covers the last sample.
            let last_tier = match changes.last() {
                Some((_, l)) => tier_of(l)?,
                None => tier,
            };
            let (range, _) = window_of(level, tier)?;
            let down = down_intervals(&sorted, last_tier.probe_interval, range.end);
            let mut parts = Vec::new();
            for (k, (start, part_level)) in changes.iter().enumerate() {
                let part_tier = tier_of(part_level)?;
                // A level that does not report at the period's cadence gets no entry there,
                // as in the operator's reports (gold for a day of a silver component's week).
                if !super::history::reports(part_tier, period) {
                    continue;
                }
                let (whole, w) = window_of(part_level, part_tier)?;
                let end = changes.get(k + 1).map_or(Timestamp::MAX, |(s, _)| *s);
                let part = Interval::new((*start).max(whole.start), end.min(whole.end));
                if part.is_empty() && !(parts.is_empty() && k + 1 == changes.len()) {
                    continue;
                }
                let mut result = if part == whole {
                    compliance_in(part_tier, &w, whole, &down, None)
                } else {
                    let w = calendar::service_intervals(part_tier, part);
                    compliance_in(part_tier, &w, part, &down, None)
                };
                if !monthly {
                    // Credits are settled per calendar month, as in the operator's reports.
                    result.credit_percent = 0;
                }
                parts.push((part_level.to_string(), result));
            }
            // Offline periods are measured whole: a last entry that ends early ends where a
            // level that does not report this period took over, to the period's end.
            let last_ended = parts
                .last()
                .is_some_and(|(_, last)| last.period.end < range.end);
            components.extend(ComponentReport::parts(
                &c.name_any(),
                range,
                parts,
                last_ended,
            ));
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

    /// Samples of tholen's website, each (time, success, level it was taken under), in order.
    fn website_samples<'a>(
        inv: &Inventory,
        rows: impl IntoIterator<Item = &'a (&'a str, bool, &'a str)>,
    ) -> Samples {
        let mut csv = String::from("time,tenant,component,success,serviceLevel\n");
        for (at, ok, level) in rows {
            csv.push_str(&format!("{at},tholen,website,{ok},{level}\n"));
        }
        read_samples("s.csv", csv.as_bytes(), inv).unwrap()
    }

    /// The entries the operator's report of `period` holds of tholen's website at `end`, its
    /// history fed with `rows` (time, success, level: none is the row before's) and the level
    /// held now `level_now`.
    fn live_website_entries(
        inv: &Inventory,
        rows: &[(&str, bool, &str)],
        level_now: &str,
        period: Period,
        end: Timestamp,
    ) -> (Interval, Vec<ComponentReport>) {
        let tiers = inv.tiers();
        let mut live = crate::sla::history::History::new();
        let mut held = level_now;
        for (at, ok, level) in rows {
            if !level.is_empty() {
                held = level;
            }
            let sample = Sample {
                at: at.parse().unwrap(),
                success: *ok,
            };
            live.observe(&std::sync::Arc::new(tiers[held].clone()), sample);
        }
        let f = live.report_figures(&tiers[level_now], period, end).unwrap();
        let entries = ComponentReport::parts(
            "website",
            f.bounds,
            f.parts.into_iter().map(|p| (p.service_level, p.result)),
            f.ended,
        );
        (f.bounds, entries)
    }

    /// The entries of tholen's website in `report`.
    fn website_entries(report: &Report) -> Vec<&ComponentReport> {
        (report.tenants.iter())
            .filter(|t| t.tenant == "tholen")
            .flat_map(|t| &t.components)
            .filter(|c| c.component == "website")
            .collect()
    }

    #[test]
    fn reads_columns_by_name_and_ignores_extra_ones() {
        let s = read(
            "latencyMs,success,component,tenant,time\n12,true,website,tholen,2026-03-02T08:00:00Z\n\n13,false,website,tholen,2026-03-02T08:01:00+01:00\n",
        )
        .unwrap();
        let v = &s[&("tholen".to_string(), "website".to_string())].samples;
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
    fn samples_of_one_instant_that_disagree_are_refused() {
        let agree = "time,tenant,component,success\n\
                     2026-03-02T09:00:00+01:00,tholen,website,true\n\
                     2026-03-02T08:00:00Z,tholen,website,true\n";
        assert!(
            read(agree).is_ok(),
            "a sample recorded twice is no conflict"
        );
        let errs = read(
            "time,tenant,component,success\n\
             2026-03-02T09:00:00+01:00,tholen,website,true\n\
             2026-03-02T08:00:00Z,tholen,website,false\n\
             2026-03-02T10:00:00+01:00,tholen,website,true\n",
        )
        .unwrap_err();
        assert_eq!(
            errs,
            vec![
                "s.csv:2: tenant \"tholen\" component \"website\": two samples at 2026-03-02T08:00:00Z disagree (line 3 says false)"
            ]
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

    /// tholen (bronze in the inventory) moved its website to silver on 16 March: the samples
    /// say under which level each was taken. `regie sla` splits March where the operator's
    /// prober does, and their figures agree part by part.
    #[test]
    fn a_level_change_in_the_samples_splits_the_period_as_the_prober_does() {
        let inv = examples();
        let rows = [
            ("2026-03-02T07:00:00Z", true, "bronze"),
            ("2026-03-10T17:00:00Z", false, "bronze"),
            ("2026-03-10T19:00:00Z", true, ""),
            ("2026-03-16T10:00:00Z", true, "silver"),
            ("2026-03-17T17:00:00Z", false, "silver"),
            ("2026-03-17T18:00:00Z", true, "silver"),
        ];
        // Out of order on purpose: the split follows time, not input order.
        let samples = website_samples(&inv, rows.iter().rev());
        let march: Period = "2026-03".parse().unwrap();
        let report = build_report(&inv, march, &samples).unwrap();
        let website = website_entries(&report);
        assert_eq!(website.len(), 2, "{website:?}");
        let change: Timestamp = "2026-03-16T10:00:00Z".parse().unwrap();
        assert_eq!(
            (
                website[0].service_level.as_str(),
                website[0].from,
                website[0].to
            ),
            ("bronze", None, Some(change))
        );
        assert_eq!(
            (
                website[1].service_level.as_str(),
                website[1].from,
                website[1].to
            ),
            ("silver", Some(change), None)
        );
        assert_eq!(website[0].result.down_seconds, 0);
        assert_eq!(website[1].result.down_seconds, 3600);
        assert_eq!(website[1].result.credit_percent, 5);

        let (bounds, entries) =
            live_website_entries(&inv, &rows, "silver", march, report.range.end);
        assert_eq!(bounds, report.range);
        assert_eq!(entries.len(), 2);
        for (live, offline) in entries.iter().zip(&website) {
            assert_eq!(live, *offline);
        }
    }

    /// docs/sla.md's case: silver → gold on Wednesday, back on Thursday; the week is reported
    /// with silver's two parts and nothing of gold's, which does not report weeks — also when
    /// gold's day missed its target (it made the week's verdict "not met").
    #[test]
    fn a_level_that_does_not_report_the_week_has_no_entry_in_it() {
        let inv = examples();
        let rows = [
            ("2026-03-09T07:00:00Z", true, "silver"),
            ("2026-03-11T10:00:00Z", true, "gold"),
            ("2026-03-11T12:00:00Z", false, "gold"),
            ("2026-03-11T12:10:00Z", true, "gold"),
            ("2026-03-12T10:00:00Z", true, "silver"),
            ("2026-03-16T10:00:00Z", true, "silver"),
        ];
        let samples = website_samples(&inv, &rows);
        let week: Period = "2026-W11".parse().unwrap();
        let report = build_report(&inv, week, &samples).unwrap();
        let website = website_entries(&report);
        let levels: Vec<&str> = website.iter().map(|c| c.service_level.as_str()).collect();
        assert_eq!(levels, ["silver", "silver"], "{website:?}");
        let (gold, back): (Timestamp, Timestamp) = (
            "2026-03-11T10:00:00Z".parse().unwrap(),
            "2026-03-12T10:00:00Z".parse().unwrap(),
        );
        assert_eq!((website[0].from, website[0].to), (None, Some(gold)));
        assert_eq!((website[1].from, website[1].to), (Some(back), None));
        assert!(website.iter().all(|c| c.result.met));

        let end = "2026-03-16T10:00:00Z".parse().unwrap();
        let (_, entries) = live_website_entries(&inv, &rows, "silver", week, end);
        assert_eq!(entries.len(), website.len());
        for (live, offline) in entries.iter().zip(&website) {
            assert_eq!(live, *offline);
        }
    }

    /// Gold from Thursday to the week's end: silver's entry is the week's only one, and says
    /// where its figures end.
    #[test]
    fn an_entry_before_a_level_that_does_not_report_the_week_says_where_it_ends() {
        let inv = examples();
        let rows = [
            ("2026-03-09T07:00:00Z", true, "silver"),
            ("2026-03-12T10:00:00Z", true, "gold"),
            ("2026-03-15T10:00:00Z", true, "gold"),
        ];
        let samples = website_samples(&inv, &rows);
        let week: Period = "2026-W11".parse().unwrap();
        let report = build_report(&inv, week, &samples).unwrap();
        let website = website_entries(&report);
        assert_eq!(website.len(), 1, "{website:?}");
        let gold: Timestamp = "2026-03-12T10:00:00Z".parse().unwrap();
        assert_eq!(
            (
                website[0].service_level.as_str(),
                website[0].from,
                website[0].to
            ),
            ("silver", None, Some(gold))
        );
        // The operator's report says the same, also before the week has ended (it said nothing
        // of the end, and read back after a restart the entry passed for the level held now).
        for end in ["2026-03-15T10:00:00Z", "2026-03-16T10:00:00Z"] {
            let (_, entries) =
                live_website_entries(&inv, &rows, "gold", week, end.parse().unwrap());
            assert_eq!(entries.len(), 1, "{entries:?}");
            assert_eq!(entries[0].to, Some(gold), "at {end}: {entries:?}");
        }
    }

    #[test]
    fn an_unknown_service_level_in_the_samples_names_its_line() {
        let errors = read(
            "time,tenant,component,success,serviceLevel\n2026-03-02T08:00:00Z,tholen,website,true,platinum\n",
        )
        .unwrap_err();
        assert_eq!(
            errors,
            [
                "s.csv:2: serviceLevel \"platinum\" is no ServiceLevel of the inventory (known: bronze, gold, silver)"
            ]
        );
    }
}

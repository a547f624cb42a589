//! `regie sla`: SLA compliance from recorded probe samples, computed by the same functions as the
//! operator, printed as the JSON contract or as a Markdown KPI report. Without `--samples` it
//! prints the operator's stored `SlaReport`s found in the inputs the same way, so the live
//! figures reach a participant as the same Markdown.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::SlaFormat;
use crate::input::{self, Object};
use crate::inventory::Inventory;
use crate::sla::calendar::Period;
use crate::sla::{offline, report};
use regie_crds::SlaReport;

fn fail(lines: &[String]) -> ExitCode {
    for l in lines {
        say!("{l}");
    }
    ExitCode::from(1)
}

pub fn run(
    paths: &[PathBuf],
    samples: Option<&Path>,
    period: Option<&str>,
    format: SlaFormat,
) -> ExitCode {
    let Some(samples) = samples else {
        return stored(paths, period, format);
    };
    let Some(period) = period else {
        return fail(&["regie sla: --period is required with --samples".to_string()]);
    };
    let period: Period = match period.parse() {
        Ok(p) => p,
        Err(e) => return fail(&[format!("regie sla: --period: {e}")]),
    };
    let loaded = input::load(paths);
    let mut problems = loaded.problems;
    let inv = Inventory::new(loaded.objects);
    problems.extend(inv.check());
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return super::fail_with(&problems);
    }
    let name = samples.display().to_string();
    let file = match std::fs::File::open(samples) {
        Ok(f) => std::io::BufReader::new(f),
        Err(e) => return fail(&[format!("{name}: cannot read: {e}")]),
    };
    let samples = match offline::read_samples(&name, file, &inv) {
        Ok(s) => s,
        Err(errors) => return fail(&errors),
    };
    let report = match offline::build_report(&inv, period, &samples) {
        Ok(r) => r,
        Err(e) => return fail(&[format!("regie sla: {e}")]),
    };
    print(&report, format)
}

/// Prints the SlaReports of one period found in `paths`.
fn stored(paths: &[PathBuf], period: Option<&str>, format: SlaFormat) -> ExitCode {
    let loaded = input::load(paths);
    let mut problems = loaded.problems.clone();
    problems.extend(Inventory::new(loaded.objects.clone()).report_periods());
    if !problems.is_empty() {
        problems.sort();
        return super::fail_with(&problems);
    }
    let reports: Vec<(String, &SlaReport)> = loaded
        .objects
        .iter()
        .filter_map(|(source, o)| match o {
            Object::SlaReport(r) => Some((source.to_string(), r)),
            _ => None,
        })
        .collect();
    // Times in the zone of the reports' service levels when the inputs hold them.
    let inv_tz = Inventory::new(loaded.objects.clone())
        .tiers()
        .into_values()
        .map(|t| t.time_zone)
        .next();
    let tz = match inv_tz.map_or_else(|| jiff::tz::TimeZone::get("Europe/Amsterdam"), Ok) {
        Ok(tz) => tz,
        Err(e) => return fail(&[format!("regie sla: no time zone: {e}")]),
    };
    match report::from_stored(&reports, period, tz) {
        Ok(r) => print(&r, format),
        Err(errors) => fail(&errors),
    }
}

fn print(report: &report::Report, format: SlaFormat) -> ExitCode {
    match format {
        SlaFormat::Json => match serde_json::to_string_pretty(&report::to_json(report)) {
            Ok(j) => super::emit(&format!("{j}\n")),
            Err(e) => return fail(&[format!("regie sla: cannot write JSON: {e}")]),
        },
        SlaFormat::Markdown => super::emit(&report::render_markdown(report)),
    }
    ExitCode::SUCCESS
}

//! `regie sla`: SLA compliance from recorded probe samples, computed by the same functions as the
//! operator, printed as the JSON contract or as a Markdown KPI report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::SlaFormat;
use crate::input;
use crate::inventory::Inventory;
use crate::sla::calendar::Period;
use crate::sla::{offline, report};

fn fail(lines: &[String]) -> ExitCode {
    for l in lines {
        eprintln!("{l}");
    }
    ExitCode::from(1)
}

pub fn run(paths: &[PathBuf], samples: &Path, period: &str, format: SlaFormat) -> ExitCode {
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
    match format {
        SlaFormat::Json => match serde_json::to_string_pretty(&report::to_json(&report)) {
            Ok(j) => super::emit(&format!("{j}\n")),
            Err(e) => return fail(&[format!("regie sla: cannot write JSON: {e}")]),
        },
        SlaFormat::Markdown => super::emit(&report::render_markdown(&report)),
    }
    ExitCode::SUCCESS
}

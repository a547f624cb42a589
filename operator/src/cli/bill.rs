//! `regie bill`: invoices for a period (filled in by billing).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::BillFormat;

pub fn run(_paths: &[PathBuf], _period: &str, _format: BillFormat, _out: Option<&Path>) -> ExitCode {
    eprintln!("regie bill: not available yet");
    ExitCode::from(2)
}

//! `regie sla`: compliance from recorded probe samples (filled in by the SLA engine).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::SlaFormat;

pub fn run(_paths: &[PathBuf], _samples: &Path, _period: &str, _format: SlaFormat) -> ExitCode {
    eprintln!("regie sla: not available yet");
    ExitCode::from(2)
}

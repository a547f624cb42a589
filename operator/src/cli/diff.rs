//! `regie diff`: what a pull request changes (filled in by billing).

use std::path::Path;
use std::process::ExitCode;

pub fn run(_base: &Path, _head: &Path, _period: Option<&str>) -> ExitCode {
    eprintln!("regie diff: not available yet");
    ExitCode::from(2)
}

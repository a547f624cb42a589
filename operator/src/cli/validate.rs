//! `regie validate`: every problem of every object, one line each, exit 1 if any.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::input;
use crate::inventory::Inventory;

/// Reads and checks with the default settings; returns the sorted problems and the number of
/// objects read.
pub fn check(paths: &[PathBuf]) -> (Vec<input::Problem>, usize) {
    check_with(
        paths,
        &crate::desired::Settings::default().allowed_namespaces,
    )
}

/// Reads and checks as an installation whose `--allowed-namespaces` are `allowed_namespaces`
/// would (no tenant may take one of them as its own).
pub fn check_with(
    paths: &[PathBuf],
    allowed_namespaces: &[String],
) -> (Vec<input::Problem>, usize) {
    let loaded = input::load(paths);
    let count = loaded.objects.len();
    let mut problems = loaded.problems;
    let inv = Inventory::new(loaded.objects);
    problems.extend(inv.check_with(allowed_namespaces));
    problems.extend(inv.quota_fits());
    problems.sort();
    problems.dedup();
    (problems, count)
}

pub fn run(paths: &[PathBuf], allowed_namespaces: &[String]) -> ExitCode {
    let (problems, count) = check_with(paths, allowed_namespaces);
    if problems.is_empty() {
        say!("{count} objects valid");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            super::emit_or_exit(&format!("{p}\n"), 1);
        }
        say!("{} problems in {count} objects", problems.len());
        ExitCode::from(1)
    }
}

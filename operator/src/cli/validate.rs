//! `regie validate`: every problem of every object, one line each, exit 1 if any.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::input;
use crate::inventory::Inventory;

/// Reads and checks; returns the sorted problems and the number of objects read.
pub fn check(paths: &[PathBuf]) -> (Vec<input::Problem>, usize) {
    let loaded = input::load(paths);
    let count = loaded.objects.len();
    let mut problems = loaded.problems;
    problems.extend(Inventory::new(loaded.objects).check());
    problems.sort();
    problems.dedup();
    (problems, count)
}

pub fn run(paths: &[PathBuf]) -> ExitCode {
    let (problems, count) = check(paths);
    if problems.is_empty() {
        eprintln!("{count} objects valid");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            super::emit(&format!("{p}\n"));
        }
        eprintln!("{} problems in {count} objects", problems.len());
        ExitCode::from(1)
    }
}

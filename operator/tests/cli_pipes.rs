//! The offline commands behind a reader that stops early (`regie validate . | head`, `regie bill
//! 2>&1 | head -c1`): the exit status stays the verdict, and a closed stderr is no panic.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

/// A directory whose one file holds the same Tenant twice, 400 times over: many problems.
fn duplicates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..400 {
        let tenant = format!(
            "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: t{i}}}\nspec: {{displayName: T, serviceLevel: gold, membership: {{joined: \"2026-01-01\"}}}}\n---\n"
        );
        text.push_str(&tenant);
        text.push_str(&tenant);
    }
    std::fs::write(dir.path().join("twice.yaml"), text).unwrap();
    dir
}

/// Runs `regie args` with the given stream closed at once by its reader; the exit code.
fn closed(args: &[&str], dir: &Path, close_stdout: bool) -> Option<i32> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_regie"));
    command.args(args).arg(dir).stdin(Stdio::null());
    if close_stdout {
        command.stdout(Stdio::piped()).stderr(Stdio::null());
    } else {
        command.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    let mut child = command.spawn().unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    child.wait().unwrap().code()
}

#[test]
fn a_verdict_survives_a_closed_pipe() {
    let dir = duplicates();
    assert_eq!(
        closed(&["validate"], dir.path(), true),
        Some(1),
        "problems, printed to a reader that left"
    );
}

#[test]
fn a_closed_stderr_is_no_panic() {
    let dir = duplicates();
    for args in [
        &["validate"][..],
        &["bill", "--period", "2026-03"],
        &["render"],
        &["sla"],
    ] {
        assert_eq!(closed(args, dir.path(), false), Some(1), "{args:?}");
    }
}

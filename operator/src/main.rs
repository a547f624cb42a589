//! The `regie` binary: parses the command line and hands over to [`regie::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    regie::cli::run(regie::cli::Cli::parse())
}

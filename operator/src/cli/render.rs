//! `regie render`: the objects the controller would create, deterministically ordered.

use std::path::PathBuf;
use std::process::ExitCode;

use super::RenderFormat;
use crate::desired::{self, Child, Settings};
use crate::input;
use crate::inventory::Inventory;

/// Loads, validates and renders; the problems when the input is not valid.
pub fn render_paths(
    paths: &[PathBuf],
    settings: &Settings,
) -> Result<Vec<Child>, Vec<input::Problem>> {
    let loaded = input::load(paths);
    let mut problems = loaded.problems;
    let inv = Inventory::new(loaded.objects);
    problems.extend(inv.check());
    if !problems.is_empty() {
        problems.sort();
        return Err(problems);
    }
    Ok(desired::render(&inv, settings)
        .into_values()
        .flatten()
        .collect())
}

pub fn run(paths: &[PathBuf], format: RenderFormat) -> ExitCode {
    let children = match render_paths(paths, &Settings::default()) {
        Ok(c) => c,
        Err(problems) => return super::fail_with(&problems),
    };
    match format {
        RenderFormat::Yaml => {
            for c in &children {
                super::emit(&format!(
                    "---\n{}",
                    serde_yaml::to_string(&c.body).expect("objects serialize")
                ));
            }
        }
        RenderFormat::Json => {
            let list = serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": children.iter().map(|c| &c.body).collect::<Vec<_>>(),
            });
            super::emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&list).expect("objects serialize")
            ));
        }
    }
    ExitCode::SUCCESS
}

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
    problems.extend(inv.check_with(&settings.allowed_namespaces));
    if !problems.is_empty() {
        problems.sort();
        return Err(problems);
    }
    Ok(desired::render(&inv, settings)
        .into_values()
        .flatten()
        .collect())
}

pub fn run(paths: &[PathBuf], format: RenderFormat, settings: &Settings) -> ExitCode {
    let children = match render_paths(paths, settings) {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
    }

    /// `render` and `diff` take `regie run`'s settings, so they show what the cluster gets.
    #[test]
    fn render_and_diff_take_the_installations_settings() {
        let parsed = |args: &[&str]| match Cli::try_parse_from(args).expect("parses").command {
            Command::Render { settings, .. } | Command::Diff { settings, .. } => {
                settings.settings()
            }
            other => panic!("{other:?}"),
        };
        let x = examples().display().to_string();
        assert_eq!(parsed(&["regie", "render", &x]), Settings::default());
        assert_eq!(parsed(&["regie", "diff", &x, &x]), Settings::default());
        let custom = parsed(&[
            "regie",
            "render",
            &x,
            "--allowed-namespaces",
            "observability,regie",
            "--tenant-role",
            "regie-tenant",
        ]);
        assert_eq!(custom.allowed_namespaces, ["observability", "regie"]);
        assert_eq!(custom.tenant_cluster_role, "regie-tenant");
        assert!(Cli::try_parse_from(["regie", "diff", &x, &x, "--tenant-role", "admin"]).is_err());

        let children = render_paths(&[examples()], &custom).expect("examples render");
        let policy = children
            .iter()
            .find(|c| c.kind == "NetworkPolicy")
            .expect("a policy");
        let admitted = &policy.body["spec"]["ingress"][0]["from"][1]["namespaceSelector"]["matchExpressions"]
            [0]["values"];
        assert_eq!(admitted, &serde_json::json!(["observability", "regie"]));
        let binding = children
            .iter()
            .find(|c| c.kind == "RoleBinding")
            .expect("a binding");
        assert_eq!(binding.body["roleRef"]["name"], "regie-tenant");
    }
}

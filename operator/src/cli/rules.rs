//! `regie rules`: the Prometheus recording and alerting rules of the SLA for the ServiceLevels
//! found in the inputs, as a plain rules file or as a prometheus-operator `PrometheusRule`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use crate::input;
use crate::inventory::Inventory;
use crate::sla::rules;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RulesFormat {
    /// A Prometheus rules file (`promtool check rules` reads it).
    Rules,
    /// A `monitoring.coreos.com/v1` PrometheusRule.
    Prometheusrule,
}

/// The rules file for the tiers in `paths`; the problems when the input is not valid.
pub fn rules_for(paths: &[PathBuf]) -> Result<rules::RuleFile, Vec<input::Problem>> {
    let loaded = input::load(paths);
    let mut problems = loaded.problems;
    let inv = Inventory::new(loaded.objects);
    problems.extend(inv.check());
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(problems);
    }
    let tiers = inv.tiers();
    if tiers.is_empty() {
        return Err(vec![input::Problem {
            file: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            object: String::new(),
            field: String::new(),
            message: "no ServiceLevel found: rules are generated per tier".into(),
        }]);
    }
    Ok(rules::rule_file(&tiers.values().collect::<Vec<_>>()))
}

pub fn run(paths: &[PathBuf], format: RulesFormat) -> ExitCode {
    let file = match rules_for(paths) {
        Ok(f) => f,
        Err(problems) => return super::fail_with(&problems),
    };
    let text = match format {
        RulesFormat::Rules => serde_yaml::to_string(&file),
        RulesFormat::Prometheusrule => {
            serde_yaml::to_string(&rules::prometheus_rule(&file, "regie-sla"))
        }
    };
    match text {
        Ok(t) => {
            super::emit(&t);
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!("regie rules: cannot write YAML: {e}");
            ExitCode::from(1)
        }
    }
}

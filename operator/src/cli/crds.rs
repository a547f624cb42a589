//! `regie crds`: the CRDs as the committed `crds/yaml/crds.yaml` holds them.

use std::process::ExitCode;

pub fn run() -> ExitCode {
    super::emit(&regie_crds::crd::crds_yaml());
    ExitCode::SUCCESS
}

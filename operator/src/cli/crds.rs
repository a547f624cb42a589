//! `regie crds`: the CRDs as the committed `crds/yaml/crds.yaml` holds them, or as a given
//! (older) server accepts them.

use std::process::ExitCode;

pub fn run(kube_version: Option<&str>) -> ExitCode {
    let Some(version) = kube_version else {
        super::emit(&regie_crds::crd::crds_yaml());
        return ExitCode::SUCCESS;
    };
    let minor = version
        .trim_start_matches('v')
        .split_once('.')
        .and_then(|(major, minor)| (major == "1").then(|| minor.parse::<u32>().ok()).flatten());
    let Some(minor) = minor else {
        say!("regie crds: --kube-version {version:?} is not a Kubernetes version such as 1.20");
        return ExitCode::from(1);
    };
    let mut out = String::new();
    for crd in regie_crds::crd::crds_for_server(minor) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd).expect("CRDs serialize"));
    }
    super::emit(&out);
    ExitCode::SUCCESS
}

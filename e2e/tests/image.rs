//! The container image recipe (`Dockerfile`) against the chart that runs it. No container engine
//! runs in CI here, so these checks pin what would otherwise only fail at deploy time: the image
//! user is the chart's non-root user, the entrypoint takes the chart's `run` arguments, and the
//! build stage copies every workspace member the `--locked` build needs.

use regie_e2e::cluster::repo_root;

fn dockerfile() -> String {
    std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile at the root")
}

fn chart_values() -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo_root().join("charts/regie/values.yaml"))
        .expect("chart values");
    serde_yaml::from_str(&text).expect("values.yaml parses")
}

/// The instruction lines of the final stage (after the last `FROM`).
fn final_stage(text: &str) -> Vec<String> {
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM line");
    lines[last_from..].to_vec()
}

#[test]
fn the_image_runs_as_the_charts_non_root_user() {
    let values = chart_values();
    let uid = values["podSecurityContext"]["runAsUser"]
        .as_i64()
        .or_else(|| values["securityContext"]["runAsUser"].as_i64())
        .expect("the chart sets runAsUser");
    let gid = values["podSecurityContext"]["runAsGroup"]
        .as_i64()
        .or_else(|| values["securityContext"]["runAsGroup"].as_i64())
        .expect("the chart sets runAsGroup");
    assert_ne!(uid, 0, "the chart must not run as root");
    let stage = final_stage(&dockerfile());
    let user = stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the final stage sets USER");
    assert_eq!(
        user.trim(),
        format!("{uid}:{gid}"),
        "numeric, so the kubelet can verify runAsNonRoot"
    );
}

#[test]
fn the_entrypoint_takes_the_charts_arguments() {
    let stage = final_stage(&dockerfile());
    let entrypoint = stage
        .iter()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("exec form");
    assert_eq!(entrypoint, ["/usr/local/bin/regie"]);
    let copied = stage
        .iter()
        .any(|l| l.starts_with("COPY --from=build") && l.ends_with(" /usr/local/bin/regie"));
    assert!(copied, "the binary is copied to the entrypoint's path");
    let deployment =
        std::fs::read_to_string(repo_root().join("charts/regie/templates/deployment.yaml"))
            .expect("chart deployment");
    let args = deployment
        .split("args:")
        .nth(1)
        .expect("the chart passes args");
    let first = args
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("- "))
        .expect("a first argument");
    assert_eq!(first, "- run", "the chart's args start with the subcommand");
}

#[test]
fn the_build_stage_copies_every_workspace_member() {
    let manifest =
        std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("workspace manifest");
    // `members = [ "a", "b" ]`, possibly over several lines; no TOML parser needed for that.
    let list = manifest
        .split("members")
        .nth(1)
        .and_then(|rest| rest.split_once('['))
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("workspace members");
    let members: Vec<&str> = list
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    assert!(!members.is_empty(), "workspace members");
    let text = dockerfile();
    for member in members {
        assert!(
            text.lines()
                .any(|l| l.trim() == format!("COPY {member} {member}")),
            "the Dockerfile does not copy workspace member {member}; `cargo build --locked` \
             would fail in the image build"
        );
    }
    assert!(
        text.contains("--locked"),
        "the image builds with the lockfile"
    );
}

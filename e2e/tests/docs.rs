//! The documentation stays true to the code:
//! - `docs/api.md` equals a fresh run of `docs/generate-api` over `crds/yaml/crds.yaml`, and
//!   has a section for every kind;
//! - every relative link in the docs, the chart's README and the GitOps README points at a file
//!   that exists (and at a heading that exists, when it names one);
//! - every `regie` subcommand a page shows in a code block exists.
//!
//! Needs python3 with PyYAML.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use regie_e2e::cluster::{regie_bin, repo_root};

fn markdown_files() -> Vec<PathBuf> {
    let mut out = vec![
        repo_root().join("charts/regie/README.md"),
        repo_root().join("examples/gitops/README.md"),
    ];
    let mut stack = vec![repo_root().join("docs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("docs/") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_api_reference_is_generated_from_the_crds() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let fresh = tmp.path().join("api.md");
    let out = Command::new("python3")
        .arg(repo_root().join("docs/generate-api"))
        .arg("--out")
        .arg(&fresh)
        .output()
        .expect("python3 is installed");
    assert!(
        out.status.success(),
        "docs/generate-api failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = std::fs::read_to_string(fresh).expect("generated");
    let committed = std::fs::read_to_string(repo_root().join("docs/api.md")).expect("docs/api.md");
    assert!(
        fresh == committed,
        "docs/api.md is out of date: run docs/generate-api"
    );
    for crd in regie_crds::crd::crds() {
        let kind = &crd.spec.names.kind;
        assert!(
            committed.contains(&format!("\n## {kind}\n")),
            "docs/api.md has no section for {kind}"
        );
        assert!(committed.contains("### spec"));
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#').replace('`', "").as_str()));
        }
    }
    out
}

/// The targets of `[text](target)` links outside code blocks and code spans.
fn links(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Drop code spans, whose brackets are not links.
        let mut text = String::new();
        let mut span = false;
        for c in line.chars() {
            if c == '`' {
                span = !span;
            } else if !span {
                text.push(c);
            }
        }
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            match after.find(')') {
                Some(j) => {
                    out.push(after[..j].trim().to_string());
                    rest = &after[j + 1..];
                }
                None => break,
            }
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        for link in links(&text) {
            if link.starts_with("http://")
                || link.starts_with("https://")
                || link.starts_with("mailto:")
            {
                continue;
            }
            let (path, anchor) = match link.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("dir").join(path)
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", file.display()));
                continue;
            }
            if let Some(a) = anchor
                && target.extension().is_some_and(|e| e == "md")
            {
                let t = std::fs::read_to_string(&target).expect("readable");
                if !anchors(&t).contains(a) {
                    broken.push(format!("{}: {link} (no heading #{a})", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The long options `regie SUB --help` lists.
fn flags_of(sub: &str) -> BTreeSet<String> {
    let help = Command::new(regie_bin())
        .args([sub, "--help"])
        .output()
        .expect("regie SUB --help");
    String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--"))
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_string()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn every_regie_command_in_the_docs_exists() {
    let help = Command::new(regie_bin())
        .arg("--help")
        .output()
        .expect("regie --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let commands: BTreeSet<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    assert!(
        commands.contains("validate"),
        "cannot read regie --help: {help}"
    );
    let mut unknown = Vec::new();
    // The options of each subcommand, asked of `regie SUB --help` once.
    let mut flags: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        let mut in_code = false;
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
                continue;
            }
            if !in_code {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                // A command: first on the line, or after a prompt, a pipe, `&&`, `;` or an
                // environment assignment (`REGIE_NOW=… regie bill`).
                let command_position = i == 0
                    || matches!(words[i - 1], "$" | "|" | "&&" | ";")
                    || words[i - 1].split_once('=').is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    });
                let sub = match *w {
                    "regie" if command_position => words.get(i + 1),
                    "--" if i > 0 && words[i - 1] == "regie-operator" => words.get(i + 1),
                    _ => None,
                };
                if let Some(sub) = sub {
                    let word = sub.chars().all(|c| c.is_ascii_lowercase());
                    if word && !commands.contains(*sub) {
                        unknown.push(format!("{}: {line}", file.display()));
                    } else if word {
                        // Every long option written after the command is one it takes.
                        let flags = flags
                            .entry(sub.to_string())
                            .or_insert_with(|| flags_of(sub));
                        for option in words[i + 2..]
                            .iter()
                            .take_while(|w| !matches!(**w, "|" | "&&" | ";" | "\\"))
                            .filter_map(|w| w.strip_prefix("--"))
                            .map(|w| w.split('=').next().unwrap_or(w))
                            .filter(|w| !w.is_empty())
                        {
                            if !flags.contains(option) {
                                unknown.push(format!(
                                    "{}: regie {sub} has no --{option}: {line}",
                                    file.display()
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "regie has no such command or option:\n{}",
        unknown.join("\n")
    );
}

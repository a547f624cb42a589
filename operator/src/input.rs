//! Reading YAML for the offline commands: files and directories (recursively), multi-document,
//! any mix of kinds. Each regie object keeps the file it came from, so every message can name
//! `FILE: KIND/NAME: field.path`.
//!
//! Documents of other API groups (a kustomization, an Argo CD Application) are passed over: a
//! GitOps repository holds more than regie's kinds.

use std::fmt;
use std::path::{Path, PathBuf};

use regie_crds::{
    API_VERSION, CostPool, HostingComponent, Invoice, PriceList, ServiceLevel, ServiceOrder,
    SlaReport, Tenant, Usage, WorkplacePackage,
};
use serde::de::DeserializeOwned;

/// Where an object came from: the file and the document's position in it (1-based).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub file: PathBuf,
    pub document: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())
    }
}

/// One regie object as read from a file.
// Objects are read once per command and moved into the inventory; boxing them would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Object {
    ServiceLevel(ServiceLevel),
    Tenant(Tenant),
    WorkplacePackage(WorkplacePackage),
    HostingComponent(HostingComponent),
    PriceList(PriceList),
    CostPool(CostPool),
    ServiceOrder(ServiceOrder),
    Usage(Usage),
    Invoice(Invoice),
    SlaReport(SlaReport),
}

/// A problem with the input, printed as `FILE: KIND/NAME: field.path: message`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: String,
    /// `Kind/name` or `Kind/namespace/name`; empty when the document has no readable identity.
    pub object: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file)?;
        if !self.object.is_empty() {
            write!(f, "{}: ", self.object)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Everything read from the given paths, and every problem met on the way.
#[derive(Debug, Default)]
pub struct Loaded {
    pub objects: Vec<(Source, Object)>,
    pub problems: Vec<Problem>,
    /// Documents of other API groups that were passed over.
    pub foreign: usize,
}

/// Lists the YAML files under `paths` (directories recursively), sorted so output is stable,
/// each once however often it is named (`dir dir/a.yaml`, `./a.yaml a.yaml`); and a problem for
/// each path that cannot be read, the others listed all the same.
pub fn yaml_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Problem>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        collect(p, true, &mut out, &mut problems, &mut seen);
    }
    out.sort();
    let mut files = std::collections::HashSet::new();
    out.retain(|f| files.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    (out, problems)
}

/// `seen` holds the directories walked, as their canonical paths: a directory reached again (a
/// symbolic link to `.` or to a parent, or one directory under two names) is walked once, not
/// until the system's limit on link depth — nor its files read twice.
fn collect(
    path: &Path,
    named: bool,
    out: &mut Vec<PathBuf>,
    problems: &mut Vec<Problem>,
    seen: &mut std::collections::HashSet<PathBuf>,
) {
    let mut problem = |m: String| {
        problems.push(Problem {
            file: path.display().to_string(),
            object: String::new(),
            field: String::new(),
            message: m,
        })
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => return problem(format!("cannot read: {e}")),
    };
    if meta.is_dir() {
        let canonical = match std::fs::canonicalize(path) {
            Ok(c) => c,
            Err(e) => return problem(format!("cannot read: {e}")),
        };
        if !seen.insert(canonical) {
            return;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => return problem(format!("cannot list: {e}")),
        };
        let mut inside = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => inside.push(entry.path()),
                Err(e) => problem(format!("cannot list: {e}")),
            }
        }
        for p in inside {
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if !hidden && (p.is_dir() || is_yaml(&p)) {
                collect(&p, false, out, problems, seen);
            }
        }
    } else if meta.is_file() || named {
        // A path named on the command line is read whatever it is (`<(kustomize build …)`,
        // `/dev/stdin`): that is what was asked.
        out.push(path.to_path_buf());
    } else if is_yaml(path) {
        // A pipe or a device found in a directory would block or never end: only files are
        // read there.
        problem("not a regular file".into());
    }
}

/// `.yaml` or `.yml`, in any case (`Tenant.YAML` from a system that does not care).
fn is_yaml(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// Reads every file under `paths`.
pub fn load(paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    let (files, problems) = yaml_files(paths);
    loaded.problems = problems;
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => parse_into(&f, &text, &mut loaded),
            Err(e) => loaded.problems.push(Problem {
                file: f.display().to_string(),
                object: String::new(),
                field: String::new(),
                message: format!("cannot read: {e}"),
            }),
        }
    }
    loaded
}

/// The kinds regie serves.
const KINDS: &[&str] = &[
    "ServiceLevel",
    "Tenant",
    "WorkplacePackage",
    "HostingComponent",
    "PriceList",
    "CostPool",
    "ServiceOrder",
    "Usage",
    "Invoice",
    "SlaReport",
];

/// How deep brackets may nest: serde_yaml refuses deeper documents anyway (its recursion
/// limit), but only after a scan that takes quadratic time — seconds for 30 KB of `[`.
const MAX_FLOW_DEPTH: usize = 128;

/// The line on which `text`'s brackets (`[`, `{`) nest deeper than [`MAX_FLOW_DEPTH`], if any.
/// Brackets in quoted strings and comments count too: a document with more than a hundred of
/// them open in its text is not one anybody writes.
fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    for c in text.chars() {
        match c {
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some(line);
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            '\n' => line += 1,
            _ => {}
        }
    }
    None
}

/// Parses one file's text (all its documents) into `loaded`.
pub fn parse_into(file: &Path, text: &str, loaded: &mut Loaded) {
    let name = file.display().to_string();
    // A byte-order mark, as some Windows editors write: YAML allows one at the start.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(line) = too_deep(text) {
        loaded.problems.push(Problem {
            file: name,
            object: String::new(),
            field: String::new(),
            message: format!(
                "brackets nest deeper than {MAX_FLOW_DEPTH} levels at line {line}; not read"
            ),
        });
        return;
    }
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let document = i + 1;
        let value: serde_yaml::Value = match serde::Deserialize::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                loaded.problems.push(Problem {
                    file: name.clone(),
                    object: String::new(),
                    field: String::new(),
                    message: format!("document {document} is not valid YAML: {e}"),
                });
                // A syntax error ends the stream: later documents cannot be located reliably.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let meta = value.get("metadata");
        let obj_name = meta
            .and_then(|m| m.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let ns = meta
            .and_then(|m| m.get("namespace"))
            .and_then(|v| v.as_str());
        let ident = match ns {
            Some(ns) => format!("{kind}/{ns}/{obj_name}"),
            None => format!("{kind}/{obj_name}"),
        };
        if api_version.is_empty() || kind.is_empty() {
            loaded.problems.push(Problem {
                file: name.clone(),
                object: String::new(),
                field: String::new(),
                message: format!("document {document} has no apiVersion and kind"),
            });
            continue;
        }
        if !api_version.starts_with("regie.dev/") {
            // `regie.io/v1alpha1`, `regie.dev.v1alpha1`: one of regie's kinds in what can only
            // be a misspelling of its group is not another tool's object to pass over.
            let group = api_version.rsplit_once('/').map_or(api_version, |(g, _)| g);
            if KINDS.contains(&kind.as_str()) && group.to_ascii_lowercase().contains("regie") {
                loaded.problems.push(Problem {
                    file: name.clone(),
                    object: ident,
                    field: "apiVersion".into(),
                    message: format!("{api_version} is not regie's API; use {API_VERSION}"),
                });
            } else {
                loaded.foreign += 1;
            }
            continue;
        }
        let source = Source {
            file: file.to_path_buf(),
            document,
        };
        let mut problem = |field: String, message: String| {
            loaded.problems.push(Problem {
                file: name.clone(),
                object: ident.clone(),
                field,
                message,
            })
        };
        if api_version != API_VERSION {
            problem(
                "apiVersion".into(),
                format!("{api_version} is not served; use {API_VERSION}"),
            );
            continue;
        }
        if obj_name.is_empty() {
            problem("metadata.name".into(), "is required".into());
            continue;
        }
        // A field the schema lacks is ignored by serde and pruned by the API server: a
        // misspelling would silently mean nothing. `document` is the JSON form of the YAML (a
        // document whose keys are not all strings is left to the typed read below).
        if let Ok(document) = serde_json::to_value(&value) {
            for path in crate::unknown_fields::unknown_fields(&kind, &document) {
                let message = if path.ends_with(".<<") || path == "<<" {
                    "a YAML merge key (<<), which regie does not read: write the fields out"
                        .to_string()
                } else {
                    format!("unknown field: {kind} has no such field (misspelt?)")
                };
                problem(path, message);
            }
        }
        let parsed = match kind.as_str() {
            "ServiceLevel" => typed(value).map(Object::ServiceLevel),
            "Tenant" => typed(value).map(Object::Tenant),
            "WorkplacePackage" => typed(value).map(Object::WorkplacePackage),
            "HostingComponent" => typed(value).map(Object::HostingComponent),
            "PriceList" => typed(value).map(Object::PriceList),
            "CostPool" => typed(value).map(Object::CostPool),
            "ServiceOrder" => typed(value).map(Object::ServiceOrder),
            "Usage" => typed(value).map(Object::Usage),
            "Invoice" => typed(value).map(Object::Invoice),
            "SlaReport" => typed(value).map(Object::SlaReport),
            other => Err((
                "kind".to_string(),
                format!("{other} is not a regie.dev kind"),
            )),
        };
        match parsed {
            Ok(obj) => loaded.objects.push((source, obj)),
            Err((field, message)) => problem(field, message),
        }
    }
}

/// Deserializes with the failing field's path kept for the message.
fn typed<T: DeserializeOwned>(value: serde_yaml::Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner().to_string();
        // serde_yaml appends a position that refers to the re-serialized value, not the file.
        let message = inner
            .split(" at line ")
            .next()
            .unwrap_or(&inner)
            .to_string();
        (path, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_linked_to_again_is_walked_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("tenants");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(sub.join("a.yaml"), "kind: X\n").expect("write");
        // A link to the directory itself and one to its parent: a loop, and a second name.
        std::os::unix::fs::symlink(&sub, sub.join("again")).expect("link");
        std::os::unix::fs::symlink(dir.path(), sub.join("up")).expect("link");
        let (files, problems) = yaml_files(&[dir.path().to_path_buf()]);
        assert_eq!(files, [sub.join("a.yaml")]);
        assert!(problems.is_empty(), "{problems:?}");
    }

    fn parse(text: &str) -> Loaded {
        let mut l = Loaded::default();
        parse_into(Path::new("t.yaml"), text, &mut l);
        l
    }

    #[test]
    fn reads_mixed_documents_and_skips_foreign_ones() {
        let l = parse(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n---\n---\napiVersion: regie.dev/v1alpha1\nkind: WorkplacePackage\nmetadata: {name: p, namespace: tenant-a}\nspec: {profile: standard, accounts: 3}\n",
        );
        assert!(l.problems.is_empty(), "{:?}", l.problems);
        assert_eq!(l.objects.len(), 1);
        assert_eq!(l.foreign, 1);
        assert_eq!(l.objects[0].0.document, 3);
    }

    #[test]
    fn type_errors_name_the_field() {
        let l = parse(
            "apiVersion: regie.dev/v1alpha1\nkind: WorkplacePackage\nmetadata: {name: p, namespace: tenant-a}\nspec: {profile: standard, accounts: many}\n",
        );
        assert_eq!(l.problems.len(), 1);
        let p = &l.problems[0];
        assert_eq!(p.object, "WorkplacePackage/tenant-a/p");
        assert_eq!(p.field, "spec.accounts");
        assert!(p.message.contains("invalid type"), "{}", p.message);
        assert_eq!(
            p.to_string(),
            format!(
                "t.yaml: WorkplacePackage/tenant-a/p: spec.accounts: {}",
                p.message
            )
        );
    }

    #[test]
    fn unknown_kinds_and_versions_are_problems() {
        let l = parse(
            "apiVersion: regie.dev/v1alpha1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: regie.dev/v2\nkind: Tenant\nmetadata: {name: x}\n",
        );
        assert_eq!(l.problems.len(), 2);
        assert!(l.problems[0].message.contains("not a regie.dev kind"));
        assert!(l.problems[1].message.contains("not served"));
    }

    #[test]
    fn unknown_fields_are_problems_naming_file_object_and_path() {
        let l = parse(
            "apiVersion: regie.dev/v1alpha1\nkind: CostPool\nmetadata: {name: pool}\nspec: {amount: \"1.00\", from: \"2026-01-01\", until: \"2026-12-31\", allocation: equalShares, tenantSelecter: {matchLabels: {a: b}}}\n",
        );
        assert_eq!(l.problems.len(), 1, "{:?}", l.problems);
        assert_eq!(
            l.problems[0].to_string(),
            "t.yaml: CostPool/pool: spec.tenantSelecter: unknown field: CostPool has no such field (misspelt?)"
        );
    }

    #[test]
    fn every_file_is_read_once_and_a_bad_path_hides_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("a.yaml"), "kind: X\n").expect("write");
        std::fs::write(d.join("B.YAML"), "kind: X\n").expect("write");
        std::fs::write(d.join("c.Yml"), "kind: X\n").expect("write");
        std::fs::write(d.join("notes.txt"), "x").expect("write");
        let pipe = d.join("pipe.yaml");
        let made = std::process::Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .expect("mkfifo")
            .success();
        assert!(made);
        let (files, problems) = yaml_files(&[
            d.join("missing.yaml"),
            d.to_path_buf(),
            d.join("a.yaml"),
            d.join(".").join("a.yaml"),
        ]);
        assert_eq!(files, [d.join("B.YAML"), d.join("a.yaml"), d.join("c.Yml")]);
        let said: Vec<_> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].contains("missing.yaml: cannot read"), "{said:?}");
        assert!(
            said[1].ends_with("pipe.yaml: not a regular file"),
            "{said:?}"
        );
    }

    #[test]
    fn a_byte_order_mark_is_read_past() {
        let l = parse(
            "\u{feff}apiVersion: regie.dev/v1alpha1\nkind: WorkplacePackage\nmetadata: {name: p, namespace: tenant-a}\nspec: {profile: standard, accounts: 3}\n",
        );
        assert!(l.problems.is_empty(), "{:?}", l.problems);
        assert_eq!(l.objects.len(), 1);
    }

    #[test]
    fn brackets_nested_past_reason_are_refused_before_parsing() {
        let deep = format!(
            "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nspec: {}\n",
            "[".repeat(100_000)
        );
        let started = std::time::Instant::now();
        let l = parse(&deep);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(l.problems.len(), 1);
        assert_eq!(
            l.problems[0].to_string(),
            "t.yaml: brackets nest deeper than 128 levels at line 3; not read"
        );
        let fine = format!("a: {}{}\n", "[".repeat(100), "]".repeat(100));
        assert!(too_deep(&fine).is_none());
    }

    #[test]
    fn a_regie_kind_in_a_misspelt_group_is_a_problem_not_foreign() {
        let l = parse(
            "apiVersion: regie.io/v1alpha1\nkind: CostPool\nmetadata: {name: pool}\n---\napiVersion: capsule.clastix.io/v1beta2\nkind: Tenant\nmetadata: {name: t}\n---\napiVersion: regie.dev/v1alpha1\nkind: WorkplacePackage\nmetadata: {name: p, namespace: tenant-a}\nspec: {<<: {profile: standard}, accounts: 3}\n",
        );
        assert_eq!(l.foreign, 1, "another project's Tenant is passed over");
        let said: Vec<_> = l.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            said[0],
            "t.yaml: CostPool/pool: apiVersion: regie.io/v1alpha1 is not regie's API; use regie.dev/v1alpha1"
        );
        assert!(
            said.iter()
                .any(|p| p.contains("spec.<<: a YAML merge key (<<), which regie does not read")),
            "{said:?}"
        );
    }

    #[test]
    fn broken_yaml_is_a_problem_not_a_panic() {
        let l = parse("apiVersion: regie.dev/v1alpha1\nkind: [unclosed\n");
        assert_eq!(l.problems.len(), 1);
        assert!(l.problems[0].message.contains("not valid YAML"));
    }
}

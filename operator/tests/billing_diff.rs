//! `regie diff` on a pull request where Tholen moves from bronze to gold: the objects that change
//! and the monthly price change, checked against amounts computed here independently.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else if p.extension().is_some_and(|x| x == "yaml")
            && e.file_name() != "kustomization.yaml"
        {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

fn tree(dir: &Path) {
    copy_dir(&root().join("examples/catalogue"), &dir.join("catalogue"));
    copy_dir(&root().join("examples/tenants"), &dir.join("tenants"));
}

/// Half-up cents of qty × yearly rate (cents) over March 2026's 743 of 8760 hours.
fn march(qty: i128, rate_cents: i128) -> i128 {
    (2 * qty * rate_cents * 743 + 8760) / (2 * 8760)
}

fn money(c: i128) -> String {
    format!(
        "{}{}.{:02}",
        if c < 0 { "-" } else { "" },
        c.abs() / 100,
        c.abs() % 100
    )
}

#[test]
fn tholen_asking_for_gold_shows_its_objects_and_its_new_monthly_price() {
    let md = diff_after(|head| {
        edit(
            &head.join("tenants/tholen/tenant.yaml"),
            "serviceLevel: bronze",
            "serviceLevel: gold",
        )
    });

    // Only Tholen changes.
    assert!(md.contains("### tholen"), "{md}");
    for other in ["roosendaal", "moerdijk", "etten-leur", "werkplein"] {
        assert!(
            !md.contains(&format!("### {other}")),
            "{other} does not change:\n{md}"
        );
    }
    // Its objects: the namespace's level label, the hosted archive's Deployment (gold runs more
    // replicas), and so on; nothing added or removed for a tier change of a tenant whose
    // hosted component gains a disruption budget at gold.
    assert!(md.contains("- changed `Namespace/tenant-tholen`"), "{md}");
    assert!(
        md.contains("Deployment/tenant-tholen/document-archive"),
        "{md}"
    );

    // The price: accounts and both components move to gold rates.
    let before = march(210, 213_500) + march(1, 3_000_000) + march(1, 1_900_000);
    let after = march(210, 266_875) + march(1, 4_050_000) + march(1, 2_565_000);
    assert_eq!(money(before), "42183.91");
    let row = md
        .lines()
        .find(|l| l.starts_with("| tholen |"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        row.contains(&money(before)) && row.contains(&money(after)),
        "{row}"
    );
    assert!(
        row.contains(&format!("+{}", money(after - before))),
        "{row}"
    );
    assert!(
        md.contains(&format!(
            "| account: Workplace accounts standard, bronze, 2135.00 per year | {} | — | -{} |",
            money(march(210, 213_500)),
            money(march(210, 213_500))
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| account: Workplace accounts standard, gold, 2668.75 per year | — | {} | +{} |",
            money(march(210, 266_875)),
            money(march(210, 266_875))
        )),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| **total** | **{}** | **{}** | **+{}** |",
            money(before),
            money(after),
            money(after - before)
        )),
        "{md}"
    );
}

#[test]
fn identical_trees_change_nothing_and_bad_trees_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (base, head) = (dir.path().join("base"), dir.path().join("head"));
    tree(&base);
    tree(&head);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "diff".to_string(),
            base.display().to_string(),
            head.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Command::new(env!("CARGO_BIN_EXE_regie"))
            .args(&args)
            .env("REGIE_NOW", "2026-11-23T12:00:00Z")
            .output()
            .unwrap()
    };
    let out = run(&["--period", "2026-03"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("No tenant's objects or prices change, nor any service level.")
    );
    let out = run(&["--period", "2026-Q1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("give a month"));
    std::fs::write(head.join("tenants/tholen/broken.yaml"), "apiVersion: regie.dev/v1alpha1\nkind: WorkplacePackage\nmetadata: {name: x, namespace: tenant-tholen}\nspec: {profile: standard, accounts: -3}\n").unwrap();
    let out = run(&["--period", "2026-03"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("head: ") && err.contains("spec.accounts"),
        "{err}"
    );
}

/// Runs `regie diff base head --period 2026-03` after `change` edits the head tree.
fn diff_after(change: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (base, head) = (dir.path().join("base"), dir.path().join("head"));
    tree(&base);
    tree(&head);
    change(&head);
    let out = Command::new(env!("CARGO_BIN_EXE_regie"))
        .args([
            "diff",
            &base.display().to_string(),
            &head.display().to_string(),
            "--period",
            "2026-03",
        ])
        .env("REGIE_NOW", "2026-11-23T12:00:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{from} in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

/// What changes no object and no price before VAT still changes a contract or what is paid:
/// a service level's terms bind every tenant at it, a VAT rate every invoice.
#[test]
fn a_service_level_or_a_vat_rate_changed_is_shown_with_whom_it_binds() {
    let md = diff_after(|head| {
        edit(
            &head.join("catalogue/service-levels.yaml"),
            "kpiReport: monthly",
            "kpiReport: weekly",
        )
    });
    assert!(
        md.contains("- changed `ServiceLevel/bronze`: the targets, service hours, credits and probing of etten-leur (e-suite, gis-viewer), moerdijk (datawarehouse), tholen (document-archive, website)\n"),
        "{md}"
    );
    assert!(!md.contains("No tenant's objects"), "{md}");
    let md = diff_after(|head| {
        edit(
            &head.join("catalogue/pricelist-2026.yaml"),
            "percent: \"21\"",
            "percent: \"9\"",
        );
    });
    assert!(
        md.contains("| VAT (its rate or category changed) |"),
        "{md}"
    );
}

/// A reduction's price falls only after its notice period: the comment says so.
#[test]
fn a_reduction_says_when_its_price_falls() {
    let md = diff_after(|head| {
        edit(
            &head.join("tenants/werkplein/tenant.yaml"),
            "serviceLevel: gold",
            "serviceLevel: bronze",
        )
    });
    assert!(
        md.contains("A reduction is billed at the previous price until its notice period (90d) after the change has passed"),
        "{md}"
    );
}

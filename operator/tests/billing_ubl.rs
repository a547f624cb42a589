//! UBL invoices checked by a real validator: `eu-einvoice validate --offline --json FILE`
//! (PyPI `eu-einvoice==1.0.0`, installed by `e2e/install-deps python`) runs the UBL 2.1 XSD
//! layer offline; its Schematron layers need a download and are not relied on. On top,
//! `eu-einvoice extract` + `check` recompute every line (quantity × price) and the totals from
//! the XML and must agree with regie's own JSON to the cent.
//!
//! The tests FAIL when `eu-einvoice` is missing: an invoice nobody validated is not tested.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn regie(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_regie"))
        .args(args)
        .env("REGIE_NOW", "2026-11-23T12:00:00Z")
        .output()
        .expect("run regie");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn einvoice(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("eu-einvoice").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run eu-einvoice ({e}): install it with `pip install eu-einvoice==1.0.0` or `e2e/install-deps python`")
    });
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Validates one file; panics with the validator's errors unless the XSD layer ran and passed.
fn assert_xsd_valid(file: &Path) {
    let (code, out, err) = einvoice(&[
        "validate",
        "--offline",
        "--json",
        &file.display().to_string(),
    ]);
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("eu-einvoice answered no JSON ({e}): {out}\n{err}"));
    let layers: Vec<&str> = v["layers_run"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        layers.contains(&"xsd"),
        "the XSD layer did not run for {}: {v}",
        file.display()
    );
    assert_eq!(
        v["errors"].as_array().map(Vec::len),
        Some(0),
        "{}: {v}",
        file.display()
    );
    assert_eq!(v["valid"], true, "{}: {v}", file.display());
    assert_eq!(v["profile"], "peppol", "{}: {v}", file.display());
    assert_eq!(code, 0, "{}: {v}", file.display());
}

/// Recomputes lines and totals from the XML; returns the payable amount the validator computed.
fn checked_payable(file: &Path, scratch: &Path) -> String {
    let (code, model, err) = einvoice(&["extract", &file.display().to_string()]);
    assert_eq!(code, 0, "extract {}: {err}", file.display());
    let json = scratch.join(format!(
        "{}.json",
        file.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&json, &model).unwrap();
    let (code, out, err) = einvoice(&["check", &json.display().to_string()]);
    assert_eq!(code, 0, "check {}: {out}{err}", file.display());
    assert!(
        out.contains("OK, ready to create."),
        "check {} found problems:\n{out}{err}",
        file.display()
    );
    out.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("payable")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no payable in {out}"))
}

fn bill_to(dir: &Path, inputs: &[String], period: &str, format: &str) {
    let d = dir.display().to_string();
    let mut args = vec!["bill"];
    args.extend(inputs.iter().map(String::as_str));
    args.extend(["--period", period, "-o", format, "--out", &d]);
    let (code, _, err) = regie(&args);
    assert_eq!(code, 0, "{err}");
}

fn check_all(inputs: &[String], period: &str) -> usize {
    let xml = tempfile::tempdir().unwrap();
    let json = tempfile::tempdir().unwrap();
    bill_to(xml.path(), inputs, period, "ubl");
    bill_to(json.path(), inputs, period, "json");
    let mut n = 0;
    for e in std::fs::read_dir(xml.path()).unwrap() {
        let path = e.unwrap().path();
        assert_xsd_valid(&path);
        let payable = checked_payable(&path, json.path());
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let ours: Value = serde_json::from_str(
            &std::fs::read_to_string(json.path().join(format!("{stem}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            ours["invoices"][0]["totalInclVat"], payable,
            "{stem}: the validator's payable amount is regie's"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("<cbc:EndpointID schemeID=\"0190\">"),
            "buyer endpoint from electronicAddress"
        );
        n += 1;
    }
    n
}

fn example_inputs() -> Vec<String> {
    vec![
        root().join("examples/catalogue").display().to_string(),
        root().join("examples/tenants").display().to_string(),
    ]
}

#[test]
fn every_examples_invoice_of_march_2026_passes_the_ubl_schema() {
    assert_eq!(check_all(&example_inputs(), "2026-03"), 5);
}

#[test]
fn the_validator_does_catch_a_broken_invoice() {
    let dir = tempfile::tempdir().unwrap();
    bill_to(dir.path(), &example_inputs(), "2026-03", "ubl");
    let good = dir.path().join("tholen-2026-03.xml");
    let text = std::fs::read_to_string(&good).unwrap();
    assert!(text.contains("<cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0</cbc:CustomizationID>"));
    assert!(text.contains("<cbc:BuyerReference>PO-2026-THO-009</cbc:BuyerReference>"));
    assert!(text.contains("<cbc:InvoicedQuantity unitCode=\"C62\">210</cbc:InvoicedQuantity>"));
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        text.replacen(
            "<cbc:IssueDate>",
            "<cbc:Bogus>x</cbc:Bogus><cbc:IssueDate>",
            1,
        ),
    )
    .unwrap();
    let (code, out, _) = einvoice(&[
        "validate",
        "--offline",
        "--json",
        &bad.display().to_string(),
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["valid"], false, "{v}");
    assert_ne!(code, 0);
}

#[test]
fn credits_hours_notice_and_escaping_pass_the_schema_too() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    copy_dir(
        &root().join("examples/catalogue"),
        &inputs.join("catalogue"),
    );
    copy_dir(&root().join("examples/tenants"), &inputs.join("tenants"));
    // Hours with markup in the description, a credit (a negative line) and a ledger with a
    // downgrade (a notice line).
    std::fs::write(
        inputs.join("tenants/tholen/orders.yaml"),
        "apiVersion: regie.dev/v1alpha1\nkind: ServiceOrder\nmetadata: {name: migration, namespace: tenant-tholen}\nspec: {date: \"2026-03-10\", hours: \"7.5\", description: \"R&D <mail> 'migration' \\\"phase 1\\\"\"}\n",
    )
    .unwrap();
    std::fs::write(
        inputs.join("sla.yaml"),
        "apiVersion: regie.dev/v1alpha1\nkind: SlaReport\nmetadata: {name: tholen-2026-03}\nspec: {tenant: tholen, period: \"2026-03\", from: \"2026-03-01T00:00:00+01:00\", to: \"2026-04-01T00:00:00+02:00\"}\nstatus:\n  components:\n  - {component: website, serviceLevel: bronze, windowSeconds: 1, downSeconds: 0, availability: \"96.0\", target: \"99.0\", met: false, creditPercent: 10}\n",
    )
    .unwrap();
    std::fs::write(
        inputs.join("usage.yaml"),
        "apiVersion: regie.dev/v1alpha1\nkind: Usage\nmetadata: {name: roosendaal-2026-03}\nspec: {tenant: roosendaal, period: \"2026-03\"}\nstatus:\n  segments:\n  - from: \"2026-03-01T00:00:00+01:00\"\n    to: \"2026-03-16T00:00:00+01:00\"\n    serviceLevel: gold\n    accounts: {standard: 620}\n    components: []\n  - from: \"2026-03-16T00:00:00+01:00\"\n    to: \"2026-04-01T00:00:00+02:00\"\n    serviceLevel: silver\n    accounts: {standard: 600}\n    components: []\n",
    )
    .unwrap();
    let ins = vec![inputs.display().to_string()];
    assert_eq!(check_all(&ins, "2026-03"), 5);
    let out = dir.path().join("xml");
    bill_to(&out, &ins, "2026-03", "ubl");
    let tholen = std::fs::read_to_string(out.join("tholen-2026-03.xml")).unwrap();
    assert!(
        tholen.contains("R&amp;D &lt;mail&gt; &apos;migration&apos; &quot;phase 1&quot;"),
        "{tholen}"
    );
    assert!(tholen.contains("unitCode=\"HUR\">7.5<"));
    assert!(
        tholen.contains("unitCode=\"P1\">-10<"),
        "a credit is a negative quantity at a positive price"
    );
    let roosendaal = std::fs::read_to_string(out.join("roosendaal-2026-03.xml")).unwrap();
    assert!(
        roosendaal.contains("<cbc:ID>notice</cbc:ID>"),
        "{roosendaal}"
    );
}

/// PEPPOL-EN16931-R110/R111 (Schematron, not run offline): a line's period lies within the
/// invoice's. A quarterly pool instalment on a monthly invoice reaches past the month.
#[test]
fn pool_instalments_keep_their_line_period_within_the_invoice_period() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    copy_dir(
        &root().join("examples/catalogue"),
        &inputs.join("catalogue"),
    );
    copy_dir(&root().join("examples/tenants"), &inputs.join("tenants"));
    std::fs::write(
        inputs.join("catalogue/pool-2026.yaml"),
        "apiVersion: regie.dev/v1alpha1\nkind: CostPool\nmetadata: {name: i-programme-2026}\nspec:\n  description: Joint i-programme 2026\n  amount: \"660000.00\"\n  from: \"2026-01-01\"\n  until: \"2026-12-31\"\n  allocation: equalShares\n  tenantSelector: {matchLabels: {regie.dev/organisation: ict-wbw}}\n  instalments: quarterly\n",
    )
    .unwrap();
    let ins = vec![inputs.display().to_string()];
    assert_eq!(check_all(&ins, "2026-01"), 5);
    let out = dir.path().join("xml");
    bill_to(&out, &ins, "2026-01", "ubl");
    let tholen = std::fs::read_to_string(out.join("tholen-2026-01.xml")).unwrap();
    assert!(
        tholen.contains("instalment 1 of 4 (covers 2026-01-01 to 2026-03-31)</cbc:Description>"),
        "{tholen}"
    );
    let dates = |tag: &str| -> Vec<String> {
        let open = format!("<cbc:{tag}>");
        tholen
            .split(&open)
            .skip(1)
            .map(|s| s[..s.find('<').unwrap()].to_string())
            .collect()
    };
    let (starts, ends) = (dates("StartDate"), dates("EndDate"));
    assert!(starts.len() > 1, "{tholen}");
    assert!(
        starts.iter().all(|d| d.as_str() >= "2026-01-01"),
        "{tholen}"
    );
    assert!(ends.iter().all(|d| d.as_str() <= "2026-01-31"), "{tholen}");
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

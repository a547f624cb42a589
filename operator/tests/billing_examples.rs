//! `regie bill` on the examples: exact totals for March 2026 against a committed, hand-checked
//! fixture, which is itself checked here against integer arithmetic done independently of the
//! program (quantity × yearly rate in cents × 743 h / 8760 h, rounded half-up).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The catalogue and the tenants of the examples (the folders that hold regie objects).
fn example_paths() -> Vec<PathBuf> {
    vec![
        root().join("examples/catalogue"),
        root().join("examples/tenants"),
    ]
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

fn bill_args<'a>(paths: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["bill"];
    v.extend(paths.iter().map(String::as_str));
    v.extend_from_slice(extra);
    v
}

fn paths() -> Vec<String> {
    example_paths()
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

fn fixture() -> Value {
    let text = std::fs::read_to_string(
        root().join("operator/tests/fixtures/billing/examples-2026-03.json"),
    )
    .expect("fixture");
    serde_json::from_str(&text).expect("fixture parses")
}

/// Cents, half-up: qty × rate_cents × 743 / 8760.
fn march_cents(qty: i128, rate_cents: i128) -> i128 {
    let n = qty * rate_cents * 743;
    let d = 8760;
    (2 * n + d) / (2 * d)
}

fn cents(s: &str) -> i128 {
    let (i, f) = s.split_once('.').expect("two decimals");
    assert_eq!(f.len(), 2, "{s} has two decimals");
    let v = i.trim_start_matches('-').parse::<i128>().unwrap() * 100 + f.parse::<i128>().unwrap();
    if s.starts_with('-') { -v } else { v }
}

#[test]
fn the_fixture_agrees_with_independent_integer_arithmetic() {
    // (tenant, [(quantity, yearly rate in cents)]) from examples/ and pricelist-2026.yaml.
    let expected: [(&str, &[(i128, i128)]); 5] = [
        (
            "etten-leur",
            &[(380, 213_500), (1, 1_900_000), (1, 3_000_000)],
        ),
        (
            "moerdijk",
            &[
                (310, 234_850),
                (1, 3_000_000),
                (1, 2_185_000),
                (1, 2_185_000),
            ],
        ),
        (
            "roosendaal",
            &[
                (45, 176_138),
                (620, 234_850),
                (1, 2_835_000),
                (1, 2_185_000),
                (1, 2_185_000),
            ],
        ),
        ("tholen", &[(210, 213_500), (1, 3_000_000), (1, 1_900_000)]),
        (
            "werkplein",
            &[(150, 266_875), (1, 2_565_000), (1, 2_415_000)],
        ),
    ];
    let f = fixture();
    let invoices = f["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), expected.len());
    for (inv, (tenant, lines)) in invoices.iter().zip(expected) {
        assert_eq!(inv["tenant"], tenant);
        let got: Vec<i128> = inv["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| cents(l["amount"].as_str().unwrap()))
            .collect();
        let want: Vec<i128> = lines.iter().map(|(q, r)| march_cents(*q, *r)).collect();
        assert_eq!(got, want, "{tenant}");
        let total: i128 = want.iter().sum();
        assert_eq!(cents(inv["total"].as_str().unwrap()), total, "{tenant}");
        let vat = (2 * total * 21 + 100) / 200;
        assert_eq!(cents(inv["vat"].as_str().unwrap()), vat, "{tenant}");
        assert_eq!(
            cents(inv["totalInclVat"].as_str().unwrap()),
            total + vat,
            "{tenant}"
        );
    }
}

#[test]
fn bill_examples_march_2026_matches_the_fixture_to_the_cent() {
    let p = paths();
    let (code, out, err) = regie(&bill_args(&p, &["--period", "2026-03", "-o", "json"]));
    assert_eq!(code, 0, "{err}");
    let got: Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(got["period"], "2026-03");
    assert_eq!(got["currency"], "EUR");
    let want = fixture();
    let gi = got["invoices"].as_array().unwrap();
    let wi = want["invoices"].as_array().unwrap();
    assert_eq!(gi.len(), wi.len());
    for (g, w) in gi.iter().zip(wi) {
        assert_eq!(g["tenant"], w["tenant"]);
        for k in ["total", "vat", "totalInclVat"] {
            assert_eq!(g[k], w[k], "{} {k}", w["tenant"]);
        }
        assert_eq!(g["state"], "final", "March is closed on 23 November");
        let gl = g["lines"].as_array().unwrap();
        let wl = w["lines"].as_array().unwrap();
        assert_eq!(gl.len(), wl.len(), "{}", w["tenant"]);
        for (a, b) in gl.iter().zip(wl) {
            for k in ["kind", "description", "quantity", "amount"] {
                assert_eq!(a[k], b[k], "{} {k}", w["tenant"]);
            }
            assert_eq!(a["from"], "2026-03-01T00:00:00+01:00");
            assert_eq!(a["to"], "2026-04-01T00:00:00+02:00");
        }
    }
}

#[test]
fn json_output_keeps_the_contract() {
    let p = paths();
    let (code, out, err) = regie(&bill_args(&p, &["--period", "2026-03"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    for inv in v["invoices"].as_array().unwrap() {
        assert!(inv["tenant"].is_string());
        let mut sum = 0;
        for l in inv["lines"].as_array().unwrap() {
            for k in [
                "kind",
                "description",
                "quantity",
                "unit",
                "unitPrice",
                "amount",
                "from",
                "to",
                "vatCategory",
                "vatPercent",
            ] {
                assert!(l[k].is_string(), "line field {k} is a string: {l}");
            }
            sum += cents(l["amount"].as_str().unwrap());
        }
        assert_eq!(
            cents(inv["total"].as_str().unwrap()),
            sum,
            "total is the sum of the rounded lines"
        );
    }
}

#[test]
fn csv_has_a_header_and_a_row_per_line() {
    let p = paths();
    let (code, out, err) = regie(&bill_args(&p, &["--period", "2026-03", "-o", "csv"]));
    assert_eq!(code, 0, "{err}");
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let header = r.headers().unwrap().clone();
    assert_eq!(&header[0], "period");
    assert!(header.iter().any(|h| h == "unitPrice"));
    let rows: Vec<_> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 18, "3 + 4 + 5 + 3 + 3 lines");
    let sum: i128 = rows.iter().map(|row| cents(&row[10])).sum();
    let fixture_sum: i128 = fixture()["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| cents(i["total"].as_str().unwrap()))
        .sum();
    assert_eq!(sum, fixture_sum);
}

#[test]
fn out_dir_gets_one_file_per_invoice() {
    let dir = tempfile::tempdir().unwrap();
    let p = paths();
    let d = dir.path().display().to_string();
    let (code, _, err) = regie(&bill_args(
        &p,
        &["--period", "2026-Q1", "-o", "json", "--out", &d],
    ));
    assert_eq!(code, 0, "{err}");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names.len(),
        15,
        "five monthly tenants, three months: {names:?}"
    );
    assert!(names.contains(&"tholen-2026-03.json".to_string()));
    let one: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("tholen-2026-03.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(one["invoices"][0]["total"], "42183.91");
}

#[test]
fn bad_input_gives_clear_errors_and_exit_1() {
    let p = paths();
    for bad in ["2026-13", "2026-Q5", "26", "2026-3", "march"] {
        let (code, out, err) = regie(&bill_args(&p, &["--period", bad]));
        assert_eq!(code, 1, "{bad}");
        assert!(out.is_empty(), "{bad}: no partial output");
        assert!(
            err.contains(&format!("--period: period {bad:?} is not"))
                && err.contains("YYYY-MM")
                && err.contains("YYYY-Qn"),
            "{err}"
        );
    }

    // A tier in use with no rate: a platinum level the price lists do not know.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &root().join("examples/catalogue"),
        &dir.path().join("catalogue"),
    );
    copy_dir(
        &root().join("examples/tenants"),
        &dir.path().join("tenants"),
    );
    let levels = dir.path().join("catalogue/service-levels.yaml");
    let text = std::fs::read_to_string(&levels).unwrap();
    let platinum = text
        .split("---")
        .last()
        .unwrap()
        .replace("name: gold", "name: platinum")
        .replace("rank: 3", "rank: 4");
    std::fs::write(&levels, format!("{text}---{platinum}")).unwrap();
    let tenant = dir.path().join("tenants/tholen/tenant.yaml");
    let t = std::fs::read_to_string(&tenant)
        .unwrap()
        .replace("serviceLevel: bronze", "serviceLevel: platinum");
    std::fs::write(&tenant, t).unwrap();
    let d = dir.path().display().to_string();
    let (code, _, err) = regie(&["bill", &d, "--period", "2026-03"]);
    assert_eq!(code, 1);
    // The price list, its file and field, the tier, and the tenant that needs it.
    assert!(
        err.contains("PriceList/pricelist-2026 (")
            && err.contains("catalogue/pricelist-2026.yaml): spec.rates")
            && err.contains("serviceLevel \"platinum\"")
            && err.contains("Tenant/tholen")
            && err.contains("rate is missing"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");

    // Negative hours.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &root().join("examples/catalogue"),
        &dir.path().join("catalogue"),
    );
    copy_dir(
        &root().join("examples/tenants"),
        &dir.path().join("tenants"),
    );
    std::fs::write(
        dir.path().join("tenants/tholen/orders.yaml"),
        "apiVersion: regie.dev/v1alpha1\nkind: ServiceOrder\nmetadata: {name: migration, namespace: tenant-tholen}\nspec: {date: \"2026-03-10\", hours: \"-4\", description: Migration}\n",
    )
    .unwrap();
    let d = dir.path().display().to_string();
    let (code, _, err) = regie(&["bill", &d, "--period", "2026-03"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "tenants/tholen/orders.yaml: ServiceOrder/tenant-tholen/migration: spec.hours"
        ) && err.contains("\"-4\""),
        "{err}"
    );

    // A pool that selects no tenant.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &root().join("examples/catalogue"),
        &dir.path().join("catalogue"),
    );
    copy_dir(
        &root().join("examples/tenants"),
        &dir.path().join("tenants"),
    );
    let pools = dir.path().join("catalogue/cost-pools.yaml");
    let t = std::fs::read_to_string(&pools).unwrap().replacen(
        "regie.dev/organisation: ict-wbw",
        "regie.dev/organisation: dimpact",
        1,
    );
    std::fs::write(&pools, t).unwrap();
    let d = dir.path().display().to_string();
    let (code, _, err) = regie(&["bill", &d, "--period", "2026-03"]);
    assert_eq!(code, 1);
    assert!(
        // Found by the checks every command runs (as `regie validate` does), before pricing.
        err.contains(
            "catalogue/cost-pools.yaml: CostPool/i-programme-2024: spec.tenantSelector: selects no tenant"
        ),
        "{err}"
    );
}

#[test]
fn flexible_hours_and_service_credits_from_the_inputs() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &root().join("examples/catalogue"),
        &dir.path().join("catalogue"),
    );
    copy_dir(
        &root().join("examples/tenants"),
        &dir.path().join("tenants"),
    );
    std::fs::write(
        dir.path().join("tenants/tholen/orders.yaml"),
        "apiVersion: regie.dev/v1alpha1\nkind: ServiceOrder\nmetadata: {name: migration, namespace: tenant-tholen}\nspec: {date: \"2026-03-10\", hours: \"7.5\", description: Mailbox migration}\n---\napiVersion: regie.dev/v1alpha1\nkind: ServiceOrder\nmetadata: {name: advice, namespace: tenant-tholen}\nspec: {date: \"2026-03-11\", hours: \"2.25\", rate: \"120.00\", description: Architecture advice}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sla-tholen-2026-03.yaml"),
        "apiVersion: regie.dev/v1alpha1\nkind: SlaReport\nmetadata: {name: tholen-2026-03}\nspec: {tenant: tholen, period: \"2026-03\", from: \"2026-03-01T00:00:00+01:00\", to: \"2026-04-01T00:00:00+02:00\"}\nstatus:\n  components:\n  - {component: document-archive, serviceLevel: bronze, windowSeconds: 1, downSeconds: 0, availability: \"98.0\", target: \"99.0\", met: false, creditPercent: 5}\n",
    )
    .unwrap();
    let d = dir.path().display().to_string();
    let (code, out, err) = regie(&["bill", &d, "--period", "2026-03"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let tholen = v["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["tenant"] == "tholen")
        .unwrap();
    let lines = tholen["lines"].as_array().unwrap();
    let amount = |kind: &str, needle: &str| -> i128 {
        cents(
            lines
                .iter()
                .find(|l| l["kind"] == kind && l["description"].as_str().unwrap().contains(needle))
                .unwrap_or_else(|| panic!("{kind} {needle} in {lines:?}"))["amount"]
                .as_str()
                .unwrap(),
        )
    };
    // 7.5 h at the list's 100.00; 2.25 h at the order's own 120.00.
    assert_eq!(amount("flexibleHour", "Mailbox migration"), 75_000);
    assert_eq!(amount("flexibleHour", "Architecture advice"), 27_000);
    // 5% of the archive's March charge of 2544.52 (30000 × 743/8760 = 2544.5205…): 127.2260… → -127.23.
    assert_eq!(amount("credit", "document-archive"), -12_723);
    // 42183.91 + 750.00 + 270.00 − 127.23
    assert_eq!(
        cents(tholen["total"].as_str().unwrap()),
        4_218_391 + 75_000 + 27_000 - 12_723
    );
    let hour_line = lines.iter().find(|l| l["kind"] == "flexibleHour").unwrap();
    assert_eq!(hour_line["unit"], "hour");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
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

/// A cost pool that cannot be allocated over the tenants it selects at runtime (the controller
/// bills Tenants no `regie validate` saw together with the pool): its members are not billed,
/// and say why; every other tenant is billed as before. It failed the pass for every tenant.
#[test]
fn a_pool_that_cannot_be_allocated_leaves_only_its_members_unbilled() {
    use regie::billing::engine::{Record, bill_each, from_inventory};
    use regie::billing::period::Period;
    use regie::billing::proration::Calendar;
    let loaded = regie::input::load(&example_paths());
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let mut inv = regie::inventory::Inventory::new(loaded.objects);
    for t in &mut inv.tenants {
        if ["roosendaal", "tholen"].contains(&t.object.metadata.name.as_deref().unwrap()) {
            t.object
                .metadata
                .labels
                .get_or_insert_default()
                .insert("pool".into(), "lab".into());
        }
    }
    let lab: regie_crds::CostPool = serde_yaml::from_str(
        "apiVersion: regie.dev/v1alpha1\nkind: CostPool\nmetadata: {name: lab}\nspec: {amount: \"1000.00\", from: \"2026-01-01\", until: \"2026-12-31\", allocation: fixedShares, shares: {tholen: \"1\"}, tenantSelector: {matchLabels: {pool: lab}}}\n",
    )
    .unwrap();
    inv.pools.push(regie::inventory::Sourced {
        source: regie::input::Source {
            file: "lab.yaml".into(),
            document: 1,
        },
        object: lab,
    });
    let cal = Calendar::new(regie::billing::amsterdam().unwrap());
    let (cat, tenants) = from_inventory(&inv, cal).unwrap();
    let billed = bill_each(
        &cat,
        &tenants,
        &Default::default(),
        Period::parse("2026-03").unwrap(),
        "2026-06-01T00:00:00Z".parse().unwrap(),
        Record::Files,
    )
    .expect("the others are billed");
    let unbilled: Vec<&str> = billed.unbilled.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(unbilled, ["roosendaal", "tholen"]);
    assert!(
        billed.unbilled[0]
            .1
            .to_string()
            .starts_with("CostPool/lab: "),
        "{:?}",
        billed.unbilled
    );
    let mut invoiced: Vec<&str> = billed.invoices.iter().map(|i| i.tenant.as_str()).collect();
    invoiced.dedup();
    assert_eq!(invoiced, ["etten-leur", "moerdijk", "werkplein"]);
}

/// A final Invoice read back keeps its number on the period's invoice; a leaving tenant's
/// closing invoice of the same period (`<tenant>-<period>-c1`, its second stay billed after
/// the first departure) lends it none, in whatever order the files come.
#[test]
fn a_closing_invoice_read_back_does_not_number_the_periods_invoice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let final_invoice = |name: &str, number: &str| {
        format!(
            "apiVersion: regie.dev/v1alpha1\nkind: Invoice\nmetadata: {{name: {name}}}\n\
             spec: {{tenant: tholen, period: 2026-03, number: {number}, state: final, \
             currency: EUR, subtotal: \"0.00\", vat: \"0.00\", total: \"0.00\"}}\n"
        )
    };
    for (file, name, number) in [
        ("a.yaml", "tholen-2026-03-c1", "RG-2026-000008"),
        ("b.yaml", "tholen-2026-03", "RG-2026-000007"),
        ("c.yaml", "tholen-2026-03-c2", "RG-2026-000009"),
    ] {
        std::fs::write(dir.path().join(file), final_invoice(name, number)).expect("write");
    }
    let mut inputs = paths();
    inputs.push(dir.path().display().to_string());
    let (code, out, err) = regie(&bill_args(&inputs, &["--period", "2026-03"]));
    assert_eq!(code, 0, "{err}");
    let bill: Value = serde_json::from_str(&out).expect("json");
    let tholen = bill["invoices"]
        .as_array()
        .expect("invoices")
        .iter()
        .find(|i| i["tenant"] == "tholen")
        .expect("tholen's invoice");
    assert_eq!(tholen["number"], "RG-2026-000007", "{tholen:#}");
}

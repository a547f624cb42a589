//! Benchmark of the billing run: 1,000 tenants billed monthly for a year from Usage ledgers of
//! ten segments per tenant per month (tier, account and component changes at random instants,
//! so notice applies often), both 2026 price lists of the examples (the interim increase splits
//! July), service credits, and four cost pools (per inhabitant, per account, equal and fixed
//! shares; once, quarterly and monthly instalments) all allocated. Goal: at most 1 s.
//!
//! `cargo run --release -p regie-e2e --bin bench-billing [-- RUNS]` prints each run and the
//! median; the write-up is in docs/performance.md, section Billing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use jiff::Timestamp;
use jiff::civil::date;
use regie::billing::engine::{Catalogue, Credit, Credits, TenantInput, bill};
use regie::billing::events::{Jitter, SplitMix64};
use regie::billing::export::to_csv;
use regie::billing::invoice::{Invoice, LineKind};
use regie::billing::ledger::BillableState;
use regie::billing::local_rfc3339;
use regie::billing::period::{Month, Period};
use regie::billing::pools::Pool;
use regie::billing::pricing::PriceBook;
use regie::billing::proration::Calendar;
use regie_crds::generated::{Segment, SegmentComponent};
use regie_crds::tenancy::{ComponentClass, InvoicingPeriod};
use regie_crds::{CostPool, PriceList};
use rust_decimal::Decimal;

const TENANTS: usize = 1_000;
const SEGMENTS_PER_MONTH: usize = 10;
const GOAL_SECONDS: f64 = 1.0;

fn pools_yaml() -> String {
    let mut fixed = String::new();
    for i in 0..10 {
        fixed.push_str(&format!("    t{i:04}: \"{}\"\n", i + 1));
    }
    format!(
        r#"apiVersion: regie.dev/v1alpha1
kind: CostPool
metadata: {{name: e-suite-2026}}
spec: {{description: e-Suite, amount: "860000.00", from: "2026-01-01", until: "2026-12-31", allocation: perInhabitant, instalments: quarterly, tenantSelector: {{matchLabels: {{regie.dev/product-e-suite: "true"}}}}}}
---
apiVersion: regie.dev/v1alpha1
kind: CostPool
metadata: {{name: regie-2026}}
spec: {{description: Directing suppliers, amount: "7450000.00", from: "2026-01-01", until: "2026-12-31", allocation: perAccount, instalments: monthly}}
---
apiVersion: regie.dev/v1alpha1
kind: CostPool
metadata: {{name: i-programme-2026}}
spec: {{description: Joint i-programme, amount: "650000.00", from: "2026-01-01", until: "2026-12-31", allocation: equalShares, instalments: quarterly, tenantSelector: {{matchExpressions: [{{key: region, operator: In, values: [west, north]}}]}}}}
---
apiVersion: regie.dev/v1alpha1
kind: CostPool
metadata: {{name: migration-2026}}
spec:
  description: Migration
  amount: "100000.00"
  from: "2026-03-01"
  until: "2026-03-31"
  allocation: fixedShares
  instalments: once
  tenantSelector: {{matchLabels: {{fixed: "yes"}}}}
  shares:
{fixed}"#
    )
}

fn catalogue(cal: Calendar) -> Result<Catalogue> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut lists = Vec::new();
    for f in [
        "examples/catalogue/pricelist-2026.yaml",
        "examples/catalogue/pricelist-2026-07-interim.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(f)).with_context(|| f.to_string())?;
        lists.push(serde_yaml::from_str::<PriceList>(&text).with_context(|| f.to_string())?);
    }
    let book = PriceBook::new(&lists, &cal)?;
    let mut pools = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&pools_yaml()) {
        let p: CostPool = serde::Deserialize::deserialize(doc)?;
        pools.push(Pool::from_object(&p)?);
    }
    Ok(Catalogue {
        cal,
        book,
        pools,
        departed: Vec::new(),
    })
}

const LEVELS: [&str; 3] = ["bronze", "silver", "gold"];

fn random_state(rng: &mut SplitMix64) -> BillableState {
    let level = LEVELS[(rng.next_u64() % 3) as usize];
    let mut accounts =
        BTreeMap::from([("standard".to_string(), 100 + (rng.next_u64() % 900) as i64)]);
    if rng.next_u64().is_multiple_of(2) {
        accounts.insert("flex".into(), (rng.next_u64() % 60) as i64);
    }
    let classes = [
        ComponentClass::ApplicationHosting,
        ComponentClass::SystemIntegration,
        ComponentClass::DataManagement,
    ];
    let mut components = Vec::new();
    for (i, class) in classes.into_iter().enumerate() {
        if !rng.next_u64().is_multiple_of(5) {
            components.push(SegmentComponent {
                name: format!("c{i}"),
                class,
                service_level: LEVELS[(rng.next_u64() % 3) as usize].into(),
            });
        }
    }
    BillableState {
        service_level: level.into(),
        accounts,
        measured_accounts: BTreeMap::new(),
        components,
    }
}

fn tenants(cal: &Calendar, rng: &mut SplitMix64) -> Result<Vec<TenantInput>> {
    let mut out = Vec::with_capacity(TENANTS);
    for i in 0..TENANTS {
        let mut usage = BTreeMap::new();
        for m in 1..=12 {
            let month = Month::new(2026, m);
            let (ms, me) = cal.month_bounds(month)?;
            let len = me.as_second() - ms.as_second();
            let mut cuts: Vec<i64> = (1..SEGMENTS_PER_MONTH)
                .map(|_| (rng.next_u64() % len as u64) as i64)
                .collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut bounds = vec![ms];
            for c in cuts {
                bounds.push(Timestamp::from_second(ms.as_second() + c)?);
            }
            bounds.push(me);
            let segs: Vec<Segment> = bounds
                .windows(2)
                .filter(|w| w[0] < w[1])
                .map(|w| {
                    let s = random_state(rng);
                    Segment {
                        from: local_rfc3339(w[0], cal.tz()),
                        to: Some(local_rfc3339(w[1], cal.tz())),
                        service_level: s.service_level,
                        accounts: s.accounts,
                        measured_accounts: BTreeMap::new(),
                        components: s.components,
                    }
                })
                .collect();
            usage.insert(month, segs);
        }
        let mut labels = BTreeMap::new();
        if i % 3 == 0 {
            labels.insert("regie.dev/product-e-suite".to_string(), "true".to_string());
        }
        labels.insert("region".into(), ["west", "north", "south"][i % 3].into());
        if i < 10 {
            labels.insert("fixed".into(), "yes".into());
        }
        out.push(TenantInput {
            name: format!("t{i:04}"),
            labels,
            joined: if i % 50 == 7 {
                date(2026, 5, 12)
            } else {
                date(2020, 1, 1)
            },
            leaves: if i % 50 == 8 {
                Some(date(2026, 9, 30))
            } else {
                None
            },
            inhabitants: 11_000 + (rng.next_u64() % 290_000) as i64,
            invoicing: InvoicingPeriod::Monthly,
            declared: random_state(rng),
            usage,
            left_empty: Default::default(),
            orders: Vec::new(),
        });
    }
    Ok(out)
}

/// CPU seconds (user + system, all threads) the process has used, from /proc/self/stat (in
/// ticks of 1/100 s, Linux's USER_HZ): the machine is shared, so wall time alone says little.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// FNV-1a over the CSV export of every invoice (every printed field of every line) and the exact,
/// unrounded values: a speed-up must leave this unchanged.
fn fingerprint(invoices: &[Invoice], tz: &jiff::tz::TimeZone) -> Result<u64> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(to_csv(invoices, tz)?.as_bytes());
    for i in invoices {
        for l in &i.lines {
            feed(format!("{} {} {}\n", l.quantity, l.unit_price, l.amount).as_bytes());
        }
    }
    Ok(h)
}

fn main() -> Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5);
    let cal = Calendar::amsterdam()?;
    let mut rng = SplitMix64(6);
    let setup = Instant::now();
    let mut cat = catalogue(cal.clone())?;
    if std::env::var_os("BENCH_NO_NOTICE").is_some() {
        for l in &mut cat.book.lists {
            l.notice_seconds = 0;
        }
    }
    let ts = tenants(&cal, &mut rng)?;
    let mut credits = Credits::new();
    for t in ts.iter().step_by(7) {
        credits.insert(
            (t.name.clone(), "c0".into(), Month::new(2026, 3)),
            vec![Credit::month(Decimal::from(5))],
        );
    }
    let segments: usize = ts.iter().flat_map(|t| t.usage.values()).map(Vec::len).sum();
    eprintln!(
        "setup: {TENANTS} tenants, {segments} segments, {} pools in {:.2?}",
        cat.pools.len(),
        setup.elapsed()
    );
    let now: Timestamp = "2027-01-15T00:00:00Z".parse()?;
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut invoices = Vec::new();
    for r in 0..runs {
        // The previous run's invoices go first, so that each run pays for its own memory.
        drop(std::mem::take(&mut invoices));
        let cpu = cpu_seconds();
        let start = Instant::now();
        invoices = bill(&cat, &ts, &credits, Period::Year(2026), now)?;
        let t = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds().zip(cpu).map(|(b, a)| b - a);
        eprintln!(
            "run {}: {t:.3} s wall, {} CPU",
            r + 1,
            cpu.map_or("?".to_string(), |c| format!("{c:.2} s"))
        );
        times.push(t);
        cpu_times.extend(cpu);
    }
    times.sort_by(f64::total_cmp);
    cpu_times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let median_cpu = cpu_times
        .get(cpu_times.len() / 2)
        .map_or("?".to_string(), |c| format!("{c:.2} s"));
    // Sanity: every tenant-month invoiced, and every pool allocated to the cent.
    let lines: usize = invoices.iter().map(|i| i.lines.len()).sum();
    let pooled: Decimal = invoices
        .iter()
        .flat_map(|i| &i.lines)
        .filter(|l| l.kind == LineKind::Pool)
        .map(|l| l.amount)
        .sum();
    let pools_total: Decimal = cat.pools.iter().map(|p| p.amount).sum();
    let notices = invoices
        .iter()
        .flat_map(|i| &i.lines)
        .filter(|l| l.kind == LineKind::Notice)
        .count();
    if pooled != pools_total {
        bail!("pools allocated {pooled}, expected {pools_total}");
    }
    let fingerprint = fingerprint(&invoices, cal.tz())?;
    println!(
        "bench-billing: {TENANTS} tenants × 12 months × {SEGMENTS_PER_MONTH} segments ({segments}), {} invoices, {lines} lines ({notices} notice), pools {pooled} of {pools_total}, fingerprint {fingerprint:016x}: median {median:.3} s wall ({median_cpu} CPU) over {runs} runs (goal ≤ {GOAL_SECONDS} s) {}",
        invoices.len(),
        if median <= GOAL_SECONDS {
            "OK"
        } else {
            "OVER GOAL"
        }
    );
    Ok(())
}

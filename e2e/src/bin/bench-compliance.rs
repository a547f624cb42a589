//! Benchmark: SLA compliance recomputation for 5,000 components over a 30-day month (April 2026,
//! Europe/Amsterdam, with the examples' bronze, silver and gold tiers and their holidays), about
//! ten incidents per component. Goal: at most 100 ms for all 5,000.
//!
//! Three measurements, each the median of N runs after a warm-up:
//! - `cached calendar`: what the operator and `regie sla` do — service windows computed once per
//!   tier and period ([`calendar::service_intervals`]), then [`compliance_in`] per component;
//! - `per-component calendar`: the convenience [`compliance`], which computes the windows for
//!   every component again;
//! - `from samples`: the same month rebuilt from probe outcomes through [`down_intervals`]
//!   (one sample per minute per component, 43,200 each), then `compliance_in`.
//!
//!   cargo run --release -p regie-e2e --bin bench-compliance [-- RUNS]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jiff::{SignedDuration, Timestamp};
use regie::inventory::Inventory;
use regie::sla::calendar::{self, Interval, month_bounds};
use regie::sla::compliance::{Sample, compliance, compliance_in, down_intervals};
use regie::tier::Tier;

const COMPONENTS: usize = 5_000;
const INCIDENTS: u64 = 10;
const GOAL: Duration = Duration::from_millis(100);

/// SplitMix64: a small deterministic generator, so every run measures the same month.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn tiers() -> Result<Vec<Tier>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/catalogue");
    let loaded = regie::input::load(&[dir]);
    if !loaded.problems.is_empty() {
        bail!("examples/catalogue: {:?}", loaded.problems);
    }
    let tiers: Vec<Tier> = Inventory::new(loaded.objects)
        .tiers()
        .into_values()
        .collect();
    if tiers.is_empty() {
        bail!("examples/catalogue has no ServiceLevel");
    }
    Ok(tiers)
}

fn at(start: Timestamp, secs: u64) -> Result<Timestamp> {
    Ok(start.checked_add(SignedDuration::from_secs(i64::try_from(secs)?))?)
}

/// About ten incidents per component: mostly short (a minute or two), some up to two hours,
/// anywhere in the month (in and out of service hours).
fn incidents(rng: &mut Rng, month: Interval) -> Result<Vec<Interval>> {
    let len = u64::try_from(month.end.duration_since(month.start).as_secs())?;
    let n = INCIDENTS - 2 + rng.below(5);
    (0..n)
        .map(|_| {
            let start = rng.below(len);
            let dur = match rng.below(10) {
                0..=5 => 30 + rng.below(150),
                6..=8 => 180 + rng.below(1_620),
                _ => 1_800 + rng.below(5_400),
            };
            Ok(Interval::new(
                at(month.start, start)?,
                at(month.start, (start + dur).min(len))?,
            ))
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn cpu() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores available")
}

fn report(name: &str, runs: &[Duration]) {
    let med = median(runs.to_vec());
    let min = runs.iter().min().copied().unwrap_or_default();
    let max = runs.iter().max().copied().unwrap_or_default();
    let verdict = if med <= GOAL { "meets" } else { "MISSES" };
    println!(
        "{name:<24} median {:>8.2} ms  min {:>8.2} ms  max {:>8.2} ms  ({verdict} the {} ms goal)",
        med.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        GOAL.as_millis()
    );
}

fn main() -> Result<()> {
    let runs: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().context("RUNS must be a number")?,
        None => 21,
    };
    let tz = jiff::tz::TimeZone::get("Europe/Amsterdam")?;
    let month = month_bounds(2026, 4, &tz)?;
    let tiers = tiers()?;
    let mut rng = Rng(0x2026_0401);
    let components: Vec<(usize, Vec<Interval>)> = (0..COMPONENTS)
        .map(|k| Ok((k % tiers.len(), incidents(&mut rng, month)?)))
        .collect::<Result<_>>()?;
    let total: usize = components.iter().map(|(_, d)| d.len()).sum();
    println!(
        "bench-compliance: {COMPONENTS} components, {total} incidents, April 2026 (30 days), {}",
        cpu()
    );

    // Cached calendar, as the operator and `regie sla` do.
    let mut cached = Vec::with_capacity(runs);
    let mut check = (0i64, 0usize);
    for run in 0..=runs {
        let t0 = Instant::now();
        let windows: Vec<Vec<Interval>> = tiers
            .iter()
            .map(|t| calendar::service_intervals(t, month))
            .collect();
        let mut down = 0i64;
        let mut met = 0usize;
        for (tier, d) in &components {
            let r = compliance_in(&tiers[*tier], &windows[*tier], month, d, None);
            down += r.down_seconds;
            met += usize::from(r.met);
        }
        let took = t0.elapsed();
        black_box(&down);
        check = (down, met);
        if run > 0 {
            cached.push(took);
        }
    }
    println!(
        "  sanity: {} s down inside service hours in total, {} of {COMPONENTS} components met their target",
        check.0, check.1
    );
    report("cached calendar", &cached);

    let mut fresh = Vec::with_capacity(runs);
    for run in 0..=runs {
        let t0 = Instant::now();
        let mut down = 0i64;
        for (tier, d) in &components {
            down += compliance(&tiers[*tier], month, d).down_seconds;
        }
        let took = t0.elapsed();
        black_box(&down);
        if down != check.0 {
            bail!(
                "per-component calendar disagrees: {down} s against {} s",
                check.0
            );
        }
        if run > 0 {
            fresh.push(took);
        }
    }
    report("per-component calendar", &fresh);

    // From samples: one per minute per component, failures inside the incidents. Each
    // component's samples are made outside the clock and dropped after, to keep memory small.
    let minutes = u64::try_from(month.end.duration_since(month.start).as_secs() / 60)?;
    let sample_runs = runs.min(5);
    let mut from_samples = Vec::with_capacity(sample_runs);
    let mut n = 0usize;
    for run in 0..=sample_runs {
        let mut took = Duration::ZERO;
        let mut down = 0i64;
        let t0 = Instant::now();
        let windows: Vec<Vec<Interval>> = tiers
            .iter()
            .map(|t| calendar::service_intervals(t, month))
            .collect();
        took += t0.elapsed();
        n = 0;
        for (tier, d) in &components {
            let samples = (0..minutes)
                .map(|m| {
                    let t = at(month.start, m * 60)?;
                    Ok(Sample {
                        at: t,
                        success: !d.iter().any(|i| i.contains(t)),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            n += samples.len();
            let t0 = Instant::now();
            let d = down_intervals(&samples, Duration::from_secs(60), month.end);
            down += compliance_in(&tiers[*tier], &windows[*tier], month, &d, None).down_seconds;
            took += t0.elapsed();
        }
        black_box(&down);
        if run > 0 {
            from_samples.push(took);
        }
    }
    let med = median(from_samples.clone());
    println!(
        "from samples             median {:>8.2} ms over {sample_runs} runs: {n} samples, {:.0} M samples/s (for information; the goal is for recomputation from incidents)",
        med.as_secs_f64() * 1e3,
        n as f64 / med.as_secs_f64() / 1e6
    );
    Ok(())
}

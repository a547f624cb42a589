//! bench-prober: the probe scheduler benchmark of issue 5. Many targets (10,000 by default),
//! each probed every interval (5 s), against the loopback target server, for a bounded time;
//! it reports how far from their slots probes start (the absolute start error: p50, p99, max,
//! share more than 50 ms late), the probes per second achieved, and the CPU time the scheduler
//! thread used.
//!
//! The scheduler, the prober and the event consumer share one current-thread tokio runtime on
//! the main thread (one core); the stub server runs on its own thread and runtime. CPU time is
//! read per thread from `/proc/self/task/<tid>/schedstat` (nanoseconds on the CPU).
//!
//! ```text
//! cargo run --release -p regie-e2e --bin bench-prober -- [--targets 10000] [--interval-ms 5000]
//!     [--timeout-ms 2000] [--warmup-s 10] [--duration-s 60] [--concurrency 1024] [--pool 32]
//!     [--hosts 1] [--runs 1] [--null]
//! ```
//!
//! `--runs N` repeats the measurement N times (a fresh scheduler each time, same stub) and
//! prints the median of each figure. `--null` swaps the HTTP prober for one that answers at
//! once, which shows what the scheduler and the machine alone cost.
//!
//! `--hosts N` starts N stub listeners (distinct ports on 127.0.0.1) and spreads the targets
//! over them, so the client keeps N connection pools as it would for N distinct Services.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use regie::sla::prober::{ProbeOutcome, ProbeResult, ProbeRunner, Prober, ProberConfig};
use regie::sla::scheduler::{ProbeEvent, Scheduler, SchedulerConfig, SchedulerStats};
use regie::sla::target::{ProbePolicy, ProbeTarget, Refused};
use regie_e2e::targets::TargetServer;
use tokio::time::Instant;

#[derive(Clone, Debug)]
struct Args {
    targets: usize,
    interval: Duration,
    timeout: Duration,
    warmup: Duration,
    duration: Duration,
    concurrency: usize,
    pool: usize,
    hosts: usize,
    runs: usize,
    /// Probe nothing: a runner that answers at once, to measure the scheduler and the machine.
    null: bool,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut a = Args {
            targets: 10_000,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            warmup: Duration::from_secs(10),
            duration: Duration::from_secs(60),
            concurrency: 1024,
            pool: 256,
            hosts: 1,
            runs: 1,
            null: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--null" {
                a.null = true;
                continue;
            }
            let value = it.next().with_context(|| format!("{flag} needs a value"))?;
            let n: u64 = value
                .parse()
                .with_context(|| format!("{flag} {value:?} is not a number"))?;
            match flag.as_str() {
                "--targets" => a.targets = n as usize,
                "--interval-ms" => a.interval = Duration::from_millis(n),
                "--timeout-ms" => a.timeout = Duration::from_millis(n),
                "--warmup-s" => a.warmup = Duration::from_secs(n),
                "--duration-s" => a.duration = Duration::from_secs(n),
                "--concurrency" => a.concurrency = n as usize,
                "--pool" => a.pool = n as usize,
                "--hosts" => a.hosts = (n as usize).max(1),
                "--runs" => a.runs = (n as usize).clamp(1, 20),
                _ => bail!("unknown flag {flag}"),
            }
        }
        if a.duration.is_zero() || a.duration > Duration::from_secs(3600) {
            bail!("--duration-s must be between 1 and 3600");
        }
        Ok(a)
    }
}

/// This thread's id, for reading its CPU time later from another thread.
fn thread_id() -> anyhow::Result<u32> {
    let link = std::fs::read_link("/proc/thread-self").context("reading /proc/thread-self")?;
    let tid = link
        .file_name()
        .and_then(|s| s.to_str())
        .context("odd /proc/thread-self link")?;
    tid.parse().context("odd thread id")
}

/// Nanoseconds a thread has spent on a CPU.
fn cpu_ns(tid: u32) -> anyhow::Result<u64> {
    schedstat(tid, 0)
}

/// Nanoseconds a thread has spent runnable but waiting for a CPU: time the machine's other
/// work took from it.
fn wait_ns(tid: u32) -> anyhow::Result<u64> {
    schedstat(tid, 1)
}

fn schedstat(tid: u32, field: usize) -> anyhow::Result<u64> {
    let path = format!("/proc/self/task/{tid}/schedstat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.split_whitespace()
        .nth(field)
        .context("short schedstat")?
        .parse()
        .context("odd schedstat")
}

/// Nanoseconds every thread of the process has spent on a CPU.
fn process_cpu_ns() -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task")? {
        let tid: u32 = entry?
            .file_name()
            .to_string_lossy()
            .parse()
            .context("odd task id")?;
        // A thread may end between listing and reading; it simply no longer counts.
        total += cpu_ns(tid).unwrap_or(0);
    }
    Ok(total)
}

struct ServerSide {
    tid: u32,
    addrs: Vec<SocketAddr>,
    stop: tokio::sync::oneshot::Sender<()>,
    done: std::thread::JoinHandle<anyhow::Result<(u64, u64)>>,
}

/// Starts the stub listeners on a thread of their own; returns when they accept.
fn start_server(hosts: usize) -> anyhow::Result<ServerSide> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let done = std::thread::Builder::new()
        .name("stub-server".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let mut servers = Vec::with_capacity(hosts);
                for _ in 0..hosts {
                    servers.push(TargetServer::start().await?);
                }
                let addrs: Vec<SocketAddr> = servers.iter().map(TargetServer::addr).collect();
                ready_tx.send((thread_id()?, addrs)).ok();
                let _ = stop_rx.await;
                let requests = servers.iter().map(TargetServer::requests).sum();
                let connections = servers.iter().map(TargetServer::connections).sum();
                Ok((requests, connections))
            })
        })?;
    let (tid, addrs) = ready_rx
        .recv_timeout(Duration::from_secs(30))
        .context("the stub server did not start")?;
    Ok(ServerSide {
        tid,
        addrs,
        stop,
        done,
    })
}

/// A runner that probes nothing and succeeds at once.
struct NullRunner;

impl ProbeRunner for NullRunner {
    fn check(&self, _: &ProbeTarget) -> Result<(), Refused> {
        Ok(())
    }

    fn run(&self, _: Arc<ProbeTarget>) -> BoxFuture<'static, ProbeResult> {
        Box::pin(async {
            ProbeResult::Probed(ProbeOutcome {
                at: jiff::Timestamp::now(),
                success: true,
                duration: Duration::ZERO,
                status: Some(200),
                error: None,
            })
        })
    }

    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

#[derive(Default)]
struct Measured {
    /// Start error (|actual - scheduled|) of each probe started inside the window, in µs.
    lags_us: Vec<u64>,
    /// Probes started before their slot (the scheduler wakes up to 1 ms early), and the most.
    early: u64,
    max_early_us: u64,
    durations_us: Vec<u64>,
    success: u64,
    failure: u64,
    refused: u64,
    skipped: u64,
    first_errors: Vec<String>,
    window: Duration,
    cpu_ns: u64,
    process_cpu_ns: u64,
    server_cpu_ns: u64,
    wait_ns: u64,
    stats_before: SchedulerStats,
    stats_after: SchedulerStats,
    upsert_time: Duration,
}

async fn measure(args: &Args, addrs: &[SocketAddr], server_tid: u32) -> anyhow::Result<Measured> {
    let runner: Arc<dyn ProbeRunner> = if args.null {
        Arc::new(NullRunner)
    } else {
        Arc::new(Prober::new(ProberConfig {
            policy: ProbePolicy {
                allow_loopback: true,
                ..ProbePolicy::default()
            },
            pool_max_idle_per_host: args.pool,
            ..ProberConfig::default()
        })?)
    };
    let (scheduler, mut events) = Scheduler::spawn(
        runner,
        SchedulerConfig {
            max_concurrency: args.concurrency,
        },
    );
    let started = Instant::now();
    for n in 0..args.targets {
        let addr = addrs[n % addrs.len()];
        let target = ProbeTarget::new(
            &format!("http://{addr}/healthy?t={n}"),
            args.interval,
            args.timeout,
        )?;
        scheduler.upsert(format!("bench/{n}"), target)?;
    }
    let mut m = Measured {
        upsert_time: started.elapsed(),
        ..Measured::default()
    };
    let warm = started + args.warmup;
    let end = warm + args.duration;
    let me = thread_id()?;
    let mut in_window = false;
    let (mut cpu0, mut proc0, mut server0, mut wait0) = (0, 0, 0, 0);
    let (mut wall0, mut mono0) = (jiff::Timestamp::now(), Instant::now());
    let mut wall_end = jiff::Timestamp::MAX;
    loop {
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(end) => break,
            () = tokio::time::sleep_until(warm), if !in_window => {
                in_window = true;
                (cpu0, proc0, server0, wait0) =
                    (cpu_ns(me)?, process_cpu_ns()?, cpu_ns(server_tid)?, wait_ns(me)?);
                (wall0, mono0) = (jiff::Timestamp::now(), Instant::now());
                wall_end = wall0.checked_add(jiff::SignedDuration::try_from(args.duration)?)?;
                m.stats_before = scheduler.stats();
            }
            event = events.recv() => {
                let Some(event) = event else { bail!("the scheduler stopped early") };
                let ProbeEvent::Probed(report) = event else { continue };
                if !in_window {
                    continue;
                }
                match &report.result {
                    ProbeResult::Probed(o) => {
                        // Count probes that started inside the window, whenever they ended.
                        if o.at < wall0 || o.at >= wall_end {
                            continue;
                        }
                        let error = report.start_error;
                        if error.is_negative() {
                            m.early += 1;
                            m.max_early_us = m.max_early_us.max(error.unsigned_abs().as_micros() as u64);
                        }
                        m.lags_us.push(error.unsigned_abs().as_micros() as u64);
                        m.durations_us.push(o.duration.as_micros() as u64);
                        if o.success {
                            m.success += 1;
                        } else {
                            m.failure += 1;
                            if m.first_errors.len() < 5 {
                                m.first_errors.push(o.error.clone().unwrap_or_default());
                            }
                        }
                    }
                    ProbeResult::Refused(_) => m.refused += 1,
                    ProbeResult::Skipped(_) => m.skipped += 1,
                }
            }
        }
    }
    m.window = mono0.elapsed();
    m.cpu_ns = cpu_ns(me)? - cpu0;
    m.process_cpu_ns = process_cpu_ns()?.saturating_sub(proc0);
    m.server_cpu_ns = cpu_ns(server_tid)? - server0;
    m.wait_ns = wait_ns(me)? - wait0;
    m.stats_after = scheduler.stats();
    scheduler.shutdown();
    Ok(m)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

/// The figures of one run.
#[derive(Clone, Copy, Debug, Default)]
struct Summary {
    probes_per_s: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    late_share: f64,
    cpu_share: f64,
    cpu_us_per_probe: f64,
    server_cpu_share: f64,
    wait_ms_per_s: f64,
}

fn report(args: &Args, run: usize, mut m: Measured) -> Summary {
    m.lags_us.sort_unstable();
    m.durations_us.sort_unstable();
    let probes = m.lags_us.len() as u64;
    let secs = m.window.as_secs_f64();
    let late = m.lags_us.iter().filter(|l| **l > 50_000).count() as u64;
    let late_share = if probes == 0 {
        0.0
    } else {
        100.0 * late as f64 / probes as f64
    };
    let expected = args.targets as f64 * secs / args.interval.as_secs_f64();
    let cpu_s = m.cpu_ns as f64 / 1e9;
    let per_probe = if probes == 0 {
        0.0
    } else {
        m.cpu_ns as f64 / 1e3 / probes as f64
    };
    let s = Summary {
        probes_per_s: probes as f64 / secs,
        p50_us: percentile(&m.lags_us, 50.0),
        p99_us: percentile(&m.lags_us, 99.0),
        p999_us: percentile(&m.lags_us, 99.9),
        max_us: m.lags_us.last().copied().unwrap_or(0),
        late_share,
        cpu_share: 100.0 * cpu_s / secs,
        cpu_us_per_probe: per_probe,
        server_cpu_share: 100.0 * m.server_cpu_ns as f64 / 1e9 / secs,
        wait_ms_per_s: m.wait_ns as f64 / 1e6 / secs,
    };
    println!(
        "run {run}: window {secs:.1} s after {:?} warm-up (upserting all targets took {:?})",
        args.warmup, m.upsert_time
    );
    println!(
        "  probes started in window        {probes} ({expected:.0} expected), {:.0} probes/s",
        s.probes_per_s
    );
    println!(
        "  success / failure / refused     {} / {} / {}",
        m.success, m.failure, m.refused
    );
    println!("  skipped (busy or saturated)     {}", m.skipped);
    println!(
        "  start error p50 / p90 / p99     {} / {} / {}",
        ms(s.p50_us),
        ms(percentile(&m.lags_us, 90.0)),
        ms(s.p99_us)
    );
    println!(
        "  start error p99.9 / max         {} / {}",
        ms(s.p999_us),
        ms(s.max_us)
    );
    println!(
        "  started early (<= 1 ms)         {} ({:.1}%), at most {}",
        m.early,
        if probes == 0 {
            0.0
        } else {
            100.0 * m.early as f64 / probes as f64
        },
        ms(m.max_early_us)
    );
    println!("  probes more than 50 ms late     {late} ({late_share:.4}%)");
    println!(
        "  probe duration p50 / p99        {} / {}",
        ms(percentile(&m.durations_us, 50.0)),
        ms(percentile(&m.durations_us, 99.0))
    );
    println!(
        "  scheduler thread CPU            {cpu_s:.2} s = {:.1}% of one core, {per_probe:.1} µs per probe, {:.0} probes per CPU-second",
        s.cpu_share,
        probes as f64 / cpu_s.max(1e-9)
    );
    println!(
        "  stub server thread CPU          {:.1}% of one core",
        s.server_cpu_share
    );
    println!(
        "  scheduler thread run-queue wait {:.1} ms per second (runnable while other work held both cores)",
        s.wait_ms_per_s
    );
    println!(
        "  whole process CPU               {:.2} s",
        m.process_cpu_ns as f64 / 1e9
    );
    let (b, a) = (m.stats_before, m.stats_after);
    println!(
        "  scheduler in window             started {}, skipped busy {}, skipped saturated {}, missed ticks {}",
        a.started - b.started,
        a.skipped_busy - b.skipped_busy,
        a.skipped_saturated - b.skipped_saturated,
        a.missed_ticks - b.missed_ticks
    );
    for e in &m.first_errors {
        println!("  failure example: {e}");
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    println!(
        "bench-prober: {} targets every {:?}, timeout {:?}, concurrency {}, pool {}/host, {} host(s), {} run(s){}",
        args.targets,
        args.interval,
        args.timeout,
        args.concurrency,
        args.pool,
        args.hosts,
        args.runs,
        if args.null {
            ", null runner (no HTTP)"
        } else {
            ""
        }
    );
    let server = start_server(args.hosts)?;
    let mut summaries = Vec::new();
    let mut failed = None;
    for run in 1..=args.runs {
        // A fresh runtime per run: nothing of one run's connections or timers leaks into the next.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let measured = rt.block_on(measure(&args, &server.addrs, server.tid));
        drop(rt);
        match measured {
            Ok(m) => summaries.push(report(&args, run, m)),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    server.stop.send(()).ok();
    let (requests, connections) = server
        .done
        .join()
        .map_err(|_| anyhow::anyhow!("the stub server panicked"))??;
    if let Some(e) = failed {
        return Err(e);
    }
    println!("stub server over all runs: {requests} requests on {connections} connections");
    let med = |f: fn(&Summary) -> f64| median(summaries.iter().map(f).collect());
    let p99 = med(|s| s.p99_us as f64);
    let late = med(|s| s.late_share);
    println!(
        "median of {} run(s): {:.0} probes/s, start error p50 {} p99 {} p99.9 {} max {}, >50 ms late {late:.4}%, scheduler CPU {:.1}% of a core ({:.1} µs/probe), stub CPU {:.1}%, run-queue wait {:.1} ms/s",
        summaries.len(),
        med(|s| s.probes_per_s),
        ms(med(|s| s.p50_us as f64) as u64),
        ms(p99 as u64),
        ms(med(|s| s.p999_us as f64) as u64),
        ms(med(|s| s.max_us as f64) as u64),
        med(|s| s.cpu_share),
        med(|s| s.cpu_us_per_probe),
        med(|s| s.server_cpu_share),
        med(|s| s.wait_ms_per_s),
    );
    println!(
        "GOAL p99 start error <= 5 ms: {} ({})",
        if p99 <= 5_000.0 { "met" } else { "MISSED" },
        ms(p99 as u64)
    );
    println!(
        "GOAL < 0.1% of probes > 50 ms late: {} ({late:.4}%)",
        if late < 0.1 { "met" } else { "MISSED" }
    );
    Ok(())
}

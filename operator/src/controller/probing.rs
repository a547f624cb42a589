//! The SLA prober inside `regie run`: the tenant reconcile keeps one probe target per component
//! in the [`Scheduler`]; one consumer task turns the outcomes into `/metrics`, the per-component
//! compliance state ([`RunState`] → down intervals), the SaaS component's `Available` condition
//! and the tenant's month-to-date `SlaReport`.
//!
//! ```text
//!  tenant::reconcile ──sync_component/retain──► Scheduler ──ProbeEvent──► consume()
//!                                                                    ├─► ProbeMetrics (/metrics)
//!                                                                    ├─► RunState, closed incidents
//!                                                                    ├─► Available (SaaS, on flips only)
//!                                                                    └─► SlaReport <tenant>-<yyyy-mm>
//! ```
//!
//! **Persistence bound.** The `SlaReport` status carries, per component, the closed incidents, the
//! open one and the last sample. It is written at once whenever an incident opens or closes (a
//! run-state transition), and besides every [`Probes::flush_every`] for the figures. Between two
//! transitions every sample has the same outcome, and a persisted sample covers the time until
//! the next one; so after a restart — which seeds the run state from the report — the history
//! is exact except for a transition whose write was still in flight: at most one probe interval
//! is lost.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use regie_crds::catalogue::KpiCadence;
use regie_crds::generated::LastSample;
use regie_crds::status::{self, AVAILABLE};
use regie_crds::{HostingComponent, SlaReport, SlaReportSpec, Tenant};
use rust_decimal::prelude::ToPrimitive;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use super::Context;
use super::tenant::Stall;
use crate::metrics::Metrics;
use crate::sla::calendar::{self, Interval, Period};
use crate::sla::compliance::{RunState, Sample, compliance_live};
use crate::sla::metrics::{ProbeMetrics, SlaGauges};
use crate::sla::prober::{ProbeResult, Prober, ProberConfig};
use crate::sla::report::{ComponentReport, TenantReport};
use crate::sla::scheduler::{ProbeEvent, ScheduleError, Scheduler, SchedulerConfig};
use crate::sla::target::{ProbePolicy, component_key, component_target};
use crate::tier::Tier;

/// The reason of the `Stalled` condition of a component whose probe target is refused.
pub const REFUSED: &str = "ProbeTargetRefused";
/// Reasons of the SaaS component's `Available` condition once the prober owns it.
pub const SUCCEEDED: &str = "ProbeSucceeded";
pub const FAILED: &str = "ProbeFailed";

/// How often the month-to-date figures are written even without an incident opening or closing.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);

/// A component the prober follows.
struct Tracked {
    tenant: String,
    namespace: String,
    component: String,
    level: String,
    saas: bool,
    tier: Tier,
    run: RunState,
    /// Incidents closed in `period`.
    closed: Vec<Interval>,
    period: Option<Period>,
    /// The Available value this process last wrote, and when.
    written: Option<(bool, std::time::Instant)>,
}

#[derive(Default)]
struct State {
    /// By scheduler key (`namespace/name`).
    tracked: HashMap<String, Tracked>,
    /// Tenants with samples not yet written to their report.
    dirty: BTreeSet<String>,
    /// Report names already seeded from the cluster (or found absent).
    seeded: BTreeSet<String>,
    /// Report names whose spec this process has applied.
    created: BTreeSet<String>,
}

/// The prober's handle, shared by the reconciles and the consumer.
#[derive(Clone)]
pub struct Probes {
    scheduler: Scheduler,
    metrics: ProbeMetrics,
    state: Arc<Mutex<State>>,
    /// See [`FLUSH_EVERY`].
    pub flush_every: Duration,
}

impl Probes {
    /// Starts the scheduler with a prober under `policy` and registers the probe metrics on the
    /// operator's registry. The events go to [`consume`].
    pub fn start(
        policy: ProbePolicy,
        metrics: &Metrics,
    ) -> anyhow::Result<(Probes, UnboundedReceiver<ProbeEvent>)> {
        let prober = Prober::new(ProberConfig {
            policy,
            ..ProberConfig::default()
        })?;
        let probe_metrics = match ProbeMetrics::register(&metrics.registry) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "probe metrics not registered; they stay unexported");
                ProbeMetrics::register(&prometheus::Registry::new())?
            }
        };
        let (scheduler, events) = Scheduler::spawn(Arc::new(prober), SchedulerConfig::default());
        Ok((
            Probes {
                scheduler,
                metrics: probe_metrics,
                state: Arc::new(Mutex::new(State::default())),
                flush_every: FLUSH_EVERY,
            },
            events,
        ))
    }

    pub fn shutdown(&self) {
        self.scheduler.shutdown();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(&self, key: &str) {
        if self.lock().tracked.remove(key).is_some() {
            let _ = self.scheduler.remove(key);
        }
    }
}

/// Keeps the probe target of one component in step with its plan: probed at its tier when the
/// plan is good (`tier` given), not probed when it is stalled. A refused target is the
/// component's stall: it is never probed.
pub fn sync_component(
    ctx: &Context,
    tenant: &Tenant,
    component: &HostingComponent,
    tier: Option<&Tier>,
) -> Option<Stall> {
    let probes = ctx.probes.as_ref()?;
    let key = component_key(component);
    let Some(tier) = tier else {
        probes.forget(&key);
        return None;
    };
    let refused = |r: String| {
        probes.forget(&key);
        Some(Stall {
            reason: REFUSED,
            message: r,
        })
    };
    let target = match component_target(tenant, component, tier) {
        Ok(t) => t,
        Err(r) => return refused(r.to_string()),
    };
    let level = target.labels.service_level.clone();
    match probes.scheduler.upsert(key.clone(), target) {
        Ok(()) => {}
        Err(ScheduleError::Refused(r)) => return refused(r.to_string()),
        Err(e) => {
            tracing::warn!(component = %key, error = %e, "component not probed");
            probes.forget(&key);
            return None;
        }
    }
    let mut state = probes.lock();
    let t = state.tracked.entry(key).or_insert_with(|| Tracked {
        tenant: tenant.name_any(),
        namespace: component.namespace().unwrap_or_default(),
        component: component.name_any(),
        level: level.clone(),
        saas: false,
        tier: tier.clone(),
        run: RunState::new(),
        closed: Vec::new(),
        period: None,
        written: None,
    });
    t.tenant = tenant.name_any();
    t.level = level;
    t.saas = component.spec.saas.is_some();
    t.tier = tier.clone();
    None
}

/// Stops probing the components of `tenant` that are not in `keep` (deleted components, or all
/// of them when the tenant goes).
pub fn retain<'a>(
    ctx: &Context,
    tenant: &str,
    keep: impl IntoIterator<Item = &'a HostingComponent>,
) {
    let Some(probes) = ctx.probes.as_ref() else {
        return;
    };
    let keep: BTreeSet<String> = keep.into_iter().map(component_key).collect();
    let gone: Vec<String> = probes
        .lock()
        .tracked
        .iter()
        .filter(|(k, t)| t.tenant == tenant && !keep.contains(*k))
        .map(|(k, _)| k.clone())
        .collect();
    for k in gone {
        probes.forget(&k);
    }
}

/// The consumer of the scheduler's events, until the channel closes.
pub async fn consume(ctx: Arc<Context>, mut events: UnboundedReceiver<ProbeEvent>) {
    let Some(probes) = ctx.probes.clone() else {
        return;
    };
    let mut flush = tokio::time::interval_at(
        tokio::time::Instant::now() + probes.flush_every,
        probes.flush_every,
    );
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => handle(&ctx, &probes, ev).await,
                None => break,
            },
            _ = flush.tick() => {
                let dirty = std::mem::take(&mut probes.lock().dirty);
                for tenant in dirty {
                    write_report(&ctx, &probes, &tenant).await;
                }
            }
        }
    }
}

fn report_name(tenant: &str, period: &Period) -> String {
    format!("{tenant}-{period}")
}

async fn handle(ctx: &Context, probes: &Probes, ev: ProbeEvent) {
    probes.metrics.observe(&ev);
    let ProbeEvent::Probed(report) = ev else {
        return;
    };
    let outcome = match &report.result {
        ProbeResult::Probed(o) => o.clone(),
        ProbeResult::Refused(r) => {
            tracing::warn!(component = %report.key, reason = %r, "probe refused");
            return;
        }
        ProbeResult::Skipped(_) => return,
    };
    let key: &str = &report.key;
    // Seed the run state from the report of this period before the first sample counts.
    let (tenant, name) = {
        let state = probes.lock();
        let Some(t) = state.tracked.get(key) else {
            return;
        };
        let period = Period::containing(KpiCadence::Monthly, outcome.at, &t.tier.time_zone);
        let name = report_name(&t.tenant, &period);
        if state.seeded.contains(&name) {
            (t.tenant.clone(), None)
        } else {
            (t.tenant.clone(), Some(name))
        }
    };
    if let Some(name) = name {
        seed(ctx, probes, &tenant, &name).await;
    }
    let (transition, available) = {
        let mut state = probes.lock();
        let Some(t) = state.tracked.get_mut(key) else {
            return;
        };
        if t.tier.probe_interval != report.target.interval
            || t.level != report.target.labels.service_level
        {
            // A result of the target as it was before an upsert; the next one counts.
            return;
        }
        let period = Period::containing(KpiCadence::Monthly, outcome.at, &t.tier.time_zone);
        if t.period != Some(period) {
            // A new month: its incidents start afresh (one still going counts on from the start).
            t.closed.clear();
            t.period = Some(period);
        }
        let was_down = t.run.down_since().is_some();
        if let Some(closed) = t.run.observe(outcome.at, outcome.success) {
            t.closed.push(closed);
        }
        let transition = was_down != t.run.down_since().is_some();
        let available = t.saas.then(|| (t.namespace.clone(), t.component.clone()));
        state.dirty.insert(tenant.clone());
        (transition, available)
    };
    if let Some((ns, component)) = available {
        let message = match (&outcome.error, outcome.status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => format!("HTTP {s} from {}", report.target.url),
            (None, None) => "probe succeeded".into(),
        };
        set_available(ctx, probes, key, &ns, &component, outcome.success, message).await;
    }
    if transition {
        probes.lock().dirty.remove(&tenant);
        write_report(ctx, probes, &tenant).await;
    }
}

/// Writes the SaaS component's `Available` condition when the outcome differs from what the
/// cluster shows; an unchanged outcome writes nothing.
async fn set_available(
    ctx: &Context,
    probes: &Probes,
    key: &str,
    ns: &str,
    name: &str,
    up: bool,
    message: String,
) {
    let Some(c) = ctx.components.get(&ObjectRef::new(name).within(ns)) else {
        return;
    };
    let reason = if up { SUCCEEDED } else { FAILED };
    let want = if up { "True" } else { "False" };
    let conditions = c.status.clone().unwrap_or_default().conditions;
    if status::find(&conditions, AVAILABLE).is_some_and(|a| a.status == want && a.reason == reason)
    {
        return;
    }
    {
        // The cache lags our own write for a moment; don't write the same flip twice.
        let mut state = probes.lock();
        let Some(t) = state.tracked.get_mut(key) else {
            return;
        };
        if t.written
            .is_some_and(|(v, at)| v == up && at.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        t.written = Some((up, std::time::Instant::now()));
    }
    let mut conditions = conditions;
    status::set_condition(
        &mut conditions,
        status::condition(
            AVAILABLE,
            up,
            reason,
            message,
            c.meta().generation,
            Time(ctx.now()),
        ),
    );
    let api: Api<HostingComponent> = Api::namespaced(ctx.client.clone(), ns);
    match api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await
    {
        Ok(_) => ctx.metrics.write("status", "HostingComponent"),
        Err(e) => {
            tracing::warn!(component = %key, error = %e, "Available not written");
            if let Some(t) = probes.lock().tracked.get_mut(key) {
                t.written = None;
            }
        }
    }
}

/// Seeds the run state of the tenant's components from the stored report `name`, once.
async fn seed(ctx: &Context, probes: &Probes, tenant: &str, name: &str) {
    let api: Api<SlaReport> = Api::all(ctx.client.clone());
    let stored = match api.get_opt(name).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(report = name, error = %e, "SlaReport not read; retrying later");
            return;
        }
    };
    let mut state = probes.lock();
    state.seeded.insert(name.to_string());
    let Some(status) = stored.and_then(|r| r.status) else {
        return;
    };
    let time = |s: &str| s.parse::<Timestamp>().ok();
    for c in &status.components {
        let Some(t) = state
            .tracked
            .values_mut()
            .find(|t| t.tenant == tenant && t.component == c.component)
        else {
            continue;
        };
        if t.run.last().is_some() {
            continue;
        }
        let mut ongoing = None;
        t.closed.clear();
        for i in &c.incidents {
            let Some(start) = time(&i.start) else {
                continue;
            };
            match i.end.as_deref().and_then(time) {
                Some(end) => t.closed.push(Interval::new(start, end)),
                None => ongoing = Some(start),
            }
        }
        let last = c.last_sample.as_ref().and_then(|s| {
            Some(Sample {
                at: time(&s.time)?,
                success: s.success,
            })
        });
        t.run = RunState::resume(last, ongoing);
        t.period = last.map(|s| Period::containing(KpiCadence::Monthly, s.at, &t.tier.time_zone));
    }
}

/// One report to write: its period, bounds, component figures and their last samples.
type Draft = (Period, Interval, Vec<ComponentReport>, Vec<Option<Sample>>);

/// Writes the tenant's month-to-date `SlaReport`(s) from the run state, and the SLA gauges.
async fn write_report(ctx: &Context, probes: &Probes, tenant: &str) {
    let now = ctx.now();
    // Per report period: its bounds and the components' figures.
    let mut reports: BTreeMap<String, Draft> = BTreeMap::new();
    {
        let state = probes.lock();
        let mut mine: Vec<&Tracked> = state
            .tracked
            .values()
            .filter(|t| t.tenant == tenant && t.period.is_some())
            .collect();
        mine.sort_by(|a, b| a.component.cmp(&b.component));
        for t in mine {
            let Some(period) = t.period else { continue };
            let Ok(bounds) = period.bounds(&t.tier.time_zone) else {
                continue;
            };
            let result = compliance_live(&t.tier, bounds, &t.closed, &t.run, now);
            let labels = crate::sla::target::TargetLabels::new(&t.tenant, &t.component, &t.level);
            probes.metrics.set_sla(
                &labels,
                &SlaGauges {
                    in_service_window: calendar::in_service_hours(&t.tier, now),
                    in_monitoring_window: calendar::in_monitoring_window(&t.tier, now),
                    availability_percent: result.availability.to_f64().unwrap_or(100.0),
                    target_percent: result.target.to_f64().unwrap_or(100.0),
                    error_budget_remaining_ratio: result
                        .error_budget_remaining()
                        .to_f64()
                        .unwrap_or(1.0),
                },
            );
            let entry = reports
                .entry(report_name(tenant, &period))
                .or_insert_with(|| (period, bounds, Vec::new(), Vec::new()));
            entry.2.push(ComponentReport {
                component: t.component.clone(),
                service_level: t.level.clone(),
                result,
            });
            entry.3.push(t.run.last());
        }
    }
    let api: Api<SlaReport> = Api::all(ctx.client.clone());
    for (name, (period, bounds, components, lasts)) in reports {
        let report = TenantReport {
            tenant: tenant.to_string(),
            display_name: None,
            service_level: None,
            components,
        };
        let mut status = report.status(now.min(bounds.end));
        for (c, last) in status.components.iter_mut().zip(lasts) {
            c.last_sample = last.map(|s| LastSample {
                time: s.at.to_string(),
                success: s.success,
            });
        }
        let object = SlaReport::new(
            &name,
            SlaReportSpec {
                tenant: tenant.to_string(),
                period: period.to_string(),
                from: bounds.start.to_string(),
                to: bounds.end.to_string(),
            },
        );
        let created = probes.lock().created.contains(&name);
        let pp = PatchParams::apply("regie").force();
        let written = async {
            if !created {
                api.patch(&name, &pp, &Patch::Apply(&object)).await?;
                ctx.metrics.write("patch", "SlaReport");
                probes.lock().created.insert(name.clone());
            }
            api.patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await?;
            ctx.metrics.write("status", "SlaReport");
            Ok::<(), kube::Error>(())
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(report = %name, error = %e, "SlaReport not written; retrying at the next flush");
            probes.lock().dirty.insert(tenant.to_string());
        }
    }
}

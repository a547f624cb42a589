//! The SLA prober inside `regie run`: the tenant reconcile keeps one probe target per component
//! in the [`Scheduler`]; one consumer task turns the outcomes into `/metrics`, the per-component
//! [`History`] (run state, incidents, report periods), the SaaS component's `Available`
//! condition and the tenant's `SlaReport`s: always the calendar month's `<tenant>-<yyyy-mm>`
//! (credits are monthly), and besides it `<tenant>-<yyyy>-w<ww>` or `<tenant>-<yyyy-mm-dd>` for
//! components whose tier reports weekly or daily.
//!
//! ```text
//!  tenant::reconcile ──sync_component/retain──► Scheduler ──ProbeEvent──► consume()
//!                                                                    ├─► Series (/metrics;
//!                                                                    │   windows at scrape)
//!                                                                    ├─► History (per component)
//!                                                                    ├─► Available (SaaS, held)
//!                                                                    └─► SlaReport per period
//! ```
//!
//! **Closing a period.** The first sample after a period's end closes it: its report gets one
//! more write with the figures up to its end and the condition `Final=True` (`PeriodClosed`);
//! open reports carry `Final=False` (`PeriodOpen`). A period that ended while no process was
//! probing is closed the same way by the process that resumes after it: the resume also reads
//! the reports before the periods now and goes on from the periods of the last stored sample
//! (see [`resume`]).
//!
//! **Persistence bound.** The `SlaReport` status carries, per component, the closed incidents, the
//! open one and the last sample. A run-state transition (an incident opens or closes) is written
//! at once, unless the tenant's reports were written less than one probe interval ago (its
//! components' shortest); then it goes with the first sample after that interval — one probe
//! interval after the transition at the latest. Besides, the figures are written every
//! [`Probes::flush_every`], spread over it: each tenant has a fixed one of [`FLUSH_SLOTS`] slots
//! of the period, so the steady load is even instead of a burst of every tenant at once. Between
//! two transitions every sample has the same outcome, and a persisted sample covers the time
//! until the next one; so after a restart — which resumes the history from the reports — what
//! is lost is at most one probe interval (plus a write still in flight). A stop asked for
//! (SIGTERM, a rolling upgrade) first writes what is owed ([`write_owed_at_stop`]), so it loses
//! nothing; a crash or a lost lease loses what the bound says.
//!
//! **Stalled components.** A component whose plan has no tier (an invalid spec, a missing
//! level) or whose target is refused as written is not probed, but it keeps its place in the
//! tenant's open reports with what was measured: invoicing reads its credit there. Its history
//! stays until the tenant's reports are written once more, with figures that end one probe
//! interval after its last sample (the time not probed counts neither as up nor as down); from
//! then on each write carries its stored entries over unchanged ([`carry_over`]). Should it be
//! probed again, its history resumes from those entries, and the gap counts as a gap between two
//! samples does (the last outcome holds), as after a restart. A deleted component is let go the
//! same way: its figures up to the deletion are written once more, and its stored entries are
//! carried over in the reports of the periods it was measured in — it was billed for that part
//! of the month, and its credit stays (see [`Gone`]); a process that starts after the deletion
//! finds such entries in the reports it resumes from.
//!
//! **Reports nothing closes.** A report is closed by the first sample after its end of a
//! component measured in it; when there is none — every component of the tenant stalled or
//! deleted in the period, or the tenant left — [`close_left_reports`] makes it final as it
//! stands, some minutes after the end, once no component followed here can still write it.
//!
//! **Reconciles first.** Report writes wait while a reconcile is in progress (see
//! [`super::activity`]): a cold start's wave of first reports, each opening an incident, must not
//! slow the tenants' convergence or a tier change. The wait ends when the reconciles pause, or
//! after [`DEFER_AT_MOST`]; during such a wait the persistence bound above is that much longer.
//!
//! **Write storms.** A flapping target therefore costs at most one report write per tenant per
//! probe interval however many components flap, and its `Available` condition is written at most
//! once per [`AVAILABLE_HOLD`] (or probe interval, if longer); a held value is written by the
//! first probe after the hold, so the condition always converges to the latest outcome. That
//! write goes in a task of its own (one per component at a time), so no probe outcome waits for
//! an API request of another component.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use regie_crds::generated::{LastSample, SlaReportStatus};
use regie_crds::status::{self, AVAILABLE};
use regie_crds::{HostingComponent, SlaReport, SlaReportSpec, Tenant};
use rust_decimal::prelude::ToPrimitive;
use serde_json::json;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::activity::DEFER_AT_MOST;
use super::tenant::Stall;
use super::{Clock, Context};
use crate::metrics::Metrics;
use crate::sla::calendar::{self, Interval, Period};
use crate::sla::compliance::Sample;
use crate::sla::history::{Figures, History, Part, periods_at};
use crate::sla::metrics::{ProbeMetrics, Series, SlaGauges, Windows};
use crate::sla::prober::{ProbeResult, Prober, ProberConfig, SystemClock};
use crate::sla::report::{ComponentReport, TenantReport};
use crate::sla::scheduler::{ProbeEvent, ScheduleError, Scheduler, SchedulerConfig};
use crate::sla::target::{
    Lookup, ProbePolicy, SystemLookup, TargetLabels, component_key, component_target,
};
use crate::tier::Tier;

/// The reason of the `Stalled` condition of a component whose probe target is refused.
pub const REFUSED: &str = "ProbeTargetRefused";
/// Reasons of the SaaS component's `Available` condition once the prober owns it.
pub const SUCCEEDED: &str = "ProbeSucceeded";
pub const FAILED: &str = "ProbeFailed";
/// The `SlaReport` condition that says whether its figures are final (the period has ended).
pub const FINAL: &str = "Final";
pub const PERIOD_OPEN: &str = "PeriodOpen";
pub const PERIOD_CLOSED: &str = "PeriodClosed";

/// Whether a report's figures are final (its condition [`FINAL`] is true).
pub fn is_final(status: &SlaReportStatus) -> bool {
    status::find(&status.conditions, FINAL).is_some_and(|f| f.status == "True")
}

/// How often the figures are written even without an incident opening or closing. This only
/// refreshes the month-to-date numbers people read (the persistence bound rests on transitions,
/// see above), and it is the operator's one steady write load: every tenant's report once per
/// period, so ten minutes keeps 3,000 tenants at 5 writes per second (a minute made it 50).
pub const FLUSH_EVERY: Duration = Duration::from_secs(600);
/// Into how many slots a flush period is cut; a tenant's slot follows from its name.
pub const FLUSH_SLOTS: u64 = 60;

/// The flush slot of a tenant: stable across restarts and processes (a fixed hash).
fn flush_slot(tenant: &str) -> u64 {
    // FNV-1a: std's hasher makes no promise of stability across releases.
    let hash = tenant.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    hash % FLUSH_SLOTS
}
/// The least time between two writes of one component's `Available` condition (the probe
/// interval when that is longer): a flapping target must not write on every probe.
pub const AVAILABLE_HOLD: Duration = Duration::from_secs(30);
/// How long report statuses read to resume a history are kept at most for the tenant's other
/// components (a component that is never probed, say, must not keep them forever).
const STORED_KEPT: Duration = Duration::from_secs(600);

/// A component the prober follows. Its namespace is the part of its key before the `/`.
struct Tracked {
    /// Tenant, component name and service level: the same strings as the scheduler's target and
    /// the metric series (see [`State::share_labels`]).
    labels: TargetLabels,
    saas: bool,
    /// Shared with every component at the same level (see [`State::shared_tier`]).
    tier: Arc<Tier>,
    history: History,
    /// Whether `history` was resumed from the stored reports (done before its first sample).
    resumed: bool,
    /// Whether the scheduler probes it. False once it stalls: it then stays only until its
    /// figures up to the stall are written, after which its stored entries are carried over
    /// (see [`carry_over`]).
    probed: bool,
    /// The Available value this process last wrote, and when.
    written: Option<(bool, Instant)>,
    /// Whether a write of its Available condition is in flight.
    writing_available: bool,
    /// Its numbers at `/metrics`, under `labels`: kept here rather than in a map of their own,
    /// which cost a table slot and a block per component (about 100 bytes). Started afresh when
    /// the labels change, as Prometheus sees a new series then.
    series: Series,
}

impl Tracked {
    /// Takes `labels` (the latest shared copies); a change of their values starts the series
    /// afresh, as the old ones are gone from `/metrics` with them.
    fn relabel(&mut self, labels: TargetLabels) {
        if self.labels != labels {
            self.series = Series::default();
        }
        self.labels = labels;
    }
}

/// A tenant's part of the prober's state.
#[derive(Default)]
struct TenantProbes {
    /// Its keys in `tracked`, sorted: a tenant's work never scans every component. A short
    /// vector, not a set: a B-tree's first node is about 280 bytes for two or three keys.
    keys: Vec<Arc<str>>,
    /// When its reports were last written.
    last_write: Option<Instant>,
    /// Its components stalled or deleted: boxed, as nearly every tenant has none (the map of
    /// tenants holds this record in each of its slots).
    left: Option<Box<Left>>,
}

/// A tenant's components that are not probed but whose entries stay in its reports.
#[derive(Default)]
struct Left {
    /// Keys of its components that exist but are stalled (their plan has no tier, or their
    /// target is refused as written), sorted: not probed, yet they keep their place in the
    /// tenant's open reports with what was measured of them (see [`carry_over`]).
    stalled: Vec<Arc<str>>,
    /// Its components deleted while reports that hold them may still be written.
    gone: Vec<Gone>,
}

impl TenantProbes {
    /// Whether nothing is kept of the tenant: its entry can go.
    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.left.is_none()
    }

    fn stalled(&self) -> &[Arc<str>] {
        self.left.as_deref().map_or(&[], |l| &l.stalled)
    }

    fn gone(&self) -> &[Gone] {
        self.left.as_deref().map_or(&[], |l| &l.gone)
    }

    /// Changes what is left of the tenant's components, dropping the box when nothing is.
    fn change_left(&mut self, change: impl FnOnce(&mut Left)) {
        let left = self.left.get_or_insert_default();
        change(left);
        if left.stalled.is_empty() && left.gone.is_empty() {
            self.left = None;
        }
    }

    /// The names of the components whose stored entries a report of the tenant starting at
    /// `start` carries over: the stalled ones, and those deleted after `start` (a report of a
    /// later period never held them).
    fn carried(&self, start: Timestamp) -> Vec<String> {
        let stalled = self
            .stalled()
            .iter()
            .map(|k| k.rsplit_once('/').map_or(&**k, |(_, n)| n).to_string());
        let gone = self
            .gone()
            .iter()
            .filter(|g| g.since >= start)
            .map(|g| g.component.to_string());
        stalled.chain(gone).collect()
    }
}

/// A component deleted (or found in the stored reports but no longer in the cluster): what was
/// measured of it stays in the reports of the periods it was measured in, with its credit — it
/// was billed for that part of the month — so the reports written after carry its stored
/// entries over (see [`carry_over`]).
#[derive(Debug, PartialEq)]
struct Gone {
    component: Arc<str>,
    /// When it was last measured or deleted: only a report of a period starting at or before
    /// this holds it.
    since: Timestamp,
}

/// How long a deleted component's entries are carried at most: longer than any period that
/// held it (a month) goes on after its deletion.
const GONE_KEPT: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 32);

#[derive(Default)]
struct State {
    /// By scheduler key (`namespace/name`), the scheduler's own copy of it. Boxed: a table
    /// holds its slots at between 44 and 87 percent of their number, and a record is over 300
    /// bytes (at 2,000 components, 4,096 slots of 24 bytes and 2,000 boxes are over half a MB
    /// less than 4,096 slots of 320 bytes).
    tracked: HashMap<Arc<str>, Box<Tracked>>,
    /// What the prober keeps per tenant. Its key is the one copy of the tenant's name the
    /// prober keeps.
    by_tenant: HashMap<Arc<str>, TenantProbes>,
    /// The parsed tier of each level, one copy shared by all components at it; the key is the
    /// one copy of the level's name.
    tiers: HashMap<Arc<str>, Arc<Tier>>,
    /// Tenants with samples not yet written to their reports.
    dirty: BTreeSet<String>,
    /// Tenants with a transition or an ended period not yet written: written as soon as the
    /// tenant's hold allows.
    urgent: BTreeSet<String>,
    /// Report statuses read to resume histories (None: no such report), by report name.
    stored: HashMap<String, (Option<SlaReportStatus>, Instant)>,
    /// Since when report writes have waited for the reconciles to pause (None: not waiting).
    deferring_since: Option<Instant>,
    /// Components whose last probe was refused when their host name resolved (to a private,
    /// loopback or metadata address the policy refuses), with the refusal: the component is
    /// Stalled until a probe gets through. Kept apart from `tracked`: it is almost always
    /// empty.
    refused_when_resolved: HashMap<Arc<str>, String>,
    /// The operator's clock, for the window gauges at scrape time (set when the consumer
    /// starts; until then no window gauge is written).
    clock: Option<Clock>,
    /// Reports whose period ended that [`close_left_reports`] found still to be written by
    /// someone, and when: looked at again only a flush period later. Usually empty.
    left_checked: HashMap<Arc<str>, Instant>,
}

impl State {
    /// The least time between two writes of the tenant's reports: its shortest probe interval.
    fn hold(&self, tenant: &str) -> Duration {
        self.of_tenant(tenant)
            .map(|(_, t)| t.tier.probe_interval)
            .min()
            .unwrap_or(Duration::ZERO)
    }

    /// The tenant's tracked components, by key.
    fn of_tenant<'a>(&'a self, tenant: &str) -> impl Iterator<Item = (&'a Arc<str>, &'a Tracked)> {
        self.by_tenant
            .get(tenant)
            .into_iter()
            .flat_map(|t| &t.keys)
            .filter_map(|k| self.tracked.get_key_value(&**k))
            .map(|(k, t)| (k, &**t))
    }

    /// Starts or keeps following `key` for the tenant of `labels` (as shared by
    /// [`State::share_labels`]).
    fn track(
        &mut self,
        key: &Arc<str>,
        labels: &TargetLabels,
        new: impl FnOnce() -> Tracked,
    ) -> &mut Tracked {
        if self
            .tracked
            .get(&**key)
            .is_some_and(|t| t.labels.tenant != labels.tenant)
        {
            self.untrack(key);
        }
        if !self.tracked.contains_key(&**key) {
            let keys = &mut self
                .by_tenant
                .entry(labels.tenant.clone())
                .or_default()
                .keys;
            if let Err(at) = keys.binary_search_by(|k| (**k).cmp(&**key)) {
                keys.reserve_exact(1);
                keys.insert(at, key.clone());
            }
        }
        self.tracked
            .entry(key.clone())
            .or_insert_with(|| Box::new(new()))
    }

    /// Stops following `key`; whether it was followed.
    fn untrack(&mut self, key: &str) -> bool {
        self.refused_when_resolved.remove(key);
        let Some(t) = self.tracked.remove(key) else {
            return false;
        };
        let tenant = &*t.labels.tenant;
        if let Some(t) = self.by_tenant.get_mut(tenant) {
            t.keys.retain(|k| &**k != key);
            if t.is_empty() {
                self.by_tenant.remove(tenant);
            }
        }
        true
    }

    /// `key` of `tenant` was deleted: it is not probed any more (the caller removes it from the
    /// scheduler when this says so); like a stalled one, its figures up to now are written once
    /// more, and from then on its stored entries are carried over in the reports of the periods
    /// it was measured in (see [`Gone`]). Whether the scheduler was probing it.
    fn depart(&mut self, key: &str, tenant: &str, now: Timestamp) -> bool {
        let Some(t) = self.by_tenant.get_mut(tenant) else {
            return false;
        };
        let name = key.rsplit_once('/').map_or(key, |(_, n)| n);
        t.change_left(|left| {
            left.stalled.retain(|k| &**k != key);
            match left.gone.iter_mut().find(|g| &*g.component == name) {
                Some(g) => g.since = g.since.max(now),
                None => left.gone.push(Gone {
                    component: name.into(),
                    since: now,
                }),
            }
        });
        match self.tracked.get_mut(key) {
            Some(t) if *t.labels.tenant == *tenant => {
                let was_probed = std::mem::replace(&mut t.probed, false);
                self.dirty.insert(tenant.to_string());
                self.urgent.insert(tenant.to_string());
                was_probed
            }
            _ => false,
        }
    }

    /// Records the components that the stored reports `stored` of `tenant` hold but that are
    /// neither followed nor stalled (deleted while no regie ran) as [`Gone`]: from the time
    /// their entry was last measured, or its period's start.
    fn gone_from_stored(
        &mut self,
        tenant: &str,
        stored: &[(Period, SlaReportStatus)],
        tz: &jiff::tz::TimeZone,
    ) {
        let known: BTreeSet<&str> = self
            .of_tenant(tenant)
            .map(|(_, t)| &*t.labels.component)
            .collect();
        let mut found: Vec<Gone> = Vec::new();
        for (period, status) in stored {
            let Ok(bounds) = period.bounds(tz) else {
                continue;
            };
            for c in &status.components {
                if known.contains(c.component.as_str()) {
                    continue;
                }
                let since = c
                    .last_sample
                    .as_ref()
                    .and_then(|s| s.time.parse::<Timestamp>().ok())
                    .unwrap_or(bounds.start)
                    .max(bounds.start);
                match found.iter_mut().find(|g| *g.component == *c.component) {
                    Some(g) => g.since = g.since.max(since),
                    None => found.push(Gone {
                        component: c.component.as_str().into(),
                        since,
                    }),
                }
            }
        }
        if found.is_empty() {
            return;
        }
        let Some(t) = self.by_tenant.get_mut(tenant) else {
            return;
        };
        t.change_left(|left| {
            for g in found {
                let stalled = left
                    .stalled
                    .iter()
                    .any(|k| k.rsplit_once('/').is_some_and(|(_, n)| n == &*g.component));
                if !stalled && !left.gone.iter().any(|o| o.component == g.component) {
                    left.gone.push(g);
                }
            }
        });
    }

    /// Whether nothing will write the tenant's report of `period` again, so that it is final as
    /// it stands: each of the tenant's components (`components`, their scheduler keys) is
    /// followed or stalled here — none waits for its tenant's first reconcile since the start —
    /// and of those followed none is still to resume its history or has the period open or
    /// still to close. True for a tenant that has no components (any more), or is gone.
    fn left_open(&self, tenant: &str, period: Period, components: &[String]) -> bool {
        let stalled: &[Arc<str>] = self.by_tenant.get(tenant).map_or(&[], |t| t.stalled());
        let accounted = components
            .iter()
            .all(|k| self.tracked.contains_key(k.as_str()) || stalled.iter().any(|s| **s == **k));
        accounted
            && self.of_tenant(tenant).all(|(_, t)| {
                t.resumed
                    && !t.history.open_periods().contains(&period)
                    && !t.history.closing_periods().contains(&period)
            })
    }

    /// Lets go of the deleted components whose entries no report still to be written holds:
    /// those deleted [`GONE_KEPT`] ago, and — while the tenant has components followed — those
    /// deleted before every period its components are measured in began.
    fn prune_gone(&mut self, now: Timestamp) {
        let Some(oldest) = now.checked_sub(GONE_KEPT).ok() else {
            return;
        };
        let tenants: Vec<Arc<str>> = self
            .by_tenant
            .iter()
            .filter(|(_, t)| !t.gone().is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for tenant in tenants {
            // The earliest start of the periods the tenant's followed components may still
            // write; none when none of them has been measured yet (then a component's first
            // sample may fall in the periods of a deleted one).
            let earliest = self
                .of_tenant(&tenant)
                .flat_map(|(_, t)| {
                    let tz = t.tier.time_zone.clone();
                    t.history
                        .open_periods()
                        .iter()
                        .chain(t.history.closing_periods())
                        .filter_map(move |p| p.bounds(&tz).ok())
                        .map(|b| b.start)
                        .collect::<Vec<_>>()
                })
                .min();
            let Some(t) = self.by_tenant.get_mut(&tenant) else {
                continue;
            };
            t.change_left(|left| {
                left.gone
                    .retain(|g| g.since >= oldest && earliest.is_none_or(|e| g.since >= e));
            });
            if t.is_empty() {
                self.by_tenant.remove(&tenant);
            }
        }
    }

    /// Marks `key` of `tenant` stalled: the scheduler no longer probes it (the caller removes
    /// it there when this says so), its history stays until its figures up to now are written
    /// (the tenant's reports are due), and afterwards its stored entries are carried over.
    /// Whether the scheduler was probing it.
    fn stall(&mut self, key: &str, tenant: &str) -> bool {
        self.refused_when_resolved.remove(key);
        let shared_tenant: Arc<str> = match self.by_tenant.get_key_value(tenant) {
            Some((t, _)) => t.clone(),
            None => tenant.into(),
        };
        let shared_key: Arc<str> = match self.tracked.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => key.into(),
        };
        self.by_tenant
            .entry(shared_tenant)
            .or_default()
            .change_left(|left| {
                if let Err(at) = left.stalled.binary_search_by(|k| (**k).cmp(key)) {
                    left.stalled.insert(at, shared_key);
                }
            });
        let was_probed = match self.tracked.get_mut(key) {
            Some(t) if t.labels.tenant.as_ref() == tenant => {
                std::mem::replace(&mut t.probed, false)
            }
            _ => false,
        };
        if was_probed {
            self.dirty.insert(tenant.to_string());
            self.urgent.insert(tenant.to_string());
        }
        was_probed
    }

    /// `key` of `tenant` is not stalled (any more).
    fn unstall(&mut self, key: &str, tenant: &str) {
        if let Some(t) = self.by_tenant.get_mut(tenant)
            && t.left.is_some()
        {
            t.change_left(|left| left.stalled.retain(|k| &**k != key));
        }
    }

    /// The scheduler key `key` and `labels` made of the strings the prober already holds, so
    /// that a component's key and labels exist once however many places keep them: the key and
    /// labels of the component as tracked, else the tenant's name as kept in `by_tenant` and
    /// the level's name from `tiers`. Unknown strings are kept as they are.
    fn share_labels(&self, key: String, labels: &mut TargetLabels) -> Arc<str> {
        let tracked = self.tracked.get_key_value(key.as_str());
        if let Some((_, t)) = tracked
            && t.labels.component == labels.component
        {
            labels.component = t.labels.component.clone();
        }
        if let Some((tenant, _)) = self.by_tenant.get_key_value(&*labels.tenant) {
            labels.tenant = tenant.clone();
        }
        if let Some((level, _)) = self.tiers.get_key_value(&*labels.service_level) {
            labels.service_level = level.clone();
        }
        match tracked {
            Some((shared, _)) => shared.clone(),
            None => key.into(),
        }
    }

    /// Counts the result of a probe in its component's series, when the component is still
    /// tracked under the labels it was probed with.
    fn count(&mut self, key: &str, labels: &TargetLabels, result: &ProbeResult) {
        if let Some(t) = self.tracked.get_mut(key)
            && t.labels == *labels
        {
            t.series.observe(result);
        }
    }

    /// A copy of every tracked component's series, for one scrape, with its windows as they are
    /// now: from the tier's calendar at the scrape's instant, once per tier, so that a window
    /// gauge is never older than the scrape (the figures are as of the last report write).
    fn series(&self) -> Vec<(TargetLabels, Series)> {
        let now = self.clock.as_ref().map(|clock| clock());
        let mut by_tier: Vec<(*const Tier, Windows)> = Vec::new();
        self.tracked
            .values()
            .map(|t| {
                let mut series = t.series.clone();
                if let Some(now) = now {
                    let tier = Arc::as_ptr(&t.tier);
                    let windows = match by_tier.iter().find(|(p, _)| *p == tier) {
                        Some((_, w)) => *w,
                        None => {
                            let w = Windows {
                                in_service: calendar::in_service_hours(&t.tier, now),
                                in_monitoring: calendar::in_monitoring_window(&t.tier, now),
                            };
                            by_tier.push((tier, w));
                            w
                        }
                    };
                    series.set_windows(windows);
                }
                (t.labels.clone(), series)
            })
            .collect()
    }

    /// Gives back the room of `stored` (see [`crate::room`]): a start resumes every component
    /// at once.
    fn release_stored_room(&mut self) {
        crate::room::give_back(&mut self.stored);
    }

    /// `tier` as the one shared copy of its level's tier.
    fn shared_tier(&mut self, tier: &Tier) -> Arc<Tier> {
        match self.tiers.get(tier.name.as_str()) {
            Some(shared) if **shared == *tier => shared.clone(),
            _ => {
                let shared = Arc::new(tier.clone());
                self.tiers.insert(tier.name.as_str().into(), shared.clone());
                shared
            }
        }
    }

    /// Whether reports may be written now (`quiet`: no reconcile in progress). While reconciles
    /// are in progress they wait — a tier change must not queue behind a wave of reports — but
    /// never longer than [`DEFER_AT_MOST`] in a row.
    fn may_write(&mut self, quiet: bool) -> bool {
        if quiet {
            self.deferring_since = None;
            return true;
        }
        let since = *self.deferring_since.get_or_insert_with(Instant::now);
        since.elapsed() >= DEFER_AT_MOST
    }

    /// [`State::due`] when reports may be written now, else nothing.
    fn due_now(&mut self, quiet: bool) -> Vec<String> {
        if !self.may_write(quiet) || self.urgent.is_empty() {
            return Vec::new();
        }
        self.due()
    }

    /// Urgent tenants whose hold has passed, taken out of `urgent` and `dirty`.
    fn due(&mut self) -> Vec<String> {
        let due: Vec<String> = self
            .urgent
            .iter()
            .filter(|t| {
                self.by_tenant
                    .get(t.as_str())
                    .and_then(|p| p.last_write)
                    .is_none_or(|at| at.elapsed() >= self.hold(t))
            })
            .cloned()
            .collect();
        self.take(due)
    }

    /// `tenants`, taken out of `urgent` and `dirty`: their write is about to be made.
    fn take(&mut self, tenants: Vec<String>) -> Vec<String> {
        for t in &tenants {
            self.urgent.remove(t);
            self.dirty.remove(t);
        }
        tenants
    }
}

/// The namespace part of a scheduler key (`namespace/name`).
fn namespace_of(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

/// The name of the tenant's report for `period`: `<tenant>-2026-03`, `<tenant>-2026-w14`,
/// `<tenant>-2026-03-31` (object names are lower case).
pub fn report_name(tenant: &str, period: &Period) -> String {
    format!("{tenant}-{}", period.to_string().to_lowercase())
}

/// The prober's handle, shared by the reconciles and the consumer.
#[derive(Clone)]
pub struct Probes {
    scheduler: Scheduler,
    metrics: ProbeMetrics,
    state: Arc<Mutex<State>>,
    /// See [`FLUSH_EVERY`].
    pub flush_every: Duration,
    /// See [`REPORT_RETENTION`]; none keeps every report.
    pub retention: Option<Duration>,
    /// Set by a requested stop: the consumer writes what is owed before it ends.
    write_owed_at_stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Probes {
    /// Starts the scheduler with a prober under `policy` and registers the probe metrics on the
    /// operator's registry. The events go to [`consume`].
    pub fn start(
        policy: ProbePolicy,
        lookup: Option<Arc<dyn Lookup>>,
        metrics: &Metrics,
    ) -> anyhow::Result<(Probes, UnboundedReceiver<ProbeEvent>)> {
        let config = ProberConfig {
            policy,
            ..ProberConfig::default()
        };
        let lookup = lookup.unwrap_or_else(|| Arc::new(SystemLookup));
        let prober = Prober::with_parts(config, Arc::new(SystemClock), lookup)?;
        let state: Arc<Mutex<State>> = Arc::default();
        let probe_metrics = match ProbeMetrics::register(&metrics.registry) {
            Ok(m) => {
                let state = state.clone();
                metrics.add_pages(move || {
                    let series = lock(&state).series();
                    Box::new(crate::sla::metrics::pages(series))
                });
                m
            }
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
                state,
                flush_every: FLUSH_EVERY,
                retention: Some(REPORT_RETENTION),
                write_owed_at_stop: Arc::default(),
            },
            events,
        ))
    }

    /// Stops probing; the consumer ends once it has handled the events still queued, after
    /// writing what is owed (see [`FLUSH_AT_STOP`]) when `write_owed` — only while the lease
    /// is still this process's.
    pub fn stop(&self, write_owed: bool) {
        self.write_owed_at_stop
            .store(write_owed, std::sync::atomic::Ordering::Release);
        self.scheduler.shutdown();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn forget(&self, key: &str) {
        if self.lock().untrack(key) {
            let _ = self.scheduler.remove(key);
        }
    }

    /// See [`State::stall`].
    fn stall(&self, key: &str, tenant: &str) {
        if self.lock().stall(key, tenant) {
            let _ = self.scheduler.remove(key);
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A poisoned lock only means a panic elsewhere mid-update; the state is still usable.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps the probe target of one component in step with its plan: probed at its tier when the
/// plan is good (`tier` given), not probed when it is stalled. A target refused as written (an
/// address or name the policy refuses) is the component's stall: it is never probed. One whose
/// name resolved to a refused address at its last probe stalls it too, and is probed again
/// every interval: names move. Each such refused probe is a failed sample for its SLA (the
/// service is unreachable to its users; see [`ProbeResult::sla_sample`]).
pub fn sync_component(
    ctx: &Context,
    tenant: &Tenant,
    component: &HostingComponent,
    tier: Option<&Tier>,
) -> Option<Stall> {
    let probes = ctx.probes.as_ref()?;
    let key = component_key(component);
    let tenant_name = tenant.name_any();
    // A stalled component is not probed, but it is not forgotten: what was measured of it this
    // month (its incidents, a credit) stays in the tenant's open reports (see `State::stall`).
    let Some(tier) = tier else {
        probes.stall(&key, &tenant_name);
        return None;
    };
    let refused = |key: &str, r: String| {
        probes.stall(key, &tenant_name);
        Some(Stall {
            reason: REFUSED,
            message: r,
        })
    };
    let mut target = match component_target(tenant, component, tier) {
        Ok(t) => t,
        Err(r) => return refused(&key, r.to_string()),
    };
    if component.spec.hosted.is_some() {
        // A Deployment's availability change reconciles its tenant, which lands here again.
        let available = ctx
            .deployment_replicas(component)
            .map_or(0, |r| r.available);
        target = target.with_endpoints(available > 0);
    }
    let mut state = probes.lock();
    let tier = state.shared_tier(tier);
    let key = state.share_labels(key, &mut target.labels);
    let labels = target.labels.clone();
    // Under the lock, so that the scheduler's copy of the labels and the tracked one agree.
    match probes.scheduler.upsert(key.clone(), target) {
        Ok(()) => {}
        Err(ScheduleError::Refused(r)) => {
            drop(state);
            return refused(&key, r.to_string());
        }
        Err(e) => {
            drop(state);
            tracing::warn!(component = %key, error = %e, "component not probed");
            probes.forget(&key);
            return None;
        }
    }
    state.unstall(&key, &labels.tenant);
    let t = state.track(&key, &labels, || Tracked {
        labels: labels.clone(),
        saas: false,
        tier: tier.clone(),
        history: History::new(),
        resumed: false,
        probed: true,
        written: None,
        writing_available: false,
        series: Series::default(),
    });
    t.probed = true;
    t.relabel(labels);
    t.saas = component.spec.saas.is_some();
    t.tier = tier;
    // Still probed every interval: the name may come to resolve elsewhere.
    state.refused_when_resolved.get(&*key).map(|refusal| Stall {
        reason: REFUSED,
        message: format!("{refusal}; tried again every probe interval"),
    })
}

/// Stops probing the components of `tenant` that are not in `keep` (deleted components, or all
/// of them when the tenant goes). What was measured of them stays in the reports of the periods
/// they were measured in (see [`State::depart`]).
pub fn retain<'a>(
    ctx: &Context,
    tenant: &str,
    keep: impl IntoIterator<Item = &'a HostingComponent>,
) {
    let Some(probes) = ctx.probes.as_ref() else {
        return;
    };
    let keep: BTreeSet<String> = keep.into_iter().map(component_key).collect();
    let now = ctx.now();
    let mut state = probes.lock();
    let stalled: &[Arc<str>] = state.by_tenant.get(tenant).map_or(&[], |t| t.stalled());
    // Those followed but not probed and not stalled have left already (their last figures are
    // still to be written).
    let gone: BTreeSet<Arc<str>> = state
        .of_tenant(tenant)
        .filter(|(k, t)| t.probed || stalled.contains(k))
        .map(|(k, _)| k)
        .chain(stalled)
        .filter(|k| !keep.contains(&***k))
        .cloned()
        .collect();
    for k in gone {
        if state.depart(&k, tenant, now) {
            let _ = probes.scheduler.remove(k);
        }
    }
}

/// The consumer of the scheduler's events, until the channel closes.
pub async fn consume(
    ctx: Arc<Context>,
    mut events: UnboundedReceiver<ProbeEvent>,
    reconcile: UnboundedSender<String>,
) {
    let Some(probes) = ctx.probes.clone() else {
        return;
    };
    probes.lock().clock = Some(ctx.clock.clone());
    let slot_length = probes.flush_every / FLUSH_SLOTS as u32;
    let mut flush =
        tokio::time::interval_at(tokio::time::Instant::now() + slot_length, slot_length);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slot: u64 = 0;
    // Whether a pass over the reports past their retention is owed: at the start, then once per
    // flush period.
    let mut retire_due = true;
    loop {
        // Past the bound, reports are written with the events again: no wait to select.
        let deferred_until = probes
            .lock()
            .deferring_since
            .map(|since| since + DEFER_AT_MOST)
            .filter(|until| *until > Instant::now());
        let until = tokio::time::Instant::from_std(deferred_until.unwrap_or_else(Instant::now));
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => handle(&ctx, &probes, &reconcile, ev).await,
                None => {
                    if probes.write_owed_at_stop.load(std::sync::atomic::Ordering::Acquire) {
                        write_owed_at_stop(&ctx, &probes).await;
                    }
                    break;
                }
            },
            // Reports held back by reconciles go as soon as those pause.
            _ = ctx.activity.quiet_or(until), if deferred_until.is_some() => {
                let due = probes.lock().due_now(ctx.activity.is_quiet());
                write_reports(&ctx, &probes, due, true).await;
            }
            _ = flush.tick() => {
                slot = (slot + 1) % FLUSH_SLOTS;
                let dirty: Vec<String> = {
                    let mut state = probes.lock();
                    if !state.may_write(ctx.activity.is_quiet()) {
                        // This slot's tenants keep their figures until their next turn.
                        continue;
                    }
                    state.stored.retain(|_, (_, at)| at.elapsed() < STORED_KEPT);
                    state.release_stored_room();
                    let due: Vec<String> = state
                        .dirty
                        .iter()
                        .filter(|t| flush_slot(t) == slot)
                        .cloned()
                        .collect();
                    state.take(due)
                };
                write_reports(&ctx, &probes, dirty, false).await;
                if slot == 0 {
                    probes.lock().prune_gone(ctx.now());
                    retire_due = true;
                }
                close_left_reports(&ctx, &probes).await;
                if retire_due && let Some(retention) = probes.retention {
                    retire_due = !retire_old_reports(&ctx, retention).await;
                }
            }
        }
    }
}

/// How long a requested stop waits at most for the writes owed (see [`write_owed_at_stop`]):
/// well inside the 30 s a pod is given to end, with the lease released after it.
pub const FLUSH_AT_STOP: Duration = Duration::from_secs(10);

/// At a requested stop, writes the reports owed a write of their own — an incident that opened
/// or closed, a period that ended, a component that left — which were waiting for the hold
/// after the tenant's last write or for reconciles to pause (up to [`DEFER_AT_MOST`]), and
/// waits for the `Available` writes in flight; all within [`FLUSH_AT_STOP`]. Without it a
/// rolling upgrade on a busy cluster lost the transitions of its last minutes: the next process
/// resumes from the stored reports, where the last stored outcome covers the time since. The
/// figures of tenants that are only due their steady refresh are not written: the stored ones
/// already say all that resuming needs.
async fn write_owed_at_stop(ctx: &Context, probes: &Probes) {
    let deadline = tokio::time::Instant::now() + FLUSH_AT_STOP;
    let owed = {
        let mut state = probes.lock();
        let urgent: Vec<String> = state.urgent.iter().cloned().collect();
        state.take(urgent)
    };
    let count = owed.len();
    if tokio::time::timeout_at(deadline, write_reports(ctx, probes, owed, true))
        .await
        .is_err()
    {
        tracing::warn!(
            tenants = count,
            "stopping: not every SLA report owed a write was written in time; the next process \
             resumes from the stored ones"
        );
    }
    while tokio::time::Instant::now() < deadline
        && probes.lock().tracked.values().any(|t| t.writing_available)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a final daily or weekly report is kept after its period's end by default: a year and
/// a month, for a year's comparisons. Monthly reports, which billing reads, are always kept.
pub const REPORT_RETENTION: Duration = Duration::from_secs(400 * 86_400);
/// How many reports past their retention one pass deletes at most: the first pass over years of
/// reports is spread over several.
const RETIRED_PER_PASS: usize = 100;

/// The end of the day or ISO week that a report's name ends in (`<tenant>-2026-03-31`,
/// `<tenant>-2026-w14`), a day late, as the name does not say the time zone; None for a month's
/// report or a name of another form.
fn short_period_end(name: &str) -> Option<Timestamp> {
    let period = [10, 8].into_iter().find_map(|len| {
        let at = name.len().checked_sub(len)?;
        let (head, suffix) = (name.get(..at)?, name.get(at..)?);
        if !head.ends_with('-') || head.len() < 2 {
            return None;
        }
        match suffix.to_ascii_uppercase().parse::<Period>().ok()? {
            p @ (Period::Day(_) | Period::Week { .. }) => Some(p),
            Period::Month { .. } => None,
        }
    })?;
    let end = period.next().ok()?.first_day().ok()?.tomorrow().ok()?;
    end.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Deletes the final daily and weekly reports whose period ended more than the retention ago,
/// at most [`RETIRED_PER_PASS`]; monthly reports are kept. Candidates are found by name in the
/// SlaReport cache, and each is read before it is deleted (final, a day or a week, its end
/// past the retention) and deleted only as read. True when the pass is done (false: the cache
/// is not listed yet, or more are left).
async fn retire_old_reports(ctx: &Context, retention: Duration) -> bool {
    if !ctx.invoicing.reports.is_listed() {
        return false;
    }
    let Ok(retention) = jiff::SignedDuration::try_from(retention) else {
        return true;
    };
    let Ok(cutoff) = ctx.now().checked_sub(retention) else {
        return true;
    };
    let mut old = ctx.invoicing.reports.keys_where(|r| !r.is_open());
    old.retain(|name| short_period_end(name).is_some_and(|end| end < cutoff));
    let more = old.len() > RETIRED_PER_PASS;
    let api: Api<SlaReport> = Api::all(ctx.client.clone());
    for name in old.into_iter().take(RETIRED_PER_PASS) {
        let report = match api.get_opt(&name).await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(report = %name, error = %e, "SlaReport not read; retired later");
                return false;
            }
        };
        let closed = report.status.as_ref().is_some_and(is_final);
        let short = matches!(
            report.spec.period.parse::<Period>(),
            Ok(Period::Day(_) | Period::Week { .. })
        );
        let ended = report
            .spec
            .to
            .parse::<Timestamp>()
            .is_ok_and(|end| end < cutoff);
        if !(closed && short && ended) {
            continue;
        }
        let params = kube::api::DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                resource_version: report.metadata.resource_version.clone(),
                uid: report.metadata.uid.clone(),
            }),
            ..kube::api::DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                ctx.metrics.write("delete", "SlaReport");
                tracing::info!(report = %name, "SlaReport deleted: past its retention");
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                tracing::warn!(report = %name, error = %e, "SlaReport not deleted; retired later");
                return false;
            }
        }
    }
    !more
}

/// How long after its period's end a report that is not final is left to the components
/// measured in it (the first sample after the end closes it, see the module's documentation)
/// before [`close_left_reports`] looks at it.
const LEFT_OPEN_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_secs(600);

/// Closes the reports whose period ended some time ago that nothing will write again: a
/// tenant's whose components were all stalled or deleted in the period, or that left (its
/// Tenant deleted). Their figures stand as last written, measured up to `measuredUntil`; only
/// the condition `Final` is written. A report that a component followed here may still write
/// is left to it (see [`State::left_open`]) and looked at again a flush period later.
async fn close_left_reports(ctx: &Context, probes: &Probes) {
    let caches_listed =
        ctx.invoicing.reports.is_listed() && ctx.tenants.is_listed() && ctx.components.is_listed();
    if !caches_listed {
        return;
    }
    let now = ctx.now();
    let Ok(before) = now.checked_sub(LEFT_OPEN_AFTER) else {
        return;
    };
    let ended = ctx
        .invoicing
        .reports
        .keys_where(|r| r.ended_open(before).is_some());
    let due: Vec<Arc<str>> = {
        let mut state = probes.lock();
        state.left_checked.retain(|k, _| ended.contains(k));
        let flush_every = probes.flush_every;
        ended
            .into_iter()
            .filter(|k| {
                state
                    .left_checked
                    .get(k)
                    .is_none_or(|at| at.elapsed() >= flush_every)
            })
            .collect()
    };
    let api: Api<SlaReport> = Api::all(ctx.client.clone());
    for name in due {
        probes
            .lock()
            .left_checked
            .insert(name.clone(), Instant::now());
        let report = match api.get_opt(&name).await {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(report = %name, error = %e, "SlaReport not read; looked at again later");
                return;
            }
        };
        let status = report.status.unwrap_or_default();
        let closed = is_final(&status);
        let (Ok(period), Ok(end)) = (
            report.spec.period.parse::<Period>(),
            report.spec.to.parse::<Timestamp>(),
        ) else {
            continue;
        };
        if closed || end > before {
            continue;
        }
        let tenant = report.spec.tenant.as_str();
        let components: Vec<String> = ctx
            .tenants
            .named(tenant)
            .and_then(|t| t.spec_part::<super::Placement>())
            .map(|p| {
                let ns = p.namespace_of(tenant);
                ctx.components
                    .in_namespace(&ns)
                    .iter()
                    .map(|c| format!("{ns}/{}", c.name()))
                    .collect()
            })
            .unwrap_or_default();
        if !probes.lock().left_open(tenant, period, &components) {
            continue;
        }
        let measured = status.measured_until.as_deref().unwrap_or("its last write");
        let condition = status::condition(
            FINAL,
            true,
            PERIOD_CLOSED,
            format!(
                "the period ended at {end}; none of its components was measured in it after \
                 {measured} (stalled, deleted, or the tenant left), so these figures are final"
            ),
            None,
            Time(end),
        );
        let patch = json!({"status": {"conditions": [condition]}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                ctx.metrics.write("status", "SlaReport");
                probes.lock().left_checked.remove(&name);
                tracing::info!(report = %name, "SlaReport final: nothing measured in it any more");
            }
            Err(e) => {
                tracing::warn!(report = %name, error = %e, "SlaReport not closed; tried again later");
                return;
            }
        }
    }
}

/// A probe's result: its sample into the component's history and metrics; a refusal, or the
/// end of one, to the component's tenant, whose reconcile stalls the component or frees it.
async fn handle(
    ctx: &Arc<Context>,
    probes: &Probes,
    reconcile: &UnboundedSender<String>,
    ev: ProbeEvent,
) {
    probes.metrics.observe(&ev);
    let ProbeEvent::Probed(report) = ev else {
        return;
    };
    probes
        .lock()
        .count(&report.key, &report.target.labels, &report.result);
    let tenant = &report.target.labels.tenant;
    match &report.result {
        ProbeResult::Probed(_) => {
            let was_refused = probes
                .lock()
                .refused_when_resolved
                .remove(&*report.key)
                .is_some();
            if was_refused {
                tracing::info!(component = %report.key, "probe target no longer refused");
                let _ = reconcile.send(tenant.to_string());
            }
        }
        ProbeResult::Refused(r) => {
            let refusal = r.to_string();
            let news = {
                let mut state = probes.lock();
                // A refusal of a target removed since says nothing.
                state.tracked.contains_key(&*report.key)
                    && state
                        .refused_when_resolved
                        .insert(report.key.clone(), refusal.clone())
                        .is_none_or(|before| before != refusal)
            };
            if news {
                tracing::warn!(component = %report.key, reason = %refusal, "probe refused");
                let _ = reconcile.send(tenant.to_string());
            }
            // Refused when its name resolved: the component is Stalled (above) and the probe
            // still counts as a failed sample below — the service is unreachable to its users.
        }
        ProbeResult::Skipped(_) => return,
    }
    let Some(sample) = report.result.sla_sample() else {
        return;
    };
    let key: &str = &report.key;
    // Before its first sample counts, a component's history is resumed from its stored reports.
    let to_resume = {
        let state = probes.lock();
        let Some(t) = state.tracked.get(key) else {
            return;
        };
        !t.resumed
    };
    if to_resume && !resume(ctx, probes, key, sample.at).await {
        // The reports could not be read: this sample waits, the next one tries again.
        return;
    }
    let available = {
        let mut state = probes.lock();
        let Some(t) = state.tracked.get_mut(key) else {
            return;
        };
        if t.tier.probe_interval != report.target.interval
            || t.labels.service_level != report.target.labels.service_level
        {
            // A result of the target as it was before an upsert; the next one counts.
            return;
        }
        let seen = t.history.observe(&t.tier, sample);
        let tenant = t.labels.tenant.clone();
        let available = t
            .saas
            .then(|| (t.labels.component.clone(), t.tier.probe_interval));
        // A resume may leave periods to close that ended before the stored last sample.
        let owed = to_resume && !t.history.closing_periods().is_empty();
        state.dirty.insert(tenant.to_string());
        if seen.transition || seen.closed_period || owed {
            state.urgent.insert(tenant.to_string());
        }
        available
    };
    if let Some((component, interval)) = available {
        let message = match &report.result {
            ProbeResult::Probed(o) => match (&o.error, o.status) {
                (Some(e), _) => e.clone(),
                (None, Some(s)) => format!("HTTP {s} from {}", report.target.url_text()),
                (None, None) => "probe succeeded".into(),
            },
            ProbeResult::Refused(r) => r.to_string(),
            ProbeResult::Skipped(_) => return,
        };
        let hold = AVAILABLE_HOLD.max(interval);
        set_available(ctx, probes, key, &component, sample.success, message, hold);
    }
    let due = probes.lock().due_now(ctx.activity.is_quiet());
    write_reports(ctx, probes, due, true).await;
}

/// Writes the reports of `tenants` one after the other, until a write fails: the API server
/// failing or hanging then costs this round one request's time limit, not one per tenant, and
/// the probe events that queue meanwhile are handled before the next round; the tenants not
/// written are owed still (`urgent` ones stay urgent).
async fn write_reports(ctx: &Context, probes: &Probes, tenants: Vec<String>, urgent: bool) {
    let mut tenants = tenants.into_iter();
    for tenant in tenants.by_ref() {
        if !write_report(ctx, probes, &tenant).await {
            break;
        }
    }
    let mut state = probes.lock();
    for tenant in tenants {
        if urgent {
            state.urgent.insert(tenant.clone());
        }
        state.dirty.insert(tenant);
    }
}

/// Writes the SaaS component's `Available` condition when the outcome differs from what the
/// cluster shows, at most once per `hold`; a held change is written by the first probe after the
/// hold, with the outcome of that probe. The write goes in a task of its own, one per component
/// at a time: the probe events wait for no API request (an API server slow to answer would
/// otherwise hold every probe outcome back, and the reports with them), and two writes of one
/// component never race each other.
fn set_available(
    ctx: &Arc<Context>,
    probes: &Probes,
    key: &str,
    name: &str,
    up: bool,
    message: String,
    hold: Duration,
) {
    let ns = namespace_of(key);
    let Some(c) = ctx.components.object(ns, name) else {
        return;
    };
    if available_patch(&c, up, &message, Time(ctx.now())).is_none() {
        return;
    }
    {
        // Also covers the moment the cache still lags our own last write.
        let mut state = probes.lock();
        let Some(t) = state.tracked.get_mut(key) else {
            return;
        };
        if t.writing_available || t.written.is_some_and(|(_, at)| at.elapsed() < hold) {
            return;
        }
        t.written = Some((up, Instant::now()));
        t.writing_available = true;
    }
    let (ctx, probes, key, name) = (
        ctx.clone(),
        probes.clone(),
        key.to_string(),
        name.to_string(),
    );
    tokio::spawn(async move {
        let written = write_available(&ctx, &key, &name, up, &message).await;
        match &written {
            Ok(true) => ctx.metrics.write("status", "HostingComponent"),
            Ok(false) => {}
            Err(e) => tracing::warn!(component = %key, error = %e, "Available not written"),
        }
        if let Some(t) = probes.lock().tracked.get_mut(key.as_str()) {
            t.writing_available = false;
            if written.is_err() {
                t.written = None;
            }
        }
    });
}

/// How often the `Available` write is tried again when the component changed between the read
/// of the cache and the write, and how long each try waits for the cache to show the change.
const AVAILABLE_TRIES: usize = 3;
const AVAILABLE_CACHE_WAIT: Duration = Duration::from_secs(2);

/// Writes `Available` over the component as the cache holds it, on the condition that the
/// component is still that version: the patch carries the conditions list whole (a JSON merge
/// patch replaces a list), so without the condition a write based on a cache that lagged a
/// reconcile's status would put back the conditions that reconcile had just replaced — a
/// `Ready` of before a stall, say. A conflict waits for the cache to catch up and tries again
/// from it. Ok(false) when there was nothing to write (any more), or the component is gone.
async fn write_available(
    ctx: &Context,
    key: &str,
    name: &str,
    up: bool,
    message: &str,
) -> Result<bool, kube::Error> {
    let ns = namespace_of(key);
    let api: Api<HostingComponent> = Api::namespaced(ctx.client.clone(), ns);
    for attempt in 1..=AVAILABLE_TRIES {
        let Some(c) = ctx.components.object(ns, name) else {
            return Ok(false);
        };
        let Some(patch) = available_patch(&c, up, message, Time(ctx.now())) else {
            return Ok(false);
        };
        let based_on = c.meta().resource_version.clone();
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < AVAILABLE_TRIES => {
                tracing::debug!(component = %key, "component changed since the cache was read; Available waits for the cache");
                let waited = Instant::now();
                while waited.elapsed() < AVAILABLE_CACHE_WAIT
                    && ctx
                        .components
                        .object(ns, name)
                        .is_some_and(|now| now.meta().resource_version == based_on)
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// The merge patch that sets component `c`'s `Available` to the probe's outcome, with `c`'s
/// resourceVersion as its precondition; None when the condition already says so.
fn available_patch(
    c: &HostingComponent,
    up: bool,
    message: &str,
    now: Time,
) -> Option<serde_json::Value> {
    let reason = if up { SUCCEEDED } else { FAILED };
    let want = if up { "True" } else { "False" };
    let mut conditions = c
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if status::find(&conditions, AVAILABLE).is_some_and(|a| a.status == want && a.reason == reason)
    {
        return None;
    }
    status::set_condition(
        &mut conditions,
        status::condition(
            AVAILABLE,
            up,
            reason,
            message.to_string(),
            c.meta().generation,
            now,
        ),
    );
    Some(json!({
        "metadata": {"resourceVersion": c.meta().resource_version},
        "status": {"conditions": conditions},
    }))
}

/// Reads the stored reports `names` that are not held yet into `State::stored`. False when one
/// could not be read.
async fn read_stored(ctx: &Context, probes: &Probes, names: &[String]) -> bool {
    let api: Api<SlaReport> = Api::all(ctx.client.clone());
    for name in names {
        if probes.lock().stored.contains_key(name) {
            continue;
        }
        // A new tenant's reports do not exist yet: the listed SlaReport cache says so without a
        // read of the API server for each (a cold start of thousands of tenants is bound by it).
        // Only this process writes reports, after its cache has listed them.
        if ctx.invoicing.reports.lacks(name) {
            probes
                .lock()
                .stored
                .insert(name.clone(), (None, Instant::now()));
            continue;
        }
        match api.get_opt(name).await {
            Ok(r) => {
                let status = r.and_then(|r| r.status);
                probes
                    .lock()
                    .stored
                    .insert(name.clone(), (status, Instant::now()));
            }
            Err(e) => {
                tracing::warn!(report = %name, error = %e, "SlaReport not read; retrying at the next probe");
                return false;
            }
        }
    }
    true
}

/// Resumes the history of component `key` from the tenant's stored reports, once, before its
/// sample at `at` counts. False when a report could not be read.
///
/// The reports of the periods at `at` are read first. When they do not hold the component's
/// last sample in those same periods, the process stopped before a period's end and this one
/// starts after it: the periods before are read too (and those of the last sample, after a
/// longer stop), so that the periods the old process left open are closed from their own
/// figures ([`History::resume`]) instead of staying `Final=False` for ever.
async fn resume(ctx: &Context, probes: &Probes, key: &str, at: Timestamp) -> bool {
    let (tier, tenant, component) = {
        let state = probes.lock();
        match state.tracked.get(key) {
            Some(t) if !t.resumed => (
                t.tier.clone(),
                t.labels.tenant.clone(),
                t.labels.component.clone(),
            ),
            _ => return true,
        }
    };
    let current = periods_at(&tier, at);
    let mut read: Vec<Period> = Vec::new();
    let mut want: Vec<Period> = current.to_vec();
    let mut stored: Vec<(Period, SlaReportStatus)> = Vec::new();
    // Three rounds at most: the periods now, those before them, those of an older last sample.
    for _ in 0..3 {
        want.retain(|p| !read.contains(p));
        if want.is_empty() {
            break;
        }
        let names: Vec<String> = want.iter().map(|p| report_name(&tenant, p)).collect();
        if !read_stored(ctx, probes, &names).await {
            return false;
        }
        read.append(&mut want);
        stored = {
            let state = probes.lock();
            read.iter()
                .filter_map(|p| {
                    let (status, _) = state.stored.get(&report_name(&tenant, p))?;
                    Some((*p, status.clone()?))
                })
                .collect()
        };
        let last = stored_state(&component, &stored).last;
        want = still_to_read(&tier, &current, last);
    }
    let s = stored_state(&component, &stored);
    let retiered = stored_parts(&component, &stored, &tier.time_zone);
    // The level the last stored sample was taken under: another than now when the level
    // changed while no process probed, and the first sample here splits the periods there. A
    // level no longer in the catalogue leaves the period to the level held now.
    let earlier = s
        .level
        .as_deref()
        .filter(|l| *l != tier.name)
        .and_then(|l| {
            let level = ctx
                .levels
                .get(&kube::runtime::reflector::ObjectRef::new(l))?;
            Tier::from_level(&level).ok()
        });
    let mut state = probes.lock();
    state.gone_from_stored(&tenant, &stored, &tier.time_zone);
    let sampled = earlier.map(|t| state.shared_tier(&t));
    let Some(t) = state.tracked.get_mut(key) else {
        return true;
    };
    if t.resumed {
        return true;
    }
    t.resumed = true;
    if s.last.is_some() {
        let sampled = sampled.unwrap_or_else(|| t.tier.clone());
        t.history = History::resume(
            &sampled,
            s.last,
            s.closed,
            s.ongoing,
            &s.unfinished,
            retiered,
        );
    }
    // Kept only for the tenant's components still to resume: once none is left, a component
    // added later reads the reports afresh.
    if state.of_tenant(&tenant).all(|(_, t)| t.resumed) {
        for p in &read {
            state.stored.remove(&report_name(&tenant, p));
        }
        state.release_stored_room();
    }
    true
}

/// What the stored reports say of one component.
#[derive(Debug, Default, PartialEq)]
struct Stored {
    /// The latest of its last samples.
    last: Option<Sample>,
    /// Closed incidents: the union of the reports' (each is cut at its own period's bounds).
    closed: Vec<Interval>,
    /// Start of the incident open at `last`.
    ongoing: Option<Timestamp>,
    /// Periods whose report lists it but is not final.
    unfinished: Vec<Period>,
    /// The level of the entry written with `last`.
    level: Option<String>,
}

/// What the stored reports say of the levels one component held before its current one: where
/// the current level's part began, and the parts of the levels before it (the entries that end
/// before their period does). None when its level never changed in the stored periods.
fn stored_parts(
    component: &str,
    reports: &[(Period, SlaReportStatus)],
    tz: &jiff::tz::TimeZone,
) -> Option<(Timestamp, Vec<Part>)> {
    let mut since: Option<Timestamp> = None;
    let mut before = Vec::new();
    for (p, s) in reports {
        let Ok(bounds) = p.bounds(tz) else {
            continue;
        };
        for c in s.components.iter().filter(|c| c.component == component) {
            // A part that cannot be read back is measured afresh under the current level.
            let Ok(entry) = ComponentReport::from_entry(c, bounds) else {
                continue;
            };
            match entry.to {
                Some(_) => before.push(Part {
                    period: *p,
                    service_level: entry.service_level,
                    result: entry.result,
                }),
                None => {
                    if let Some(from) = entry.from {
                        since = Some(since.map_or(from, |s| s.max(from)));
                    }
                }
            }
        }
    }
    since.map(|s| (s, before))
}

fn stored_state(component: &str, reports: &[(Period, SlaReportStatus)]) -> Stored {
    let time = |s: &str| s.parse::<Timestamp>().ok();
    let mut out = Stored::default();
    let entries = || {
        reports.iter().flat_map(|(p, s)| {
            s.components
                .iter()
                .filter(|c| c.component == component)
                .map(move |c| (p, s, c))
        })
    };
    let sample_of = |c: &regie_crds::generated::ComponentCompliance| {
        c.last_sample.as_ref().and_then(|s| {
            Some(Sample {
                at: time(&s.time)?,
                success: s.success,
            })
        })
    };
    for (p, s, c) in entries() {
        if let Some(sample) = sample_of(c)
            && out.last.is_none_or(|l| sample.at > l.at)
        {
            out.last = Some(sample);
        }
        if !is_final(s) && !out.unfinished.contains(p) {
            out.unfinished.push(*p);
        }
        out.closed.extend(
            c.incidents
                .iter()
                .filter_map(|i| Some(Interval::new(time(&i.start)?, time(i.end.as_deref()?)?))),
        );
    }
    // The open incident of the reports written with the last sample: an older report's may be
    // one that has ended since.
    for (_, _, c) in entries().filter(|(_, _, c)| sample_of(c) == out.last) {
        if out.last.is_some() {
            out.level = Some(c.service_level.clone());
        }
        for start in c
            .incidents
            .iter()
            .filter(|i| i.end.is_none())
            .filter_map(|i| time(&i.start))
        {
            out.ongoing = Some(out.ongoing.map_or(start, |o| o.min(start)));
        }
    }
    out
}

/// The periods whose reports a resume still needs, given the periods `current` at the first
/// sample and the last sample found so far: none when that lies in the same periods; else the
/// periods just before `current` (a period that ended while no process was probing) and those
/// of the last sample.
fn still_to_read(tier: &Tier, current: &[Period], last: Option<Sample>) -> Vec<Period> {
    let of_last = last.map(|s| periods_at(tier, s.at));
    if of_last.is_some_and(|l| *l == *current) {
        return Vec::new();
    }
    let latest_start = current
        .iter()
        .filter_map(|p| p.bounds(&tier.time_zone).ok())
        .map(|b| b.start)
        .max();
    let before = latest_start
        .and_then(|s| s.checked_sub(jiff::SignedDuration::from_nanos(1)).ok())
        .map(|at| periods_at(tier, at));
    let mut out: Vec<Period> = Vec::new();
    for p in before.into_iter().chain(of_last).flatten() {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// One report to write: its period and bounds, whether every component in it has ended the
/// period, the component figures and their last samples.
struct Draft {
    period: Period,
    bounds: Interval,
    closing: bool,
    components: Vec<ComponentReport>,
    lasts: Vec<Option<Sample>>,
    /// Scheduler keys of its components, to mark the final write done.
    keys: Vec<Arc<str>>,
}

/// Writes the tenant's `SlaReport`s (every open period, and the final write of ended ones) from
/// the histories, and the SLA gauges.
/// False when something was not written (the tenant is dirty again).
async fn write_report(ctx: &Context, probes: &Probes, tenant: &str) -> bool {
    let now = ctx.now();
    // A component whose history is not resumed yet (no sample of it handled since the start)
    // would be written with an empty history over what its stored report holds: resume it first.
    let pending: Vec<Arc<str>> = {
        let state = probes.lock();
        state
            .of_tenant(tenant)
            .filter(|(_, t)| !t.resumed)
            .map(|(key, _)| key.clone())
            .collect()
    };
    for key in pending {
        if !resume(ctx, probes, &key, now).await {
            probes.lock().dirty.insert(tenant.to_string());
            return false;
        }
    }
    let mut reports: BTreeMap<String, Draft> = BTreeMap::new();
    // Components stalled or deleted and still tracked: written once more with their figures up
    // to the stall or deletion, then let go (their stored entries are carried over after).
    let unprobed: Vec<Arc<str>>;
    {
        let mut state = probes.lock();
        if let Some(p) = state.by_tenant.get_mut(tenant) {
            p.last_write = Some(Instant::now());
        }
        unprobed = state
            .of_tenant(tenant)
            .filter(|(_, t)| !t.probed)
            .map(|(k, _)| k.clone())
            .collect();
        let mut gauges: Vec<(Arc<str>, SlaGauges)> = Vec::new();
        let mut mine: Vec<(&Arc<str>, &Tracked)> = state.of_tenant(tenant).collect();
        mine.sort_by(|a, b| a.1.labels.component.cmp(&b.1.labels.component));
        for (key, t) in mine {
            let h = &t.history;
            let periods = h
                .closing_periods()
                .iter()
                .map(|p| (*p, true))
                .chain(h.open_periods().iter().map(|p| (*p, false)));
            // A stalled component's figures end where its samples do (its last sample and the
            // probe interval that covers): the time it is not probed counts neither as up nor as
            // down, as nothing was measured. Should probing resume in the same period, that gap
            // counts as any gap between two samples does (the last outcome holds), as after a
            // restart of the operator.
            let until = if t.probed {
                now
            } else {
                covered_until(h, &t.tier, now)
            };
            for (period, closing) in periods {
                let Ok(Figures {
                    bounds,
                    parts,
                    ended,
                }) = h.report_figures(&t.tier, period, until)
                else {
                    continue;
                };
                let Some(current) = parts.last() else {
                    continue;
                };
                if !closing && matches!(period, Period::Month { .. }) {
                    // The error budget of the part of the month under the level held now.
                    let part = Interval::new(current.result.period.start, bounds.end);
                    gauges.push((key.clone(), sla_gauges(&t.tier, part, &current.result)));
                }
                // A period left early (the component's new level reports at another cadence)
                // is final only once it has ended.
                let closing = closing && bounds.end <= now;
                let entry = reports
                    .entry(report_name(tenant, &period))
                    .or_insert_with(|| Draft {
                        period,
                        bounds,
                        closing: true,
                        components: Vec::new(),
                        lasts: Vec::new(),
                        keys: Vec::new(),
                    });
                entry.closing &= closing;
                let entries = ComponentReport::parts(
                    &t.labels.component,
                    bounds,
                    parts.into_iter().map(|p| (p.service_level, p.result)),
                    ended,
                );
                let count = entries.len();
                entry.components.extend(entries);
                // The run state goes with the current part: a restart goes on from there.
                // An ended last part holds none: the last sample is the new level's, and read
                // back after a restart it would name the level held before as the one held now.
                entry.lasts.extend((1..count).map(|_| None));
                entry.lasts.push(if ended { None } else { h.run().last() });
                entry.keys.push(key.clone());
            }
        }
        for (key, sla) in gauges {
            if let Some(t) = state.tracked.get_mut(&*key) {
                t.series.set_sla(&sla);
            }
        }
    }
    let api: Api<SlaReport> = Api::all(ctx.client.clone());
    let mut all_written = true;
    for (name, draft) in reports {
        let Draft {
            period,
            bounds,
            closing,
            components,
            lasts,
            keys,
        } = draft;
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
        status.conditions = vec![final_condition(closing, bounds, now)];
        // The stored entries of stalled or deleted components that are not tracked any more: the
        // merge patch below replaces `components` whole, and they must not drop out (nor their
        // credit from the invoice). Read only when there are such components.
        let carried = probes
            .lock()
            .by_tenant
            .get(tenant)
            .map(|t| t.carried(bounds.start))
            .unwrap_or_default();
        let missing = carried
            .iter()
            .any(|c| !status.components.iter().any(|s| s.component == *c));
        if missing && ctx.invoicing.reports.named(&name).is_some() {
            match api.get_opt(&name).await {
                Ok(stored) => {
                    if let Some(stored) = stored.and_then(|r| r.status) {
                        carry_over(&mut status, &stored, &carried);
                    }
                }
                Err(e) => {
                    // Written without them, they would be lost: this report waits.
                    tracing::warn!(report = %name, error = %e, "SlaReport not read; retrying at the next flush");
                    probes.lock().dirty.insert(tenant.to_string());
                    all_written = false;
                    break;
                }
            }
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
        // The spec is applied once, when the report is new: then the SlaReport cache (listed,
        // and it follows this process's own writes within a moment) does not hold it.
        let created = ctx.invoicing.reports.named(&name).is_some();
        let pp = PatchParams::apply("regie").force();
        let written = async {
            if !created {
                api.patch(&name, &pp, &Patch::Apply(&object)).await?;
                ctx.metrics.write("patch", "SlaReport");
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
        if written.is_ok() {
            // A history resumed later must read what was just written, not an older copy.
            probes.lock().stored.remove(&name);
        }
        match written {
            Ok(()) if closing => {
                let mut state = probes.lock();
                for key in keys {
                    if let Some(t) = state.tracked.get_mut(&*key) {
                        t.history.finished(&t.tier, period);
                    }
                }
            }
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(report = %name, error = %e, "SlaReport not written; retrying at the next flush");
                probes.lock().dirty.insert(tenant.to_string());
                all_written = false;
                // The tenant's other reports wait too: the next would most likely fail alike.
                break;
            }
        }
    }
    if all_written {
        // Their figures up to the stall are stored now; from here on they are carried over.
        let mut state = probes.lock();
        for key in unprobed {
            if state.tracked.get(&*key).is_some_and(|t| !t.probed) {
                state.untrack(&key);
            }
        }
    }
    all_written
}

/// Where the figures of a component that is not probed any more end: one probe interval after
/// its last sample (what that sample covers), at most `now`.
fn covered_until(history: &History, tier: &Tier, now: Timestamp) -> Timestamp {
    history
        .run()
        .last()
        .and_then(|s| {
            let interval = jiff::SignedDuration::try_from(tier.probe_interval).ok()?;
            s.at.checked_add(interval).ok()
        })
        .map_or(now, |end| end.min(now))
}

/// Adds to `status`, a report about to be written, the entries `stored` holds of the stalled
/// or deleted components named in `carried` that `status` lacks, as they were last written (the
/// figures measured up to the stall or deletion), in component order; the report's `met` and
/// worst availability then count them too. Other components not in `status` stay out.
fn carry_over(status: &mut SlaReportStatus, stored: &SlaReportStatus, carried: &[String]) {
    let carried: Vec<_> = stored
        .components
        .iter()
        .filter(|c| carried.contains(&c.component))
        .filter(|c| !status.components.iter().any(|s| s.component == c.component))
        .cloned()
        .collect();
    if carried.is_empty() {
        return;
    }
    status.components.extend(carried);
    status
        .components
        .sort_by(|a, b| a.component.cmp(&b.component));
    status.met = Some(status.components.iter().all(|c| c.met));
    status.worst_availability = status
        .components
        .iter()
        .filter_map(|c| Some((c.availability.parse::<rust_decimal::Decimal>().ok()?, c)))
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, c)| c.availability.clone());
}

/// `Final=True` once the period has ended and these are its complete figures.
fn final_condition(closing: bool, bounds: Interval, now: Timestamp) -> status::Condition {
    if closing {
        status::condition(
            FINAL,
            true,
            PERIOD_CLOSED,
            format!(
                "the period ended at {}; these figures are final",
                bounds.end
            ),
            None,
            Time(bounds.end),
        )
    } else {
        status::condition(
            FINAL,
            false,
            PERIOD_OPEN,
            format!(
                "measured up to {}; the period ends at {}",
                now.min(bounds.end),
                bounds.end
            ),
            None,
            Time(bounds.start),
        )
    }
}

/// The gauges of a component of `tier` from its month-to-date `result` for the month `month`
/// (from the change, when its level changed in the month).
/// The error budget is the whole month's: a share of the month's service-window time so far
/// would make one failed probe early in the month overspend it many times over.
fn sla_gauges(
    tier: &Tier,
    month: Interval,
    result: &crate::sla::compliance::ComponentResult,
) -> SlaGauges {
    let budget_window = crate::sla::compliance::window_seconds(tier, month);
    SlaGauges {
        availability_percent: result.availability.to_f64().unwrap_or(100.0),
        target_percent: result.target.to_f64().unwrap_or(100.0),
        error_budget_remaining_ratio: result
            .error_budget_remaining(budget_window)
            .to_f64()
            .unwrap_or(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_slots_spread_tenants_evenly_and_stay_put() {
        let mut per_slot = [0u32; FLUSH_SLOTS as usize];
        for i in 0..3000 {
            per_slot[flush_slot(&format!("bench-{i:04}")) as usize] += 1;
        }
        // 50 a slot on average; none empty, none carrying twice its share.
        assert!(
            per_slot.iter().all(|&n| (1..100).contains(&n)),
            "{per_slot:?}"
        );
        assert_eq!(flush_slot("tholen"), flush_slot("tholen"));
    }

    fn saas_component(conditions: serde_json::Value) -> HostingComponent {
        serde_json::from_value(json!({
            "apiVersion": "regie.dev/v1alpha1", "kind": "HostingComponent",
            "metadata": {"name": "zaak", "namespace": "tenant-a", "generation": 3,
                         "resourceVersion": "4711"},
            "spec": {"class": "applicationHosting", "serviceLevel": "gold",
                     "saas": {"url": "https://zaak.example/health"}},
            "status": {"conditions": conditions}
        }))
        .expect("a valid component")
    }

    #[test]
    fn the_available_patch_is_conditional_on_the_version_it_was_built_from() {
        let at = |s: &str| Time(s.parse().expect("time"));
        let ready = json!({"type": "Ready", "status": "False", "reason": "Stalled",
                           "message": "m", "lastTransitionTime": "2026-05-01T00:00:00Z"});
        let c = saas_component(json!([ready,
            {"type": "Available", "status": "True", "reason": SUCCEEDED, "message": "ok",
             "lastTransitionTime": "2026-05-01T00:00:00Z"}]));
        assert_eq!(
            available_patch(&c, true, "ok", at("2026-05-02T00:00:00Z")),
            None
        );
        let patch =
            available_patch(&c, false, "HTTP 503", at("2026-05-02T00:00:00Z")).expect("a change");
        // The merge patch replaces the list: only on the version whose other entries it copies.
        assert_eq!(patch["metadata"]["resourceVersion"], "4711");
        let conditions = patch["status"]["conditions"].as_array().expect("list");
        assert_eq!(conditions.len(), 2);
        assert_eq!(
            conditions[0], ready,
            "the reconcile's condition as the cache has it"
        );
        assert_eq!(conditions[1]["type"], "Available");
        assert_eq!(conditions[1]["status"], "False");
        assert_eq!(conditions[1]["reason"], FAILED);
        assert_eq!(conditions[1]["observedGeneration"], 3);
        assert_eq!(conditions[1]["lastTransitionTime"], "2026-05-02T00:00:00Z");
        let first = available_patch(
            &saas_component(json!([])),
            true,
            "ok",
            at("2026-05-02T00:00:00Z"),
        )
        .expect("a first write");
        assert_eq!(first["status"]["conditions"][0]["reason"], SUCCEEDED);
    }

    fn gold() -> Arc<Tier> {
        Arc::new(Tier::from_level(&crate::tier::tests::gold()).expect("gold"))
    }

    /// Tracks `key` the way `sync_component` does: labels shared first.
    fn track(state: &mut State, tenant: &str, key: &str) -> (Arc<str>, TargetLabels) {
        let component = key.rsplit('/').next().unwrap_or_default();
        let mut labels = TargetLabels::new(tenant, component, "gold");
        let key = state.share_labels(key.to_string(), &mut labels);
        let tier = gold();
        state.track(&key, &labels, || Tracked {
            labels: labels.clone(),
            saas: false,
            tier,
            history: History::new(),
            resumed: false,
            probed: true,
            written: None,
            writing_available: false,
            series: Series::default(),
        });
        (key, labels)
    }

    #[test]
    fn a_tenants_components_are_found_by_key_in_order_and_forgotten_one_by_one() {
        let mut state = State::default();
        for key in ["tenant-a/zaak", "tenant-a/api", "tenant-a/gis"] {
            track(&mut state, "a", key);
        }
        track(&mut state, "b", "tenant-b/api");
        // Tracking again keeps one entry.
        track(&mut state, "a", "tenant-a/api");
        let keys = |state: &State, t: &str| -> Vec<String> {
            state.of_tenant(t).map(|(k, _)| k.to_string()).collect()
        };
        assert_eq!(
            keys(&state, "a"),
            ["tenant-a/api", "tenant-a/gis", "tenant-a/zaak"]
        );
        assert_eq!(keys(&state, "b"), ["tenant-b/api"]);
        assert!(state.untrack("tenant-a/gis"));
        assert!(!state.untrack("tenant-a/gis"));
        assert_eq!(keys(&state, "a"), ["tenant-a/api", "tenant-a/zaak"]);
        // A key that moves to another tenant leaves the first one's list.
        track(&mut state, "b", "tenant-a/zaak");
        assert_eq!(keys(&state, "a"), ["tenant-a/api"]);
        assert_eq!(keys(&state, "b"), ["tenant-a/zaak", "tenant-b/api"]);
        if let Some(a) = state.by_tenant.get_mut("a") {
            a.last_write = Some(Instant::now());
        }
        assert!(state.untrack("tenant-a/api"));
        assert!(
            !state.by_tenant.contains_key("a"),
            "a tenant without components is dropped, with the time of its last report write"
        );
    }

    #[test]
    fn a_components_key_and_labels_are_kept_once_however_many_hold_them() {
        let mut state = State::default();
        state.shared_tier(&gold());
        let (key, labels) = track(&mut state, "tholen", "tenant-tholen/gis");
        // The next reconcile builds fresh strings; they give way to the ones already kept.
        let mut again = TargetLabels::new("tholen", "gis", "gold");
        let key_again = state.share_labels("tenant-tholen/gis".into(), &mut again);
        assert!(Arc::ptr_eq(&key, &key_again));
        assert!(Arc::ptr_eq(&labels.component, &again.component));
        assert!(Arc::ptr_eq(&labels.tenant, &again.tenant));
        assert!(Arc::ptr_eq(&labels.service_level, &again.service_level));
        // A tenant's components share its name, and every component at a level the level's.
        let (_, other) = track(&mut state, "tholen", "tenant-tholen/zaak");
        assert!(Arc::ptr_eq(&labels.tenant, &other.tenant));
        assert!(Arc::ptr_eq(&labels.service_level, &other.service_level));
        let (tenant_key, _) = state.by_tenant.get_key_value("tholen").expect("tracked");
        assert!(Arc::ptr_eq(tenant_key, &labels.tenant));
        // A label that differs from the tracked one keeps its own string.
        let mut renamed = TargetLabels::new("tholen", "kaart", "gold");
        state.share_labels("tenant-tholen/gis".into(), &mut renamed);
        assert_eq!(&*renamed.component, "kaart");
        assert_eq!(namespace_of(&key), "tenant-tholen");
    }

    #[test]
    fn a_components_series_follow_its_labels_and_go_with_it() {
        let mut state = State::default();
        let (key, gold_labels) = track(&mut state, "tholen", "tenant-tholen/gis");
        let probed = ProbeResult::Probed(crate::sla::prober::ProbeOutcome {
            at: "2026-03-02T08:00:00Z".parse().expect("time"),
            success: true,
            duration: Duration::from_millis(20),
            status: Some(200),
            error: None,
        });
        let mut counted = Series::default();
        counted.observe(&probed);
        state.count(&key, &gold_labels, &probed);
        assert_eq!(state.series(), vec![(gold_labels.clone(), counted.clone())]);

        // A result of the target as it was under other labels, or of a key not tracked, counts
        // nowhere.
        let silver = TargetLabels::new("tholen", "gis", "silver");
        state.count(&key, &silver, &probed);
        state.count("tenant-tholen/zaak", &gold_labels, &probed);
        assert_eq!(state.series(), vec![(gold_labels.clone(), counted)]);

        // New labels: a new series, and the old one gone.
        if let Some(t) = state.tracked.get_mut(&*key) {
            t.relabel(silver.clone());
        }
        assert_eq!(state.series(), vec![(silver.clone(), Series::default())]);
        state.count(&key, &silver, &probed);
        assert_ne!(state.series()[0].1, Series::default());

        // Untracked, the component has no series left.
        assert!(state.untrack(&key));
        assert!(state.series().is_empty());
    }

    #[test]
    fn reports_wait_while_reconciles_are_in_progress_but_not_past_the_bound() {
        let mut state = State::default();
        state.urgent.insert("tholen".into());
        state.dirty.insert("tholen".into());
        assert!(state.due_now(false).is_empty(), "busy: held back");
        assert!(state.urgent.contains("tholen"), "and kept");
        assert!(state.deferring_since.is_some());
        assert_eq!(state.due_now(true), vec!["tholen".to_string()]);
        assert!(state.deferring_since.is_none(), "quiet ends the wait");

        // Reconciles without pause: once the bound has passed, reports are written anyway.
        state.urgent.insert("tholen".into());
        state.deferring_since = Instant::now().checked_sub(DEFER_AT_MOST);
        if state.deferring_since.is_some() {
            assert_eq!(state.due_now(false), vec!["tholen".to_string()]);
        }

        // Nothing urgent while quiet: no wait is left behind for the loop to select.
        state.deferring_since = Some(Instant::now());
        assert!(state.due_now(true).is_empty());
        assert!(state.deferring_since.is_none());
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    /// A report's entry for one component: its incidents (`None`: still going on) and last
    /// sample.
    fn entry(
        component: &str,
        incidents: &[(&str, Option<&str>)],
        last: (&str, bool),
    ) -> regie_crds::generated::ComponentCompliance {
        regie_crds::generated::ComponentCompliance {
            component: component.into(),
            incidents: incidents
                .iter()
                .map(|(start, end)| regie_crds::generated::Incident {
                    start: (*start).into(),
                    end: end.map(Into::into),
                    duration_seconds: 0,
                    in_service_hours_seconds: 0,
                    in_service_hours: false,
                })
                .collect(),
            last_sample: Some(LastSample {
                time: last.0.into(),
                success: last.1,
            }),
            ..Default::default()
        }
    }

    fn report(
        components: Vec<regie_crds::generated::ComponentCompliance>,
        final_: bool,
    ) -> SlaReportStatus {
        let bounds = Interval::new(ts("2026-02-28T23:00:00Z"), ts("2026-03-31T22:00:00Z"));
        SlaReportStatus {
            components,
            conditions: vec![final_condition(final_, bounds, bounds.end)],
            ..Default::default()
        }
    }

    /// A March report written after the component moved from bronze to silver on 16 March:
    /// the bronze part is read back whole, the silver part says where silver began, and the
    /// level of the last sample is silver's.
    #[test]
    fn stored_parts_of_a_level_change_are_read_back() {
        let march = Period::month(2026, 3).expect("month");
        let change = "2026-03-16T10:00:00Z";
        let mut bronze = entry("gis", &[("2026-03-10T17:00:00Z", Some(change))], ("", true));
        bronze.last_sample = None;
        bronze.service_level = "bronze".into();
        bronze.to = Some(change.into());
        bronze.window_seconds = 334_800;
        bronze.availability = "100".into();
        bronze.target = "99.0".into();
        bronze.met = true;
        let mut silver = entry("gis", &[], ("2026-03-17T18:00:00Z", true));
        silver.service_level = "silver".into();
        silver.from = Some(change.into());
        silver.availability = "100".into();
        silver.target = "99.5".into();
        let other = entry("website", &[], ("2026-03-17T18:00:00Z", true));
        let reports = [(march, report(vec![bronze, silver, other], false))];
        let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").expect("tz");
        let last = Sample {
            at: ts("2026-03-17T18:00:00Z"),
            success: true,
        };
        let s = stored_state("gis", &reports);
        assert_eq!(s.last, Some(last));
        assert_eq!(s.level.as_deref(), Some("silver"));
        let (since, before) = stored_parts("gis", &reports, &tz).expect("a change");
        assert_eq!(since, ts(change));
        assert_eq!(before.len(), 1);
        assert_eq!(
            (before[0].period, before[0].service_level.as_str()),
            (march, "bronze")
        );
        assert_eq!(before[0].result.window_seconds, 334_800);
        assert_eq!(before[0].result.period.end, ts(change));
        // A component that never changed level has no parts.
        assert_eq!(stored_parts("website", &reports, &tz), None);
    }

    /// A gold component (daily reports) whose operator stopped at 23:50 on 31 March and came
    /// back after midnight: the reports of 1 April do not exist, so those of March and of
    /// 31 March are read; both are left open, and the incident going on at the last sample
    /// goes on.
    #[test]
    fn a_resume_after_midnight_reads_and_closes_the_periods_before() {
        let tier = gold();
        let march = Period::Month {
            year: 2026,
            month: 3,
        };
        let day = Period::Day(jiff::civil::date(2026, 3, 31));
        let current = periods_at(&tier, ts("2026-03-31T22:05:00Z"));
        assert_eq!(still_to_read(&tier, &current, None), [march, day]);
        let last = Sample {
            at: ts("2026-03-31T21:50:00Z"),
            success: false,
        };
        assert_eq!(still_to_read(&tier, &current, Some(last)), [march, day]);
        // Nothing more to read once the last sample lies in the periods now.
        let at_last = periods_at(&tier, last.at);
        assert!(still_to_read(&tier, &at_last, Some(last)).is_empty());

        let gis = |ongoing: Option<&str>| {
            entry(
                "gis",
                &[
                    ("2026-03-31T08:00:00Z", Some("2026-03-31T08:10:00Z")),
                    ("2026-03-31T21:30:00Z", ongoing),
                ],
                ("2026-03-31T21:50:00Z", false),
            )
        };
        let other = entry("zaak", &[], ("2026-03-31T21:50:00Z", true));
        let reports = [
            (march, report(vec![gis(None), other.clone()], false)),
            (day, report(vec![gis(None), other], false)),
        ];
        let s = stored_state("gis", &reports);
        assert_eq!(s.last, Some(last));
        assert_eq!(s.ongoing, Some(ts("2026-03-31T21:30:00Z")));
        assert_eq!(s.unfinished, [march, day]);
        assert_eq!(
            calendar::merge(s.closed.clone()),
            [Interval::new(
                ts("2026-03-31T08:00:00Z"),
                ts("2026-03-31T08:10:00Z")
            )]
        );

        // Resumed and fed the first sample after midnight, both periods close with the incident
        // running to their end.
        let mut h = History::resume(&tier, s.last, s.closed, s.ongoing, &s.unfinished, None);
        let seen = h.observe(
            &tier,
            Sample {
                at: ts("2026-03-31T22:05:00Z"),
                success: true,
            },
        );
        assert!(seen.closed_period);
        assert_eq!(h.closing_periods(), &[march, day]);

        // A final report is not unfinished; an older report's open incident that a later one
        // shows ended is not the one going on.
        let stale = entry(
            "gis",
            &[("2026-03-31T20:00:00Z", None)],
            ("2026-03-31T20:30:00Z", false),
        );
        let reports = [
            (march, report(vec![gis(None)], true)),
            (day, report(vec![stale], false)),
        ];
        let s = stored_state("gis", &reports);
        assert_eq!(s.unfinished, [day]);
        assert_eq!(s.ongoing, Some(ts("2026-03-31T21:30:00Z")));
    }

    /// Bronze: office hours, 99.0.
    fn bronze() -> Arc<Tier> {
        Arc::new(
            Tier::from_level(&crate::tier::tests::level(
                "bronze",
                "  rank: 1\n  serviceHours: [\"Mon-Fri 08:00-17:00\"]\n  responseTimes: {urgent: 60m, other: 48h}\n  kpiReport: monthly\n  availability: {target: \"99.0\"}\n  probe: {interval: 60s, timeout: 10s}\n  workload: {minReplicas: 1}\n  credits: [{below: \"99.0\", percent: 5}]\n",
            ))
            .expect("bronze"),
        )
    }

    /// The figures of a period held under one level.
    fn one(
        (bounds, parts): (Interval, Vec<Part>),
    ) -> (Interval, crate::sla::compliance::ComponentResult) {
        assert_eq!(parts.len(), 1, "{parts:?}");
        let part = parts.into_iter().next().expect("a part");
        (bounds, part.result)
    }

    /// `website` of tholen was down 10 h in March (a credit) and stalls on 20 March (its URL
    /// edited to a refused address): the prober stops probing it but keeps its history, and the
    /// tenant's reports are due, so they are written once more with its figures up to the stall.
    /// Until then it stays tracked.
    #[test]
    fn a_stalled_component_stays_until_its_figures_are_written() {
        let mut state = State::default();
        let (key, _) = track(&mut state, "tholen", "tenant-tholen/website");
        let (other, _) = track(&mut state, "tholen", "tenant-tholen/zaaksysteem");
        state.urgent.clear();
        assert!(state.stall(&key, "tholen"), "it was probed");
        assert!(!state.stall(&key, "tholen"), "stalled once");
        let t = state
            .tracked
            .get(&*key)
            .expect("still tracked, with its history");
        assert!(!t.probed);
        assert!(state.urgent.contains("tholen") && state.dirty.contains("tholen"));
        assert_eq!(
            state.by_tenant["tholen"].stalled(),
            std::slice::from_ref(&key)
        );
        // Let go after the write (as `write_report` does): the tenant keeps it as stalled, so
        // its stored entries are carried over.
        state.untrack(&key);
        state.untrack(&other);
        assert_eq!(
            state.by_tenant["tholen"].stalled(),
            std::slice::from_ref(&key)
        );
        // Fixed: probed again, not stalled any more.
        state.unstall(&key, "tholen");
        assert!(state.by_tenant["tholen"].stalled().is_empty());
    }

    /// The stored entry of a stalled component that is no longer tracked stays in the report
    /// (with its credit: invoicing reads it) when the others' figures are written; one not named
    /// (deleted before the report's period began, say) does not. `met` and the worst
    /// availability count the carried entry.
    #[test]
    fn a_stalled_components_stored_entry_is_carried_over() {
        let figures = |name: &str, down: i64, availability: &str, met: bool, credit: i32| {
            regie_crds::generated::ComponentCompliance {
                component: name.into(),
                service_level: "bronze".into(),
                window_seconds: 712_800,
                down_seconds: down,
                availability: availability.into(),
                target: "99.0".into(),
                met,
                credit_percent: credit,
                ..Default::default()
            }
        };
        let website = figures("website", 36_000, "94.949", false, 5);
        let stored = report(
            vec![
                figures("oud-portaal", 0, "100", true, 0),
                website.clone(),
                figures("zaaksysteem", 0, "100", true, 0),
            ],
            false,
        );
        let mut status = report(vec![figures("zaaksysteem", 60, "99.992", true, 0)], false);
        status.met = Some(true);
        status.worst_availability = Some("99.992".into());
        carry_over(&mut status, &stored, &["website".to_string()]);
        let names: Vec<&str> = status
            .components
            .iter()
            .map(|c| c.component.as_str())
            .collect();
        assert_eq!(
            names,
            ["website", "zaaksysteem"],
            "oud-portaal is not named"
        );
        assert_eq!(status.components[0], website);
        assert_eq!(
            status.components[1].down_seconds, 60,
            "the new figures stay"
        );
        assert_eq!(status.met, Some(false));
        assert_eq!(status.worst_availability.as_deref(), Some("94.949"));
        // Nothing to carry: unchanged.
        let before = status.clone();
        carry_over(&mut status, &stored, &["zaaksysteem".to_string()]);
        assert_eq!(status, before);
    }

    /// tholen deletes `website` on 20 March: it is probed no more, written once more with its
    /// figures up to then, and afterwards carried over in the reports of periods that began
    /// before the deletion — not in those of later periods. A stalled component deleted moves
    /// from the stalled ones to the gone ones.
    #[test]
    fn a_deleted_component_is_written_once_more_then_carried_over() {
        let mut state = State::default();
        let (website, _) = track(&mut state, "tholen", "tenant-tholen/website");
        let (zaak, _) = track(&mut state, "tholen", "tenant-tholen/zaaksysteem");
        let (gis, _) = track(&mut state, "tholen", "tenant-tholen/gis");
        state.stall(&gis, "tholen");
        state.untrack(&gis);
        state.urgent.clear();
        let deleted = ts("2026-03-20T10:00:00Z");
        assert!(state.depart(&website, "tholen", deleted), "it was probed");
        assert!(!state.tracked[&*website].probed, "kept until written");
        assert!(state.urgent.contains("tholen"), "written soon");
        assert!(
            !state.depart(&gis, "tholen", deleted),
            "a stalled one was not probed"
        );
        let t = &state.by_tenant["tholen"];
        assert!(t.stalled().is_empty());
        let march = ts("2026-02-28T23:00:00Z");
        assert_eq!(t.carried(march), ["website", "gis"]);
        assert_eq!(t.carried(ts("2026-03-20T10:00:00Z")), ["website", "gis"]);
        assert!(t.carried(ts("2026-03-31T22:00:00Z")).is_empty(), "April's");
        // Written and let go: the tenant is kept for what is carried.
        state.untrack(&website);
        state.untrack(&zaak);
        assert!(state.by_tenant.contains_key("tholen"));
        // With no component followed, kept for a month and more: one added in March would write
        // March's reports; then let go.
        state.prune_gone(ts("2026-04-15T00:00:00Z"));
        assert_eq!(state.by_tenant["tholen"].gone().len(), 2);
        state.prune_gone(ts("2026-04-22T10:00:01Z"));
        assert!(!state.by_tenant.contains_key("tholen"));
    }

    /// Kept while a component followed still measures a period that began before the deletion
    /// (March, closing after the month's end), let go once all it measures began after.
    #[test]
    fn a_deleted_component_is_let_go_once_no_report_holding_it_is_written() {
        let mut state = State::default();
        let (website, _) = track(&mut state, "tholen", "tenant-tholen/website");
        let (zaak, _) = track(&mut state, "tholen", "tenant-tholen/zaaksysteem");
        state.depart(&website, "tholen", ts("2026-03-20T10:00:00Z"));
        state.untrack(&website);
        let tier = gold();
        let observe = |state: &mut State, at: &str| {
            let t = state.tracked.get_mut(&*zaak).expect("tracked");
            t.history.observe(
                &tier,
                Sample {
                    at: ts(at),
                    success: true,
                },
            );
        };
        observe(&mut state, "2026-03-31T21:59:00Z");
        state.prune_gone(ts("2026-03-31T21:59:30Z"));
        assert_eq!(state.by_tenant["tholen"].gone().len(), 1, "March is open");
        // April's first sample: March closes, its final write still to come.
        observe(&mut state, "2026-03-31T22:00:30Z");
        state.prune_gone(ts("2026-03-31T22:00:40Z"));
        assert_eq!(state.by_tenant["tholen"].gone().len(), 1, "March to close");
        let march = Period::month(2026, 3).expect("month");
        state
            .tracked
            .get_mut(&*zaak)
            .expect("tracked")
            .history
            .finished(&tier, march);
        // Gold also reports daily: 31 March's report is closing too.
        let day = Period::Day(jiff::civil::date(2026, 3, 31));
        state
            .tracked
            .get_mut(&*zaak)
            .expect("tracked")
            .history
            .finished(&tier, day);
        state.prune_gone(ts("2026-03-31T22:01:00Z"));
        assert!(state.by_tenant["tholen"].gone().is_empty());
    }

    /// After a start, the components the stored reports hold that are neither followed nor
    /// stalled were deleted while no regie ran: gone since their last sample.
    #[test]
    fn components_deleted_while_no_regie_ran_are_found_in_the_stored_reports() {
        let mut state = State::default();
        track(&mut state, "tholen", "tenant-tholen/zaaksysteem");
        let (gis, _) = track(&mut state, "tholen", "tenant-tholen/gis");
        state.stall(&gis, "tholen");
        state.untrack(&gis);
        let march = Period::month(2026, 3).expect("month");
        let stored = [(
            march,
            report(
                vec![
                    entry("gis", &[], ("2026-03-10T09:00:00Z", true)),
                    entry("website", &[], ("2026-03-20T09:59:00Z", false)),
                    entry("zaaksysteem", &[], ("2026-03-20T09:59:00Z", true)),
                ],
                false,
            ),
        )];
        let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").expect("tz");
        state.gone_from_stored("tholen", &stored, &tz);
        assert_eq!(
            state.by_tenant["tholen"].gone(),
            [Gone {
                component: "website".into(),
                since: ts("2026-03-20T09:59:00Z"),
            }]
        );
        state.gone_from_stored("tholen", &stored, &tz);
        assert_eq!(state.by_tenant["tholen"].gone().len(), 1, "once");
    }

    /// A report whose period ended is final as it stands once nothing here can write it: every
    /// component of the tenant followed (resumed, not measuring the period) or stalled. Not
    /// while a component waits for its tenant's first reconcile, is still to resume, or still
    /// measures the period.
    #[test]
    fn a_report_is_left_open_only_when_nothing_will_write_it() {
        let mut state = State::default();
        let march = Period::month(2026, 3).expect("month");
        let keys = |names: &[&str]| -> Vec<String> {
            names.iter().map(|n| format!("tenant-tholen/{n}")).collect()
        };
        assert!(
            state.left_open("tholen", march, &[]),
            "a tenant gone, or without components"
        );
        assert!(
            !state.left_open("tholen", march, &keys(&["zaak"])),
            "a component not reconciled yet"
        );
        let (zaak, _) = track(&mut state, "tholen", "tenant-tholen/zaak");
        assert!(
            !state.left_open("tholen", march, &keys(&["zaak"])),
            "to resume"
        );
        let tier = gold();
        let t = state.tracked.get_mut(&*zaak).expect("tracked");
        t.resumed = true;
        t.history.observe(
            &tier,
            Sample {
                at: ts("2026-03-31T21:00:00Z"),
                success: true,
            },
        );
        assert!(
            !state.left_open("tholen", march, &keys(&["zaak"])),
            "measures March"
        );
        let april = Period::month(2026, 4).expect("month");
        assert!(
            state.left_open("tholen", april, &keys(&["zaak"])),
            "not April"
        );
        let t = state.tracked.get_mut(&*zaak).expect("tracked");
        t.history = History::new();
        t.history.observe(
            &tier,
            Sample {
                at: ts("2026-04-01T09:00:00Z"),
                success: true,
            },
        );
        let (gis, _) = track(&mut state, "tholen", "tenant-tholen/gis");
        state.stall(&gis, "tholen");
        state.untrack(&gis);
        assert!(state.left_open("tholen", march, &keys(&["gis", "zaak"])));
    }

    /// Only the names of daily and weekly reports give an end, a day after the period's (any
    /// time zone's end is before it); a month's report, or a tenant whose name looks like a
    /// date, gives none.
    #[test]
    fn the_names_of_daily_and_weekly_reports_give_their_end() {
        assert_eq!(
            short_period_end("tholen-2026-03-31"),
            Some(ts("2026-04-02T00:00:00Z"))
        );
        assert_eq!(
            short_period_end("tholen-2026-w14"),
            Some(ts("2026-04-07T00:00:00Z")),
            "W14 runs Monday 30 March to Sunday 5 April"
        );
        for name in [
            "tholen-2026-03",
            "a-2026-03-31-2026-04",
            "x-2026-2026-03",
            "2026-03-31",
            "-2026-03-31",
            "tholen-2026-13-01",
        ] {
            assert_eq!(short_period_end(name), None, "{name}");
        }
        assert_eq!(
            short_period_end("a-2026-03-31-2026-04-01"),
            Some(ts("2026-04-03T00:00:00Z")),
            "a day's report of tenant a-2026-03-31"
        );
    }

    /// A stalled component's figures end one probe interval after its last sample: the time it
    /// is not probed is neither up nor down. Bronze, last sample (a failure) Friday 20 March
    /// 10:00 local: the open incident and the window both end at 10:01.
    #[test]
    fn a_stalled_components_figures_end_where_its_samples_do() {
        let tier = bronze();
        let mut h = History::new();
        for (at, ok) in [
            ("2026-03-20T08:00:00Z", true),  // 09:00 CET
            ("2026-03-20T09:00:00Z", false), // 10:00 CET
        ] {
            h.observe(
                &tier,
                Sample {
                    at: ts(at),
                    success: ok,
                },
            );
        }
        let now = ts("2026-03-25T12:00:00Z");
        let until = covered_until(&h, &tier, now);
        assert_eq!(until, ts("2026-03-20T09:01:00Z"));
        let march = Period::month(2026, 3).expect("month");
        let (_, stopped) = one(h.figures(&tier, march, until).expect("figures"));
        assert_eq!(stopped.down_seconds, 60);
        // Through 19 March: 14 working days of 9 h, then 20 March 08:00-10:01.
        assert_eq!(stopped.window_seconds, 14 * 9 * 3600 + 2 * 3600 + 60);
        // Not before `now`, and `now` when nothing was sampled.
        assert_eq!(
            covered_until(&h, &tier, ts("2026-03-20T09:00:30Z")),
            ts("2026-03-20T09:00:30Z")
        );
        assert_eq!(covered_until(&History::new(), &tier, now), now);
    }

    /// Monday 2 March 2026 at 08:10 in Amsterdam: ten minutes of bronze window so far, one
    /// failed 60-second probe. A budget of 1% of those 600 s (6 s) would be overspent ten
    /// times (−9) and raise RegieSlaErrorBudgetExhausted; the month's budget is 1% of March's
    /// 22 working days of 9 hours (712,800 s): 7,128 s, of which 60 s are spent.
    #[test]
    fn the_error_budget_gauge_is_a_share_of_the_whole_months_budget() {
        let tier = bronze();
        let mut h = History::new();
        for (at, success) in [
            ("2026-03-02T07:00:00Z", true),
            ("2026-03-02T07:08:00Z", false),
            ("2026-03-02T07:09:00Z", true),
        ] {
            h.observe(
                &tier,
                Sample {
                    at: ts(at),
                    success,
                },
            );
        }
        let now = ts("2026-03-02T07:10:00Z");
        let march = Period::Month {
            year: 2026,
            month: 3,
        };
        let (bounds, result) = one(h.figures(&tier, march, now).expect("figures"));
        assert_eq!((result.window_seconds, result.down_seconds), (600, 60));
        let g = sla_gauges(&tier, bounds, &result);
        let expected = 1.0 - 60.0 / 7_128.0;
        assert!(
            (g.error_budget_remaining_ratio - expected).abs() < 1e-9,
            "{g:?}"
        );
        assert!(g.error_budget_remaining_ratio > 0.99);
        // The same in a month with a clock change: October's window is counted in local hours
        // (22 working days of 9 hours), not shifted by the hour the clocks go back.
        let october = Period::Month {
            year: 2026,
            month: 10,
        };
        let mut h = History::new();
        for (at, success) in [
            ("2026-10-26T08:00:00Z", false),
            ("2026-10-26T08:01:00Z", true),
        ] {
            h.observe(
                &tier,
                Sample {
                    at: ts(at),
                    success,
                },
            );
        }
        let now = ts("2026-10-26T09:00:00Z");
        let (bounds, result) = one(h.figures(&tier, october, now).expect("figures"));
        let g = sla_gauges(&tier, bounds, &result);
        let expected = 1.0 - 60.0 / (22.0 * 9.0 * 36.0);
        assert!(
            (g.error_budget_remaining_ratio - expected).abs() < 1e-9,
            "{g:?}"
        );
    }

    /// The window gauges are read at the scrape's instant from the tier's calendar, not taken
    /// from the last report write: a silver component (12x5 monitoring, Mon-Fri 07:00-19:00)
    /// stops paging at 19:00 sharp, though its figures were last written at 18:55.
    #[test]
    fn window_gauges_are_as_of_the_scrape() {
        let silver = Arc::new(
            Tier::from_level(&crate::tier::tests::level(
                "silver",
                "  rank: 2\n  serviceHours: [\"Mon-Fri 08:00-22:00\"]\n  responseTimes: {urgent: 30m, other: 24h}\n  kpiReport: weekly\n  monitoring: 12x5\n  availability: {target: \"99.5\"}\n  probe: {interval: 30s, timeout: 5s}\n  workload: {minReplicas: 2}\n  credits: [{below: \"99.5\", percent: 5}]\n",
            ))
            .expect("silver"),
        );
        let now = Arc::new(Mutex::new(ts("2026-03-03T17:55:00Z"))); // Tuesday 18:55, CET
        let mut state = State::default();
        let clock = now.clone();
        state.clock = Some(Arc::new(move || *clock.lock().expect("clock")));
        let mut labels = TargetLabels::new("tholen", "gis", "silver");
        let key = state.share_labels("tenant-tholen/gis".into(), &mut labels);
        state.track(&key, &labels, || Tracked {
            labels: labels.clone(),
            saas: false,
            tier: silver.clone(),
            history: History::new(),
            resumed: false,
            probed: true,
            written: None,
            writing_available: false,
            series: Series::default(),
        });
        let windows = |state: &State| {
            let text: String = crate::sla::metrics::pages(state.series()).collect();
            let value = |name: &str| {
                text.lines()
                    .find(|l| l.starts_with(&format!("{name}{{")))
                    .and_then(|l| l.rsplit(' ').next())
                    .map(str::to_string)
            };
            (
                value(crate::sla::SLA_IN_SERVICE_WINDOW),
                value(crate::sla::SLA_IN_MONITORING_WINDOW),
            )
        };
        let one = Some("1".to_string());
        let zero = Some("0".to_string());
        assert_eq!(windows(&state), (one.clone(), one.clone()));
        // 19:00: the monitoring window closes, service hours go on; nothing was written since.
        *now.lock().expect("clock") = ts("2026-03-03T18:00:00Z");
        assert_eq!(windows(&state), (one.clone(), zero.clone()));
        // 22:00: both closed.
        *now.lock().expect("clock") = ts("2026-03-03T21:00:00Z");
        assert_eq!(windows(&state), (zero.clone(), zero.clone()));
        // The record keeps no window of its own.
        let kept = state.tracked.get(&*key).map(|t| t.series.clone());
        assert_eq!(kept, Some(Series::default()));
        // Without a clock (the consumer not started) no window gauge is written.
        state.clock = None;
        assert_eq!(windows(&state), (None, None));
    }
}

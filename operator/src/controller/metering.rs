//! Metering inside `regie run`: the billable state of each tenant — its tier, accounts per
//! profile and components — recorded in the `Usage` object of the current month
//! (`<tenant>-<yyyy-mm>`), with the same ledger code `regie bill` reads.
//!
//! The tenant reconcile records before it applies a change, so the ledger is written durably
//! before the change is reported done; recording the same state again changes nothing, so a
//! crash or restart neither loses nor duplicates a segment. A ledger is written only over the
//! version it was read at, so a correction someone makes meanwhile is read, not overwritten.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use regie_crds::generated::{Segment, SegmentComponent, UsageSpec, UsageStatus};
use regie_crds::{Tenant, Usage};
use serde_json::json;

use super::Context;
use crate::billing::ledger::{self, BillableState};
use crate::billing::period::Month;
use crate::billing::proration::Calendar;

/// The billable state of a tenant now: its level, billed accounts per profile (after each
/// package's basis, from [`super::accounts::package_accounts`], as the package status will show
/// them) and the measured counts, and its components.
pub fn billable_state(
    tier: &str,
    packages: &[(String, super::accounts::PackageAccounts)],
    components: Vec<SegmentComponent>,
) -> BillableState {
    let mut accounts: BTreeMap<String, i64> = BTreeMap::new();
    let mut measured: BTreeMap<String, i64> = BTreeMap::new();
    for (profile, a) in packages {
        *accounts.entry(profile.clone()).or_insert(0) += a.billed.max(0);
        if let Some(m) = a.measured {
            *measured.entry(profile.clone()).or_insert(0) += m;
        }
    }
    let mut components = components;
    components.sort();
    BillableState {
        service_level: tier.into(),
        accounts,
        measured_accounts: measured,
        components,
    }
}

/// The billable state this process last found durable in each tenant's ledger, by tenant: the
/// month and a fingerprint of the state. A reconcile of a tenant whose state has not changed
/// then costs no read of its Usage — without it, every reconcile (thousands after a restart,
/// several per tenant while a change converges) would GET the ledger. regie is the ledger's
/// only writer, and a new process (or a new leader) starts empty, so a hit is never stale.
#[derive(Debug, Default)]
pub struct Recorded(Mutex<HashMap<String, (Month, u64)>>);

impl Recorded {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Month, u64)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_current(&self, tenant: &str, month: Month, fingerprint: u64) -> bool {
        self.lock().get(tenant) == Some(&(month, fingerprint))
    }

    fn remember(&self, tenant: &str, month: Month, fingerprint: u64) {
        self.lock().insert(tenant.to_string(), (month, fingerprint));
    }

    fn forget(&self, tenant: &str) {
        self.lock().remove(tenant);
    }
}

fn fingerprint(state: &BillableState, stalled: &BTreeSet<String>) -> u64 {
    let mut hasher = DefaultHasher::new();
    stalled.hash(&mut hasher);
    state.service_level.hash(&mut hasher);
    state.accounts.hash(&mut hasher);
    state.measured_accounts.hash(&mut hasher);
    for c in &state.components {
        c.name.hash(&mut hasher);
        c.service_level.hash(&mut hasher);
        format!("{:?}", c.class).hash(&mut hasher);
    }
    hasher.finish()
}

/// The name of the tenant's Usage for `month`: `<tenant>-YYYY-MM`.
pub(super) fn usage_name(tenant: &str, month: Month) -> String {
    format!("{tenant}-{month}")
}

async fn write(
    ctx: &Context,
    api: &Api<Usage>,
    tenant: &str,
    month: Month,
    existing: Option<&Usage>,
    segments: Vec<Segment>,
    closed: bool,
) -> Result<Outcome, kube::Error> {
    let name = usage_name(tenant, month);
    if existing.is_none() {
        let usage = Usage::new(
            &name,
            UsageSpec {
                tenant: tenant.into(),
                period: month.to_string(),
            },
        );
        match api.create(&PostParams::default(), &usage).await {
            Ok(_) => ctx.metrics.write("create", "Usage"),
            // Created since it was found missing: its segments, not these, are the record.
            Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Outcome::Raced),
            Err(e) => return Err(e),
        }
    }
    let status = UsageStatus {
        segment_count: Some(segments.len() as i32),
        segments,
        closed,
        ..UsageStatus::default()
    };
    let mut body =
        json!({"apiVersion": Usage::api_version(&()), "kind": "Usage", "status": status});
    // The segments were computed from the ledger as read: written only over that version, so
    // that a change made since (someone correcting the ledger) is read again, not overwritten.
    if let Some(version) = existing.and_then(|u| u.metadata.resource_version.as_deref()) {
        body["metadata"] = json!({"resourceVersion": version});
    }
    match api
        .patch_status(
            &name,
            &PatchParams::apply(super::children::FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => ctx.metrics.write("status", "Usage"),
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Outcome::Raced),
        Err(e) => return Err(e),
    }
    Ok(Outcome::Done)
}

/// How often a ledger that changed while it was being recorded is read and recorded again.
const RACES: usize = 3;

/// Records `state` for `tenant` at the context's now, its `stalled` components as the ledger
/// last recorded them (see [`ledger::with_stalled_as_recorded`]). Writes only when the ledger
/// changed.
pub async fn record(
    ctx: &Context,
    tenant: &Tenant,
    state: &BillableState,
    stalled: &BTreeSet<String>,
) -> Result<(), kube::Error> {
    let Ok(cal) = Calendar::amsterdam() else {
        tracing::error!("the Europe/Amsterdam time zone is unavailable; usage not recorded");
        return Ok(());
    };
    let name = tenant.name_any();
    let now = ctx.now();
    let month = cal.month_of(now);
    let fingerprint = fingerprint(state, stalled);
    if ctx.metered.is_current(&name, month, fingerprint) {
        return Ok(());
    }
    let ledger = Ledger::new(ctx, &cal, &name, month);
    // A new tenant's ledgers do not exist yet: the Usage cache, once listed, says so without
    // two reads of the API server per tenant (a cold start of thousands of tenants is bound by
    // the API server). Only absence is taken from the cache, never a ledger's content, which may
    // lag this process's own last write; if the ledger was created meanwhile, it is read and
    // recorded again.
    let mut outcome = ledger.record(state, stalled, now, true).await?;
    for _ in 0..RACES {
        if outcome != Outcome::Raced {
            break;
        }
        outcome = ledger.record(state, stalled, now, false).await?;
    }
    if outcome == Outcome::Raced {
        // Not remembered, and the reconcile fails (and is retried): the change must not be
        // reported done before its ledger is written.
        return Err(raced_every_time(&name, month, "record"));
    }
    if let Outcome::Unreadable(message) = outcome {
        // Not remembered: the tenant's next reconcile (a change, or the resync) reads the ledger
        // again, and records the state once the ledger is repaired.
        tracing::error!(tenant = %name, error = %message, "usage ledger unreadable; not recording");
        ctx.warn(tenant, "UsageLedgerUnreadable", "Meter", &message)
            .await;
        return Ok(());
    }
    ctx.metered.remember(&name, month, fingerprint);
    Ok(())
}

/// An error that fails the caller's work for now, so that it is retried: `reason` and `code`
/// as the API server would give them.
fn retried(message: &str, reason: &str, code: u16) -> kube::Error {
    kube::Error::Api(
        kube::core::Status::failure(message, reason)
            .with_code(code)
            .boxed(),
    )
}

/// The error of a ledger write that raced at every one of its attempts: the caller's work is
/// not done, and is retried.
fn raced_every_time(tenant: &str, month: Month, what: &str) -> kube::Error {
    let message = format!(
        "Usage {}: changed by someone else at every one of {} attempts to {what}",
        usage_name(tenant, month),
        RACES + 1
    );
    retried(&message, "Conflict", 409)
}

/// The error of an offboarding that cannot yet look for the ledgers before the month's: the
/// tenant's cleanup fails, and is retried.
fn not_listed(tenant: &str, month: Month) -> kube::Error {
    let message = format!(
        "Usage {}: the earlier ledgers to open it from cannot be looked for until the Usage \
         cache is listed",
        usage_name(tenant, month)
    );
    retried(&message, "ServiceUnavailable", 503)
}

/// How far back an earlier ledger is looked for when a month opens (regie down that long).
const CARRY_MONTHS: usize = 12;
/// How long opening a month waits for the Usage cache's first list to look further back.
const LISTED_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The latest month before `before` (not itself), at most `months` back, for which `exists`.
fn latest_before(before: Month, months: usize, exists: impl Fn(Month) -> bool) -> Option<Month> {
    std::iter::successors(Some(before.prev()), |m| Some(m.prev()))
        .take(months)
        .find(|m| exists(*m))
}

/// A month opened from an earlier month's ledger.
#[derive(Debug, PartialEq)]
struct Opening {
    /// The earlier ledger, closed at the end of its own month (never cut into later months).
    earlier: Vec<Segment>,
    /// Whether closing it changed it (it was still open).
    closed: bool,
    /// The new month's ledger: the state open at the earlier month's end, from the new month's
    /// first instant.
    segments: Vec<Segment>,
}

/// `month` opened from the ledger `prev` of the earlier month `at` (last month's, or an older
/// one after regie was down): None when nothing carries (`prev` was closed before its month's
/// end: the tenant had left) or a ledger does not read.
fn opened(prev: &[Segment], at: Month, month: Month, cal: &Calendar) -> Option<Opening> {
    let end = at.next().start(cal.tz()).ok()?;
    let start = month.start(cal.tz()).ok()?;
    let open = ledger::carried_state(prev, end)?;
    let mut earlier = prev.to_vec();
    let closed = ledger::close(&mut earlier, end, cal).unwrap_or(false);
    let mut segments = Vec::new();
    ledger::record(&mut segments, &open, start, cal).ok()?;
    Some(Opening {
        earlier,
        closed,
        segments,
    })
}

/// Whether `u` is a ledger whose segments were never written: created (the first of metering's
/// two writes) and nothing recorded in it — no status, or one without segments that is not
/// closed (delivery marks a finished month's Usage it has nothing to send for). A ledger
/// offboarding closed empty is written: the tenant left at the month's first instant.
fn unwritten(u: &Usage) -> bool {
    u.status
        .as_ref()
        .is_none_or(|s| s.segments.is_empty() && !s.closed)
}

/// Whether a ledger write landed.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    /// The ledger was to be created, but exists, or it changed since it was read: nothing was
    /// written, and it is read again.
    Raced,
    /// The stored ledger cannot be read (someone edited it): nothing was written.
    Unreadable(String),
}

/// One tenant's ledger of one month.
struct Ledger<'a> {
    ctx: &'a Context,
    api: Api<Usage>,
    cal: &'a Calendar,
    tenant: &'a str,
    month: Month,
}

impl<'a> Ledger<'a> {
    fn new(ctx: &'a Context, cal: &'a Calendar, tenant: &'a str, month: Month) -> Self {
        Ledger {
            ctx,
            api: Api::all(ctx.client.clone()),
            cal,
            tenant,
            month,
        }
    }
}

impl Ledger<'_> {
    /// The Usage of `month`: None when it does not exist. With `cached_absence`, a Usage the
    /// listed cache does not hold is taken to be absent without asking the API server.
    async fn read(&self, month: Month, cached_absence: bool) -> Result<Option<Usage>, kube::Error> {
        let name = usage_name(self.tenant, month);
        if cached_absence && self.ctx.invoicing.usages.lacks(&name) {
            return Ok(None);
        }
        self.api.get_opt(&name).await
    }

    /// The latest written ledger of the tenant older than last month's, at most
    /// [`CARRY_MONTHS`] back: found through the Usage cache (waited for, briefly, if not yet
    /// listed), so a tenant that has none — every new one — costs no reads of the API server;
    /// the one found is read fresh. One whose segments were never written (regie stopped
    /// between its two writes) is passed over, as last month's is by [`Self::read_earlier`].
    async fn read_older(&self, month: Month) -> Result<Option<(Month, Usage)>, kube::Error> {
        let usages = &self.ctx.invoicing.usages;
        let listed = tokio::time::timeout(LISTED_WITHIN, usages.wait_listed()).await;
        if listed.is_err() {
            return Ok(None);
        }
        let mut before = month.prev();
        let oldest = (0..CARRY_MONTHS).fold(month.prev(), |m, _| m.prev());
        while let Some(m) = latest_before(before, CARRY_MONTHS, |m| {
            m >= oldest && !usages.lacks(&usage_name(self.tenant, m))
        }) {
            match self.read(m, false).await? {
                Some(u) if !unwritten(&u) => return Ok(Some((m, u))),
                _ => before = m,
            }
        }
        Ok(None)
    }

    /// The latest written ledger before `month`: last month's, or an older one (see
    /// [`Self::read_older`]). Last month's, created and its segments never written, is passed
    /// over: it holds no state to carry.
    async fn read_earlier(
        &self,
        month: Month,
        cached_absence: bool,
    ) -> Result<Option<(Month, Usage)>, kube::Error> {
        match self.read(month.prev(), cached_absence).await? {
            Some(prev) if !unwritten(&prev) => Ok(Some((month.prev(), prev))),
            _ => self.read_older(month).await,
        }
    }

    async fn record(
        &self,
        state: &BillableState,
        stalled: &BTreeSet<String>,
        now: jiff::Timestamp,
        cached_absence: bool,
    ) -> Result<Outcome, kube::Error> {
        let (ctx, api, cal, month) = (self.ctx, &self.api, self.cal, self.month);
        let current = self.read(month, cached_absence).await?;
        let mut segments = current
            .as_ref()
            .and_then(|u| u.status.clone())
            .map(|s| s.segments)
            .unwrap_or_default();
        // Whether the segments now hold a state carried over that the stored ledger lacks.
        let mut carried = false;
        // A ledger that offboarding closed with nothing in it (a deletion at the month's first
        // instant) is written, and carries nothing over: the tenant had left, and is back from
        // now.
        if current.as_ref().is_none_or(unwritten) {
            // A new month: the state that was open at its start carries over from the latest
            // earlier ledger — last month's, or, when regie was down for a whole month or more,
            // an older one (else this month's first days went unbilled and that ledger stayed
            // open for good). That ledger is closed at the end of its own month; the months
            // between have no ledger and are billed from the files, as any such month is.
            // Idempotent: if the earlier ledger was closed at its month's end but this month's
            // write did not land, the state still carries (see `ledger::carried_state`).
            let earlier = self.read_earlier(month, cached_absence).await?;
            if let Some((at, prev)) = earlier {
                let prev_segments = prev.status.clone().map(|s| s.segments).unwrap_or_default();
                if let Some(opening) = opened(&prev_segments, at, month, cal) {
                    if opening.closed
                        && write(
                            ctx,
                            api,
                            self.tenant,
                            at,
                            Some(&prev),
                            opening.earlier,
                            true,
                        )
                        .await?
                            == Outcome::Raced
                    {
                        return Ok(Outcome::Raced);
                    }
                    segments = opening.segments;
                    carried = true;
                }
            }
        }
        let state = ledger::with_stalled_as_recorded(state, &segments, stalled);
        let changed = match ledger::record(&mut segments, &state, now, cal) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Outcome::Unreadable(format!(
                    "Usage {}: its status.segments cannot be read ({e}); the tenant's usage is \
                     not recorded in it until it is repaired or removed",
                    usage_name(self.tenant, month)
                )));
            }
        };
        // Carried over, the state is written even where recording it changed nothing: a
        // Usage whose create landed and whose ledger did not (an error between the two writes)
        // was otherwise left empty, its month unbilled, until the tenant's next change.
        if changed || carried || current.is_none() {
            return write(
                ctx,
                api,
                self.tenant,
                month,
                current.as_ref(),
                segments,
                false,
            )
            .await;
        }
        Ok(Outcome::Done)
    }
}

/// When an offboarded tenant's usage ends, seen at `now`: when it was deleted (`now` if that is
/// later, a clock behind the API server's).
fn usage_end(tenant: &Tenant, now: Timestamp) -> Timestamp {
    tenant
        .meta()
        .deletion_timestamp
        .as_ref()
        .map_or(now, |deleted| deleted.0.min(now))
}

/// Offboarding: the tenant's usage ends when it was deleted (as invoicing bills it); the ledger
/// is closed before its namespace goes. At the deletion, not at this pass: a cleanup that runs
/// past a month's end (a namespace slow to terminate) would otherwise look for a ledger of the
/// next month, find none, and leave the month the tenant left in open for good. A ledger of a
/// later month, up to this pass's, is ended at the deletion too: a reconcile that read the tenant
/// before it was deleted and recorded past the month's end opened it.
pub async fn close(ctx: &Context, tenant: &Tenant) -> Result<(), kube::Error> {
    let Ok(cal) = Calendar::amsterdam() else {
        return Ok(());
    };
    let name = tenant.name_any();
    ctx.metered.forget(&name);
    let now = ctx.now();
    let end = usage_end(tenant, now);
    let mut month = cal.month_of(end);
    let deleted_in = month;
    loop {
        let ledger = Ledger::new(ctx, &cal, &name, month);
        // A write that raced (the delivery marking the ledger sent, say) is read and made
        // again: offboarding goes on only once the ledger is closed, or the tenant's cleanup
        // fails and is retried (a ledger left open would bill the tenant on after it left).
        let mut closed = false;
        for _ in 0..=RACES {
            let outcome = if month == deleted_in {
                ledger.close(end).await?
            } else {
                ledger.end_later(end).await?
            };
            match outcome {
                Outcome::Done => {
                    closed = true;
                    break;
                }
                Outcome::Raced => {}
                Outcome::Unreadable(message) => {
                    tracing::error!(tenant = %name, error = %message, "usage ledger unreadable; not closed");
                    ctx.warn(tenant, "UsageLedgerUnreadable", "Meter", &message)
                        .await;
                    closed = true;
                    break;
                }
            }
        }
        if !closed {
            return Err(raced_every_time(&name, month, "close"));
        }
        if month >= cal.month_of(now) {
            return Ok(());
        }
        month = month.next();
    }
}

impl Ledger<'_> {
    /// One attempt to close the ledger of the deletion's month at `end`.
    async fn close(&self, end: Timestamp) -> Result<Outcome, kube::Error> {
        let (api, cal, name, month) = (&self.api, self.cal, self.tenant, self.month);
        let mut current = api.get_opt(&usage_name(name, month)).await?;
        if current.as_ref().is_none_or(unwritten) {
            // Deleted before its first reconcile of the month (minutes after midnight, or while
            // no regie ran), or before its ledger's segments were written: the month is opened
            // from the latest earlier ledger as that reconcile would have, so that the earlier
            // one is closed at its own month's end — left open, a tenant made again under the
            // name would carry its state over from the month's start — and this month's holds
            // the time up to the deletion.
            let earlier = self.read_earlier(month, false).await?;
            if earlier.is_none() && !self.ctx.invoicing.usages.is_listed() {
                // The older ledgers could not be looked for (the Usage cache not listed yet,
                // at a start): closed empty, the month would read as left at its first instant
                // and bill nothing, for good. The tenant's cleanup is tried again.
                return Err(not_listed(name, month));
            }
            let carried = earlier.and_then(|(at, prev)| {
                let month_end = at.next().start(cal.tz()).ok()?;
                let segments = prev.status.map(|s| s.segments).unwrap_or_default();
                ledger::carried_state(&segments, month_end)
            });
            if let Some(state) = carried {
                let opened = self.record(&state, &BTreeSet::new(), end, false).await?;
                if opened != Outcome::Done {
                    return Ok(opened);
                }
                current = api.get_opt(&usage_name(name, month)).await?;
            }
        }
        match current {
            Some(current) => self.end(current, end).await,
            None => Ok(Outcome::Done),
        }
    }

    /// One attempt to end, at `end`, the ledger of a month after the deletion's, if it has one.
    async fn end_later(&self, end: Timestamp) -> Result<Outcome, kube::Error> {
        match self.read(self.month, false).await? {
            Some(current) => self.end(current, end).await,
            None => Ok(Outcome::Done),
        }
    }

    /// Ends the ledger `current` at `end` and marks it closed; writes only what changes.
    async fn end(&self, current: Usage, end: Timestamp) -> Result<Outcome, kube::Error> {
        let (api, cal, name, month) = (&self.api, self.cal, self.tenant, self.month);
        let status = current.status.clone().unwrap_or_default();
        let mut segments = status.segments;
        let changed = match ledger::end_at(&mut segments, end, cal) {
            Ok(changed) => changed,
            Err(e) => {
                // Segments that do not read are kept as they are, and the ledger marked closed
                // all the same: invoicing reports them, and nothing carries on from a closed
                // ledger.
                tracing::error!(tenant = %name, error = %e, "usage ledger unreadable; marked closed as it is");
                false
            }
        };
        if status.closed && !changed {
            return Ok(Outcome::Done);
        }
        write(self.ctx, api, name, month, Some(&current), segments, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offboarded_tenants_usage_ends_when_it_was_deleted() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let mut tenant = Tenant::new(
            "tholen",
            serde_json::from_value(serde_json::json!({
                "displayName": "Tholen", "serviceLevel": "silver",
                "membership": {"joined": "2026-01-01"}
            }))
            .unwrap(),
        );
        let april = at("2026-03-31T22:00:05Z");
        assert_eq!(usage_end(&tenant, april), april, "not deleted: now");
        tenant.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at("2026-03-31T21:59:40Z")),
        );
        // Deleted at 23:59:40 on 31 March, cleaned up after midnight: March's ledger is closed.
        assert_eq!(usage_end(&tenant, april), at("2026-03-31T21:59:40Z"));
        let cal = Calendar::amsterdam().unwrap();
        assert_eq!(cal.month_of(usage_end(&tenant, april)), Month::new(2026, 3));
    }

    fn segment(from: &str, to: Option<&str>) -> Segment {
        Segment {
            from: from.into(),
            to: to.map(Into::into),
            service_level: "silver".into(),
            accounts: BTreeMap::from([("standard".to_string(), 120)]),
            measured_accounts: BTreeMap::new(),
            components: vec![],
        }
    }

    /// regie down from 28 January to 3 March 2026: February has no ledger. Opening March finds
    /// January's (it found only February's before, so March began on 3 March and 1 to 3 March
    /// went unbilled, and January stayed open), closes it at the end of January — not cut into
    /// February and March — and carries its state into March from 1 March 00:00.
    #[test]
    fn a_month_opens_from_the_latest_earlier_ledger() {
        let cal = Calendar::amsterdam().unwrap();
        let (jan, feb, mar) = (
            Month::new(2026, 1),
            Month::new(2026, 2),
            Month::new(2026, 3),
        );
        assert_eq!(latest_before(mar, CARRY_MONTHS, |m| m == jan), Some(jan));
        assert_eq!(
            latest_before(mar, CARRY_MONTHS, |m| m == feb || m == jan),
            Some(feb)
        );
        assert_eq!(
            latest_before(mar, CARRY_MONTHS, |m| m == mar),
            None,
            "not itself"
        );
        assert_eq!(latest_before(mar, 1, |m| m == jan), None, "bounded");
        let january = vec![
            segment(
                "2026-01-01T00:00:00+01:00",
                Some("2026-01-28T10:00:00+01:00"),
            ),
            segment("2026-01-28T10:00:00+01:00", None),
        ];
        let opening = opened(&january, jan, mar, &cal).unwrap();
        assert!(opening.closed);
        assert_eq!(
            opening.earlier[1],
            segment(
                "2026-01-28T10:00:00+01:00",
                Some("2026-02-01T00:00:00+01:00")
            )
        );
        assert_eq!(opening.earlier.len(), 2, "{:#?}", opening.earlier);
        assert_eq!(
            opening.segments,
            [segment("2026-03-01T00:00:00+01:00", None)]
        );
        // Again after January's close landed but March's write did not: the same March.
        let again = opened(&opening.earlier, jan, mar, &cal).unwrap();
        assert!(!again.closed);
        assert_eq!(again.segments, opening.segments);
        // A ledger closed before its month's end (the tenant left) carries nothing.
        let left = vec![segment(
            "2026-01-01T00:00:00+01:00",
            Some("2026-01-28T10:00:00+01:00"),
        )];
        assert_eq!(opened(&left, jan, mar, &cal), None);
    }
}

//! Measured accounts inside `regie run`: for every WorkplacePackage with `spec.accountSource`,
//! fetch the real number of accounts on the source's interval (with its timeout), keep the
//! latest observation in memory, and wake the package's tenant when it changed. The tenant
//! reconcile is the only writer of the package status: it records the billed count in the
//! `Usage` ledger first and shows it in status after, so the ledger is durable before the change
//! is reported done ([`package_accounts`] is what both use).
//!
//! The URL is written by a participant and is treated as hostile: the same target policy as the
//! SLA prober (no link-local or cloud-metadata addresses ever, loopback and private ranges by
//! policy, every resolved address checked before connecting, no proxy, no redirects), a bounded
//! answer, and a timeout on every fetch. Failures become the `AccountsMeasured` condition
//! (False, with a reason and message) and the last good count stays billed; nothing retries
//! faster than the source's interval, and nothing is written when nothing changed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use regie_crds::duration::parse_duration;
use regie_crds::tenancy::{
    AccountBasis, AccountSource, WorkplacePackageSpec, WorkplacePackageStatus,
};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use super::Context;
use crate::billing::accounts::{DEFAULT_POINTER, billed_accounts, fetch_measured};
use crate::sla::target::{GuardedResolver, Lookup, ProbePolicy, SystemLookup, parse_target_url};

/// The condition a package with an account source carries.
pub const CONDITION: &str = "AccountsMeasured";
/// How often a source is read unless it says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// How long one read may take unless the source says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// A count is taken up at most once per this time per package. Each change is a segment of the
/// month's `Usage` (and writes of it and of the package status): a source that flaps between
/// two counts at every read, read every second, would otherwise grow the month's Usage past
/// what the API server stores in one object within days, and stop metering the tenant. With
/// the hold a package adds at most 744 segments to a month; a change after a quiet hour is
/// taken at once, and a count read within the hour is taken at the first read after it.
pub const MEASURED_HOLD: Duration = Duration::from_secs(3600);

/// Why the latest read gave no count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

/// What the monitor knows about one package's source.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The source read; a package whose source changed is read again at once, and an
    /// observation of another source is never shown.
    pub source: AccountSource,
    /// The latest count read; kept through later failures.
    pub count: Option<i64>,
    /// When `count` was first read (it moves only when the count changes).
    pub at: Option<jiff::Timestamp>,
    /// Set while the latest read failed.
    pub problem: Option<Problem>,
}

/// The observations of every package, by (namespace, name); shared by the monitor task and the
/// tenant reconciles.
#[derive(Clone, Default)]
pub struct Measurements(Arc<Mutex<HashMap<(String, String), Observation>>>);

impl Measurements {
    pub fn get(&self, namespace: &str, name: &str) -> Option<Observation> {
        self.lock()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Observation>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How the `AccountsMeasured` condition should end up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionUpdate {
    /// No source: the package carries no such condition.
    Remove,
    /// Nothing read since this process started: keep what status says.
    Keep,
    Set {
        ok: bool,
        reason: &'static str,
        message: String,
    },
}

/// What a package's status shows about its accounts, and what the ledger bills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageAccounts {
    pub measured: Option<i64>,
    pub measured_at: Option<String>,
    pub billed: i64,
    pub condition: ConditionUpdate,
}

/// The source's URL without user info, query or fragment: what messages may show.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "the account source URL".into(),
    }
}

fn basis_name(b: AccountBasis) -> &'static str {
    match b {
        AccountBasis::Declared => "declared",
        AccountBasis::Measured => "measured",
        AccountBasis::Max => "max",
    }
}

/// The accounts of a package from its spec, its current status (what survived a restart) and
/// the monitor's observation. Pure: the tenant reconcile and its metering call it alike.
pub fn package_accounts(
    spec: &WorkplacePackageSpec,
    old: &WorkplacePackageStatus,
    observed: Option<&Observation>,
) -> PackageAccounts {
    let declared = spec.accounts.max(0);
    let Some(src) = &spec.account_source else {
        return PackageAccounts {
            measured: None,
            measured_at: None,
            billed: declared,
            condition: ConditionUpdate::Remove,
        };
    };
    let observed = observed.filter(|o| o.source == *src);
    let (measured, measured_at) = match observed.and_then(|o| o.count.map(|c| (c, o.at))) {
        // The same count as status shows: it was first read when status says.
        Some((c, _)) if Some(c) == old.measured_accounts => (Some(c), old.measured_at.clone()),
        Some((c, at)) => (Some(c), at.map(|t| t.to_string())),
        None => (old.measured_accounts, old.measured_at.clone()),
    };
    let billed = billed_accounts(declared, measured, src.basis);
    let condition = match observed {
        None => ConditionUpdate::Keep,
        Some(o) => match &o.problem {
            Some(p) => ConditionUpdate::Set {
                ok: false,
                reason: p.reason,
                message: match measured {
                    Some(_) => format!("{}; billing {billed} (the last count read)", p.message),
                    None => format!("{}; billing the {billed} declared", p.message),
                },
            },
            None => ConditionUpdate::Set {
                ok: true,
                reason: "Measured",
                message: format!(
                    "{} accounts read from {}; billing {billed} (basis {})",
                    measured.unwrap_or(0),
                    redacted(&src.url),
                    basis_name(src.basis)
                ),
            },
        },
    };
    PackageAccounts {
        measured,
        measured_at,
        billed,
        condition,
    }
}

/// The accounts of a package as the controller knows them now.
pub fn of_package(ctx: &Context, p: &regie_crds::WorkplacePackage) -> PackageAccounts {
    let observed = ctx
        .measurements
        .get(&p.namespace().unwrap_or_default(), &p.name_any());
    package_accounts(
        &p.spec,
        &p.status.clone().unwrap_or_default(),
        observed.as_ref(),
    )
}

/// One Warning event when a package's source starts failing or fails differently.
pub async fn warn_on_failure(
    ctx: &Context,
    p: &regie_crds::WorkplacePackage,
    old: &[regie_crds::status::Condition],
    new: &[regie_crds::status::Condition],
) {
    use regie_crds::status::find;
    let failing = |c: &[regie_crds::status::Condition]| {
        find(c, CONDITION)
            .filter(|c| c.status == "False")
            .map(|c| (c.reason.to_string(), c.message.clone()))
    };
    let Some((reason, message)) = failing(new) else {
        return;
    };
    if failing(old).is_some_and(|(r, _)| r == reason) {
        return;
    }
    ctx.warn(p, &reason, "MeasureAccounts", &message).await;
}

/// The interval and timeout a source asks for (validation has already checked them).
pub fn schedule_of(src: &AccountSource) -> (Duration, Duration) {
    let read = |d: &Option<String>, default: Duration| {
        d.as_deref()
            .and_then(|s| parse_duration(s).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(default)
    };
    let interval = read(&src.interval, DEFAULT_INTERVAL);
    // A read never outlasts the interval, so at most one read per source is in flight.
    let timeout = read(&src.timeout, DEFAULT_TIMEOUT).min(interval);
    (interval, timeout)
}

/// The observation after a read: the count moves only on success, and `at` only with it; a
/// count taken less than `hold` ago ([`MEASURED_HOLD`] by default) stays until a read after it.
pub fn next_observation(
    prev: Option<&Observation>,
    source: &AccountSource,
    result: Result<i64, Problem>,
    now: jiff::Timestamp,
    hold: Duration,
) -> Observation {
    let prev = prev.filter(|o| o.source == *source);
    let (count, at) = (prev.and_then(|o| o.count), prev.and_then(|o| o.at));
    let held = count.is_some()
        && at.is_some_and(|at| {
            jiff::SignedDuration::try_from(hold).is_ok_and(|h| now.duration_since(at) < h)
        });
    match result {
        Ok(n) if Some(n) == count || held => Observation {
            source: source.clone(),
            count,
            at,
            problem: None,
        },
        Ok(n) => Observation {
            source: source.clone(),
            count: Some(n),
            at: Some(now),
            problem: None,
        },
        Err(p) => Observation {
            source: source.clone(),
            count,
            at,
            problem: Some(p),
        },
    }
}

/// The HTTP client for account sources: the prober's target policy on every address.
fn client(policy: &ProbePolicy) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("regie-accounts/", env!("CARGO_PKG_VERSION")))
        // A proxy would connect on our behalf to addresses we never checked.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .dns_resolver(Arc::new(GuardedResolver::new(
            Arc::new(policy.clone()),
            Arc::new(SystemLookup),
        )))
        .build()
}

/// One read of a source, its failure classified for the condition.
async fn read(
    client: &reqwest::Client,
    policy: &ProbePolicy,
    src: &AccountSource,
    timeout: Duration,
) -> Result<i64, Problem> {
    let shown = redacted(&src.url);
    let url = parse_target_url(&src.url).and_then(|u| policy.check_url(&u).map(|()| u));
    if let Err(r) = url {
        return Err(Problem {
            reason: "TargetRefused",
            message: format!("{shown} is refused: {}", r.reason),
        });
    }
    if src.token_secret_ref.is_some() {
        return Err(Problem {
            reason: "TokenNotSupported",
            message: "tokenSecretRef is not supported yet: regie does not read Secrets in tenant \
                      namespaces; use a source that needs no token"
                .into(),
        });
    }
    // Refusals are checked before the request so they are named as such; the guarded resolver
    // checks again at connect time, so an answer that changes in between cannot slip through.
    if let Ok(u) = url::Url::parse(&src.url)
        && let Some(url::Host::Domain(name)) = u.host()
    {
        let addrs = SystemLookup
            .lookup(name.to_string())
            .await
            .map_err(|e| Problem {
                reason: "FetchFailed",
                message: format!("{shown}: cannot resolve {name}: {e}"),
            })?;
        if let Err(r) = policy.check_resolved(name, &addrs) {
            return Err(Problem {
                reason: "TargetRefused",
                message: format!("{shown} is refused: {}", r.reason),
            });
        }
    }
    let pointer = src.json_pointer.as_deref().unwrap_or(DEFAULT_POINTER);
    fetch_measured(client, &src.url, Some(pointer), None, timeout)
        .await
        .map_err(|e| {
            let message = e.to_string().replace(&src.url, &shown);
            let invalid = [
                "no JSON",
                "JSON pointer",
                "whole number",
                "cannot be negative",
                "KiB",
            ]
            .iter()
            .any(|n| message.contains(n));
            Problem {
                reason: if invalid {
                    "InvalidAnswer"
                } else {
                    "FetchFailed"
                },
                message,
            }
        })
}

/// The one field of a package's spec this loop reads, every tick, of every package: decoded
/// alone from the cached text.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceOnly {
    #[serde(default)]
    account_source: Option<AccountSource>,
}

/// Reads every package's source on its interval until the task is aborted; a changed
/// observation wakes the package's tenant through `trigger`.
pub async fn run(
    ctx: Arc<Context>,
    policy: ProbePolicy,
    hold: Duration,
    trigger: UnboundedSender<String>,
) {
    let client = match client(&policy) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the account-source client; accounts are not measured");
            return;
        }
    };
    // No `wait_until_ready` here: the controller already waits on that store, and a second
    // waiter on the same store may never be woken. The cache is simply read on every tick.
    type Key = (String, String);
    let mut next_due: HashMap<Key, (AccountSource, tokio::time::Instant)> = HashMap::new();
    let mut in_flight: HashSet<Key> = HashSet::new();
    let mut wake: HashSet<String> = HashSet::new();
    let mut reads: JoinSet<(Key, AccountSource, Result<i64, Problem>)> = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(done) = reads.join_next(), if !reads.is_empty() => {
                let Ok((key, src, result)) = done else { continue };
                in_flight.remove(&key);
                let now = ctx.now();
                let changed = {
                    let mut all = ctx.measurements.lock();
                    let next = next_observation(all.get(&key), &src, result, now, hold);
                    let changed = all.get(&key) != Some(&next);
                    all.insert(key.clone(), next);
                    changed
                };
                if changed {
                    wake.insert(key.0.clone());
                }
            }
        }
        // A change wakes the tenant of its namespace; until the tenant cache knows it (right
        // after start), the wake waits rather than being lost.
        wake.retain(|ns| match ctx.tenant_name_of_namespace(ns) {
            Some(name) => {
                let _ = trigger.send(name);
                false
            }
            None => ctx
                .packages
                .state()
                .iter()
                .any(|p| p.namespace() == Some(ns.as_str())),
        });
        let now = tokio::time::Instant::now();
        let mut live: HashSet<Key> = HashSet::new();
        for p in ctx.packages.state() {
            let Some(src) = p.spec_part::<SourceOnly>().and_then(|s| s.account_source) else {
                continue;
            };
            let src = &src;
            if p.deleting() {
                continue;
            }
            let key = (
                p.namespace().unwrap_or_default().to_owned(),
                p.name().to_owned(),
            );
            live.insert(key.clone());
            let due = match next_due.get(&key) {
                Some((known, at)) => known != src || *at <= now,
                None => true,
            };
            if !due || in_flight.contains(&key) {
                continue;
            }
            let (interval, timeout) = schedule_of(src);
            next_due.insert(key.clone(), (src.clone(), now + interval));
            in_flight.insert(key.clone());
            let (client, policy, src) = (client.clone(), policy.clone(), src.clone());
            reads.spawn(async move {
                // The whole read, resolver included, is bounded by the timeout.
                let result = tokio::time::timeout(
                    timeout + Duration::from_millis(100),
                    read(&client, &policy, &src, timeout),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(Problem {
                        reason: "FetchFailed",
                        message: format!(
                            "{} did not answer within {}s",
                            redacted(&src.url),
                            timeout.as_secs_f32()
                        ),
                    })
                });
                (key, src, result)
            });
        }
        next_due.retain(|k, _| live.contains(k));
        ctx.measurements.lock().retain(|k, _| live.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(basis: AccountBasis) -> AccountSource {
        AccountSource {
            url: "https://idm.example/count?key=s3cret".into(),
            json_pointer: None,
            interval: Some("1m".into()),
            timeout: Some("5s".into()),
            basis,
            token_secret_ref: None,
        }
    }

    fn spec(accounts: i64, src: Option<AccountSource>) -> WorkplacePackageSpec {
        WorkplacePackageSpec {
            profile: "standard".into(),
            accounts,
            account_source: src,
        }
    }

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn without_a_source_the_declared_count_is_billed_and_no_condition_shown() {
        let a = package_accounts(&spec(310, None), &WorkplacePackageStatus::default(), None);
        assert_eq!(a.billed, 310);
        assert_eq!(a.measured, None);
        assert_eq!(a.condition, ConditionUpdate::Remove);
    }

    #[test]
    fn a_read_count_is_billed_by_basis_and_its_time_moves_only_with_the_count() {
        let src = source(AccountBasis::Max);
        let first = next_observation(
            None,
            &src,
            Ok(325),
            t("2026-03-02T08:00:00Z"),
            MEASURED_HOLD,
        );
        let a = package_accounts(
            &spec(310, Some(src.clone())),
            &WorkplacePackageStatus::default(),
            Some(&first),
        );
        assert_eq!((a.measured, a.billed), (Some(325), 325));
        assert_eq!(a.measured_at.as_deref(), Some("2026-03-02T08:00:00Z"));
        let ConditionUpdate::Set {
            ok,
            reason,
            message,
            ..
        } = &a.condition
        else {
            panic!("{:?}", a.condition)
        };
        assert!(*ok && *reason == "Measured");
        assert!(
            message.contains("325 accounts") && !message.contains("s3cret"),
            "{message}"
        );

        // The same count again: nothing moves, so status needs no write.
        let again = next_observation(
            Some(&first),
            &src,
            Ok(325),
            t("2026-03-02T08:01:00Z"),
            MEASURED_HOLD,
        );
        assert_eq!(again, first);
        // Status written from the first read survives a restart (no observation yet).
        let status = WorkplacePackageStatus {
            measured_accounts: Some(325),
            measured_at: Some("2026-03-02T08:00:00Z".into()),
            ..WorkplacePackageStatus::default()
        };
        let restarted = next_observation(
            None,
            &src,
            Ok(325),
            t("2026-03-02T09:00:00Z"),
            MEASURED_HOLD,
        );
        let b = package_accounts(&spec(310, Some(src.clone())), &status, Some(&restarted));
        assert_eq!(b.measured_at.as_deref(), Some("2026-03-02T08:00:00Z"));
        let kept = package_accounts(&spec(310, Some(src)), &status, None);
        assert_eq!((kept.billed, kept.condition), (325, ConditionUpdate::Keep));
    }

    /// A source flapping between 325 and 326 at every read, read every minute: the count
    /// changes at most once an hour, so the ledger gains at most a segment an hour.
    #[test]
    fn a_flapping_count_is_taken_up_at_most_once_an_hour() {
        let src = source(AccountBasis::Measured);
        let mut o = next_observation(
            None,
            &src,
            Ok(325),
            t("2026-03-02T08:00:00Z"),
            MEASURED_HOLD,
        );
        let mut changes = Vec::new();
        let start = t("2026-03-02T08:00:00Z");
        for minute in 1..=180 {
            let now = start + jiff::SignedDuration::from_mins(minute);
            let read = if minute % 2 == 1 { 326 } else { 325 };
            let next = next_observation(Some(&o), &src, Ok(read), now, MEASURED_HOLD);
            if next.count != o.count {
                changes.push((minute, next.count));
            }
            o = next;
        }
        // At 09:00 (an even minute) 325 is read, the count held: the first change is 326 at
        // 09:01; an hour later 10:01 reads 326, the count already, and 10:02 reads 325.
        assert_eq!(changes, [(61, Some(326)), (122, Some(325))]);
        // A change after a quiet hour is taken at once.
        let quiet = next_observation(
            Some(&o),
            &src,
            Ok(400),
            t("2026-03-02T12:30:00Z"),
            MEASURED_HOLD,
        );
        assert_eq!(quiet.count, Some(400));
        assert_eq!(quiet.at, Some(t("2026-03-02T12:30:00Z")));
        // Within the hour the count read is not taken, and nothing else moves either: no write.
        let soon = next_observation(
            Some(&quiet),
            &src,
            Ok(401),
            t("2026-03-02T12:31:00Z"),
            MEASURED_HOLD,
        );
        assert_eq!(soon, quiet);
    }

    #[test]
    fn a_failing_source_keeps_the_last_count_and_says_why() {
        let src = source(AccountBasis::Measured);
        let ok = next_observation(
            None,
            &src,
            Ok(290),
            t("2026-03-02T08:00:00Z"),
            MEASURED_HOLD,
        );
        let failed = next_observation(
            Some(&ok),
            &src,
            Err(Problem {
                reason: "FetchFailed",
                message: "https://idm.example/count answered HTTP 503".into(),
            }),
            t("2026-03-02T08:15:00Z"),
            MEASURED_HOLD,
        );
        assert_eq!((failed.count, failed.at), (ok.count, ok.at));
        let a = package_accounts(
            &spec(310, Some(src.clone())),
            &WorkplacePackageStatus::default(),
            Some(&failed),
        );
        assert_eq!(a.billed, 290, "a failing monitor does not change the bill");
        let ConditionUpdate::Set {
            ok,
            reason,
            message,
        } = a.condition
        else {
            panic!()
        };
        assert!(
            !ok && reason == "FetchFailed" && message.contains("503"),
            "{message}"
        );

        // Never read successfully: the declared count, whatever the basis.
        let never = next_observation(
            None,
            &src,
            Err(Problem {
                reason: "TargetRefused",
                message: "refused".into(),
            }),
            t("2026-03-02T08:00:00Z"),
            MEASURED_HOLD,
        );
        let b = package_accounts(
            &spec(310, Some(src)),
            &WorkplacePackageStatus::default(),
            Some(&never),
        );
        assert_eq!((b.measured, b.billed), (None, 310));
    }

    #[test]
    fn an_observation_of_another_source_is_not_shown() {
        let old = source(AccountBasis::Measured);
        let mut new = old.clone();
        new.url = "https://other.example/count".into();
        let o = next_observation(None, &old, Ok(5), t("2026-03-02T08:00:00Z"), MEASURED_HOLD);
        let a = package_accounts(
            &spec(310, Some(new)),
            &WorkplacePackageStatus::default(),
            Some(&o),
        );
        assert_eq!((a.billed, a.condition), (310, ConditionUpdate::Keep));
    }

    #[test]
    fn schedules_default_and_the_timeout_never_outlasts_the_interval() {
        let mut src = source(AccountBasis::Max);
        src.interval = None;
        src.timeout = None;
        assert_eq!(schedule_of(&src), (DEFAULT_INTERVAL, DEFAULT_TIMEOUT));
        src.interval = Some("2s".into());
        src.timeout = Some("30s".into());
        assert_eq!(
            schedule_of(&src),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
    }

    #[test]
    fn redaction_drops_query_and_credentials() {
        assert_eq!(
            redacted("https://u:p@idm.example/count?key=s3cret#x"),
            "https://idm.example/count"
        );
    }
}

//! Compliance of one component for one period: from probe outcomes to down intervals
//! (incidents), and from down intervals to window time, down time, availability, the verdict and
//! the service credit.
//!
//! Sample semantics: a probe outcome holds from its own instant until the next sample of the same
//! component; the last sample holds for one probe interval, cut at the period's end. An incident
//! is one run of failed probes: it starts at the first failure and ends at the next success.
//! [`RunState`] is that rule as a small state machine; the offline [`down_intervals`] and the
//! live prober both feed it, so live and offline results agree by construction.
//!
//! Figures: window and down time are summed in nanoseconds and reported in whole seconds — the
//! window rounded down, down time rounded up (a sub-second outage is one second; rounding always
//! favours the participant). Availability is `100 × (window − down) / window` from those whole
//! seconds at full decimal precision; `met` and the credit compare that exact value. It is
//! presented truncated to 3 decimals ([`present`]), never rounded up, so a breach is never shown
//! as the target. A period without any window time is 100% available.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rust_decimal::{Decimal, RoundingStrategy};

use super::calendar::{self, Interval};
use crate::tier::Tier;

/// One probe outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub at: Timestamp,
    pub success: bool,
}

/// Where a component's run of probe outcomes stands: enough to go on after a restart.
///
/// The operator persists this (as the `lastSample` and the open incident of the SlaReport
/// status); after a restart it resumes with [`RunState::resume`], and the gap until the first new
/// probe is covered by the last persisted sample, as any gap between two samples is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunState {
    /// The last sample seen.
    last: Option<Sample>,
    /// Start of the current run of failures, while it goes on.
    down_since: Option<Timestamp>,
}

impl RunState {
    pub fn new() -> RunState {
        RunState::default()
    }

    /// Rebuilds a state from what was persisted: the last sample, and the start of the incident
    /// open at that moment (ignored unless the last sample failed).
    pub fn resume(last: Option<Sample>, down_since: Option<Timestamp>) -> RunState {
        let down_since = match last {
            Some(s) if !s.success => Some(down_since.unwrap_or(s.at).min(s.at)),
            _ => None,
        };
        RunState { last, down_since }
    }

    /// Takes the next probe outcome. Returns the incident it closes: a success after one or more
    /// failures closes `[first failure, this success)`. Samples older than the last one seen are
    /// ignored (the live prober is monotonic; offline input is sorted first).
    pub fn observe(&mut self, at: Timestamp, success: bool) -> Option<Interval> {
        if self.last.is_some_and(|l| at < l.at) {
            return None;
        }
        self.last = Some(Sample { at, success });
        match (self.down_since, success) {
            (None, false) => {
                self.down_since = Some(at);
                None
            }
            (Some(since), true) => {
                self.down_since = None;
                let i = Interval::new(since, at);
                (!i.is_empty()).then_some(i)
            }
            _ => None,
        }
    }

    /// The last sample seen.
    pub fn last(&self) -> Option<Sample> {
        self.last
    }

    /// Start of the incident going on now, if the last probe failed.
    pub fn down_since(&self) -> Option<Timestamp> {
        self.down_since
    }

    /// The incident going on, as far as the samples cover it: until one probe interval after the
    /// last failure, cut at `until` (the period's end, or now).
    pub fn open_incident(&self, until: Timestamp, interval: Duration) -> Option<Interval> {
        let since = self.down_since?;
        let last = self.last?.at;
        let covered = SignedDuration::try_from(interval)
            .ok()
            .and_then(|d| last.checked_add(d).ok())
            .unwrap_or(Timestamp::MAX);
        let i = Interval::new(since, covered.min(until));
        (!i.is_empty()).then_some(i)
    }
}

/// The down intervals of one component's samples: each run of failures from its first failure to
/// the next success, and a run still going at the last sample until one `interval` later, cut at
/// `period_end`. Input need not be sorted; samples at the same instant keep their input order.
pub fn down_intervals(
    samples: &[Sample],
    interval: Duration,
    period_end: Timestamp,
) -> Vec<Interval> {
    let mut sorted;
    let samples = if samples.is_sorted_by_key(|s| s.at) {
        samples
    } else {
        sorted = samples.to_vec();
        sorted.sort_by_key(|s| s.at);
        &sorted
    };
    let mut state = RunState::new();
    let mut out: Vec<Interval> = samples
        .iter()
        .filter_map(|s| state.observe(s.at, s.success))
        .collect();
    out.extend(state.open_incident(period_end, interval));
    out
}

/// One incident as seen from a period: cut at the period's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    pub start: Timestamp,
    pub end: Timestamp,
    /// Still going on at `end` (live computation only).
    pub ongoing: bool,
    /// Whole seconds, rounded up.
    pub duration_seconds: i64,
    /// Seconds inside service hours, rounded up.
    pub in_service_hours_seconds: i64,
    /// True when any part fell inside service hours.
    pub in_service_hours: bool,
}

/// Compliance of one component for one period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentResult {
    pub period: Interval,
    /// Open service-window time in the period, whole seconds (rounded down).
    pub window_seconds: i64,
    /// Down time inside the service windows, whole seconds (rounded up, at most the window).
    pub down_seconds: i64,
    /// Percent, full precision; see [`present`] for display.
    pub availability: Decimal,
    /// Percent, the tier's target.
    pub target: Decimal,
    pub met: bool,
    pub credit_percent: i32,
    /// In start order, including incidents wholly outside service hours.
    pub incidents: Vec<Incident>,
}

impl ComponentResult {
    /// Share of the error budget of a whole period left, whose service-window time is
    /// `period_window_seconds` ([`window_seconds`] of the whole period): 1 untouched, 0 spent,
    /// negative overspent. Month to date, `self.window_seconds` is only the time so far, and a
    /// budget of a share of that would be far too small early in the month.
    pub fn error_budget_remaining(&self, period_window_seconds: i64) -> Decimal {
        error_budget_remaining(self.target, period_window_seconds, self.down_seconds)
    }
}

/// Open service-window time of `tier` in `period`, whole seconds (rounded down, as
/// [`ComponentResult::window_seconds`]).
pub fn window_seconds(tier: &Tier, period: Interval) -> i64 {
    seconds_down(calendar::total_nanos(&calendar::service_intervals(
        tier, period,
    )))
}

/// Share of an error budget left. The budget is `(100 − target)%` of `window_seconds` (for the
/// month-to-date gauge, the whole month's window: [`window_seconds`]). With no budget at all (a 100% target or
/// no window time) any down time counts as all of it spent and a bit more: −1.
pub fn error_budget_remaining(target: Decimal, window_seconds: i64, down_seconds: i64) -> Decimal {
    let budget =
        Decimal::from(window_seconds) * (Decimal::ONE_HUNDRED - target) / Decimal::ONE_HUNDRED;
    if budget <= Decimal::ZERO {
        return if down_seconds == 0 {
            Decimal::ONE
        } else {
            Decimal::NEGATIVE_ONE
        };
    }
    Decimal::ONE - Decimal::from(down_seconds) / budget
}

/// A percentage as people read it: truncated (never rounded up) to 3 decimals, no trailing zeros.
pub fn present(percent: Decimal) -> Decimal {
    percent
        .round_dp_with_strategy(3, RoundingStrategy::ToZero)
        .normalize()
}

fn seconds_down(nanos: i128) -> i64 {
    i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(i64::MAX)
}

fn seconds_up(nanos: i128) -> i64 {
    i64::try_from((nanos + 999_999_999).div_euclid(1_000_000_000)).unwrap_or(i64::MAX)
}

/// Compliance of a component of `tier` for `period`, from its down intervals (in any order,
/// overlapping allowed; parts outside the period are ignored).
pub fn compliance(tier: &Tier, period: Interval, down: &[Interval]) -> ComponentResult {
    let windows = calendar::service_intervals(tier, period);
    compliance_in(tier, &windows, period, down, None)
}

/// As [`compliance`], with the period's service windows computed once by the caller
/// ([`calendar::service_intervals`]) and shared by every component of the tier — the fast path
/// for recomputing thousands of components. `ongoing` is the start of an incident still going on
/// at the end of `down` (see [`compliance_live`]).
pub fn compliance_in(
    tier: &Tier,
    windows: &[Interval],
    period: Interval,
    down: &[Interval],
    ongoing: Option<Timestamp>,
) -> ComponentResult {
    let down: Vec<Interval> =
        calendar::merge(down.iter().filter_map(|d| d.intersect(&period)).collect());
    let window_seconds = seconds_down(calendar::total_nanos(windows));
    let down_seconds = seconds_up(calendar::overlap_nanos(windows, &down)).min(window_seconds);
    let availability = if window_seconds == 0 {
        Decimal::ONE_HUNDRED
    } else {
        Decimal::ONE_HUNDRED * Decimal::from(window_seconds - down_seconds)
            / Decimal::from(window_seconds)
    };
    let last = down.len().checked_sub(1);
    let incidents = down
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let inside = seconds_up(calendar::overlap_nanos(windows, std::slice::from_ref(d)));
            Incident {
                start: d.start,
                end: d.end,
                // The open incident is always the latest; closed ones end before it starts.
                ongoing: Some(k) == last && ongoing.is_some_and(|s| d.end > s),
                duration_seconds: seconds_up(d.nanos()),
                in_service_hours_seconds: inside,
                in_service_hours: inside > 0,
            }
        })
        .collect();
    ComponentResult {
        period,
        window_seconds,
        down_seconds,
        availability,
        target: tier.target,
        met: availability >= tier.target,
        credit_percent: tier.credit_percent(availability),
        incidents,
    }
}

/// The live computation: compliance for `period` up to `now`, from the incidents already closed
/// and the run state of the prober, whose open incident counts up to now (at most one probe
/// interval past the last sample) and is marked ongoing.
pub fn compliance_live(
    tier: &Tier,
    period: Interval,
    closed: &[Interval],
    state: &RunState,
    now: Timestamp,
) -> ComponentResult {
    let so_far = Interval::new(period.start, period.end.min(now).max(period.start));
    let mut down = closed.to_vec();
    let open = state.open_incident(so_far.end, tier.probe_interval);
    down.extend(open);
    let windows = calendar::service_intervals(tier, so_far);
    compliance_in(tier, &windows, so_far, &down, open.map(|o| o.start))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tier::tests::{gold, level};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn i(a: &str, b: &str) -> Interval {
        Interval::new(ts(a), ts(b))
    }

    fn s(at: &str, success: bool) -> Sample {
        Sample {
            at: ts(at),
            success,
        }
    }

    fn tier(yaml: &str) -> Tier {
        Tier::from_level(&level("t", yaml)).expect("test tier")
    }

    /// Bronze as in the examples: office hours, 99.0, credits 5% below 99.0, 10% below 97.0.
    fn bronze() -> Tier {
        tier(
            "  rank: 1\n  serviceHours: [\"Mon-Fri 08:00-17:00\"]\n  holidays: [\"2026-04-03\", \"2026-04-06\"]\n  responseTimes: {urgent: 60m, other: 48h}\n  kpiReport: monthly\n  availability: {target: \"99.0\"}\n  probe: {interval: 60s, timeout: 10s}\n  workload: {minReplicas: 1}\n  credits: [{below: \"99.0\", percent: 5}, {below: \"97.0\", percent: 10}]\n",
        )
    }

    fn march() -> Interval {
        let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap();
        calendar::month_bounds(2026, 3, &tz).unwrap()
    }

    #[test]
    fn a_run_of_failures_is_one_incident_until_the_next_success() {
        let samples = [
            s("2026-03-02T09:00:00Z", true),
            s("2026-03-02T09:01:00Z", false),
            s("2026-03-02T09:02:00Z", false),
            s("2026-03-02T09:03:00Z", true),
            s("2026-03-02T09:04:00Z", false),
            s("2026-03-02T09:05:00Z", true),
        ];
        let d = down_intervals(&samples, Duration::from_secs(60), march().end);
        assert_eq!(
            d,
            vec![
                i("2026-03-02T09:01:00Z", "2026-03-02T09:03:00Z"),
                i("2026-03-02T09:04:00Z", "2026-03-02T09:05:00Z")
            ]
        );
    }

    #[test]
    fn the_last_sample_covers_one_interval_cut_at_the_period_end() {
        let end = march().end; // 2026-03-31T22:00:00Z
        let d = down_intervals(
            &[s("2026-03-31T12:00:00Z", false)],
            Duration::from_secs(60),
            end,
        );
        assert_eq!(d, vec![i("2026-03-31T12:00:00Z", "2026-03-31T12:01:00Z")]);
        let d = down_intervals(
            &[s("2026-03-31T21:59:30Z", false)],
            Duration::from_secs(60),
            end,
        );
        assert_eq!(d, vec![i("2026-03-31T21:59:30Z", "2026-03-31T22:00:00Z")]);
        // A failure covers the gap until the next sample, however long.
        let d = down_intervals(
            &[
                s("2026-03-31T10:00:00Z", false),
                s("2026-03-31T11:00:00Z", false),
            ],
            Duration::from_secs(60),
            end,
        );
        assert_eq!(d, vec![i("2026-03-31T10:00:00Z", "2026-03-31T11:01:00Z")]);
    }

    #[test]
    fn unsorted_input_gives_the_same_incidents() {
        let sorted = [
            s("2026-03-02T09:00:00Z", false),
            s("2026-03-02T09:01:00Z", false),
            s("2026-03-02T09:02:00Z", true),
            s("2026-03-02T09:03:00Z", false),
        ];
        let mut shuffled = sorted;
        shuffled.swap(0, 3);
        shuffled.swap(1, 2);
        let a = down_intervals(&sorted, Duration::from_secs(60), march().end);
        let b = down_intervals(&shuffled, Duration::from_secs(60), march().end);
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn the_live_state_machine_ignores_stale_samples() {
        let mut st = RunState::new();
        assert_eq!(st.observe(ts("2026-03-02T09:00:00Z"), false), None);
        assert_eq!(
            st.observe(ts("2026-03-02T08:00:00Z"), true),
            None,
            "older than the last: ignored"
        );
        assert_eq!(st.down_since(), Some(ts("2026-03-02T09:00:00Z")));
        assert_eq!(
            st.observe(ts("2026-03-02T09:10:00Z"), true),
            Some(i("2026-03-02T09:00:00Z", "2026-03-02T09:10:00Z"))
        );
        assert_eq!(st.down_since(), None);
    }

    #[test]
    fn only_down_time_inside_service_hours_counts() {
        let t = bronze();
        // Monday 2 March 2026: 07:00-08:00 UTC is 08:00-09:00 local; the night before is outside.
        let down = [i("2026-03-01T20:00:00Z", "2026-03-02T08:00:00Z")];
        let r = compliance(&t, march(), &down);
        assert_eq!(r.window_seconds, 22 * 9 * 3600);
        assert_eq!(r.down_seconds, 3600);
        assert_eq!(r.incidents.len(), 1);
        assert_eq!(r.incidents[0].duration_seconds, 12 * 3600);
        assert_eq!(r.incidents[0].in_service_hours_seconds, 3600);
        assert!(r.incidents[0].in_service_hours);
        // 1 - 1/198 = 99.4949...%
        assert_eq!(present(r.availability).to_string(), "99.494");
        assert!(r.met);
        assert_eq!(r.credit_percent, 0);
        let night = compliance(
            &t,
            march(),
            &[i("2026-03-02T20:00:00Z", "2026-03-03T05:00:00Z")],
        );
        assert_eq!(
            (night.down_seconds, night.availability),
            (0, Decimal::ONE_HUNDRED)
        );
        assert!(!night.incidents[0].in_service_hours);
    }

    #[test]
    fn credits_take_the_largest_matching_step() {
        let t = bronze();
        let window = 22 * 9 * 3600; // 712,800 s
        // 98% (below 99.0, not below 97.0): 5%; 96%: 10%.
        let two_percent = i("2026-03-02T07:00:00Z", "2026-03-02T10:57:36Z"); // 14,256 s
        let r = compliance(&t, march(), &[two_percent]);
        assert_eq!(r.down_seconds * 50, window);
        assert_eq!(r.availability, Decimal::from(98));
        assert!(!r.met);
        assert_eq!(r.credit_percent, 5);
        let r = compliance(
            &t,
            march(),
            &[i("2026-03-02T07:00:00Z", "2026-03-02T14:55:12Z")],
        );
        assert_eq!(r.down_seconds, 28_512);
        assert_eq!(r.availability, Decimal::from(96));
        assert_eq!(r.credit_percent, 10);
        // Exactly at the target is met and earns no credit.
        let r = compliance(
            &t,
            march(),
            &[i("2026-03-02T07:00:00Z", "2026-03-02T08:58:48Z")],
        );
        assert_eq!(r.availability, Decimal::from(99));
        assert!(r.met);
        assert_eq!(r.credit_percent, 0);
    }

    #[test]
    fn presentation_never_rounds_a_breach_up_to_the_target() {
        let g = Tier::from_level(&gold()).unwrap();
        // A gold window of 1,000,000 s with 1,001 s down is 99.8999%: shown 99.899, not 99.900.
        let a = Decimal::ONE_HUNDRED * Decimal::from(1_000_000 - 1_001) / Decimal::from(1_000_000);
        assert_eq!(present(a).to_string(), "99.899");
        assert!(a < g.target);
        assert_eq!(present(Decimal::ONE_HUNDRED).to_string(), "100");
        assert_eq!(present(Decimal::new(99950, 3)).to_string(), "99.95");
    }

    #[test]
    fn an_empty_window_is_fully_available() {
        // A tier with service hours on Saturdays only, in a period without a Saturday.
        let t = tier(
            "  rank: 1\n  serviceHours: [\"Sat 09:00-13:00\"]\n  responseTimes: {urgent: 60m, other: 48h}\n  kpiReport: daily\n  availability: {target: \"99.0\"}\n  probe: {interval: 60s, timeout: 10s}\n  workload: {minReplicas: 1}\n  credits: [{below: \"99.0\", percent: 5}]\n",
        );
        let monday = i("2026-03-01T23:00:00Z", "2026-03-02T23:00:00Z");
        let r = compliance(&t, monday, &[monday]);
        assert_eq!((r.window_seconds, r.down_seconds), (0, 0));
        assert_eq!(r.availability, Decimal::ONE_HUNDRED);
        assert!(r.met);
        assert_eq!(r.credit_percent, 0);
        assert_eq!(r.incidents.len(), 1, "the incident is still listed");
        assert!(!r.incidents[0].in_service_hours);
    }

    #[test]
    fn down_time_is_rounded_up_and_window_time_down() {
        let t = bronze();
        let r = compliance(
            &t,
            march(),
            &[i("2026-03-02T09:00:00Z", "2026-03-02T09:00:00.2Z")],
        );
        assert_eq!(r.down_seconds, 1);
        assert_eq!(r.incidents[0].duration_seconds, 1);
        assert!(r.availability < Decimal::ONE_HUNDRED);
    }

    #[test]
    fn incidents_are_cut_at_the_period_and_overlaps_merged() {
        let t = bronze();
        let r = compliance(
            &t,
            march(),
            &[
                i("2026-03-31T14:00:00Z", "2026-04-01T08:00:00Z"),
                i("2026-02-27T10:00:00Z", "2026-03-02T07:30:00Z"),
                i("2026-03-02T07:15:00Z", "2026-03-02T07:45:00Z"),
            ],
        );
        assert_eq!(r.incidents.len(), 2);
        assert_eq!(r.incidents[0].start, march().start);
        assert_eq!(r.incidents[0].end, ts("2026-03-02T07:45:00Z"));
        assert_eq!(r.incidents[1].end, march().end);
        // 07:00-07:45 UTC on 2 March and 16:00-17:00 local (CEST) on 31 March.
        assert_eq!(r.down_seconds, 45 * 60 + 3600);
    }

    #[test]
    fn live_and_offline_agree_on_the_same_samples() {
        let t = bronze();
        let samples: Vec<Sample> = (0..600)
            .map(|k| Sample {
                at: ts("2026-03-02T06:30:00Z")
                    .checked_add(SignedDuration::from_secs(60 * k))
                    .unwrap(),
                success: !(100..130).contains(&k) && !(400..405).contains(&k) && k < 590,
            })
            .collect();
        let now = ts("2026-03-02T16:40:00Z");
        let mut st = RunState::new();
        let closed: Vec<Interval> = samples
            .iter()
            .filter_map(|s| st.observe(s.at, s.success))
            .collect();
        let live = compliance_live(&t, march(), &closed, &st, now);
        let so_far = Interval::new(march().start, now);
        let offline = compliance(&t, so_far, &down_intervals(&samples, t.probe_interval, now));
        assert_eq!(live.down_seconds, offline.down_seconds);
        assert_eq!(live.availability, offline.availability);
        assert_eq!(live.incidents.len(), 3);
        assert!(live.incidents[2].ongoing);
        assert!(!live.incidents[0].ongoing);
        assert_eq!(
            live.incidents
                .iter()
                .map(|i| (i.start, i.end))
                .collect::<Vec<_>>(),
            offline
                .incidents
                .iter()
                .map(|i| (i.start, i.end))
                .collect::<Vec<_>>()
        );
    }

    /// The restart bound: the operator persists its run state at least once per probe interval;
    /// a crash loses the samples since, and the gap is covered by the last persisted sample. Down
    /// time then differs from an uninterrupted run by at most one probe interval per restart.
    #[test]
    fn a_restart_loses_at_most_one_probe_interval() {
        let t = bronze();
        let interval = t.probe_interval;
        let at = |k: i64| {
            ts("2026-03-03T07:00:00Z")
                .checked_add(SignedDuration::from_secs(60 * k))
                .unwrap()
        };
        for fail_from in 0..6 {
            for fail_to in fail_from..8 {
                let samples: Vec<Sample> = (0..10)
                    .map(|k| Sample {
                        at: at(k),
                        success: !(fail_from..fail_to).contains(&k),
                    })
                    .collect();
                let end = at(10);
                let whole = compliance(&t, march(), &down_intervals(&samples, interval, end));
                // Persisted after sample 3; samples 4 is lost in the crash; resumed from sample 5.
                let mut st = RunState::new();
                let mut closed: Vec<Interval> = samples[..4]
                    .iter()
                    .filter_map(|s| st.observe(s.at, s.success))
                    .collect();
                let persisted = (st.last(), st.down_since());
                let mut resumed = RunState::resume(persisted.0, persisted.1);
                closed.extend(
                    samples[5..]
                        .iter()
                        .filter_map(|s| resumed.observe(s.at, s.success)),
                );
                let after = compliance_live(&t, march(), &closed, &resumed, end);
                let diff = (after.down_seconds - whole.down_seconds).abs();
                assert!(
                    diff <= interval.as_secs() as i64,
                    "failures {fail_from}..{fail_to}: off by {diff}s"
                );
            }
        }
    }

    #[test]
    fn error_budget_remaining_ratio() {
        let d = |v: &str| v.parse::<Decimal>().unwrap();
        assert_eq!(error_budget_remaining(d("99.0"), 360_000, 0), Decimal::ONE);
        assert_eq!(error_budget_remaining(d("99.0"), 360_000, 1_800), d("0.5"));
        assert_eq!(
            error_budget_remaining(d("99.0"), 360_000, 3_600),
            Decimal::ZERO
        );
        assert_eq!(
            error_budget_remaining(d("99.0"), 360_000, 7_200),
            Decimal::NEGATIVE_ONE
        );
        assert_eq!(
            error_budget_remaining(d("100"), 360_000, 1),
            Decimal::NEGATIVE_ONE
        );
        assert_eq!(error_budget_remaining(d("100"), 360_000, 0), Decimal::ONE);
        // The whole month's window, in local hours: bronze in March 2026 is 22 days of 9 hours.
        assert_eq!(window_seconds(&bronze(), march()), 22 * 9 * 3600);
    }
}

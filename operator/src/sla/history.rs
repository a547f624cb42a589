//! What the live prober remembers of one component across report periods: its run state, the
//! incidents closed while any of its report periods was open, which periods are being measured
//! (always the calendar month, for credits; besides it the week or day when the component's
//! tier reports at that cadence), which ended periods still owe their final report, and — once
//! its service level changed — the figures of the level it held before.
//!
//! A change of level splits a period: the part before is measured in the old level's service
//! hours against its target and credits, the part after in the new one's (a member that moves
//! from bronze to silver on the 15th is not held to silver's evening hours for the first half
//! of the month, nor paid silver's credits for it). The split falls at the first sample taken
//! under the new level, so that `regie sla` finds it at the same instant in the samples.
//!
//! Pure: the operator feeds it samples in time order and asks it for figures; the split at a
//! period's end is decided here, so a test can cross a month end without a cluster.

use std::sync::Arc;

use jiff::Timestamp;
use regie_crds::catalogue::KpiCadence;

use super::calendar::{Interval, Period, PeriodError};
use super::compliance::{ComponentResult, RunState, Sample, compliance_live};
use crate::tier::Tier;

/// The report periods a component of `tier` is measured in at `at`: the month, then the period
/// of the tier's KPI cadence when that is not the month.
pub fn periods_at(tier: &Tier, at: Timestamp) -> OpenPeriods {
    let month = Period::containing(KpiCadence::Monthly, at, &tier.time_zone);
    match tier.kpi_report {
        KpiCadence::Monthly => OpenPeriods::of(&[month]),
        cadence => OpenPeriods::of(&[month, Period::containing(cadence, at, &tier.time_zone)]),
    }
}

/// Whether a component of `tier` is reported in `period`: every month, and the week or day of
/// its KPI cadence.
pub fn reports(tier: &Tier, period: Period) -> bool {
    match period {
        Period::Month { .. } => true,
        Period::Week { .. } => tier.kpi_report == KpiCadence::Weekly,
        Period::Day(_) => tier.kpi_report == KpiCadence::Daily,
    }
}

/// The periods a component is measured in at one time — none before its first sample, then
/// the month and the week or day of its tier's cadence — held inline: every component's
/// history has one, and a vector would be an allocation of its own.
#[derive(Clone, Copy, Debug)]
pub struct OpenPeriods {
    periods: [Period; 2],
    len: u8,
}

impl OpenPeriods {
    const NONE: OpenPeriods = OpenPeriods {
        // Never read: only the first `len` count.
        periods: [Period::Month { year: 0, month: 1 }; 2],
        len: 0,
    };

    /// The first two of `periods` (there are never more).
    fn of(periods: &[Period]) -> OpenPeriods {
        let mut open = OpenPeriods::NONE;
        for (slot, p) in open.periods.iter_mut().zip(periods) {
            *slot = *p;
            open.len += 1;
        }
        open
    }
}

impl std::ops::Deref for OpenPeriods {
    type Target = [Period];

    fn deref(&self) -> &[Period] {
        &self.periods[..usize::from(self.len)]
    }
}

impl IntoIterator for OpenPeriods {
    type Item = Period;
    type IntoIter = std::iter::Take<std::array::IntoIter<Period, 2>>;

    fn into_iter(self) -> Self::IntoIter {
        self.periods.into_iter().take(usize::from(self.len))
    }
}

/// Equal when the periods held are, whatever the unused slot holds.
impl PartialEq for OpenPeriods {
    fn eq(&self, other: &OpenPeriods) -> bool {
        **self == **other
    }
}

impl Default for OpenPeriods {
    fn default() -> OpenPeriods {
        OpenPeriods::NONE
    }
}

/// One component's live SLA memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    run: RunState,
    /// Incidents closed that may still touch an open or closing period.
    closed: Vec<Interval>,
    /// The periods being measured, as of the last sample.
    open: OpenPeriods,
    /// Periods that ended and whose final figures are not written yet.
    closing: Vec<Period>,
    /// The level the last sample was taken under (shared with every component at that level).
    tier: Option<Arc<Tier>>,
    /// Only for a component whose level changed within a period still reported: boxed, as
    /// nearly every component never needs it.
    retiered: Option<Box<Retiered>>,
}

/// A level change within the periods still reported.
#[derive(Clone, Debug, PartialEq)]
struct Retiered {
    /// Where the level now held took over: the current figures start here.
    since: Timestamp,
    /// The figures of the levels held before, per period.
    before: Vec<Part>,
}

/// The figures of one period under one level, over the part of it the level was held.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    pub period: Period,
    pub service_level: String,
    /// `result.period` is the part measured, within the period's bounds.
    pub result: ComponentResult,
}

/// A period's figures for its report: see [`History::report_figures`].
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    pub bounds: Interval,
    pub parts: Vec<Part>,
    /// The last part is of a level held before, ended within the period.
    pub ended: bool,
}

/// What one sample changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// An incident opened or closed: the persisted state must follow soon.
    pub transition: bool,
    /// At least one period ended before this sample: its final report is due.
    pub closed_period: bool,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    /// Rebuilds the memory from what stored reports hold: their closed incidents, the start of
    /// the incident open when they were written, and the last sample; `unfinished` are the stored
    /// reports' periods not marked final.
    ///
    /// The periods open are those of the last sample, as if this process had taken it: the next
    /// sample closes the ones that have ended since, as [`History::observe`] does without a
    /// restart, so the time between the last stored sample and a period's end counts as any gap
    /// between two samples does — the last known outcome holds. An unfinished period that had
    /// ended before the last sample (the process took that sample but stopped before the final
    /// write) is closing at once: its figures cannot change any more.
    ///
    /// `tier` is the level the last sample was taken under; `before`, the stored figures of
    /// levels held earlier in the stored periods, and `since`, where `tier` took over from them.
    pub fn resume(
        tier: &Arc<Tier>,
        last: Option<Sample>,
        closed: Vec<Interval>,
        ongoing: Option<Timestamp>,
        unfinished: &[Period],
        retiered: Option<(Timestamp, Vec<Part>)>,
    ) -> History {
        let open = last.map_or(OpenPeriods::NONE, |s| periods_at(tier, s.at));
        let closing = match last {
            Some(s) => unfinished
                .iter()
                .filter(|p| !open.contains(p))
                .filter(|p| p.bounds(&tier.time_zone).is_ok_and(|b| b.end <= s.at))
                .copied()
                .collect(),
            None => Vec::new(),
        };
        let retiered = retiered.map(|(since, mut before)| {
            before.retain(|p| open.contains(&p.period) || closing.contains(&p.period));
            Box::new(Retiered { since, before })
        });
        let mut history = History {
            run: RunState::resume(last, ongoing),
            closed: super::calendar::merge(closed),
            open,
            closing,
            tier: last.is_some().then(|| tier.clone()),
            retiered,
        };
        history.prune(tier);
        history
    }

    pub fn run(&self) -> &RunState {
        &self.run
    }

    /// The periods being measured.
    pub fn open_periods(&self) -> &[Period] {
        &self.open
    }

    /// Ended periods whose final report is still to be written.
    pub fn closing_periods(&self) -> &[Period] {
        &self.closing
    }

    /// Takes the next sample, taken under `tier`. The periods that do not hold it any more are
    /// closed first; the sample then counts (it may close an incident that began in a closed
    /// period, whose final figures then run to that period's end). A sample under another level
    /// than the last one ends that level's part of every period still reported here.
    pub fn observe(&mut self, tier: &Arc<Tier>, sample: Sample) -> Observed {
        // A sample older than the last one (the wall clock stepped back) says nothing new, and
        // taken it would move the history back into a period it has closed — reopened, that
        // period would be written again as open, and finally from what is left of it.
        if self.run.last().is_some_and(|last| sample.at < last.at) {
            return Observed::default();
        }
        let previous = match &self.tier {
            Some(old) if old.name != tier.name => Some(old.clone()),
            _ => None,
        };
        let last_at = self.run.last().map(|l| l.at);
        let was_open = self.open;
        let now_open = periods_at(tier, sample.at);
        // A period left early (the level changed to one that does not report it) that ends now
        // is due its final write at once, as an open one that ends is.
        let mut closed_period = self.closing.iter().any(|p| {
            p.bounds(&tier.time_zone)
                .is_ok_and(|b| b.end <= sample.at && last_at.is_some_and(|l| l < b.end))
        });
        // Periods that began since the last sample, which the old level would have been
        // measuring: the time from their start to this sample was held under it.
        let begun: Vec<Period> = previous.as_ref().map_or_else(Vec::new, |old| {
            periods_at(old, sample.at)
                .into_iter()
                .filter(|p| !was_open.contains(p) && !self.closing.contains(p))
                .filter(|p| p.bounds(&old.time_zone).is_ok_and(|b| b.start < sample.at))
                .collect()
        });
        for p in std::mem::take(&mut self.open) {
            if now_open.contains(&p) {
                continue;
            }
            let ended = p.bounds(&tier.time_zone).is_ok_and(|b| b.end <= sample.at);
            // A period the new level does not report (a week, for a level reporting daily)
            // has the old level's part to report: it closes when it ends.
            if (ended || previous.is_some()) && !self.closing.contains(&p) {
                self.closing.push(p);
                closed_period |= ended;
            }
        }
        for p in &begun {
            // Reported by the old level only: it has the old level's part to report.
            if !now_open.contains(p) {
                self.closing.push(*p);
            }
        }
        self.open = now_open;
        // A period the level reports again (it changed back within the period) is open, and is
        // written once, with its parts.
        self.closing.retain(|p| !now_open.contains(p));
        let was_down = self.run.down_since().is_some();
        if let Some(incident) = self.run.observe(sample.at, sample.success) {
            self.closed.push(incident);
        }
        if let Some(old) = previous {
            // After the sample counted: an outage going on across the change is the old
            // level's up to this instant, as `regie sla` cuts it.
            let periods: Vec<Period> = was_open
                .iter()
                .chain(&self.closing)
                .chain(&begun)
                .copied()
                .collect();
            self.retier(&old, &periods, sample.at);
        }
        self.tier = Some(tier.clone());
        self.prune(tier);
        Observed {
            transition: was_down != self.run.down_since().is_some(),
            closed_period,
        }
    }

    /// Ends the part of `periods` measured under `old` at `at`: its figures are kept as they
    /// stand, and the current figures start at `at`. A period `old` does not report (a week,
    /// for a level reporting daily) gets no part of it.
    fn retier(&mut self, old: &Tier, periods: &[Period], at: Timestamp) {
        let mut parts = Vec::new();
        for p in periods {
            if !reports(old, *p) {
                continue;
            }
            let Ok(bounds) = p.bounds(&old.time_zone) else {
                continue;
            };
            let range = Interval::new(self.since().max(bounds.start), at.min(bounds.end));
            if range.is_empty() || parts.iter().any(|q: &Part| q.period == *p) {
                continue;
            }
            let mut result = self.measure(old, *p, range, at);
            // An outage going on goes on in the new level's part: this part of it has ended.
            for i in &mut result.incidents {
                i.ongoing = false;
            }
            parts.push(Part {
                period: *p,
                service_level: old.name.clone(),
                result,
            });
        }
        match &mut self.retiered {
            Some(r) => {
                r.since = at;
                r.before.extend(parts);
            }
            None => {
                self.retiered = Some(Box::new(Retiered {
                    since: at,
                    before: parts,
                }))
            }
        }
    }

    /// Where the figures of the level held now start (the dawn of time when it never changed).
    fn since(&self) -> Timestamp {
        self.retiered.as_ref().map_or(Timestamp::MIN, |r| r.since)
    }

    /// The figures of `period` over `range` under `tier`, measured up to `now`. Service credits
    /// are monthly: a week's or a day's report shows none.
    fn measure(
        &self,
        tier: &Tier,
        period: Period,
        range: Interval,
        now: Timestamp,
    ) -> ComponentResult {
        let mut result = compliance_live(tier, range, &self.closed, &self.run, now);
        if !matches!(period, Period::Month { .. }) {
            result.credit_percent = 0;
        }
        result
    }

    /// The tests' shorthand for [`History::report_figures`]: its bounds and parts.
    #[cfg(test)]
    pub fn figures(
        &self,
        tier: &Tier,
        period: Period,
        now: Timestamp,
    ) -> Result<(Interval, Vec<Part>), PeriodError> {
        self.report_figures(tier, period, now)
            .map(|f| (f.bounds, f.parts))
    }

    /// The figures of `period` measured up to `now` (its end, once it has ended), one part per
    /// level held in it, in time order: the parts of levels held before as they were when the
    /// level changed, then the current level's (under the level of the last sample; `tier`
    /// before the first). Service credits are monthly: a week's or a day's report shows none.
    /// `ended` says whether the last part ended: it is of a level held before, which ended
    /// where a level that does not report `period` took over (gold from Thursday to the end of
    /// a silver component's week). Its entry says where it ends, or a reader — and this process
    /// after a restart, see `stored_parts` — takes it for the level held now.
    pub fn report_figures(
        &self,
        tier: &Tier,
        period: Period,
        now: Timestamp,
    ) -> Result<Figures, PeriodError> {
        let tier = self.tier.as_deref().unwrap_or(tier);
        let bounds = period.bounds(&tier.time_zone)?;
        let mut parts: Vec<Part> = self
            .retiered
            .iter()
            .flat_map(|r| &r.before)
            .filter(|p| p.period == period)
            .cloned()
            .collect();
        let range = Interval::new(self.since().max(bounds.start), bounds.end);
        // A week the level held now does not report (it reports daily, say) has only the parts
        // of the levels before; a month is always reported.
        let current = (!range.is_empty() && reports(tier, period)) || parts.is_empty();
        if current {
            parts.push(Part {
                period,
                service_level: tier.name.clone(),
                result: self.measure(tier, period, range, now),
            });
        }
        // Ended within the period: not a part that runs to its end (a level change in the
        // period's last probe interval, seen after it ended, leaves the month whole).
        let ended = !current
            && parts
                .last()
                .is_some_and(|p| p.result.period.end < bounds.end);
        Ok(Figures {
            bounds,
            parts,
            ended,
        })
    }

    /// The final report of `period` is written: forget it and what only it needed.
    pub fn finished(&mut self, tier: &Tier, period: Period) {
        self.closing.retain(|p| *p != period);
        if let Some(r) = &mut self.retiered {
            r.before.retain(|p| p.period != period);
        }
        self.prune(tier);
    }

    /// Drops closed incidents that end before every open and closing period starts.
    fn prune(&mut self, tier: &Tier) {
        let earliest = self
            .open
            .iter()
            .chain(&self.closing)
            .filter_map(|p| p.bounds(&tier.time_zone).ok())
            .map(|b| b.start)
            .min();
        if let Some(earliest) = earliest {
            self.closed.retain(|i| i.end > earliest);
        }
        // Once no period reported holds a part before the change, the change is history.
        if self
            .retiered
            .as_ref()
            .is_some_and(|r| r.before.is_empty() && earliest.is_none_or(|e| r.since <= e))
        {
            self.retiered = None;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sla::compliance::{Sample, compliance, down_intervals};
    use crate::tier::tests::level;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tier(cadence: &str) -> Arc<Tier> {
        Arc::new(named("t", cadence))
    }

    fn named(name: &str, cadence: &str) -> Tier {
        Tier::from_level(&level(
            name,
            &format!(
                "  rank: 1\n  serviceHours: [\"Mon-Sun 00:00-24:00\"]\n  responseTimes: {{urgent: 60m, other: 48h}}\n  kpiReport: {cadence}\n  availability: {{target: \"99.0\"}}\n  probe: {{interval: 60s, timeout: 10s}}\n  workload: {{minReplicas: 1}}\n  credits: [{{below: \"99.0\", percent: 5}}]\n"
            ),
        ))
        .unwrap()
    }

    /// The figures of a period held under one level.
    fn whole((bounds, parts): (Interval, Vec<Part>)) -> (Interval, ComponentResult) {
        assert_eq!(parts.len(), 1, "{parts:?}");
        let part = parts.into_iter().next().unwrap();
        assert_eq!(part.result.period.start, bounds.start);
        (bounds, part.result)
    }

    fn feed(h: &mut History, tier: &Arc<Tier>, samples: &[(&str, bool)]) -> Vec<Observed> {
        samples
            .iter()
            .map(|(at, ok)| {
                h.observe(
                    tier,
                    Sample {
                        at: ts(at),
                        success: *ok,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn open_periods_are_held_inline() {
        let march = Period::month(2026, 3).expect("a month");
        let week = Period::Week {
            year: 2026,
            week: 10,
        };
        assert!(OpenPeriods::default().is_empty());
        assert_eq!(*OpenPeriods::of(&[march]), [march]);
        assert_eq!(*OpenPeriods::of(&[march, week]), [march, week]);
        let held: Vec<Period> = OpenPeriods::of(&[march, week]).into_iter().collect();
        assert_eq!(held, [march, week]);
        assert_eq!(OpenPeriods::of(&[march]), OpenPeriods::of(&[march]));
        assert!(std::mem::size_of::<OpenPeriods>() < std::mem::size_of::<Vec<Period>>());
    }

    #[test]
    fn a_weekly_tier_is_measured_per_month_and_per_iso_week() {
        let t = tier("weekly");
        // Thursday 2026-01-01 lies in ISO week 2026-W01, which began on Monday 2025-12-29.
        assert_eq!(
            *periods_at(&t, ts("2026-01-01T12:00:00Z")),
            [
                Period::Month {
                    year: 2026,
                    month: 1
                },
                Period::Week {
                    year: 2026,
                    week: 1
                }
            ]
        );
        let d = tier("daily");
        // 23:30 UTC on 31 March is already 1 April in Amsterdam (CEST).
        assert_eq!(
            periods_at(&d, ts("2026-03-31T22:30:00Z"))[1].to_string(),
            "2026-04-01"
        );
        assert_eq!(
            periods_at(&tier("monthly"), ts("2026-03-31T12:00:00Z")).len(),
            1
        );
    }

    /// A failure from 23:00 local on 31 March until 01:00 local on 1 April (CEST, UTC+2): the
    /// March report closes with one hour down and is final; April starts with the other hour.
    /// Both agree with the offline computation over the same samples.
    #[test]
    fn an_incident_across_the_month_end_is_split_at_local_midnight() {
        let t = tier("monthly");
        let mut h = History::new();
        let samples = [
            ("2026-03-31T20:59:00Z", true),
            ("2026-03-31T21:00:00Z", false),
            ("2026-03-31T21:59:00Z", false),
            ("2026-03-31T22:00:00Z", false),
            ("2026-03-31T23:00:00Z", true),
        ];
        let seen = feed(&mut h, &t, &samples);
        assert!(seen[1].transition && seen[4].transition);
        assert!(!seen[2].closed_period);
        assert!(seen[3].closed_period, "the first April sample closes March");
        let march = Period::Month {
            year: 2026,
            month: 3,
        };
        let april = march.next().unwrap();
        assert_eq!(h.closing_periods(), &[march]);
        assert_eq!(h.open_periods(), &[april]);

        let now = ts("2026-04-01T08:00:00Z");
        let (mb, m) = whole(h.figures(&t, march, now).unwrap());
        assert_eq!(m.down_seconds, 3600, "{m:?}");
        assert_eq!(
            m.window_seconds,
            31 * 86_400 - 3600,
            "March loses an hour to DST"
        );
        assert_eq!(m.incidents.len(), 1);
        assert_eq!(m.incidents[0].end, mb.end, "cut at local midnight");
        assert!(!m.incidents[0].ongoing);
        let (ab, a) = whole(h.figures(&t, april, now).unwrap());
        assert_eq!(a.down_seconds, 3600, "{a:?}");
        assert_eq!(a.incidents[0].start, ab.start);

        let all: Vec<Sample> = samples
            .iter()
            .map(|(at, ok)| Sample {
                at: ts(at),
                success: *ok,
            })
            .collect();
        for (bounds, live) in [(mb, &m), (ab, &a)] {
            let offline = compliance(
                &t,
                bounds,
                &down_intervals(&all, t.probe_interval, bounds.end),
            );
            assert_eq!(offline.down_seconds, live.down_seconds);
            assert_eq!(offline.incidents.len(), live.incidents.len());
        }
        // April's figures so far count up to now only.
        assert_eq!(a.window_seconds, 8 * 3600 + 2 * 3600);

        h.finished(&t, march);
        assert!(h.closing_periods().is_empty());
        // The incident began in March but touches April: it is kept.
        let (_, again) = whole(h.figures(&t, april, now).unwrap());
        assert_eq!(again, a);
    }

    #[test]
    fn an_incident_still_going_at_the_month_end_fills_march_to_its_end() {
        let t = tier("monthly");
        let mut h = History::new();
        feed(
            &mut h,
            &t,
            &[
                ("2026-03-31T21:30:00Z", false),
                ("2026-03-31T22:00:00Z", false),
                ("2026-03-31T22:01:00Z", false),
            ],
        );
        let (b, m) = whole(
            h.figures(
                &t,
                Period::Month {
                    year: 2026,
                    month: 3,
                },
                ts("2026-04-01T00:00:00Z"),
            )
            .unwrap(),
        );
        assert_eq!(m.down_seconds, 1800);
        assert_eq!(m.incidents[0].end, b.end);
    }

    #[test]
    fn weekly_reports_close_on_monday_and_keep_what_the_week_needs() {
        let t = tier("weekly");
        let mut h = History::new();
        // ISO week 2026-W14 runs Monday 30 March to Sunday 5 April: across the month end.
        let seen = feed(
            &mut h,
            &t,
            &[
                ("2026-03-30T08:00:00Z", false),
                ("2026-03-30T09:00:00Z", true),
                ("2026-04-02T08:00:00Z", true),
                ("2026-04-06T08:00:00Z", true),
            ],
        );
        assert!(seen[2].closed_period, "March closes on 2 April");
        assert!(seen[3].closed_period, "W14 closes on Monday 6 April");
        let w14 = Period::Week {
            year: 2026,
            week: 14,
        };
        let march = Period::Month {
            year: 2026,
            month: 3,
        };
        assert_eq!(h.closing_periods(), &[march, w14]);
        h.finished(&t, march);
        // March's incident is still needed by W14's final report.
        let (_, w) = whole(h.figures(&t, w14, ts("2026-04-06T08:00:00Z")).unwrap());
        assert_eq!(w.down_seconds, 3600);
        assert_eq!(w.credit_percent, 0, "credits are monthly");
        assert!(w.met, "one hour in a week is 99.404%: met");
        h.finished(&t, w14);
        assert!(h.closing_periods().is_empty());
        let (_, w15) = whole(
            h.figures(
                &t,
                Period::Week {
                    year: 2026,
                    week: 15,
                },
                ts("2026-04-06T09:00:00Z"),
            )
            .unwrap(),
        );
        assert_eq!(w15.down_seconds, 0);
    }

    /// The wall clock steps back across the end of March after April's first sample closed
    /// March: the samples until it catches up are not taken, and March stays closed.
    #[test]
    fn a_clock_stepped_back_across_a_period_end_does_not_reopen_it() {
        let t = tier("monthly");
        let mut h = History::new();
        let march = Period::month(2026, 3).expect("a month");
        let april = Period::month(2026, 4).expect("a month");
        feed(
            &mut h,
            &t,
            &[
                ("2026-03-31T21:59:00Z", true),
                ("2026-03-31T22:00:30Z", false),
            ],
        );
        assert_eq!(h.closing_periods(), &[march]);
        h.finished(&t, march);
        let stepped = feed(&mut h, &t, &[("2026-03-31T21:59:50Z", true)]);
        assert_eq!(stepped, [Observed::default()]);
        assert_eq!(h.open_periods(), &[april]);
        assert!(h.closing_periods().is_empty());
        assert!(
            h.run().down_since().is_some(),
            "the failure at 22:00:30 goes on"
        );
        // Caught up: the samples count again.
        let seen = feed(&mut h, &t, &[("2026-03-31T22:01:30Z", true)]);
        assert!(seen[0].transition);
        assert_eq!(h.open_periods(), &[april]);
    }

    #[test]
    fn resumed_history_goes_on_with_the_stored_incident() {
        let t = tier("daily");
        let mut h = History::resume(
            &t,
            Some(Sample {
                at: ts("2026-03-02T09:00:00Z"),
                success: false,
            }),
            vec![Interval::new(
                ts("2026-03-02T07:00:00Z"),
                ts("2026-03-02T07:10:00Z"),
            )],
            Some(ts("2026-03-02T08:00:00Z")),
            &[],
            None,
        );
        let seen = feed(&mut h, &t, &[("2026-03-02T09:01:00Z", true)]);
        assert!(seen[0].transition);
        let (_, d) = whole(
            h.figures(
                &t,
                Period::Day(jiff::civil::date(2026, 3, 2)),
                ts("2026-03-02T10:00:00Z"),
            )
            .unwrap(),
        );
        assert_eq!(d.down_seconds, 600 + 3660);
        assert_eq!(d.incidents.len(), 2);
    }

    /// The operator stops at 23:50 local on 31 March (CEST) during an incident that began at
    /// 23:30, with March and the day 31 March open; the first sample after the restart comes
    /// at 00:05 on 1 April. March and the day close with the incident running to midnight (the
    /// last stored outcome holds over the gap, as between any two samples), and April starts
    /// with the five minutes until that sample.
    #[test]
    fn a_restart_across_the_month_end_closes_the_stored_periods() {
        let t = tier("daily");
        let earlier = Interval::new(ts("2026-03-31T08:00:00Z"), ts("2026-03-31T08:10:00Z"));
        let march = Period::Month {
            year: 2026,
            month: 3,
        };
        let day = Period::Day(jiff::civil::date(2026, 3, 31));
        let mut h = History::resume(
            &t,
            Some(Sample {
                at: ts("2026-03-31T21:50:00Z"),
                success: false,
            }),
            vec![earlier],
            Some(ts("2026-03-31T21:30:00Z")),
            &[march, day],
            None,
        );
        assert!(
            h.closing_periods().is_empty(),
            "not ended at the last sample"
        );
        let seen = feed(&mut h, &t, &[("2026-03-31T22:05:00Z", true)]);
        assert!(seen[0].closed_period && seen[0].transition, "{seen:?}");
        assert_eq!(h.closing_periods(), &[march, day]);
        let april = march.next().unwrap();
        let first = Period::Day(jiff::civil::date(2026, 4, 1));
        assert_eq!(h.open_periods(), &[april, first]);

        let now = ts("2026-03-31T22:06:00Z");
        for p in [march, day] {
            let (b, r) = whole(h.figures(&t, p, now).unwrap());
            assert_eq!(r.down_seconds, 600 + 1800, "{p}: {r:?}");
            let last = r.incidents.last().unwrap();
            assert_eq!((last.end, last.ongoing), (b.end, false), "{p}");
        }
        let (_, a) = whole(h.figures(&t, april, now).unwrap());
        assert_eq!(a.down_seconds, 300, "the gap after midnight is down too");
    }

    /// A success last stored: the gap until the period's end counts as up, as it does between
    /// two samples inside a period.
    #[test]
    fn a_restart_after_a_success_closes_the_month_with_the_gap_up() {
        let t = tier("monthly");
        let march = Period::Month {
            year: 2026,
            month: 3,
        };
        let mut h = History::resume(
            &t,
            Some(Sample {
                at: ts("2026-03-31T21:50:00Z"),
                success: true,
            }),
            vec![Interval::new(
                ts("2026-03-31T08:00:00Z"),
                ts("2026-03-31T08:10:00Z"),
            )],
            None,
            &[march],
            None,
        );
        let seen = feed(&mut h, &t, &[("2026-04-01T06:00:00Z", false)]);
        assert!(seen[0].closed_period);
        assert_eq!(h.closing_periods(), &[march]);
        let (_, m) = whole(h.figures(&t, march, ts("2026-04-01T06:01:00Z")).unwrap());
        assert_eq!(m.down_seconds, 600);
    }

    /// The stored last sample is already past an unfinished period's end (the process took it,
    /// then stopped before the final write): that period is closing at once, and the period of
    /// the last sample goes on.
    #[test]
    fn an_unfinished_period_ended_before_the_last_sample_closes_on_resume() {
        let t = tier("monthly");
        let march = Period::Month {
            year: 2026,
            month: 3,
        };
        let h = History::resume(
            &t,
            Some(Sample {
                at: ts("2026-03-31T22:01:00Z"),
                success: true,
            }),
            Vec::new(),
            None,
            &[march],
            None,
        );
        assert_eq!(h.closing_periods(), &[march]);
        assert_eq!(h.open_periods(), &[march.next().unwrap()]);
        // Without a stored sample nothing is known to close.
        let h = History::resume(&t, None, Vec::new(), None, &[march], None);
        assert!(h.closing_periods().is_empty() && h.open_periods().is_empty());
    }

    fn office(name: &str, hours: &str, cadence: &str, target: &str, interval: &str) -> Arc<Tier> {
        Arc::new(
            Tier::from_level(&level(
                name,
                &format!(
                    "  rank: 1\n  serviceHours: [\"{hours}\"]\n  responseTimes: {{urgent: 60m, other: 48h}}\n  kpiReport: {cadence}\n  availability: {{target: \"{target}\"}}\n  probe: {{interval: {interval}, timeout: 5s}}\n  workload: {{minReplicas: 1}}\n  credits: [{{below: \"{target}\", percent: 5}}, {{below: \"97.0\", percent: 10}}]\n"
                ),
            ))
            .unwrap(),
        )
    }

    /// The examples' bronze and silver, as far as they matter here.
    fn bronze_silver() -> (Arc<Tier>, Arc<Tier>) {
        (
            office("bronze", "Mon-Fri 08:00-17:00", "monthly", "99.0", "60s"),
            office("silver", "Mon-Fri 08:00-22:00", "weekly", "99.5", "30s"),
        )
    }

    /// A member moves from bronze to silver on Monday 16 March 2026; the first silver probe runs
    /// at 11:00 local (10:00Z). An outage on Tuesday 10 March 18:00-20:00 local falls outside
    /// bronze's hours and counts for nothing (under silver's hours, re-rated, it was 7,200 s);
    /// one on Tuesday 17 March 18:00-19:00 local falls inside silver's. March has two parts,
    /// each in its own level's hours, target and credits.
    #[test]
    fn a_level_change_splits_the_month_at_the_first_sample_under_the_new_level() {
        let (bronze, silver) = bronze_silver();
        let mut h = History::new();
        feed(
            &mut h,
            &bronze,
            &[
                ("2026-03-02T07:00:00Z", true),
                ("2026-03-10T17:00:00Z", false),
                ("2026-03-10T19:00:00Z", true),
            ],
        );
        let seen = feed(&mut h, &silver, &[("2026-03-16T10:00:00Z", true)]);
        assert!(!seen[0].closed_period && !seen[0].transition);
        feed(
            &mut h,
            &silver,
            &[
                ("2026-03-17T17:00:00Z", false),
                ("2026-03-17T18:00:00Z", true),
            ],
        );
        let march = Period::month(2026, 3).unwrap();
        let end = ts("2026-03-31T22:00:00Z");
        let (bounds, parts) = h.figures(&silver, march, end).unwrap();
        assert_eq!(parts.len(), 2, "{parts:?}");
        let (b, s) = (&parts[0], &parts[1]);
        assert_eq!(b.service_level, "bronze");
        assert_eq!(
            b.result.period,
            Interval::new(bounds.start, ts("2026-03-16T10:00:00Z"))
        );
        // 2-13 March: ten working days of 9 h; Monday 16 March 08:00-11:00.
        assert_eq!(b.result.window_seconds, 10 * 9 * 3600 + 3 * 3600);
        assert_eq!(
            b.result.down_seconds, 0,
            "the evening outage is outside bronze hours"
        );
        assert_eq!(b.result.incidents.len(), 1);
        assert!(!b.result.incidents[0].in_service_hours);
        assert!(b.result.met);
        assert_eq!(b.result.credit_percent, 0);
        assert_eq!(b.result.target, "99.0".parse().unwrap());

        assert_eq!(s.service_level, "silver");
        assert_eq!(
            s.result.period,
            Interval::new(ts("2026-03-16T10:00:00Z"), bounds.end)
        );
        // Monday 16 March 11:00-22:00, then eleven working days of 14 h (across the clock
        // change on 29 March: local hours).
        assert_eq!(s.result.window_seconds, 11 * 3600 + 11 * 14 * 3600);
        assert_eq!(s.result.down_seconds, 3600);
        assert!(!s.result.met, "99.393% is below silver's 99.5%");
        assert_eq!(s.result.credit_percent, 5);
        assert_eq!(s.result.target, "99.5".parse().unwrap());

        // The week of the change is silver's from the change on.
        let w12 = Period::Week {
            year: 2026,
            week: 12,
        };
        assert_eq!(h.open_periods(), &[march, w12]);
        let (_, parts) = h.figures(&silver, w12, ts("2026-03-22T23:00:00Z")).unwrap();
        let week = &parts[0].result;
        assert_eq!(parts.len(), 1, "bronze reports no weeks");
        assert_eq!(week.period.start, ts("2026-03-16T10:00:00Z"));
        assert_eq!(week.down_seconds, 3600);
        assert_eq!(week.credit_percent, 0, "credits are monthly");

        // The change is forgotten once March is finished: April is silver's alone.
        feed(&mut h, &silver, &[("2026-04-01T06:00:00Z", true)]);
        assert_eq!(h.closing_periods(), &[march, w12]);
        let (_, parts) = h.figures(&silver, march, end).unwrap();
        assert_eq!(parts.len(), 2);
        h.finished(&silver, w12);
        h.finished(&silver, march);
        assert_eq!(h.retiered, None);
        let april = march.next().unwrap();
        let (_, a) = whole(
            h.figures(&silver, april, ts("2026-04-01T07:00:00Z"))
                .unwrap(),
        );
        assert_eq!(a.down_seconds, 0);
    }

    /// An outage going on across the change is the old level's up to the first sample under the
    /// new one, and the new level's from there, as `regie sla` cuts the same samples.
    #[test]
    fn an_outage_across_a_level_change_is_cut_at_the_change() {
        let (bronze, silver) = bronze_silver();
        let mut h = History::new();
        feed(&mut h, &bronze, &[("2026-03-16T08:00:00Z", false)]);
        feed(
            &mut h,
            &silver,
            &[
                ("2026-03-16T08:01:30Z", false),
                ("2026-03-16T08:30:00Z", true),
            ],
        );
        let march = Period::month(2026, 3).unwrap();
        let (bounds, parts) = h
            .figures(&silver, march, ts("2026-03-16T09:00:00Z"))
            .unwrap();
        assert_eq!(
            parts[0].result.down_seconds, 90,
            "to the first silver sample"
        );
        assert!(!parts[0].result.incidents[0].ongoing);
        assert_eq!(parts[1].result.down_seconds, 1710);
        let samples: Vec<Sample> = [
            ("2026-03-16T08:00:00Z", false),
            ("2026-03-16T08:01:30Z", false),
            ("2026-03-16T08:30:00Z", true),
        ]
        .iter()
        .map(|(at, ok)| Sample {
            at: ts(at),
            success: *ok,
        })
        .collect();
        let down = down_intervals(&samples, silver.probe_interval, bounds.end);
        let change = ts("2026-03-16T08:01:30Z");
        let offline_bronze = compliance(&bronze, Interval::new(bounds.start, change), &down);
        assert_eq!(offline_bronze.down_seconds, 90);
        let offline_silver = compliance(
            &silver,
            Interval::new(change, ts("2026-03-16T09:00:00Z")),
            &down,
        );
        assert_eq!(offline_silver.down_seconds, parts[1].result.down_seconds);
    }

    /// Silver reports weekly, gold daily: a move on Wednesday leaves the week with silver's part
    /// only, to be reported when the week ends; the day of the change is gold's from the change.
    #[test]
    fn a_week_the_new_level_does_not_report_closes_with_the_old_levels_part() {
        let (_, silver) = bronze_silver();
        let gold = office("gold", "Mon-Sat 08:00-22:00", "daily", "99.9", "10s");
        let mut h = History::new();
        feed(&mut h, &silver, &[("2026-03-16T08:00:00Z", true)]);
        let seen = feed(&mut h, &gold, &[("2026-03-18T09:00:00Z", true)]);
        assert!(!seen[0].closed_period, "the week has not ended");
        let w12 = Period::Week {
            year: 2026,
            week: 12,
        };
        assert_eq!(h.closing_periods(), &[w12]);
        let (bounds, parts) = h.figures(&gold, w12, ts("2026-03-18T10:00:00Z")).unwrap();
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert_eq!(parts[0].service_level, "silver");
        assert_eq!(
            parts[0].result.period,
            Interval::new(bounds.start, ts("2026-03-18T09:00:00Z"))
        );
        let day = Period::Day(jiff::civil::date(2026, 3, 18));
        let (_, parts) = h.figures(&gold, day, ts("2026-03-18T10:00:00Z")).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].service_level, "gold");
        assert_eq!(parts[0].result.period.start, ts("2026-03-18T09:00:00Z"));
        // The week's part ended with the move, and its report says so; the day's runs on.
        let now = ts("2026-03-18T10:00:00Z");
        assert!(h.report_figures(&gold, w12, now).unwrap().ended);
        assert!(!h.report_figures(&gold, day, now).unwrap().ended);
        let march = Period::month(2026, 3).unwrap();
        assert!(!h.report_figures(&gold, march, now).unwrap().ended);
    }

    /// A change first seen after a period ended (at the next period's first sample) leaves the
    /// period whole: its part runs to its end and has not ended within it.
    #[test]
    fn a_change_seen_after_the_period_leaves_it_whole() {
        let (_, silver) = bronze_silver();
        let gold = office("gold", "Mon-Sat 08:00-22:00", "daily", "99.9", "10s");
        let mut h = History::new();
        feed(&mut h, &silver, &[("2026-03-31T20:00:00Z", true)]);
        feed(&mut h, &gold, &[("2026-03-31T22:00:05Z", true)]);
        let march = Period::month(2026, 3).unwrap();
        let f = h
            .report_figures(&gold, march, ts("2026-03-31T22:00:05Z"))
            .unwrap();
        assert_eq!(f.parts.len(), 1, "{f:?}");
        assert_eq!(f.parts[0].result.period.end, f.bounds.end);
        assert!(!f.ended, "{f:?}");
    }

    /// The first sample of April is the first under silver (the level changed overnight, or
    /// while no regie ran): April's first hours were bronze's, and the outage going on since
    /// March is bronze's up to that sample — as `regie sla` cuts the same samples — not in no
    /// part at all.
    #[test]
    fn a_level_change_at_a_periods_first_sample_leaves_the_old_level_its_share() {
        let (bronze, silver) = bronze_silver();
        let mut h = History::new();
        feed(&mut h, &bronze, &[("2026-03-31T21:50:00Z", false)]);
        // Wednesday 1 April 09:00 local.
        let seen = feed(&mut h, &silver, &[("2026-04-01T07:00:00Z", false)]);
        assert!(seen[0].closed_period, "March ended");
        let april = Period::month(2026, 4).unwrap();
        let change = ts("2026-04-01T07:00:00Z");
        let (bounds, parts) = h
            .figures(&silver, april, ts("2026-04-01T08:00:00Z"))
            .unwrap();
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert_eq!(parts[0].service_level, "bronze");
        assert_eq!(parts[0].result.period, Interval::new(bounds.start, change));
        // Bronze's hours begin at 08:00 local: one hour, down.
        assert_eq!(parts[0].result.window_seconds, 3600);
        assert_eq!(parts[0].result.down_seconds, 3600);
        assert_eq!(parts[0].result.credit_percent, 10);
        assert_eq!(parts[1].service_level, "silver");
        assert_eq!(parts[1].result.period.start, change);
        let samples = [
            Sample {
                at: ts("2026-03-31T21:50:00Z"),
                success: false,
            },
            Sample {
                at: change,
                success: false,
            },
        ];
        let down = down_intervals(&samples, silver.probe_interval, bounds.end);
        let offline = compliance(&bronze, Interval::new(bounds.start, change), &down);
        assert_eq!(offline.down_seconds, parts[0].result.down_seconds);
        assert_eq!(offline.window_seconds, parts[0].result.window_seconds);
        // The week silver reports began on Monday under bronze, which reports no weeks.
        let w14 = Period::Week {
            year: 2026,
            week: 14,
        };
        assert_eq!(h.open_periods(), &[april, w14]);
        let (_, parts) = h.figures(&silver, w14, ts("2026-04-01T08:00:00Z")).unwrap();
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert_eq!(parts[0].result.period.start, change);
    }

    /// Silver (weekly) to gold (daily) on Wednesday and back on Thursday: the week is reported
    /// once, open, with silver's two parts and no part of gold's, which reports no weeks;
    /// Thursday's day report has gold's part. The week left early closes at once when it ends.
    #[test]
    fn a_level_changed_and_back_within_a_week_reports_the_week_once() {
        let (_, silver) = bronze_silver();
        let gold = office("gold", "Mon-Sat 08:00-22:00", "daily", "99.9", "10s");
        let mut h = History::new();
        feed(&mut h, &silver, &[("2026-03-16T08:00:00Z", true)]);
        feed(&mut h, &gold, &[("2026-03-18T09:00:00Z", true)]);
        let w12 = Period::Week {
            year: 2026,
            week: 12,
        };
        assert_eq!(h.closing_periods(), &[w12]);
        feed(
            &mut h,
            &gold,
            &[
                ("2026-03-18T23:30:00Z", true),
                ("2026-03-19T10:00:00Z", true),
            ],
        );
        let wednesday = Period::Day(jiff::civil::date(2026, 3, 18));
        let thursday = Period::Day(jiff::civil::date(2026, 3, 19));
        h.finished(&gold, wednesday);
        feed(&mut h, &silver, &[("2026-03-19T12:00:00Z", true)]);
        let march = Period::month(2026, 3).unwrap();
        assert_eq!(h.open_periods(), &[march, w12]);
        assert_eq!(
            h.closing_periods(),
            &[thursday],
            "the week is open, not closing"
        );
        let now = ts("2026-03-19T13:00:00Z");
        let (bounds, parts) = h.figures(&silver, w12, now).unwrap();
        let levels: Vec<&str> = parts.iter().map(|p| p.service_level.as_str()).collect();
        assert_eq!(levels, ["silver", "silver"], "{parts:?}");
        assert_eq!(
            parts[0].result.period,
            Interval::new(bounds.start, ts("2026-03-18T09:00:00Z"))
        );
        assert_eq!(parts[1].result.period.start, ts("2026-03-19T12:00:00Z"));
        let (day, parts) = h.figures(&silver, thursday, now).unwrap();
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert_eq!(parts[0].service_level, "gold");
        assert_eq!(
            parts[0].result.period,
            Interval::new(day.start, ts("2026-03-19T12:00:00Z"))
        );

        // To bronze, which reports monthly, for the rest of the week: the week left early is
        // due its final write when it ends, though no period bronze reports ends there.
        let bronze = bronze_silver().0;
        let mut h = History::new();
        feed(&mut h, &silver, &[("2026-03-16T08:00:00Z", true)]);
        feed(&mut h, &bronze, &[("2026-03-18T09:00:00Z", true)]);
        assert_eq!(h.closing_periods(), &[w12]);
        let sunday = feed(&mut h, &bronze, &[("2026-03-22T22:50:00Z", true)]);
        assert!(!sunday[0].closed_period, "the week goes on");
        let monday = feed(&mut h, &bronze, &[("2026-03-22T23:00:10Z", true)]);
        assert!(monday[0].closed_period, "the week ended");
        let next = feed(&mut h, &bronze, &[("2026-03-22T23:01:10Z", true)]);
        assert!(!next[0].closed_period, "once");
    }

    /// A restart after the change reads both parts back: the stored earlier part as written, the
    /// current one from where it began.
    #[test]
    fn a_resumed_history_keeps_the_parts_before_the_change() {
        let (bronze, silver) = bronze_silver();
        let mut h = History::new();
        feed(&mut h, &bronze, &[("2026-03-02T07:00:00Z", true)]);
        feed(&mut h, &silver, &[("2026-03-16T10:00:00Z", true)]);
        let march = Period::month(2026, 3).unwrap();
        let now = ts("2026-03-16T11:00:00Z");
        let (_, parts) = h.figures(&silver, march, now).unwrap();
        let change = ts("2026-03-16T10:00:00Z");
        let resumed = History::resume(
            &silver,
            Some(Sample {
                at: change,
                success: true,
            }),
            Vec::new(),
            None,
            &[march],
            Some((change, vec![parts[0].clone()])),
        );
        assert_eq!(resumed.figures(&silver, march, now).unwrap().1, parts);
    }
}

//! What the live prober remembers of one component across report periods: its run state, the
//! incidents closed while any of its report periods was open, which periods are being measured
//! (always the calendar month, for credits; besides it the week or day when the component's
//! tier reports at that cadence), and which ended periods still owe their final report.
//!
//! Pure: the operator feeds it samples in time order and asks it for figures; the split at a
//! period's end is decided here, so a test can cross a month end without a cluster.

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
    pub fn resume(
        tier: &Tier,
        last: Option<Sample>,
        closed: Vec<Interval>,
        ongoing: Option<Timestamp>,
        unfinished: &[Period],
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
        let mut history = History {
            run: RunState::resume(last, ongoing),
            closed: super::calendar::merge(closed),
            open,
            closing,
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

    /// Takes the next sample. The periods that do not hold it any more are closed first; the
    /// sample then counts (it may close an incident that began in a closed period, whose final
    /// figures then run to that period's end).
    pub fn observe(&mut self, tier: &Tier, sample: Sample) -> Observed {
        let now_open = periods_at(tier, sample.at);
        let mut closed_period = false;
        for p in std::mem::take(&mut self.open) {
            if now_open.contains(&p) {
                continue;
            }
            // A sample older than the period (clock stepped back) leaves the period open.
            let ended = p.bounds(&tier.time_zone).is_ok_and(|b| b.end <= sample.at);
            if ended && !self.closing.contains(&p) {
                self.closing.push(p);
                closed_period = true;
            }
        }
        self.open = now_open;
        let was_down = self.run.down_since().is_some();
        if let Some(incident) = self.run.observe(sample.at, sample.success) {
            self.closed.push(incident);
        }
        self.prune(tier);
        Observed {
            transition: was_down != self.run.down_since().is_some(),
            closed_period,
        }
    }

    /// The figures of `period` measured up to `now` (its end, once it has ended). Service credits
    /// are monthly: a week's or a day's report shows none.
    pub fn figures(
        &self,
        tier: &Tier,
        period: Period,
        now: Timestamp,
    ) -> Result<(Interval, ComponentResult), PeriodError> {
        let bounds = period.bounds(&tier.time_zone)?;
        let mut result = compliance_live(tier, bounds, &self.closed, &self.run, now);
        if !matches!(period, Period::Month { .. }) {
            result.credit_percent = 0;
        }
        Ok((bounds, result))
    }

    /// The final report of `period` is written: forget it and what only it needed.
    pub fn finished(&mut self, tier: &Tier, period: Period) {
        self.closing.retain(|p| *p != period);
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

    fn tier(cadence: &str) -> Tier {
        Tier::from_level(&level(
            "t",
            &format!(
                "  rank: 1\n  serviceHours: [\"Mon-Sun 00:00-24:00\"]\n  responseTimes: {{urgent: 60m, other: 48h}}\n  kpiReport: {cadence}\n  availability: {{target: \"99.0\"}}\n  probe: {{interval: 60s, timeout: 10s}}\n  workload: {{minReplicas: 1}}\n  credits: [{{below: \"99.0\", percent: 5}}]\n"
            ),
        ))
        .unwrap()
    }

    fn feed(h: &mut History, tier: &Tier, samples: &[(&str, bool)]) -> Vec<Observed> {
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
        let (mb, m) = h.figures(&t, march, now).unwrap();
        assert_eq!(m.down_seconds, 3600, "{m:?}");
        assert_eq!(
            m.window_seconds,
            31 * 86_400 - 3600,
            "March loses an hour to DST"
        );
        assert_eq!(m.incidents.len(), 1);
        assert_eq!(m.incidents[0].end, mb.end, "cut at local midnight");
        assert!(!m.incidents[0].ongoing);
        let (ab, a) = h.figures(&t, april, now).unwrap();
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
        let (_, again) = h.figures(&t, april, now).unwrap();
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
        let (b, m) = h
            .figures(
                &t,
                Period::Month {
                    year: 2026,
                    month: 3,
                },
                ts("2026-04-01T00:00:00Z"),
            )
            .unwrap();
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
        let (_, w) = h.figures(&t, w14, ts("2026-04-06T08:00:00Z")).unwrap();
        assert_eq!(w.down_seconds, 3600);
        assert_eq!(w.credit_percent, 0, "credits are monthly");
        assert!(w.met, "one hour in a week is 99.404%: met");
        h.finished(&t, w14);
        assert!(h.closing_periods().is_empty());
        let (_, w15) = h
            .figures(
                &t,
                Period::Week {
                    year: 2026,
                    week: 15,
                },
                ts("2026-04-06T09:00:00Z"),
            )
            .unwrap();
        assert_eq!(w15.down_seconds, 0);
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
        );
        let seen = feed(&mut h, &t, &[("2026-03-02T09:01:00Z", true)]);
        assert!(seen[0].transition);
        let (_, d) = h
            .figures(
                &t,
                Period::Day(jiff::civil::date(2026, 3, 2)),
                ts("2026-03-02T10:00:00Z"),
            )
            .unwrap();
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
            let (b, r) = h.figures(&t, p, now).unwrap();
            assert_eq!(r.down_seconds, 600 + 1800, "{p}: {r:?}");
            let last = r.incidents.last().unwrap();
            assert_eq!((last.end, last.ongoing), (b.end, false), "{p}");
        }
        let (_, a) = h.figures(&t, april, now).unwrap();
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
        );
        let seen = feed(&mut h, &t, &[("2026-04-01T06:00:00Z", false)]);
        assert!(seen[0].closed_period);
        assert_eq!(h.closing_periods(), &[march]);
        let (_, m) = h.figures(&t, march, ts("2026-04-01T06:01:00Z")).unwrap();
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
        );
        assert_eq!(h.closing_periods(), &[march]);
        assert_eq!(h.open_periods(), &[march.next().unwrap()]);
        // Without a stored sample nothing is known to close.
        let h = History::resume(&t, None, Vec::new(), None, &[march]);
        assert!(h.closing_periods().is_empty() && h.open_periods().is_empty());
    }
}

//! The service-window calendar: which instants a tier's windows (service hours, monitoring) are
//! open, in the tier's local wall-clock time across daylight-saving changes, with public holidays
//! taken out; and the bounds of report periods (calendar month, ISO week, day) in local time.
//!
//! Windows are read day by day in local time and only then turned into instants, so a
//! `Mon-Sun 00:00-24:00` window is 23 hours on the day clocks spring forward and 25 hours on the
//! day they fall back. A local time that does not exist (inside the spring gap) means the first
//! instant after the gap; a local time that exists twice (inside the autumn fold) means the first
//! of the two (jiff's "compatible" rule, as in RFC 5545). Everything here is pure: the caller
//! passes the instants, so tests and the offline CLI agree with the live operator.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, ISOWeekDate, Weekday};
use jiff::tz::TimeZone;
use regie_crds::catalogue::KpiCadence;
use regie_crds::window::{Day, Window};

use crate::tier::Tier;

/// A half-open span of time `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Interval {
    pub fn new(start: Timestamp, end: Timestamp) -> Interval {
        Interval { start, end }
    }

    /// True when no instant lies inside.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Length in nanoseconds; 0 when empty.
    pub fn nanos(&self) -> i128 {
        if self.is_empty() {
            0
        } else {
            self.end.as_nanosecond() - self.start.as_nanosecond()
        }
    }

    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    /// The common part, when there is one.
    pub fn intersect(&self, other: &Interval) -> Option<Interval> {
        let i = Interval::new(self.start.max(other.start), self.end.min(other.end));
        (!i.is_empty()).then_some(i)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// Sorts intervals and merges those that overlap or touch; empty ones are dropped.
pub fn merge(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.retain(|i| !i.is_empty());
    if !intervals.is_sorted_by_key(|i| i.start) {
        intervals.sort_by_key(|i| i.start);
    }
    let mut out: Vec<Interval> = Vec::with_capacity(intervals.len());
    for i in intervals {
        match out.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => out.push(i),
        }
    }
    out
}

/// Total nanoseconds covered by the overlap of two sorted lists of disjoint intervals.
pub fn overlap_nanos(a: &[Interval], b: &[Interval]) -> i128 {
    let (mut i, mut j, mut total) = (0, 0, 0i128);
    while i < a.len() && j < b.len() {
        if let Some(x) = a[i].intersect(&b[j]) {
            total += x.nanos();
        }
        // Whichever ends first cannot overlap anything further in the other list.
        if a[i].end <= b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

/// Total nanoseconds covered by a list of disjoint intervals.
pub fn total_nanos(intervals: &[Interval]) -> i128 {
    intervals.iter().map(Interval::nanos).sum()
}

fn day_of(weekday: Weekday) -> Day {
    Day::ALL[weekday.to_monday_zero_offset() as usize]
}

/// The instant of a local wall-clock time, `minute` minutes after midnight of `date`
/// (1440 is the next midnight). None only at the edges of jiff's supported range.
fn local_instant(tz: &TimeZone, date: Date, minute: u16) -> Option<Timestamp> {
    let dt = if minute >= 24 * 60 {
        date.tomorrow()
            .ok()?
            .to_datetime(jiff::civil::Time::midnight())
    } else {
        let (h, m) = ((minute / 60) as i8, (minute % 60) as i8);
        DateTime::new(date.year(), date.month(), date.day(), h, m, 0, 0).ok()?
    };
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    if let jiff::tz::AmbiguousOffset::Gap { after, .. } = ambiguous.offset() {
        // A wall-clock time the spring change skips: the first instant after the gap, the
        // change itself — read with the later offset, the time lies just before the change,
        // which is the next transition from there. (jiff's "compatible" reading would move
        // 02:30 to 03:30: a window edge at 02:30 would open or close half an hour late.)
        let before_change = after.to_timestamp(dt).ok()?;
        return tz.following(before_change).next().map(|t| t.timestamp());
    }
    ambiguous.compatible().ok()
}

/// Local midnight at the start of `date`.
pub fn local_midnight(tz: &TimeZone, date: Date) -> Option<Timestamp> {
    local_instant(tz, date, 0)
}

/// The sorted, merged intervals inside `[from, to)` during which `windows` are open in `tz`,
/// leaving out the local dates in `holidays`.
///
/// Windows never cross midnight (the window syntax requires end after start, with 24:00 as the
/// end of the day), so each local day is read on its own; adjacent days' windows that touch at
/// midnight merge into one interval, and the result is cut at `from` and `to` — which is how a
/// window running over the end of a month is split between the two months.
pub fn open_intervals(
    windows: &[Window],
    holidays: &[Date],
    tz: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> Vec<Interval> {
    let range = Interval::new(from, to);
    if range.is_empty() || windows.is_empty() {
        return Vec::new();
    }
    let last = tz.to_datetime(to).date();
    let mut day = tz.to_datetime(from).date();
    let mut out = Vec::new();
    loop {
        if !holidays.contains(&day) {
            let weekday = day_of(day.weekday());
            for w in windows.iter().filter(|w| w.covers_day(weekday)) {
                let (Some(s), Some(e)) = (
                    local_instant(tz, day, w.start_minute),
                    local_instant(tz, day, w.end_minute),
                ) else {
                    continue;
                };
                if let Some(i) = Interval::new(s, e).intersect(&range) {
                    out.push(i);
                }
            }
        }
        if day >= last {
            break;
        }
        match day.tomorrow() {
            Ok(d) => day = d,
            Err(_) => break,
        }
    }
    merge(out)
}

/// The tier's service hours inside `range`, holidays excluded.
pub fn service_intervals(tier: &Tier, range: Interval) -> Vec<Interval> {
    open_intervals(
        &tier.service_hours,
        &tier.holidays,
        &tier.time_zone,
        range.start,
        range.end,
    )
}

/// The tier's monitoring windows inside `range`. Holidays only take out service hours: a
/// 24x7-monitored tier is watched on Christmas Day too.
pub fn monitoring_intervals(tier: &Tier, range: Interval) -> Vec<Interval> {
    open_intervals(
        &tier.monitoring,
        &[],
        &tier.time_zone,
        range.start,
        range.end,
    )
}

/// Whether `windows` are open at `at`. Defined through [`open_intervals`] so the gauges and the
/// compliance computation agree to the nanosecond, also inside a daylight-saving gap or fold.
pub fn is_open(windows: &[Window], tz: &TimeZone, at: Timestamp) -> bool {
    is_open_except(windows, &[], tz, at)
}

/// Whether `windows` are open at `at`, holidays excluded.
pub fn is_open_except(windows: &[Window], holidays: &[Date], tz: &TimeZone, at: Timestamp) -> bool {
    let Ok(next) = at.checked_add(jiff::SignedDuration::from_nanos(1)) else {
        return false;
    };
    !open_intervals(windows, holidays, tz, at, next).is_empty()
}

/// Whether the tier's service window is open at `at` (the `regie_sla_in_service_window` gauge).
pub fn in_service_hours(tier: &Tier, at: Timestamp) -> bool {
    is_open_except(&tier.service_hours, &tier.holidays, &tier.time_zone, at)
}

/// Whether the tier's monitoring window is open at `at` (the `regie_sla_in_monitoring_window`
/// gauge): alerts page only then.
pub fn in_monitoring_window(tier: &Tier, at: Timestamp) -> bool {
    is_open(&tier.monitoring, &tier.time_zone, at)
}

/// Why a period could not be read or placed in time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PeriodError(pub String);

/// A report period: a calendar month, an ISO week or a day, in local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    /// `YYYY-MM`.
    Month { year: i16, month: i8 },
    /// `YYYY-Www`, ISO 8601 week (Monday first; week 1 holds the year's first Thursday).
    Week { year: i16, week: i8 },
    /// `YYYY-MM-DD`.
    Day(Date),
}

/// Local midnight at the start of the calendar month to local midnight at the start of the next.
pub fn month_bounds(year: i16, month: i8, tz: &TimeZone) -> Result<Interval, PeriodError> {
    Period::month(year, month)?.bounds(tz)
}

impl Period {
    /// A calendar month, checked.
    pub fn month(year: i16, month: i8) -> Result<Period, PeriodError> {
        Date::new(year, month, 1)
            .map_err(|e| PeriodError(format!("{year:04}-{month:02} is not a month: {e}")))?;
        Ok(Period::Month { year, month })
    }

    /// The period of a KPI cadence that holds `at` in `tz`.
    pub fn containing(cadence: KpiCadence, at: Timestamp, tz: &TimeZone) -> Period {
        let date = tz.to_datetime(at).date();
        match cadence {
            KpiCadence::Monthly => Period::Month {
                year: date.year(),
                month: date.month(),
            },
            KpiCadence::Weekly => {
                let w = date.iso_week_date();
                Period::Week {
                    year: w.year(),
                    week: w.week(),
                }
            }
            KpiCadence::Daily => Period::Day(date),
        }
    }

    /// The first local date of the period.
    pub fn first_day(&self) -> Result<Date, PeriodError> {
        match *self {
            Period::Month { year, month } => Date::new(year, month, 1)
                .map_err(|e| PeriodError(format!("{self} is not a month: {e}"))),
            Period::Week { year, week } => ISOWeekDate::new(year, week, Weekday::Monday)
                .map(|w| w.date())
                .map_err(|e| PeriodError(format!("{self} is not an ISO week: {e}"))),
            Period::Day(d) => Ok(d),
        }
    }

    /// The period that follows this one.
    pub fn next(&self) -> Result<Period, PeriodError> {
        let err = |e: jiff::Error| PeriodError(format!("no period after {self}: {e}"));
        Ok(match *self {
            Period::Month { year, month: 12 } => Period::Month {
                year: year + 1,
                month: 1,
            },
            Period::Month { year, month } => Period::Month {
                year,
                month: month + 1,
            },
            Period::Week { .. } => {
                let d = self
                    .first_day()?
                    .checked_add(jiff::Span::new().days(7))
                    .map_err(err)?;
                let w = d.iso_week_date();
                Period::Week {
                    year: w.year(),
                    week: w.week(),
                }
            }
            Period::Day(d) => Period::Day(d.tomorrow().map_err(err)?),
        })
    }

    /// Local midnight at the start of the period to local midnight at the start of the next.
    pub fn bounds(&self, tz: &TimeZone) -> Result<Interval, PeriodError> {
        let start = self.first_day()?;
        let end = self.next()?.first_day()?;
        let at = |d: Date| {
            local_midnight(tz, d).ok_or_else(|| PeriodError(format!("{self} is out of range")))
        };
        Ok(Interval::new(at(start)?, at(end)?))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            Period::Week { year, week } => write!(f, "{year:04}-W{week:02}"),
            Period::Day(d) => write!(f, "{d}"),
        }
    }
}

impl FromStr for Period {
    type Err = PeriodError;

    /// Reads `YYYY-MM`, `YYYY-Www` or `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            PeriodError(format!(
                "period {s:?} is not YYYY-MM, YYYY-Www or YYYY-MM-DD"
            ))
        };
        let num = |t: &str, len: usize| -> Result<i16, PeriodError> {
            if t.len() != len || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        let parts: Vec<&str> = s.split('-').collect();
        match parts.as_slice() {
            [y, w] if w.starts_with('W') => {
                let (year, week) = (num(y, 4)?, num(&w[1..], 2)?);
                let p = Period::Week {
                    year,
                    week: week as i8,
                };
                p.first_day()?;
                Ok(p)
            }
            [y, m] => {
                let (year, month) = (num(y, 4)?, num(m, 2)?);
                if !(1..=12).contains(&month) {
                    return Err(PeriodError(format!(
                        "period {s:?}: month {month} is not 01 to 12"
                    )));
                }
                Period::month(year, month as i8)
            }
            [_, _, _] => s
                .parse::<Date>()
                .map(Period::Day)
                .map_err(|e| PeriodError(format!("period {s:?} is not a valid date: {e}"))),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn ams() -> TimeZone {
        TimeZone::get("Europe/Amsterdam").expect("bundled tz database")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn windows(list: &[&str]) -> Vec<Window> {
        list.iter()
            .map(|w| w.parse().expect("test window"))
            .collect()
    }

    fn hours(intervals: &[Interval]) -> f64 {
        total_nanos(intervals) as f64 / 3.6e12
    }

    fn day(d: Date) -> (Timestamp, Timestamp) {
        let tz = ams();
        (
            local_midnight(&tz, d).unwrap(),
            local_midnight(&tz, d.tomorrow().unwrap()).unwrap(),
        )
    }

    #[test]
    fn spring_forward_day_is_23_hours_and_autumn_back_is_25() {
        let all = windows(&["Mon-Sun 00:00-24:00"]);
        let (a, b) = day(date(2026, 3, 29));
        let open = open_intervals(&all, &[], &ams(), a, b);
        assert_eq!(
            open,
            vec![Interval::new(
                ts("2026-03-28T23:00:00Z"),
                ts("2026-03-29T22:00:00Z")
            )]
        );
        assert_eq!(hours(&open), 23.0);
        let (a, b) = day(date(2026, 10, 25));
        let open = open_intervals(&all, &[], &ams(), a, b);
        assert_eq!(
            open,
            vec![Interval::new(
                ts("2026-10-24T22:00:00Z"),
                ts("2026-10-25T23:00:00Z")
            )]
        );
        assert_eq!(hours(&open), 25.0);
    }

    #[test]
    fn dst_months_count_local_hours() {
        let tz = ams();
        let all = windows(&["Mon-Sun 00:00-24:00"]);
        let march = month_bounds(2026, 3, &tz).unwrap();
        assert_eq!(march.start, ts("2026-02-28T23:00:00Z"));
        assert_eq!(march.end, ts("2026-03-31T22:00:00Z"));
        assert_eq!(
            hours(&open_intervals(&all, &[], &tz, march.start, march.end)),
            31.0 * 24.0 - 1.0
        );
        let october = month_bounds(2026, 10, &tz).unwrap();
        assert_eq!(
            hours(&open_intervals(&all, &[], &tz, october.start, october.end)),
            31.0 * 24.0 + 1.0
        );
        // Office hours keep their local times on both sides of the change.
        let office = windows(&["Mon-Fri 08:00-17:00"]);
        let open = open_intervals(&office, &[], &tz, march.start, march.end);
        assert_eq!(open.len(), 22, "22 working days in March 2026");
        assert_eq!(
            open[0],
            Interval::new(ts("2026-03-02T07:00:00Z"), ts("2026-03-02T16:00:00Z"))
        );
        assert_eq!(
            open[20],
            Interval::new(ts("2026-03-30T06:00:00Z"), ts("2026-03-30T15:00:00Z"))
        );
        assert_eq!(hours(&open), 22.0 * 9.0);
    }

    #[test]
    fn windows_inside_the_gap_and_the_fold() {
        let tz = ams();
        // 02:00-03:00 does not exist on 29 March: the window is empty that day.
        let w = windows(&["Sun 02:00-03:00"]);
        let (a, b) = day(date(2026, 3, 29));
        assert!(open_intervals(&w, &[], &tz, a, b).is_empty());
        // An edge inside the gap is the first instant after it, 03:00 CEST (01:00 UTC).
        let w = windows(&["Sun 02:30-03:15"]);
        let open = open_intervals(&w, &[], &tz, a, b);
        assert_eq!(
            open,
            vec![Interval::new(
                ts("2026-03-29T01:00:00Z"),
                ts("2026-03-29T01:15:00Z")
            )],
            "15 minutes: 03:00 to 03:15"
        );
        let w = windows(&["Sun 00:00-02:30"]);
        let open = open_intervals(&w, &[], &tz, a, b);
        assert_eq!(
            open[0].end,
            ts("2026-03-29T01:00:00Z"),
            "ends when the clocks jump"
        );
        let w = windows(&["Sun 02:30-08:00"]);
        assert_eq!(
            hours(&open_intervals(&w, &[], &tz, a, b)),
            5.0,
            "03:00-08:00"
        );
        // 01:00-04:00 on 25 October is four real hours (02:00-03:00 happens twice).
        let w = windows(&["Sun 01:00-04:00"]);
        let (a, b) = day(date(2026, 10, 25));
        assert_eq!(hours(&open_intervals(&w, &[], &tz, a, b)), 4.0);
        assert!(is_open(&w, &tz, ts("2026-10-25T00:30:00Z")), "first 02:30");
        assert!(is_open(&w, &tz, ts("2026-10-25T01:30:00Z")), "second 02:30");
        assert!(
            !is_open(&w, &tz, ts("2026-10-25T03:00:00Z")),
            "04:00 CET is the end"
        );
    }

    #[test]
    fn windows_ending_at_midnight_and_crossing_the_month_end() {
        let tz = ams();
        // Tuesday 31 March 2026 20:00 to Wednesday 1 April: evening windows to 24:00, merged over
        // midnight with the next day's window from 00:00.
        let w = windows(&["Mon-Fri 18:00-24:00", "Mon-Fri 00:00-06:00"]);
        let march = month_bounds(2026, 3, &tz).unwrap();
        let april = month_bounds(2026, 4, &tz).unwrap();
        let m = open_intervals(&w, &[], &tz, march.start, march.end);
        let a = open_intervals(&w, &[], &tz, april.start, april.end);
        assert_eq!(
            m.last(),
            Some(&Interval::new(ts("2026-03-31T16:00:00Z"), march.end)),
            "cut at the month end"
        );
        assert_eq!(
            a.first(),
            Some(&Interval::new(april.start, ts("2026-04-01T04:00:00Z"))),
            "goes on in April"
        );
        // Over both months together the window is one piece.
        let both = open_intervals(&w, &[], &tz, march.start, april.end);
        assert!(both.contains(&Interval::new(
            ts("2026-03-31T16:00:00Z"),
            ts("2026-04-01T04:00:00Z")
        )));
        assert_eq!(total_nanos(&both), total_nanos(&m) + total_nanos(&a));
        // A 24:00 end is the next local midnight, also on the autumn day (CET after the change).
        let late = windows(&["Sun 22:00-24:00"]);
        let (a, b) = day(date(2026, 10, 25));
        assert_eq!(
            open_intervals(&late, &[], &tz, a, b),
            vec![Interval::new(
                ts("2026-10-25T21:00:00Z"),
                ts("2026-10-25T23:00:00Z")
            )]
        );
        // A month that starts and ends inside a window: 1 and 31 March 2026 are Sun and Tue.
        let all = windows(&["Mon-Sun 00:00-24:00"]);
        let m = open_intervals(&all, &[], &tz, march.start, march.end);
        assert_eq!(m, vec![march]);
    }

    #[test]
    fn holidays_take_out_whole_local_days() {
        let tz = ams();
        let office = windows(&["Mon-Fri 08:00-17:00"]);
        let april = month_bounds(2026, 4, &tz).unwrap();
        let holidays = [
            date(2026, 4, 3),
            date(2026, 4, 6),
            date(2026, 4, 27),
            date(2026, 4, 5),
        ];
        let with = open_intervals(&office, &holidays, &tz, april.start, april.end);
        let without = open_intervals(&office, &[], &tz, april.start, april.end);
        assert_eq!(without.len(), 22);
        assert_eq!(
            with.len(),
            19,
            "Good Friday, Easter Monday and King's Day are weekdays; Easter Sunday is not"
        );
        assert!(!is_open_except(
            &office,
            &holidays,
            &tz,
            ts("2026-04-27T10:00:00Z")
        ));
        assert!(is_open(&office, &tz, ts("2026-04-27T10:00:00Z")));
    }

    #[test]
    fn is_open_matches_the_intervals_at_the_edges() {
        let tz = ams();
        let office = windows(&["Mon-Fri 08:00-17:00"]);
        assert!(!is_open(&office, &tz, ts("2026-03-02T06:59:59Z")));
        assert!(is_open(&office, &tz, ts("2026-03-02T07:00:00Z")));
        assert!(is_open(&office, &tz, ts("2026-03-02T15:59:59.999Z")));
        assert!(!is_open(&office, &tz, ts("2026-03-02T16:00:00Z")));
        assert!(
            !is_open(&office, &tz, ts("2026-03-07T10:00:00Z")),
            "Saturday"
        );
        assert!(!is_open(&[], &tz, ts("2026-03-02T10:00:00Z")));
    }

    #[test]
    fn periods_parse_print_and_bound() {
        let tz = ams();
        let m: Period = "2026-03".parse().unwrap();
        assert_eq!(m.to_string(), "2026-03");
        assert_eq!(m.next().unwrap().to_string(), "2026-04");
        assert_eq!(
            "2026-12"
                .parse::<Period>()
                .unwrap()
                .next()
                .unwrap()
                .to_string(),
            "2027-01"
        );
        let w: Period = "2026-W14".parse().unwrap();
        let b = w.bounds(&tz).unwrap();
        assert_eq!(
            b.start,
            ts("2026-03-29T22:00:00Z"),
            "Monday 30 March, local midnight"
        );
        assert_eq!(b.end, ts("2026-04-05T22:00:00Z"));
        assert_eq!(
            "2026-W53"
                .parse::<Period>()
                .unwrap()
                .next()
                .unwrap()
                .to_string(),
            "2027-W01"
        );
        assert!(
            "2025-W53".parse::<Period>().is_err(),
            "2025 has 52 ISO weeks"
        );
        let d: Period = "2026-10-25".parse().unwrap();
        let b = d.bounds(&tz).unwrap();
        assert_eq!(b.nanos(), 25 * 3_600_000_000_000);
        for bad in [
            "2026-13",
            "2026-00",
            "26-03",
            "2026-3",
            "2026-02-30",
            "March",
            "2026-W00",
            "",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_for_each_cadence() {
        let tz = ams();
        let at = ts("2026-03-31T22:30:00Z"); // 00:30 on Wednesday 1 April, local
        assert_eq!(
            Period::containing(KpiCadence::Monthly, at, &tz).to_string(),
            "2026-04"
        );
        assert_eq!(
            Period::containing(KpiCadence::Weekly, at, &tz).to_string(),
            "2026-W14"
        );
        assert_eq!(
            Period::containing(KpiCadence::Daily, at, &tz).to_string(),
            "2026-04-01"
        );
        let at = ts("2027-01-01T10:00:00Z"); // a Friday in ISO week 53 of 2026
        assert_eq!(
            Period::containing(KpiCadence::Weekly, at, &tz).to_string(),
            "2026-W53"
        );
    }

    #[test]
    fn merge_and_overlap() {
        let i = |a: &str, b: &str| Interval::new(ts(a), ts(b));
        let m = merge(vec![
            i("2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z"),
            i("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z"),
            i("2026-03-02T10:30:00Z", "2026-03-02T10:45:00Z"),
            i("2026-03-02T12:00:00Z", "2026-03-02T12:00:00Z"),
        ]);
        assert_eq!(m, vec![i("2026-03-02T09:00:00Z", "2026-03-02T11:00:00Z")]);
        let w = [
            i("2026-03-02T07:00:00Z", "2026-03-02T16:00:00Z"),
            i("2026-03-03T07:00:00Z", "2026-03-03T16:00:00Z"),
        ];
        let down = [i("2026-03-02T15:00:00Z", "2026-03-03T08:00:00Z")];
        assert_eq!(overlap_nanos(&w, &down), 2 * 3_600_000_000_000);
    }
}

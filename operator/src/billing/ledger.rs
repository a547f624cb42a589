//! The usage ledger: a tenant's billable timeline as consecutive segments of constant billable
//! state (tier, billed accounts per profile, components), cut whenever something billable
//! changes and at every month boundary in Europe/Amsterdam, so that each segment belongs to
//! exactly one month's `Usage` object.
//!
//! [`record`] is idempotent: recording the state that is already open changes nothing. That is
//! what makes the controller crash-safe: it writes the ledger durably before it reports a change
//! done, and after a restart it simply records the current state again, which can neither lose
//! nor duplicate a segment.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use regie_crds::generated::{Segment, SegmentComponent};
use serde::{Deserialize, Serialize};

use super::period::Month;
use super::proration::Calendar;
use super::{BillingError, local_rfc3339, parse_instant};

/// What is billed at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BillableState {
    pub service_level: String,
    /// Billed accounts per profile (after the package's basis: declared, measured or max).
    pub accounts: BTreeMap<String, i64>,
    /// Measured accounts per profile, where a package has an account source. Not billable by
    /// itself: within a segment the ledger keeps the highest count observed.
    #[serde(default)]
    pub measured_accounts: BTreeMap<String, i64>,
    pub components: Vec<SegmentComponent>,
}

impl BillableState {
    /// The state a segment holds.
    pub fn of_segment(s: &Segment) -> BillableState {
        let mut components = s.components.clone();
        components.sort();
        BillableState {
            service_level: s.service_level.clone(),
            accounts: s.accounts.clone(),
            measured_accounts: s.measured_accounts.clone(),
            components,
        }
    }

    /// Equal in everything that is billed (measured counts are observations, not billing).
    pub fn same_billing(&self, other: &BillableState) -> bool {
        if self.service_level != other.service_level || self.accounts != other.accounts {
            return false;
        }
        let mut a = self.components.clone();
        let mut b = other.components.clone();
        a.sort();
        b.sort();
        a == b
    }

    fn segment(&self, from: Timestamp, cal: &Calendar) -> Segment {
        let mut components = self.components.clone();
        components.sort();
        Segment {
            from: local_rfc3339(from, cal.tz()),
            to: None,
            service_level: self.service_level.clone(),
            accounts: self.accounts.clone(),
            measured_accounts: self.measured_accounts.clone(),
            components,
        }
    }
}

/// A segment with its bounds parsed; `to` is `None` while open.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub from: Timestamp,
    pub to: Option<Timestamp>,
    pub state: BillableState,
}

/// Parses and checks a ledger: ordered, non-overlapping, only the last segment may be open.
pub fn spans(segments: &[Segment], what: &str) -> Result<Vec<Span>, BillingError> {
    Ok(bounds(segments, what)?
        .into_iter()
        .zip(segments)
        .map(|((from, to), s)| Span {
            from,
            to,
            state: BillableState::of_segment(s),
        })
        .collect())
}

/// An instant in the one form the ledger writes ([`local_rfc3339`]: `YYYY-MM-DDTHH:MM:SS±HH:MM`),
/// read without the general parser, about 5% of billing's time: a year of ledgers has
/// 240,000 of them. Anything else, valid or not, is `None` and left to that parser, so the result
/// is always the one it gives.
fn ledger_instant(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() != 25
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[22] != b':'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let (off_hours, off_minutes) = (num(20, 22)?, num(23, 25)?);
    let sign = match b[19] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if year < 1
        || !(1..=month_days).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
        || off_hours > 23
        || off_minutes > 59
    {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date, counted in 400-year eras that
    // begin on 1 March (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let local = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Timestamp::from_second(local - sign * (off_hours * 3_600 + off_minutes * 60)).ok()
}

/// The bounds of a ledger's segments, parsed and checked as [`spans`] does, without copying
/// their states: billing reads a year of ledgers and needs only to borrow them.
pub fn bounds(
    segments: &[Segment],
    what: &str,
) -> Result<Vec<(Timestamp, Option<Timestamp>)>, BillingError> {
    let mut out: Vec<(Timestamp, Option<Timestamp>)> = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        // The field's name is only spelled out for an error: a year of ledgers has 120,000 times.
        let from = match ledger_instant(&s.from) {
            Some(t) => t,
            None => s.from.parse::<Timestamp>().or_else(|_| {
                parse_instant(&s.from, &format!("{what}: status.segments[{i}].from"))
            })?,
        };
        let to = match &s.to {
            Some(t) => Some(match ledger_instant(t) {
                Some(t) => t,
                None => t
                    .parse::<Timestamp>()
                    .or_else(|_| parse_instant(t, &format!("{what}: status.segments[{i}].to")))?,
            }),
            None => None,
        };
        if let Some(t) = to
            && t < from
        {
            return Err(BillingError::input(format!(
                "{what}: status.segments[{i}] ends ({}) before it starts ({})",
                s.to.as_deref().unwrap_or(""),
                s.from
            )));
        }
        if let Some(&(_, prev_to)) = out.last() {
            match prev_to {
                None => {
                    return Err(BillingError::input(format!(
                        "{what}: status.segments[{}] is open but is not the last segment",
                        i - 1
                    )));
                }
                Some(pt) if pt > from => {
                    return Err(BillingError::input(format!(
                        "{what}: status.segments[{i}] starts at {} before the previous segment ends",
                        s.from
                    )));
                }
                _ => {}
            }
        }
        out.push((from, to));
    }
    Ok(out)
}

/// Records the billable state at `at`. Closes the open segment and opens a new one only when
/// something billable changed; cuts the open segment at every month boundary it has crossed.
/// Returns whether the ledger changed (and so must be written).
pub fn record(
    segments: &mut Vec<Segment>,
    state: &BillableState,
    at: Timestamp,
    cal: &Calendar,
) -> Result<bool, BillingError> {
    let parsed = spans(segments, "ledger")?;
    let Some(last) = parsed.last() else {
        segments.push(state.segment(at, cal));
        return Ok(true);
    };
    if let Some(end) = last.to {
        // Closed (the tenant left); a later state reopens it without overlapping the past.
        segments.push(state.segment(end.max(at), cal));
        return Ok(true);
    }
    // A clock behind the ledger never makes segments overlap: the change counts from the open
    // segment's start.
    let at = at.max(last.from);
    let mut changed = cut_months(segments, last.from, at, cal)?;
    let open_index = segments.len() - 1;
    let open = &mut segments[open_index];
    let open_state = BillableState::of_segment(open);
    if open_state.same_billing(state) {
        for (profile, count) in &state.measured_accounts {
            let entry = open
                .measured_accounts
                .entry(profile.clone())
                .or_insert(*count);
            if *count > *entry {
                *entry = *count;
                changed = true;
            } else if !open_state.measured_accounts.contains_key(profile) {
                changed = true;
            }
        }
        return Ok(changed);
    }
    let open_from = parse_instant(&open.from, "ledger: open segment")?;
    if open_from == at {
        // Changed at the very instant the segment began: no zero-length segment, just the state.
        let from = open.from.clone();
        *open = state.segment(at, cal);
        open.from = from;
    } else {
        open.to = Some(local_rfc3339(at, cal.tz()));
        segments.push(state.segment(at, cal));
    }
    Ok(true)
}

/// `state` with the components named in `stalled` — those regie cannot reconcile (a level no
/// ServiceLevel has, a spec it refuses) — billed as the ledger's open segment last recorded
/// them: whatever of them ran still runs as it was, since regie leaves a stalled component's
/// workload alone. One the open segment does not hold ran never (or not since the ledger was
/// closed) and is not billed. Recorded as written instead, a mistyped level would enter the
/// ledger, and no PriceList prices a level it does not know: the month could not be invoiced.
pub fn with_stalled_as_recorded(
    state: &BillableState,
    segments: &[Segment],
    stalled: &BTreeSet<String>,
) -> BillableState {
    if stalled.is_empty() {
        return state.clone();
    }
    let open = segments.last().filter(|s| s.to.is_none());
    let mut components: Vec<SegmentComponent> = state
        .components
        .iter()
        .filter(|c| !stalled.contains(&c.name))
        .cloned()
        .collect();
    components.extend(
        open.iter()
            .flat_map(|s| s.components.iter())
            .filter(|c| stalled.contains(&c.name))
            .cloned(),
    );
    components.sort();
    BillableState {
        components,
        ..state.clone()
    }
}

/// Closes the open segment at `at` (offboarding); cuts at month boundaries on the way.
/// Returns whether the ledger changed.
pub fn close(
    segments: &mut Vec<Segment>,
    at: Timestamp,
    cal: &Calendar,
) -> Result<bool, BillingError> {
    let parsed = spans(segments, "ledger")?;
    let Some(last) = parsed.last() else {
        return Ok(false);
    };
    if last.to.is_some() {
        return Ok(false);
    }
    let at = at.max(last.from);
    cut_months(segments, last.from, at, cal)?;
    let i = segments.len() - 1;
    let from = parse_instant(&segments[i].from, "ledger: open segment")?;
    if from == at {
        segments.pop();
    } else {
        segments[i].to = Some(local_rfc3339(at, cal.tz()));
    }
    Ok(true)
}

/// Ends the ledger at `at` (offboarding): what it holds from `at` on is taken off, and its open
/// segment, if any, is closed at `at` (cut at month boundaries on the way). Something recorded
/// after the deletion came from a reconcile that read the tenant before it was deleted — one
/// that recorded past a month's end, say, closing the month at its end and opening the next —
/// and would bill the tenant on after it left. Returns whether the ledger changed.
pub fn end_at(
    segments: &mut Vec<Segment>,
    at: Timestamp,
    cal: &Calendar,
) -> Result<bool, BillingError> {
    let parsed = bounds(segments, "ledger")?;
    let kept = parsed.iter().take_while(|(from, _)| *from < at).count();
    let mut changed = kept < segments.len();
    segments.truncate(kept);
    if let Some((_, Some(to))) = kept.checked_sub(1).map(|i| parsed[i])
        && to > at
    {
        segments[kept - 1].to = Some(local_rfc3339(at, cal.tz()));
        changed = true;
    }
    Ok(close(segments, at, cal)? || changed)
}

/// The state a month starts with, read from the previous month's ledger: its open segment, or
/// its last segment when that was closed exactly at `month_start`.
///
/// A month is opened in two writes: the previous month closed at the boundary, then the new
/// month with the carried state. When the second does not land (an API error, a stop, another
/// replica in between), the next attempt finds the previous month already closed; without the
/// second case it would start the month at its own clock and the month's first moments would go
/// unbilled. (A tenant that leaves exactly at a month's first instant has that month's ledger
/// closed with nothing in it, which metering does not carry into when the tenant comes back.)
pub fn carried_state(segments: &[Segment], month_start: Timestamp) -> Option<BillableState> {
    let last = segments.last()?;
    let carried = match &last.to {
        None => true,
        Some(to) => parse_instant(to, "ledger: last segment").ok() == Some(month_start),
    };
    carried.then(|| BillableState::of_segment(last))
}

/// Closes the open segment (which began at `from`) at each month start up to `at` and reopens
/// it there, so no segment spans two months.
fn cut_months(
    segments: &mut Vec<Segment>,
    from: Timestamp,
    at: Timestamp,
    cal: &Calendar,
) -> Result<bool, BillingError> {
    let mut m = cal.month_of(from);
    let target = cal.month_of(at);
    let mut changed = false;
    while m < target {
        let (_, end) = cal.month_bounds(m)?;
        let i = segments.len() - 1;
        let mut next = segments[i].clone();
        segments[i].to = Some(local_rfc3339(end, cal.tz()));
        next.from = local_rfc3339(end, cal.tz());
        next.to = None;
        segments.push(next);
        changed = true;
        m = m.next();
    }
    Ok(changed)
}

/// Cuts segments at month boundaries and groups them by month: one `Usage` object each.
/// An open segment stays open in the month it started in.
pub fn split_by_month(
    segments: &[Segment],
    cal: &Calendar,
) -> Result<BTreeMap<Month, Vec<Segment>>, BillingError> {
    let mut out: BTreeMap<Month, Vec<Segment>> = BTreeMap::new();
    for span in spans(segments, "ledger")? {
        let Some(to) = span.to else {
            let m = cal.month_of(span.from);
            out.entry(m)
                .or_default()
                .push(span.state.segment(span.from, cal));
            continue;
        };
        for (m, a, b) in cal.month_pieces(span.from, to)? {
            let mut s = span.state.segment(a, cal);
            s.to = Some(local_rfc3339(b, cal.tz()));
            out.entry(m).or_default().push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regie_crds::tenancy::ComponentClass;

    fn cal() -> Calendar {
        Calendar::amsterdam().unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn ledger_instants_read_as_the_general_parser_reads_them() {
        let offsets = [
            jiff::tz::Offset::from_seconds(3_600).unwrap(),
            jiff::tz::Offset::from_seconds(7_200).unwrap(),
            jiff::tz::Offset::from_seconds(-(5 * 3_600 + 30 * 60)).unwrap(),
            jiff::tz::Offset::UTC,
        ];
        let tz = cal();
        // Every 7 h 13 min 17 s from 1899 to 2101, in fixed offsets and in Amsterdam's.
        let mut t = ts("1899-02-27T21:13:07Z");
        let end = ts("2101-03-01T00:00:00Z");
        while t < end {
            for text in offsets
                .iter()
                .map(|o| t.display_with_offset(*o).to_string())
                .chain([local_rfc3339(t, tz.tz())])
            {
                assert_eq!(ledger_instant(&text), Some(text.parse().unwrap()), "{text}");
            }
            t = t
                .checked_add(jiff::SignedDuration::from_secs(26_017))
                .unwrap();
        }
        for other in [
            "2026-02-29T00:00:00+01:00",
            "2026-13-01T00:00:00+01:00",
            "2026-03-01T24:00:00+01:00",
            "2026-03-01T00:00:60+01:00",
            "2026-03-01T00:00:00Z",
            "2026-03-01T00:00:00.5+01:00",
            "2026-03-01 00:00:00+01:00",
            "2026-03-01T00:00:00+1:000",
            "+026-03-01T00:00:00+01:00",
        ] {
            assert_eq!(ledger_instant(other), None, "{other}");
        }
    }

    #[test]
    fn a_stalled_component_is_billed_as_last_recorded_or_not_at_all() {
        let cal = cal();
        let component = |name: &str, level: &str| SegmentComponent {
            name: name.into(),
            class: ComponentClass::ApplicationHosting,
            service_level: level.into(),
        };
        let mut segments = Vec::new();
        let mut running = state("silver", 310);
        running.components.push(component("website", "gold"));
        record(&mut segments, &running, ts("2026-03-02T09:00:00Z"), &cal).unwrap();
        // website's level mistyped, and a new component whose spec regie refuses.
        let mut asked = state("silver", 310);
        asked.components.push(component("website", "platinum"));
        asked.components.push(component("2fa", "silver"));
        let stalled = BTreeSet::from(["website".to_string(), "2fa".to_string()]);
        let billed = with_stalled_as_recorded(&asked, &segments, &stalled);
        assert!(billed.same_billing(&running), "{billed:?}");
        assert!(
            !record(&mut segments, &billed, ts("2026-03-02T10:00:00Z"), &cal).unwrap(),
            "nothing billable changed"
        );
        // Nothing stalled: the state as asked.
        assert_eq!(
            with_stalled_as_recorded(&asked, &segments, &BTreeSet::new()),
            asked
        );
        // A closed ledger (the tenant left) holds nothing that still runs.
        close(&mut segments, ts("2026-03-03T00:00:00Z"), &cal).unwrap();
        let billed = with_stalled_as_recorded(&asked, &segments, &stalled);
        assert_eq!(billed.components, state("silver", 310).components);
    }

    fn state(level: &str, standard: i64) -> BillableState {
        BillableState {
            service_level: level.into(),
            accounts: BTreeMap::from([("standard".to_string(), standard)]),
            measured_accounts: BTreeMap::new(),
            components: vec![SegmentComponent {
                name: "zaaksysteem".into(),
                class: ComponentClass::ApplicationHosting,
                service_level: level.into(),
            }],
        }
    }

    #[test]
    fn recording_the_same_state_twice_changes_nothing() {
        let c = cal();
        let mut l = Vec::new();
        assert!(
            record(
                &mut l,
                &state("silver", 620),
                ts("2026-03-02T08:00:00Z"),
                &c
            )
            .unwrap()
        );
        let before = l.clone();
        // A restart re-records the current state: no new segment.
        assert!(
            !record(
                &mut l,
                &state("silver", 620),
                ts("2026-03-05T10:00:00Z"),
                &c
            )
            .unwrap()
        );
        assert!(
            !record(
                &mut l,
                &state("silver", 620),
                ts("2026-03-05T10:00:00Z"),
                &c
            )
            .unwrap()
        );
        assert_eq!(l, before);
        assert_eq!(l[0].from, "2026-03-02T09:00:00+01:00");
    }

    #[test]
    fn a_billable_change_closes_and_opens() {
        let c = cal();
        let mut l = Vec::new();
        record(
            &mut l,
            &state("silver", 620),
            ts("2026-03-02T08:00:00Z"),
            &c,
        )
        .unwrap();
        assert!(record(&mut l, &state("gold", 620), ts("2026-03-10T12:00:00Z"), &c).unwrap());
        assert!(record(&mut l, &state("gold", 600), ts("2026-03-20T12:00:00Z"), &c).unwrap());
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].to.as_deref(), Some("2026-03-10T13:00:00+01:00"));
        assert_eq!(l[1].from, "2026-03-10T13:00:00+01:00");
        assert_eq!(l[1].service_level, "gold");
        assert_eq!(l[2].accounts["standard"], 600);
        assert!(l[2].to.is_none());
        // The same change recorded again after a crash: nothing new.
        assert!(!record(&mut l, &state("gold", 600), ts("2026-03-20T12:00:00Z"), &c).unwrap());
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn component_order_is_not_a_change() {
        let c = cal();
        let mut s = state("silver", 10);
        s.components.push(SegmentComponent {
            name: "api".into(),
            class: ComponentClass::SystemIntegration,
            service_level: "gold".into(),
        });
        let mut l = Vec::new();
        record(&mut l, &s, ts("2026-03-02T08:00:00Z"), &c).unwrap();
        s.components.reverse();
        assert!(!record(&mut l, &s, ts("2026-03-03T08:00:00Z"), &c).unwrap());
    }

    #[test]
    fn measured_counts_keep_the_peak_without_new_segments() {
        let c = cal();
        let mut s = state("silver", 310);
        s.measured_accounts.insert("standard".into(), 300);
        let mut l = Vec::new();
        record(&mut l, &s, ts("2026-03-02T08:00:00Z"), &c).unwrap();
        s.measured_accounts.insert("standard".into(), 305);
        assert!(record(&mut l, &s, ts("2026-03-03T08:00:00Z"), &c).unwrap());
        s.measured_accounts.insert("standard".into(), 290);
        assert!(!record(&mut l, &s, ts("2026-03-04T08:00:00Z"), &c).unwrap());
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].measured_accounts["standard"], 305);
    }

    #[test]
    fn segments_are_cut_at_month_boundaries_in_amsterdam() {
        let c = cal();
        let mut l = Vec::new();
        record(
            &mut l,
            &state("silver", 620),
            ts("2026-02-20T08:00:00Z"),
            &c,
        )
        .unwrap();
        // Nothing changed, but two month boundaries passed: the ledger is cut at each.
        assert!(
            record(
                &mut l,
                &state("silver", 620),
                ts("2026-04-02T08:00:00Z"),
                &c
            )
            .unwrap()
        );
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].to.as_deref(), Some("2026-03-01T00:00:00+01:00"));
        assert_eq!(l[1].from, "2026-03-01T00:00:00+01:00");
        assert_eq!(l[1].to.as_deref(), Some("2026-04-01T00:00:00+02:00"));
        assert!(l[2].to.is_none());
        let by_month = split_by_month(&l, &c).unwrap();
        assert_eq!(by_month.len(), 3);
        assert_eq!(by_month[&Month::new(2026, 3)].len(), 1);
    }

    #[test]
    fn split_by_month_cuts_long_closed_segments() {
        let c = cal();
        let mut l = Vec::new();
        record(
            &mut l,
            &state("silver", 620),
            ts("2026-01-15T08:00:00Z"),
            &c,
        )
        .unwrap();
        // Build a long closed segment by hand, as an older ledger might hold.
        l[0].to = Some("2026-03-15T00:00:00+01:00".into());
        let by_month = split_by_month(&l, &c).unwrap();
        assert_eq!(
            by_month.keys().map(ToString::to_string).collect::<Vec<_>>(),
            ["2026-01", "2026-02", "2026-03"]
        );
        assert_eq!(
            by_month[&Month::new(2026, 2)][0].from,
            "2026-02-01T00:00:00+01:00"
        );
    }

    #[test]
    fn close_ends_the_open_segment_once() {
        let c = cal();
        let mut l = Vec::new();
        record(
            &mut l,
            &state("bronze", 210),
            ts("2026-03-02T08:00:00Z"),
            &c,
        )
        .unwrap();
        assert!(close(&mut l, ts("2026-03-31T10:00:00Z"), &c).unwrap());
        assert!(
            !close(&mut l, ts("2026-03-31T11:00:00Z"), &c).unwrap(),
            "closing twice is a no-op"
        );
        assert_eq!(l[0].to.as_deref(), Some("2026-03-31T12:00:00+02:00"));
        assert!(l.iter().all(|s| s.to.is_some()));
    }

    /// Deleted at 23:59:50 on 30 April, while a reconcile that had read the tenant before
    /// recorded a change at 23:59:55 and, at 00:00:05, closed April at its end and opened May:
    /// ending both at the deletion leaves April ending there and May empty.
    #[test]
    fn ending_at_a_deletion_takes_off_what_was_recorded_after_it() {
        let c = cal();
        let deleted = ts("2026-04-30T21:59:50Z");
        let may = ts("2026-04-30T22:00:00Z");
        let mut april = Vec::new();
        record(
            &mut april,
            &state("silver", 120),
            ts("2026-04-01T00:00:05Z"),
            &c,
        )
        .unwrap();
        record(
            &mut april,
            &state("gold", 120),
            ts("2026-04-30T21:59:55Z"),
            &c,
        )
        .unwrap();
        let mut opened = Vec::new();
        record(&mut opened, &state("gold", 120), may, &c).unwrap();
        assert!(close(&mut april, may, &c).unwrap());
        assert_eq!(april.len(), 2);
        assert!(end_at(&mut april, deleted, &c).unwrap());
        assert_eq!(april.len(), 1, "{april:#?}");
        assert_eq!(april[0].service_level, "silver");
        assert_eq!(april[0].to.as_deref(), Some("2026-04-30T23:59:50+02:00"));
        assert_eq!(
            carried_state(&april, may),
            None,
            "April ends in a departure"
        );
        assert!(end_at(&mut opened, deleted, &c).unwrap());
        assert!(opened.is_empty(), "{opened:#?}");
        // Again: nothing changes.
        assert!(!end_at(&mut april, deleted, &c).unwrap());
        assert!(!end_at(&mut opened, deleted, &c).unwrap());
        // A segment running past the deletion, closed, is cut at it; an open one closed there.
        let mut closed_late = Vec::new();
        record(
            &mut closed_late,
            &state("silver", 120),
            ts("2026-04-01T00:00:05Z"),
            &c,
        )
        .unwrap();
        let mut open = closed_late.clone();
        close(&mut closed_late, may, &c).unwrap();
        for l in [&mut closed_late, &mut open] {
            assert!(end_at(l, deleted, &c).unwrap());
            assert_eq!(l.len(), 1);
            assert_eq!(l[0].to.as_deref(), Some("2026-04-30T23:59:50+02:00"));
        }
    }

    #[test]
    fn a_month_carries_the_state_open_or_closed_at_its_start() {
        let c = cal();
        let may = ts("2026-04-30T22:00:00Z");
        let mut april = Vec::new();
        record(
            &mut april,
            &state("silver", 120),
            ts("2026-04-01T00:00:05Z"),
            &c,
        )
        .unwrap();
        assert_eq!(carried_state(&april, may), Some(state("silver", 120)));
        // The boundary close landed, the new month did not: the next attempt still carries.
        assert!(close(&mut april, may, &c).unwrap());
        assert_eq!(april[0].to.as_deref(), Some("2026-05-01T00:00:00+02:00"));
        assert_eq!(carried_state(&april, may), Some(state("silver", 120)));
        // A tenant that left before the month began carries nothing.
        let mut left = Vec::new();
        record(
            &mut left,
            &state("silver", 120),
            ts("2026-04-01T00:00:05Z"),
            &c,
        )
        .unwrap();
        close(&mut left, ts("2026-04-20T10:00:00Z"), &c).unwrap();
        assert_eq!(carried_state(&left, may), None);
        assert_eq!(carried_state(&[], may), None);
    }

    #[test]
    fn a_clock_behind_the_ledger_never_overlaps() {
        let c = cal();
        let mut l = Vec::new();
        record(
            &mut l,
            &state("bronze", 210),
            ts("2026-03-10T08:00:00Z"),
            &c,
        )
        .unwrap();
        record(
            &mut l,
            &state("silver", 210),
            ts("2026-03-09T08:00:00Z"),
            &c,
        )
        .unwrap();
        assert_eq!(
            l.len(),
            1,
            "a change at or before the start replaces the open state"
        );
        assert_eq!(l[0].service_level, "silver");
        assert!(spans(&l, "t").is_ok());
    }

    #[test]
    fn broken_ledgers_are_refused_with_the_field() {
        let c = cal();
        let mut l = Vec::new();
        record(
            &mut l,
            &state("bronze", 210),
            ts("2026-03-10T08:00:00Z"),
            &c,
        )
        .unwrap();
        l.push(l[0].clone());
        let e = spans(&l, "Usage/tholen-2026-03").unwrap_err().to_string();
        assert!(
            e.contains("Usage/tholen-2026-03: status.segments[0] is open"),
            "{e}"
        );
        l[0].from = "yesterday".into();
        let e = spans(&l, "Usage/x").unwrap_err().to_string();
        assert!(e.contains("status.segments[0].from"), "{e}");
    }
}

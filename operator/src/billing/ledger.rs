//! The usage ledger: a tenant's billable timeline as consecutive segments of constant billable
//! state (tier, billed accounts per profile, components), cut whenever something billable
//! changes and at every month boundary in Europe/Amsterdam, so that each segment belongs to
//! exactly one month's `Usage` object.
//!
//! [`record`] is idempotent: recording the state that is already open changes nothing. That is
//! what makes the controller crash-safe: it writes the ledger durably before it reports a change
//! done, and after a restart it simply records the current state again, which can neither lose
//! nor duplicate a segment.

use std::collections::BTreeMap;

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

/// The bounds of a ledger's segments, parsed and checked as [`spans`] does, without copying
/// their states: billing reads a year of ledgers and needs only to borrow them.
pub fn bounds(
    segments: &[Segment],
    what: &str,
) -> Result<Vec<(Timestamp, Option<Timestamp>)>, BillingError> {
    let mut out: Vec<(Timestamp, Option<Timestamp>)> = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        // The field's name is only spelled out for an error: a year of ledgers has 120,000 times.
        let from = s
            .from
            .parse::<Timestamp>()
            .or_else(|_| parse_instant(&s.from, &format!("{what}: status.segments[{i}].from")))?;
        let to = match &s.to {
            Some(t) => Some(
                t.parse::<Timestamp>()
                    .or_else(|_| parse_instant(t, &format!("{what}: status.segments[{i}].to")))?,
            ),
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

/// The state of the open segment, if any.
pub fn open_state(segments: &[Segment]) -> Option<BillableState> {
    segments
        .last()
        .filter(|s| s.to.is_none())
        .map(BillableState::of_segment)
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
        assert!(open_state(&l).is_none());
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

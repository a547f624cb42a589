//! Proration exact to the second: a monthly rate is charged for the share of the calendar
//! month's seconds that a stretch covers, a yearly rate for the share of the calendar year's
//! seconds, both in Europe/Amsterdam — so March 2026 has 743 hours and October 2026 745, and a
//! stretch in either is charged against its own month's length, not a nominal 30 days.
//!
//! Nothing is rounded here: the fractions stay exact decimals (28 significant digits) until an
//! invoice line is rounded half-up to cents.

use std::sync::Mutex;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use regie_crds::commercial::RatePer;
use rust_decimal::Decimal;

use super::BillingError;
use super::period::Month;

/// Calendar arithmetic in one time zone, with month boundaries remembered: billing a year of
/// ten segments a month asks for the same boundaries hundreds of thousands of times.
#[derive(Debug)]
pub struct Calendar {
    tz: TimeZone,
    /// Bounds by months since January 1970; filled as asked.
    bounds: Mutex<Vec<Option<(Timestamp, Timestamp)>>>,
}

impl Clone for Calendar {
    fn clone(&self) -> Self {
        Calendar::new(self.tz.clone())
    }
}

impl Calendar {
    pub fn new(tz: TimeZone) -> Calendar {
        Calendar {
            tz,
            bounds: Mutex::new(Vec::new()),
        }
    }

    /// The Europe/Amsterdam calendar.
    pub fn amsterdam() -> Result<Calendar, BillingError> {
        Ok(Calendar::new(super::amsterdam()?))
    }

    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// First instant of the month and first instant after it.
    pub fn month_bounds(&self, m: Month) -> Result<(Timestamp, Timestamp), BillingError> {
        let index = (i64::from(m.year) - 1970) * 12 + i64::from(m.month) - 1;
        let slot = usize::try_from(index).ok().filter(|i| *i < 12 * 500);
        if let (Some(i), Ok(cache)) = (slot, self.bounds.lock())
            && let Some(Some(b)) = cache.get(i)
        {
            return Ok(*b);
        }
        let b = (m.start(&self.tz)?, m.end(&self.tz)?);
        if let (Some(i), Ok(mut cache)) = (slot, self.bounds.lock()) {
            if cache.len() <= i {
                cache.resize(i + 1, None);
            }
            cache[i] = Some(b);
        }
        Ok(b)
    }

    pub fn month_of(&self, t: Timestamp) -> Month {
        Month::of(t, &self.tz)
    }

    /// Seconds in a calendar month (743 × 3600 for March 2026 in Amsterdam).
    pub fn month_seconds(&self, m: Month) -> Result<i64, BillingError> {
        let (a, b) = self.month_bounds(m)?;
        Ok(b.as_second() - a.as_second())
    }

    /// Seconds in a calendar year.
    pub fn year_seconds(&self, year: i16) -> Result<i64, BillingError> {
        let (a, _) = self.month_bounds(Month::new(year, 1))?;
        let (_, b) = self.month_bounds(Month::new(year, 12))?;
        Ok(b.as_second() - a.as_second())
    }

    /// `[from, to)` cut at month boundaries: (month, piece start, piece end), in order.
    pub fn month_pieces(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(Month, Timestamp, Timestamp)>, BillingError> {
        let mut out = Vec::new();
        if to <= from {
            return Ok(out);
        }
        let mut m = self.month_of(from);
        let mut at = from;
        while at < to {
            let (_, end) = self.month_bounds(m)?;
            let piece_end = end.min(to);
            out.push((m, at, piece_end));
            at = piece_end;
            m = m.next();
        }
        Ok(out)
    }

    /// The share of its calendar month or year that a piece covers; the piece must lie in `m`.
    pub fn fraction(
        &self,
        per: RatePer,
        m: Month,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Decimal, BillingError> {
        let secs = to.as_second() - from.as_second();
        let den = match per {
            RatePer::Month => self.month_seconds(m)?,
            RatePer::Year => self.year_seconds(m.year)?,
            RatePer::Hour => 3600,
        };
        if den <= 0 {
            return Err(BillingError::input(format!("{m} has no length")));
        }
        Ok(Decimal::from(secs) / Decimal::from(den))
    }

    /// `rate` per month, year or hour over `[from, to)`, unrounded.
    pub fn prorate(
        &self,
        rate: Decimal,
        per: RatePer,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Decimal, BillingError> {
        let mut total = Decimal::ZERO;
        for (m, a, b) in self.month_pieces(from, to)? {
            // Multiply before dividing: a whole month then comes out exactly as the rate.
            let secs = Decimal::from(b.as_second() - a.as_second());
            let den = match per {
                RatePer::Month => self.month_seconds(m)?,
                RatePer::Year => self.year_seconds(m.year)?,
                RatePer::Hour => 3600,
            };
            total += rate * secs / Decimal::from(den);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::round_cents;

    fn cal() -> Calendar {
        Calendar::amsterdam().unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn daylight_saving_months_have_743_and_745_hours() {
        let c = cal();
        assert_eq!(c.month_seconds(Month::new(2026, 3)).unwrap(), 743 * 3600);
        assert_eq!(c.month_seconds(Month::new(2026, 10)).unwrap(), 745 * 3600);
        assert_eq!(c.month_seconds(Month::new(2026, 4)).unwrap(), 720 * 3600);
        assert_eq!(c.year_seconds(2026).unwrap(), 365 * 86400);
        assert_eq!(c.year_seconds(2028).unwrap(), 366 * 86400);
    }

    #[test]
    fn a_whole_month_costs_exactly_the_monthly_rate() {
        let c = cal();
        let (a, b) = c.month_bounds(Month::new(2026, 3)).unwrap();
        assert_eq!(
            c.prorate(d("1000.00"), RatePer::Month, a, b).unwrap(),
            d("1000")
        );
        let (a, b) = c.month_bounds(Month::new(2026, 10)).unwrap();
        assert_eq!(
            c.prorate(d("1000.00"), RatePer::Month, a, b).unwrap(),
            d("1000")
        );
    }

    #[test]
    fn march_after_the_clock_change_is_a_share_of_743_hours() {
        let c = cal();
        // From Sunday 29 March 2026 00:00 local (before the 02:00 jump) to 1 April: 71 hours.
        let from = ts("2026-03-28T23:00:00Z");
        let to = ts("2026-03-31T22:00:00Z");
        assert_eq!(to.as_second() - from.as_second(), 71 * 3600);
        let v = c.prorate(d("743.00"), RatePer::Month, from, to).unwrap();
        assert_eq!(v, d("71"), "743 per month over 71 of 743 hours");
        // A yearly rate over the same stretch: 8760 per year is 1 per hour.
        assert_eq!(
            c.prorate(d("8760"), RatePer::Year, from, to).unwrap(),
            d("71")
        );
    }

    #[test]
    fn october_has_745_hours() {
        let c = cal();
        // The last week of October 2026, 25 Oct 00:00 local to 1 Nov: 7 days plus the extra hour.
        let from = ts("2026-10-24T22:00:00Z");
        let to = ts("2026-10-31T23:00:00Z");
        assert_eq!(to.as_second() - from.as_second(), 169 * 3600);
        let v = c.prorate(d("1000.00"), RatePer::Month, from, to).unwrap();
        // 1000 × 169 / 745 = 226.8456375838926…
        assert_eq!(round_cents(v), d("226.85"));
        assert!(
            v > d("226.845637583892") && v < d("226.845637583893"),
            "{v}"
        );
    }

    #[test]
    fn a_stretch_across_months_is_charged_against_each_month() {
        let c = cal();
        // 15 March 00:00 to 15 April 00:00 local: 17 days of March less the hour summer time takes
        // (407 h), then 14 days of April (336 h).
        let from = ts("2026-03-14T23:00:00Z");
        let to = ts("2026-04-14T22:00:00Z");
        let pieces = c.month_pieces(from, to).unwrap();
        assert_eq!(pieces.len(), 2);
        let march_h = (pieces[0].2.as_second() - pieces[0].1.as_second()) / 3600;
        let april_h = (pieces[1].2.as_second() - pieces[1].1.as_second()) / 3600;
        assert_eq!((march_h, april_h), (407, 336));
        let v = c.prorate(d("743"), RatePer::Month, from, to).unwrap();
        // 743 × 407/743 + 743 × 336/720 = 407 + 346.7333…
        assert_eq!(round_cents(v), d("753.73"));
    }
}

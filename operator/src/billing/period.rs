//! Billing periods: a calendar month (`2026-03`), quarter (`2026-Q1`) or year (`2026`), always
//! read in Europe/Amsterdam, and the instants where they begin and end.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, date};
use jiff::tz::TimeZone;

use super::BillingError;

/// A calendar month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i16,
    pub month: i8,
}

impl Month {
    pub fn new(year: i16, month: i8) -> Month {
        Month { year, month }
    }

    /// The month an instant falls in, in `tz`.
    pub fn of(t: Timestamp, tz: &TimeZone) -> Month {
        let d = t.to_zoned(tz.clone()).date();
        Month::new(d.year(), d.month())
    }

    /// The month a local date falls in.
    pub fn of_date(d: Date) -> Month {
        Month::new(d.year(), d.month())
    }

    pub fn first_day(self) -> Date {
        date(self.year, self.month, 1)
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month::new(self.year + 1, 1)
        } else {
            Month::new(self.year, self.month + 1)
        }
    }

    pub fn prev(self) -> Month {
        if self.month == 1 {
            Month::new(self.year - 1, 12)
        } else {
            Month::new(self.year, self.month - 1)
        }
    }

    /// First instant of the month.
    pub fn start(self, tz: &TimeZone) -> Result<Timestamp, BillingError> {
        midnight(self.first_day(), tz)
    }

    /// First instant after the month.
    pub fn end(self, tz: &TimeZone) -> Result<Timestamp, BillingError> {
        self.next().start(tz)
    }

    /// Calendar quarter, 1 to 4.
    pub fn quarter(self) -> i8 {
        (self.month - 1) / 3 + 1
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Midnight at the start of a local date.
pub fn midnight(d: Date, tz: &TimeZone) -> Result<Timestamp, BillingError> {
    d.to_zoned(tz.clone()).map(|z| z.timestamp()).map_err(|e| {
        BillingError::input(format!(
            "{d} has no midnight in {}: {e}",
            tz.iana_name().unwrap_or("?")
        ))
    })
}

/// The local date of an instant.
pub fn local_date(t: Timestamp, tz: &TimeZone) -> Date {
    t.to_zoned(tz.clone()).date()
}

/// A billing period as the CLI and Invoices name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Period {
    Month(Month),
    Quarter { year: i16, quarter: i8 },
    Year(i16),
}

impl Period {
    /// Parses `YYYY-MM`, `YYYY-Qn` or `YYYY`.
    pub fn parse(s: &str) -> Result<Period, BillingError> {
        let bad = || {
            BillingError::Period(format!(
                "period {s:?} is not a month (YYYY-MM, e.g. 2026-03), a quarter (YYYY-Qn, e.g. 2026-Q1) or a year (YYYY)"
            ))
        };
        let year = |y: &str| -> Result<i16, BillingError> {
            if y.len() != 4 || !y.chars().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            let v: i16 = y.parse().map_err(|_| bad())?;
            if !(1970..=9998).contains(&v) {
                return Err(bad());
            }
            Ok(v)
        };
        match s.split_once('-') {
            None => Ok(Period::Year(year(s)?)),
            Some((y, rest)) => {
                let y = year(y)?;
                if let Some(q) = rest.strip_prefix('Q') {
                    let q: i8 = match q {
                        "1" => 1,
                        "2" => 2,
                        "3" => 3,
                        "4" => 4,
                        _ => return Err(bad()),
                    };
                    Ok(Period::Quarter {
                        year: y,
                        quarter: q,
                    })
                } else {
                    if rest.len() != 2 || !rest.chars().all(|c| c.is_ascii_digit()) {
                        return Err(bad());
                    }
                    let m: i8 = rest.parse().map_err(|_| bad())?;
                    if !(1..=12).contains(&m) {
                        return Err(bad());
                    }
                    Ok(Period::Month(Month::new(y, m)))
                }
            }
        }
    }

    pub fn quarter_of(m: Month) -> Period {
        Period::Quarter {
            year: m.year,
            quarter: m.quarter(),
        }
    }

    /// The months of the period, in order.
    pub fn months(self) -> Vec<Month> {
        match self {
            Period::Month(m) => vec![m],
            Period::Quarter { year, quarter } => {
                let first = (quarter - 1) * 3 + 1;
                (first..first + 3).map(|m| Month::new(year, m)).collect()
            }
            Period::Year(y) => (1..=12).map(|m| Month::new(y, m)).collect(),
        }
    }

    pub fn first_month(self) -> Month {
        self.months()[0]
    }

    pub fn last_month(self) -> Month {
        let ms = self.months();
        ms[ms.len() - 1]
    }

    pub fn start(self, tz: &TimeZone) -> Result<Timestamp, BillingError> {
        self.first_month().start(tz)
    }

    pub fn end(self, tz: &TimeZone) -> Result<Timestamp, BillingError> {
        self.last_month().end(tz)
    }

    /// First and last local day (inclusive).
    pub fn days(self) -> (Date, Date) {
        let first = self.first_month().first_day();
        let last = self
            .last_month()
            .next()
            .first_day()
            .yesterday()
            .unwrap_or(first);
        (first, last)
    }

    pub fn year(self) -> i16 {
        match self {
            Period::Month(m) => m.year,
            Period::Quarter { year, .. } => year,
            Period::Year(y) => y,
        }
    }

    /// Whether a local date lies in the period.
    pub fn contains_date(self, d: Date) -> bool {
        let (a, b) = self.days();
        a <= d && d <= b
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Month(m) => write!(f, "{m}"),
            Period::Quarter { year, quarter } => write!(f, "{year:04}-Q{quarter}"),
            Period::Year(y) => write!(f, "{y:04}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            Period::parse("2026-03").unwrap(),
            Period::Month(Month::new(2026, 3))
        );
        assert_eq!(
            Period::parse("2026-Q4").unwrap(),
            Period::Quarter {
                year: 2026,
                quarter: 4
            }
        );
        assert_eq!(Period::parse("2026").unwrap(), Period::Year(2026));
        for s in ["2026-Q4", "2026-03", "2026", "2026-Q1", "2026-12"] {
            assert_eq!(Period::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn refuses_unknown_periods_clearly() {
        for s in [
            "2026-13",
            "2026-3",
            "26-03",
            "2026-Q5",
            "2026-H1",
            "march",
            "",
            "2026-03-01",
            "2026-00",
        ] {
            let e = Period::parse(s).unwrap_err();
            assert!(matches!(e, BillingError::Period(_)), "{s}");
            assert!(e.to_string().contains("YYYY-MM"), "{e}");
        }
    }

    #[test]
    fn months_and_bounds_in_amsterdam() {
        let tz = super::super::amsterdam().unwrap();
        let q = Period::parse("2026-Q1").unwrap();
        assert_eq!(q.months().len(), 3);
        assert_eq!(q.start(&tz).unwrap().to_string(), "2025-12-31T23:00:00Z");
        assert_eq!(
            q.end(&tz).unwrap().to_string(),
            "2026-03-31T22:00:00Z",
            "April starts in summer time"
        );
        assert_eq!(q.days().1, date(2026, 3, 31));
        assert_eq!(Period::parse("2026").unwrap().months().len(), 12);
        assert_eq!(Month::new(2026, 12).next(), Month::new(2027, 1));
        assert_eq!(Month::new(2026, 1).prev(), Month::new(2025, 12));
    }
}

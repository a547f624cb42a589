//! Metering and billing: the usage ledger, proration, prices, cost pools, credits, notice,
//! invoices and their exports, and the delivery of usage and invoices to a billing system.
//!
//! Everything money is pure and takes the clock as a parameter, so `regie bill`, `regie diff`
//! and the controller compute the same cents from the same inputs:
//!
//! ```text
//!   ledger (Usage segments) ─┐
//!   files (Tenant, packages) ┼─> engine ─> pricing + proration + pools ─> invoice ─> export
//!   PriceLists, CostPools ───┘                                                 └─> events ─> outbox ─> delivery
//! ```
//!
//! Only [`accounts`] (measured account counts) and [`delivery`] (the CloudEvents sender) do I/O.

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use rust_decimal::{Decimal, RoundingStrategy};

pub mod accounts;
pub mod delivery;
pub mod engine;
pub mod events;
pub mod export;
pub mod invoice;
pub mod ledger;
pub mod period;
pub mod pools;
pub mod pricing;
pub mod proration;
pub mod ubl;

/// The time zone every calendar month, day and year of billing is read in.
pub const TIME_ZONE: &str = "Europe/Amsterdam";

/// Why a bill could not be made. Every message names the object and field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    /// The input does not allow a correct bill (a missing rate, a pool without tenants, …).
    #[error("{0}")]
    Input(String),
    /// A period that is not `YYYY-MM`, `YYYY-Qn` or `YYYY`.
    #[error("{0}")]
    Period(String),
    /// A remote system (account source, billing system) did not answer as agreed.
    #[error("{0}")]
    Remote(String),
}

impl BillingError {
    pub(crate) fn input(m: impl fmt::Display) -> BillingError {
        BillingError::Input(m.to_string())
    }
}

/// Europe/Amsterdam from the bundled time-zone database.
pub fn amsterdam() -> Result<TimeZone, BillingError> {
    TimeZone::get(TIME_ZONE).map_err(|e| BillingError::input(format!("time zone {TIME_ZONE}: {e}")))
}

/// Half-up (away from zero at exactly half a cent) rounding to cents: the one rounding rule of
/// every invoice line, VAT amount and pool share.
pub fn round_cents(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// An amount as finance writes it: exactly two decimals, `-` for negatives, no grouping.
pub fn money(d: Decimal) -> String {
    let mut r = round_cents(d);
    r.rescale(2);
    r.to_string()
}

/// A quantity or unit price: as many decimals as it has, at most `max`, at least `min`.
pub fn decimal_text(d: Decimal, min: u32, max: u32) -> String {
    let mut r = d
        .round_dp_with_strategy(max, RoundingStrategy::MidpointAwayFromZero)
        .normalize();
    if r.scale() < min {
        r.rescale(min);
    }
    r.to_string()
}

/// An instant as RFC 3339 with the Amsterdam offset of that moment, e.g.
/// `2026-03-01T00:00:00+01:00`: what people read on an invoice line.
pub fn local_rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    let offset = tz.to_offset(t);
    t.display_with_offset(offset).to_string()
}

/// Parses an RFC 3339 instant, naming what it was for in the error.
pub fn parse_instant(s: &str, what: &str) -> Result<Timestamp, BillingError> {
    s.parse::<Timestamp>()
        .map_err(|e| BillingError::input(format!("{what}: {s:?} is not an RFC 3339 time: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_up_at_half_a_cent() {
        let d = |s: &str| Decimal::from_str_exact(s).unwrap();
        assert_eq!(money(d("0.005")), "0.01");
        assert_eq!(money(d("0.004999")), "0.00");
        assert_eq!(money(d("2.675")), "2.68");
        assert_eq!(
            money(d("-0.005")),
            "-0.01",
            "half away from zero for credits too"
        );
        assert_eq!(money(d("1234")), "1234.00");
        assert_eq!(money(d("10.125")), "10.13");
    }

    #[test]
    fn prints_decimals_between_bounds() {
        let d = |s: &str| Decimal::from_str_exact(s).unwrap();
        assert_eq!(decimal_text(d("620"), 0, 6), "620");
        assert_eq!(decimal_text(d("7.50"), 0, 6), "7.5");
        assert_eq!(decimal_text(d("181.09303652968"), 2, 6), "181.093037");
        assert_eq!(decimal_text(d("100"), 2, 6), "100.00");
    }

    #[test]
    fn local_times_carry_the_offset() {
        let tz = amsterdam().unwrap();
        let t: Timestamp = "2026-02-28T23:00:00Z".parse().unwrap();
        assert_eq!(local_rfc3339(t, &tz), "2026-03-01T00:00:00+01:00");
        let t: Timestamp = "2026-06-30T22:00:00Z".parse().unwrap();
        assert_eq!(local_rfc3339(t, &tz), "2026-07-01T00:00:00+02:00");
    }
}

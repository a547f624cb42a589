//! Schema fragments for the string-typed fields of the API (windows, durations, money, dates).
//!
//! These values stay strings in the types, so a malformed one is reported by validation with its
//! field path instead of failing deserialization of a whole list; the schema still constrains the
//! shape so the API server refuses obvious mistakes.

use schemars::{Schema, SchemaGenerator, json_schema};

use crate::duration::DURATION_PATTERN;
use crate::window::WINDOW_PATTERN;

/// Decimal amount, e.g. `2135.00`; at most 4 decimals, optionally negative.
pub const DECIMAL_PATTERN: &str = r"^-?[0-9]+(\.[0-9]{1,6})?$";
/// `YYYY-MM-DD`.
pub const DATE_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
/// `YYYY-MM-DD` or an RFC 3339 timestamp.
pub const DATE_OR_TIME_PATTERN: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:[0-9]{2}))?$";

pub fn window_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "description": "Windows such as \"Mon-Fri 08:00-17:00\": a day or forward day range, then a local time range; end 24:00 allowed.",
        "items": {"type": "string", "pattern": WINDOW_PATTERN}
    })
}

pub fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "description": "A duration such as 30s, 5m, 1h30m, 48h or 90d."
    })
}

pub fn optional_duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": DURATION_PATTERN,
        "description": "A duration such as 30s, 5m, 1h30m, 48h or 90d."
    })
}

pub fn decimal(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DECIMAL_PATTERN,
        "description": "A decimal number as a string, e.g. \"2135.00\" (never a float)."
    })
}

pub fn optional_decimal(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": DECIMAL_PATTERN,
        "description": "A decimal number as a string, e.g. \"99.9\" (never a float)."
    })
}

pub fn date(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": DATE_PATTERN, "description": "A calendar date, YYYY-MM-DD."})
}

pub fn optional_date(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "nullable": true, "pattern": DATE_PATTERN, "description": "A calendar date, YYYY-MM-DD."})
}

pub fn date_or_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DATE_OR_TIME_PATTERN,
        "description": "A date (YYYY-MM-DD, midnight in Europe/Amsterdam) or an RFC 3339 timestamp."
    })
}

pub fn optional_date_or_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "nullable": true,
        "pattern": DATE_OR_TIME_PATTERN,
        "description": "A date (YYYY-MM-DD, midnight in Europe/Amsterdam) or an RFC 3339 timestamp."
    })
}

pub fn period(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "pattern": r"^[0-9]{4}-(0[1-9]|1[0-2])$", "description": "A calendar month, YYYY-MM."})
}

pub fn date_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "description": "Calendar dates, YYYY-MM-DD.",
        "items": {"type": "string", "pattern": DATE_PATTERN}
    })
}

//! Rules every object must satisfy on its own, in Rust.
//!
//! The CRD schema enforces shapes; the cross-field rules are also published as CEL
//! (`x-kubernetes-validations`, see [`crate::crd`]) for servers that run them. The same rules run
//! here so that `regie validate` answers offline exactly as the controller does at runtime, and
//! so the controller never trusts input a server older than 1.25 let through.
//! Rules that need other objects (references, duplicates) live in the operator's catalogue.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::catalogue::ServiceLevelSpec;
use crate::commercial::{
    AllocationKey, CostPoolSpec, PriceListSpec, RateItem, RatePer, ServiceOrderSpec,
};
use crate::duration::parse_duration;
use crate::generated::UsageSpec;
use crate::tenancy::{HostingComponent, HostingComponentSpec, TenantSpec, WorkplacePackageSpec};
use crate::window::{Monitoring, Window};

/// One problem with one field; `path` is relative to the object, e.g. `spec.serviceHours[0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Collects field errors under a path prefix.
#[derive(Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Parses a decimal written as a plain string: digits, an optional point and fraction.
pub fn parse_decimal(s: &str) -> Result<Decimal, String> {
    let plain = !s.is_empty()
        && s.strip_prefix('-')
            .unwrap_or(s)
            .split_once('.')
            .map_or_else(
                || {
                    s.trim_start_matches('-')
                        .chars()
                        .all(|c| c.is_ascii_digit())
                },
                |(int, frac)| {
                    !int.is_empty()
                        && !frac.is_empty()
                        && int.chars().all(|c| c.is_ascii_digit())
                        && frac.chars().all(|c| c.is_ascii_digit())
                },
            )
        && !s.trim_start_matches('-').is_empty();
    if !plain {
        return Err(format!(
            "{s:?} is not a decimal amount (write digits with an optional point, e.g. \"2135.00\")"
        ));
    }
    Decimal::from_str_exact(s).map_err(|e| format!("{s:?} is not a decimal amount: {e}"))
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<jiff::civil::Date, String> {
    if s.len() != 10 {
        return Err(format!("{s:?} is not a date (YYYY-MM-DD)"));
    }
    jiff::civil::Date::from_str(s).map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

/// A date (midnight local time) or an exact instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateOrTime {
    Date(jiff::civil::Date),
    Instant(jiff::Timestamp),
}

impl DateOrTime {
    /// The instant this stands for, reading a date as midnight in `tz`.
    pub fn instant(self, tz: &jiff::tz::TimeZone) -> jiff::Timestamp {
        match self {
            DateOrTime::Instant(t) => t,
            DateOrTime::Date(d) => tz
                .to_ambiguous_zoned(d.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .map(|z| z.timestamp())
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        }
    }
}

pub fn parse_date_or_time(s: &str) -> Result<DateOrTime, String> {
    if s.len() == 10 {
        return parse_date(s).map(DateOrTime::Date);
    }
    jiff::Timestamp::from_str(s)
        .map(DateOrTime::Instant)
        .map_err(|_| format!("{s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time"))
}

/// `YYYY-MM` into (year, month).
pub fn parse_month(s: &str) -> Result<(i16, i8), String> {
    let bad = || format!("{s:?} is not a month (YYYY-MM)");
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let y: i16 = y.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&m) || y < 1970 {
        return Err(bad());
    }
    Ok((y, m))
}

/// Whether `s` is a Kubernetes resource quantity of zero or more ("8", "250m", "1.5", "16Gi",
/// "1e3"): a decimal number and an optional suffix, binary (Ki…Ei), decimal (n, u, m, k, M…E)
/// or an exponent. The API server rejects an object with any other, so regie says which field.
pub fn check_quantity(s: &str) -> Result<(), String> {
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let digits = number.strip_prefix('+').unwrap_or(number);
    let well_formed = digits.chars().any(|c| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1;
    let suffix_ok = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        _ => suffix
            .strip_prefix(['e', 'E'])
            .map(|exp| exp.strip_prefix(['+', '-']).unwrap_or(exp))
            .is_some_and(|exp| !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())),
    };
    if well_formed && suffix_ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a quantity of zero or more such as \"8\", \"250m\" or \"16Gi\""
        ))
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1035 label: what a Service's name must be — a DNS label that starts with a letter.
fn is_dns_1035_label(s: &str) -> bool {
    is_dns_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

/// A HostingComponent whole: its spec, and the name of a hosted one, which names its
/// Deployment, Service and disruption budget — so it must be a DNS-1035 label, or the API
/// server refuses the Service (a name such as `2fa`) on every try.
pub fn hosting_component(component: &HostingComponent) -> Vec<FieldError> {
    let mut errors = component.spec.validate();
    let name = component.metadata.name.as_deref().unwrap_or_default();
    if component.spec.hosted.is_some() && !is_dns_1035_label(name) {
        errors.push(FieldError {
            path: "metadata.name".into(),
            message: format!(
                "{name:?} cannot name a hosted component's Service: at most 63 lowercase \
                 letters, digits and '-', starting with a letter and ending with a letter or digit"
            ),
        });
    }
    errors
}

/// An http(s) URL with a host; the prober's address checks come on top of this.
pub fn check_http_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?} must be an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{s:?} has no host"));
    }
    if s.chars().any(char::is_whitespace) {
        return Err(format!("{s:?} contains white space"));
    }
    Ok(())
}

/// Objects that can check themselves.
pub trait Validate {
    /// Every problem found; empty when the object is valid.
    fn validate(&self) -> Vec<FieldError>;
}

fn percent(e: &mut Errors, path: &str, s: &str, allow_zero: bool) -> Option<Decimal> {
    match parse_decimal(s) {
        Ok(d) if d > Decimal::ONE_HUNDRED || d < Decimal::ZERO || (!allow_zero && d.is_zero()) => {
            e.push(
                path,
                format!("{s:?} must be a percentage above 0 and at most 100"),
            );
            None
        }
        Ok(d) => Some(d),
        Err(m) => {
            e.push(path, m);
            None
        }
    }
}

impl Validate for ServiceLevelSpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut e = Errors::default();
        if self.rank < 0 {
            e.push("spec.rank", format!("must be 0 or more, not {}", self.rank));
        }
        if jiff::tz::TimeZone::get(&self.time_zone).is_err() {
            e.push(
                "spec.timeZone",
                format!("{:?} is not a known IANA time zone", self.time_zone),
            );
        }
        if self.service_hours.is_empty() {
            e.push("spec.serviceHours", "at least one window is required");
        }
        for (i, w) in self.service_hours.iter().enumerate() {
            if let Err(err) = w.parse::<Window>() {
                e.push(format!("spec.serviceHours[{i}]"), err.0);
            }
        }
        for (i, h) in self.holidays.iter().enumerate() {
            if let Err(m) = parse_date(h) {
                e.push(format!("spec.holidays[{i}]"), m);
            }
        }
        for (path, d) in [
            ("spec.responseTimes.urgent", &self.response_times.urgent),
            ("spec.responseTimes.other", &self.response_times.other),
        ] {
            if let Err(m) = parse_duration(d) {
                e.push(path, m);
            }
        }
        if let Err(err) = self.monitoring.parse::<Monitoring>() {
            e.push("spec.monitoring", err.0);
        }
        percent(
            &mut e,
            "spec.availability.target",
            &self.availability.target,
            false,
        );
        let interval = parse_duration(&self.probe.interval);
        let timeout = parse_duration(&self.probe.timeout);
        match (&interval, &timeout) {
            (Ok(i), Ok(t)) => {
                if i.as_millis() < 1000 {
                    e.push("spec.probe.interval", "must be at least 1s");
                }
                if t.is_zero() {
                    e.push("spec.probe.timeout", "must be more than 0s");
                } else if t > i {
                    e.push(
                        "spec.probe.timeout",
                        format!(
                            "{} must not exceed the interval {}",
                            self.probe.timeout, self.probe.interval
                        ),
                    );
                }
            }
            _ => {
                if let Err(m) = interval {
                    e.push("spec.probe.interval", m);
                }
                if let Err(m) = timeout {
                    e.push("spec.probe.timeout", m);
                }
            }
        }
        if self.workload.min_replicas < 1 {
            e.push(
                "spec.workload.minReplicas",
                format!("must be at least 1, not {}", self.workload.min_replicas),
            );
        }
        if self.workload.min_available < 0 {
            e.push(
                "spec.workload.minAvailable",
                format!("must be 0 or more, not {}", self.workload.min_available),
            );
        } else if self.workload.min_available >= self.workload.min_replicas
            && self.workload.min_available > 0
        {
            e.push(
                "spec.workload.minAvailable",
                format!(
                    "{} must be below minReplicas ({}), or no replica could ever be drained",
                    self.workload.min_available, self.workload.min_replicas
                ),
            );
        }
        for (i, c) in self.credits.iter().enumerate() {
            percent(&mut e, &format!("spec.credits[{i}].below"), &c.below, false);
            if !(0..=100).contains(&c.percent) {
                e.push(
                    format!("spec.credits[{i}].percent"),
                    format!("must be 0 to 100, not {}", c.percent),
                );
            }
        }
        e.0
    }
}

impl Validate for TenantSpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut e = Errors::default();
        if self.display_name.trim().is_empty() {
            e.push("spec.displayName", "must not be empty");
        }
        if let Some(code) = &self.municipality_code {
            let ok = code.len() == 6
                && code.starts_with("GM")
                && code[2..].chars().all(|c| c.is_ascii_digit());
            if !ok {
                e.push(
                    "spec.municipalityCode",
                    format!("{code:?} must be GM followed by four digits, e.g. GM1674"),
                );
            }
        }
        if self.inhabitants < 0 {
            e.push(
                "spec.inhabitants",
                format!("must be 0 or more, not {}", self.inhabitants),
            );
        }
        if self.service_level.is_empty() {
            e.push("spec.serviceLevel", "must name a ServiceLevel");
        }
        if let Some(ns) = &self.namespace
            && !is_dns_label(ns)
        {
            e.push(
                "spec.namespace",
                format!("{ns:?} is not a valid namespace name"),
            );
        }
        let joined = parse_date(&self.membership.joined);
        if let Err(m) = &joined {
            e.push("spec.membership.joined", m.clone());
        }
        if let Some(leaves) = &self.membership.leaves {
            match (parse_date(leaves), &joined) {
                (Err(m), _) => e.push("spec.membership.leaves", m),
                (Ok(l), Ok(j)) if l < *j => e.push(
                    "spec.membership.leaves",
                    format!("{leaves} is before joined {}", self.membership.joined),
                ),
                _ => {}
            }
        }
        if let Some(addr) = &self.billing.electronic_address {
            if addr.scheme.len() != 4 || !addr.scheme.chars().all(|c| c.is_ascii_digit()) {
                e.push(
                    "spec.billing.electronicAddress.scheme",
                    format!(
                        "{:?} must be a four-digit Peppol EAS code such as 0190",
                        addr.scheme
                    ),
                );
            }
            if addr.id.trim().is_empty() {
                e.push("spec.billing.electronicAddress.id", "must not be empty");
            }
        }
        for (i, g) in self.access.groups.iter().enumerate() {
            if g.trim().is_empty() {
                e.push(format!("spec.access.groups[{i}]"), "must not be empty");
            }
        }
        if let Some(q) = &self.quota {
            if q.pods.is_some_and(|p| p < 0) {
                e.push("spec.quota.pods", "must be 0 or more");
            }
            for (field, value) in [("cpu", &q.cpu), ("memory", &q.memory)] {
                if let Some(Err(m)) = value.as_deref().map(check_quantity) {
                    e.push(format!("spec.quota.{field}"), m);
                }
            }
        }
        e.0
    }
}

impl Validate for WorkplacePackageSpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut e = Errors::default();
        if self.profile.is_empty()
            || !self.profile.starts_with(|c: char| c.is_ascii_lowercase())
            || !self
                .profile
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            e.push(
                "spec.profile",
                format!(
                    "{:?} must be lower-case letters, digits and dashes, e.g. standard",
                    self.profile
                ),
            );
        }
        if self.accounts < 0 {
            e.push(
                "spec.accounts",
                format!("must be 0 or more, not {}", self.accounts),
            );
        }
        if let Some(src) = &self.account_source {
            if let Err(m) = check_http_url(&src.url) {
                e.push("spec.accountSource.url", m);
            }
            if let Some(p) = &src.json_pointer
                && !p.is_empty()
                && !p.starts_with('/')
            {
                e.push(
                    "spec.accountSource.jsonPointer",
                    format!("{p:?} must start with / (RFC 6901)"),
                );
            }
            for (path, d) in [
                ("spec.accountSource.interval", &src.interval),
                ("spec.accountSource.timeout", &src.timeout),
            ] {
                if let Some(d) = d {
                    match parse_duration(d) {
                        Ok(v) if v.is_zero() => e.push(path, "must be more than 0s"),
                        Ok(_) => {}
                        Err(m) => e.push(path, m),
                    }
                }
            }
        }
        e.0
    }
}

/// Environment variable names that look like they carry secrets.
fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "APIKEY",
        "API_KEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|s| n.contains(s))
}

impl Validate for HostingComponentSpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut e = Errors::default();
        match (&self.hosted, &self.saas) {
            (Some(_), Some(_)) => e.push(
                "spec",
                "exactly one of hosted and saas may be set, not both",
            ),
            (None, None) => e.push("spec", "exactly one of hosted and saas must be set"),
            _ => {}
        }
        if let Some(level) = &self.service_level
            && level.is_empty()
        {
            e.push(
                "spec.serviceLevel",
                "must name a ServiceLevel or be left out",
            );
        }
        if let Some(h) = &self.hosted {
            if h.image.trim().is_empty() {
                e.push("spec.hosted.image", "must not be empty");
            }
            if !(1..=65535).contains(&h.port) {
                e.push(
                    "spec.hosted.port",
                    format!("must be 1 to 65535, not {}", h.port),
                );
            }
            if !h.health_path.starts_with('/') {
                e.push(
                    "spec.hosted.healthPath",
                    format!("{:?} must start with /", h.health_path),
                );
            }
            if h.replicas.is_some_and(|r| r < 0) {
                e.push("spec.hosted.replicas", "must be 0 or more");
            }
            if let Some(r) = &h.resources {
                for (part, amounts) in [("requests", &r.requests), ("limits", &r.limits)] {
                    for (resource, value) in amounts {
                        if let Err(m) = check_quantity(value) {
                            e.push(format!("spec.hosted.resources.{part}.{resource}"), m);
                        }
                    }
                }
            }
            for name in h.env.keys() {
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    e.push(
                        format!("spec.hosted.env.{name}"),
                        "is not a valid environment variable name",
                    );
                } else if looks_secret(name) {
                    e.push(
                        format!("spec.hosted.env.{name}"),
                        "looks like a secret: keep secrets out of specs (git) and mount them from a Secret",
                    );
                }
            }
        }
        if let Some(s) = &self.saas
            && let Err(m) = check_http_url(&s.url)
        {
            e.push("spec.saas.url", m);
        }
        if let Some(p) = &self.probe {
            if let Some(path) = &p.path
                && !path.starts_with('/')
            {
                e.push("spec.probe.path", format!("{path:?} must start with /"));
            }
            if let Some(s) = p.expect_status
                && !(100..=599).contains(&s)
            {
                e.push(
                    "spec.probe.expectStatus",
                    format!("{s} is not an HTTP status"),
                );
            }
        }
        e.0
    }
}

impl Validate for PriceListSpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut e = Errors::default();
        let from = parse_date_or_time(&self.effective_from);
        if let Err(m) = &from {
            e.push("spec.effectiveFrom", m.clone());
        }
        if let Some(until) = &self.effective_until {
            match parse_date_or_time(until) {
                Err(m) => e.push("spec.effectiveUntil", m),
                Ok(u) => {
                    if let Ok(f) = from {
                        let tz = jiff::tz::TimeZone::UTC;
                        if u.instant(&tz) <= f.instant(&tz) {
                            e.push(
                                "spec.effectiveUntil",
                                format!(
                                    "{until} must be after effectiveFrom {}",
                                    self.effective_from
                                ),
                            );
                        }
                    }
                }
            }
        }
        if let Some(n) = &self.notice_period
            && let Err(m) = parse_duration(n)
        {
            e.push("spec.noticePeriod", m);
        }
        if !["S", "Z", "E", "O", "AE", "K", "G", "L", "M"].contains(&self.vat.category.as_str()) {
            e.push(
                "spec.vat.category",
                format!(
                    "{:?} is not a UNCL 5305 VAT category (S, Z, E, O, AE, K, G, L, M)",
                    self.vat.category
                ),
            );
        }
        // Peppol BIS 3.0 rejects reverse charge without the buyer's VAT identifier (BR-AE-02),
        // and a Tenant carries none.
        if self.vat.category == "AE" {
            e.push(
                "spec.vat.category",
                "AE (reverse charge) needs the buyer's VAT identifier on the invoice (Peppol \
                 BR-AE-02), which a Tenant does not carry",
            );
        }
        match parse_decimal(&self.vat.percent) {
            Ok(p) if p < Decimal::ZERO || p > Decimal::ONE_HUNDRED => {
                e.push("spec.vat.percent", "must be 0 to 100")
            }
            // Standard rate at 0% is refused by Peppol (BR-S-05): a zero rate is category Z.
            Ok(p) if self.vat.category == "S" && p.is_zero() => e.push(
                "spec.vat.percent",
                "must be more than 0 for VAT category S (Peppol BR-S-05); a zero rate is category Z",
            ),
            Ok(p) if self.vat.category != "S" && !p.is_zero() => e.push(
                "spec.vat.percent",
                format!("must be 0 for VAT category {}", self.vat.category),
            ),
            Ok(_) => {}
            Err(m) => e.push("spec.vat.percent", m),
        }
        if self.rates.is_empty() {
            e.push("spec.rates", "at least one rate is required");
        }
        for (i, r) in self.rates.iter().enumerate() {
            let p = format!("spec.rates[{i}]");
            match parse_decimal(&r.amount) {
                Ok(a) if a < Decimal::ZERO => e.push(
                    format!("{p}.amount"),
                    format!("{:?} must not be negative", r.amount),
                ),
                Ok(a) if a.scale() > 4 => e.push(
                    format!("{p}.amount"),
                    format!("{:?} has more than 4 decimals", r.amount),
                ),
                Ok(_) => {}
                Err(m) => e.push(format!("{p}.amount"), m),
            }
            if r.class.is_some() && r.item != RateItem::Component {
                e.push(format!("{p}.class"), "only component rates have a class");
            }
            if r.profile.is_some() && r.item != RateItem::Account {
                e.push(format!("{p}.profile"), "only account rates have a profile");
            }
            match (r.item, r.per) {
                (RateItem::FlexibleHour, RatePer::Hour) => {}
                (RateItem::FlexibleHour, _) => {
                    e.push(format!("{p}.per"), "flexibleHour rates are per hour")
                }
                (_, RatePer::Hour) => e.push(
                    format!("{p}.per"),
                    "account and component rates are per month or per year",
                ),
                _ => {}
            }
        }
        e.0
    }
}

impl Validate for CostPoolSpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut e = Errors::default();
        match parse_decimal(&self.amount) {
            Ok(a) if a <= Decimal::ZERO => e.push(
                "spec.amount",
                format!("{:?} must be more than 0", self.amount),
            ),
            Ok(a) if a.scale() > 2 => e.push(
                "spec.amount",
                format!("{:?} has more than 2 decimals (cents)", self.amount),
            ),
            Ok(_) => {}
            Err(m) => e.push("spec.amount", m),
        }
        let from = parse_date(&self.from);
        let until = parse_date(&self.until);
        if let Err(m) = &from {
            e.push("spec.from", m.clone());
        }
        if let Err(m) = &until {
            e.push("spec.until", m.clone());
        }
        if let (Ok(f), Ok(u)) = (from, until)
            && u < f
        {
            e.push(
                "spec.until",
                format!("{} is before from {}", self.until, self.from),
            );
        }
        if self.allocation == AllocationKey::FixedShares && self.shares.is_empty() {
            e.push("spec.shares", "fixedShares needs shares per tenant");
        }
        if self.allocation != AllocationKey::FixedShares && !self.shares.is_empty() {
            e.push(
                "spec.shares",
                "shares are only used with allocation fixedShares",
            );
        }
        for (tenant, w) in &self.shares {
            match parse_decimal(w) {
                Ok(d) if d <= Decimal::ZERO => {
                    e.push(format!("spec.shares.{tenant}"), "must be more than 0")
                }
                Ok(_) => {}
                Err(m) => e.push(format!("spec.shares.{tenant}"), m),
            }
        }
        e.0
    }
}

impl Validate for ServiceOrderSpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut e = Errors::default();
        if let Err(m) = parse_date(&self.date) {
            e.push("spec.date", m);
        }
        match parse_decimal(&self.hours) {
            Ok(h) if h < Decimal::ZERO => e.push(
                "spec.hours",
                format!("{:?} must not be negative", self.hours),
            ),
            Ok(_) => {}
            Err(m) => e.push("spec.hours", m),
        }
        if self.description.trim().is_empty() {
            e.push("spec.description", "must not be empty");
        }
        if let Some(r) = &self.rate {
            match parse_decimal(r) {
                Ok(d) if d < Decimal::ZERO => e.push("spec.rate", "must not be negative"),
                Ok(_) => {}
                Err(m) => e.push("spec.rate", m),
            }
        }
        e.0
    }
}

impl Validate for UsageSpec {
    fn validate(&self) -> Vec<FieldError> {
        let mut e = Errors::default();
        if self.tenant.is_empty() {
            e.push("spec.tenant", "must name a tenant");
        }
        if let Err(m) = parse_month(&self.period) {
            e.push("spec.period", m);
        }
        e.0
    }
}

//! Rules every object must satisfy on its own, in Rust.
//!
//! The CRD schema enforces shapes; the cross-field rules are also published as CEL
//! (`x-kubernetes-validations`, see [`crate::crd`]) for servers that run them. The same rules run
//! here so that `regie validate` answers offline exactly as the controller does at runtime, and
//! so the controller never trusts input a server older than 1.25 let through.
//! Rules that need other objects (references, duplicates) live in the operator's catalogue.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::catalogue::{ServiceLevel, ServiceLevelSpec};
use crate::commercial::{
    AllocationKey, CostPoolSpec, PriceListSpec, RateItem, RatePer, ServiceOrderSpec,
};
use crate::duration::parse_duration;
use crate::generated::UsageSpec;
use crate::tenancy::{
    HostingComponent, HostingComponentSpec, NAMESPACE_PREFIX, Tenant, TenantSpec,
    WorkplacePackageSpec,
};
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

/// The time zone a PriceList's dates are midnight in: billing's (`billing::TIME_ZONE` in the
/// operator, where a test keeps the two equal), so validation compares the instants pricing does.
pub const PRICE_TIME_ZONE: &str = "Europe/Amsterdam";

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

/// A container resource the API server takes: `cpu`, `memory`, `ephemeral-storage`,
/// `hugepages-<size>` (a page size such as `2Mi`), or an extended resource named
/// `domain/name` (a lowercase DNS subdomain with a dot, not Kubernetes's own, not beginning
/// `requests.`; a name of at most 63 letters, digits, '-', '_' and '.' that begins and ends with
/// a letter or digit). Any other name (`memroy`, `Example.COM/fpga`, `example.com/a/b`) makes
/// it refuse the whole Deployment, on every try.
fn check_resource_name(name: &str) -> Result<(), String> {
    let extended = name.split_once('/').is_some_and(|(domain, rest)| {
        is_dns_subdomain(domain)
            && domain.contains('.')
            && !domain.ends_with("kubernetes.io")
            && !domain.starts_with("requests.")
            && !rest.is_empty()
            && !rest.contains('/')
            && is_label_value(rest)
    });
    match name {
        "cpu" | "memory" | "ephemeral-storage" => Ok(()),
        n if n.starts_with("hugepages-") => hugepage_size(n)
            .map(|_| ())
            .ok_or_else(|| format!("{name:?} is not hugepages-<page size>, e.g. hugepages-2Mi")),
        _ if extended => Ok(()),
        _ => Err(format!(
            "{name:?} is not a container resource: cpu, memory, ephemeral-storage, \
             hugepages-<size>, or an extended resource named domain/name (a lowercase domain \
             with a dot, a name of letters, digits, '-', '_' and '.')"
        )),
    }
}

/// The page size of a `hugepages-<size>` resource, when it is one.
fn hugepage_size(resource: &str) -> Option<Decimal> {
    let size = resource.strip_prefix("hugepages-")?;
    quantity_value(size).filter(|s| *s > Decimal::ZERO && s.fract().is_zero())
}

/// An image reference as the container runtime reads it (the distribution grammar):
/// `[host[:port]/]path[:tag][@algorithm:hex]` — a path of lowercase components (letters, digits,
/// separated by '.', '_', '__' or dashes), a tag of at most 128 word characters, '.' and '-', a
/// digest of at least 32 hex digits. The API server takes any text; the kubelet refuses such a
/// pod for ever with `InvalidImageName`.
pub fn check_image(image: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{image:?} is not an image reference: {why}"));
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    if let Some(digest) = digest {
        let Some((algorithm, hex)) = digest.split_once(':') else {
            return bad("a digest is algorithm:hex, e.g. sha256:…");
        };
        let algorithm_ok = algorithm.starts_with(|c: char| c.is_ascii_alphabetic())
            && algorithm
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-' | '_'));
        if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return bad("a digest is algorithm:hex with at least 32 hex digits");
        }
    }
    // A tag follows the last ':' that comes after the last '/' (a port comes before it).
    let (name, tag) = match rest.rfind(':') {
        Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
        _ => (rest, None),
    };
    if let Some(tag) = tag {
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !tag_ok {
            return bad("a tag is at most 128 letters, digits, '_', '.' and '-'");
        }
    }
    if name.is_empty() || name.len() > 255 {
        return bad("a name of 1 to 255 characters");
    }
    let mut components: Vec<&str> = name.split('/').collect();
    // The first of several is a registry when it looks like a host (as the runtime decides).
    if components.len() > 1
        && (components[0].contains(['.', ':'])
            || components[0] == "localhost"
            || components[0].chars().any(|c| c.is_ascii_uppercase()))
    {
        let host = components.remove(0);
        let (domain, port) = match host.rsplit_once(':') {
            _ if host.starts_with('[') && host.ends_with(']') => (host, None),
            Some((d, p)) => (d, Some(p)),
            None => (host, None),
        };
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        let domain_ok = (domain.starts_with('[') && domain.ends_with(']'))
            || domain.split('.').all(|label| {
                !label.is_empty()
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !port_ok || !domain_ok {
            return bad("its registry is a host name or address and an optional port");
        }
    }
    let path_ok = components.iter().all(|component| {
        let b = component.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty()
            && alnum(b[0])
            && alnum(b[b.len() - 1])
            && b.iter()
                .all(|&c| alnum(c) || matches!(c, b'.' | b'_' | b'-'))
            && !component.contains("..")
            && !component.contains("___")
            && !component.contains("._")
            && !component.contains("_.")
            && !component.contains(".-")
            && !component.contains("-.")
            && !component.contains("_-")
            && !component.contains("-_")
    });
    if !path_ok {
        return bad(
            "its path is lowercase letters and digits, separated by '/', '.', '_', '__' or '-'",
        );
    }
    Ok(())
}

/// Whether `s` is a DNS-1123 subdomain: what the name of a custom resource must be — at most
/// 253 characters, dot-separated labels of lowercase letters, digits and '-'.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A namespace's name (`--allowed-namespaces`): a DNS label, at most 63 lowercase letters,
/// digits and '-'.
pub fn namespace_name(s: &str) -> Result<String, String> {
    if is_dns_label(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} cannot name a namespace: at most 63 lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
        ))
    }
}

/// Whether `key` can be a label's key: an optional DNS subdomain prefix and '/', then a name of
/// at most 63 letters, digits, '-', '_' and '.' that begins and ends with a letter or digit.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
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
    if !(well_formed && suffix_ok) {
        return Err(format!(
            "{s:?} is not a quantity of zero or more such as \"8\", \"250m\" or \"16Gi\""
        ));
    }
    // The API server cannot read an exponent beyond its integers, and rounds a quantity below
    // its smallest unit up to that unit (a limit of 1e-30 CPUs becomes 1n, under any request).
    match parse_quantity(s) {
        None => Err(format!(
            "{s:?} is beyond the quantities the API server takes (at most 28 digits, at least 1n)"
        )),
        Some(v) if !v.is_zero() && v < Decimal::new(1, 9) => Err(format!(
            "{s:?} is below the smallest quantity, 1n (one billionth)"
        )),
        Some(_) => Ok(()),
    }
}

/// The exact value of a quantity `check_quantity` accepts ("250m" is 0.25, "1Gi" 1073741824), or
/// `None` when it is malformed or beyond what a decimal holds (an exponent such as "1e40").
/// Exact, so that a request and a limit compare as the API server compares them.
pub fn quantity_value(s: &str) -> Option<Decimal> {
    check_quantity(s).ok()?;
    parse_quantity(s)
}

/// The value of a quantity whose form `check_quantity` has checked.
fn parse_quantity(s: &str) -> Option<Decimal> {
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let number = number.strip_prefix('+').unwrap_or(number);
    let number = if number.starts_with('.') {
        format!("0{number}")
    } else if number.ends_with('.') {
        format!("{number}0")
    } else {
        number.to_string()
    };
    let value = Decimal::from_str_exact(&number).ok()?;
    let binary = |power: u32| Decimal::from(1u64 << power);
    let ten = |exp: i64| -> Option<Decimal> {
        if exp >= 0 {
            (0..exp).try_fold(Decimal::ONE, |d, _| d.checked_mul(Decimal::TEN))
        } else {
            Some(Decimal::new(
                1,
                u32::try_from(-exp).ok().filter(|e| *e <= 28)?,
            ))
        }
    };
    let factor = match suffix {
        "" => Decimal::ONE,
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "n" => ten(-9)?,
        "u" => ten(-6)?,
        "m" => ten(-3)?,
        "k" => ten(3)?,
        "M" => ten(6)?,
        "G" => ten(9)?,
        "T" => ten(12)?,
        "P" => ten(15)?,
        "E" => ten(18)?,
        exp => ten(exp[1..].parse().ok()?)?,
    };
    value.checked_mul(factor)
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

/// Names Kubernetes reserves for its own users, groups and roles (`system:authenticated`…).
pub const SYSTEM_PREFIX: &str = "system:";

/// The most accounts one package may hold, declared or measured: ten million, far above any
/// participant (the Netherlands has 18 million inhabitants), and low enough that no sum of
/// packages can overflow the counts billing multiplies by prices.
pub const MAX_ACCOUNTS: i64 = 10_000_000;

/// The most replicas a component may ask for: more is a mistake, not a municipality's web
/// site, and every pod past the tenant's quota is a creation the API server refuses, again
/// and again.
pub const MAX_REPLICAS: i32 = 1000;

/// The longest notice period a PriceList may ask: ten years. Pricing walks the months a notice
/// reaches back over, for every tenant at every pass.
pub const MAX_NOTICE_DAYS: u64 = 3_650;

/// Longest tenant name: its namespace `tenant-<name>` must still be a DNS label (63).
pub const MAX_TENANT_NAME: usize = 63 - NAMESPACE_PREFIX.len();

/// Why a namespace belongs to the cluster itself and can never be a tenant's: `default` holds
/// whatever is created without a namespace, `kube-*` the control plane's own objects.
fn system_namespace(ns: &str) -> Option<String> {
    if ns == "default" || ns.starts_with("kube-") {
        Some(format!(
            "{ns:?} is a namespace of the cluster itself (default, kube-*), never a tenant's"
        ))
    } else {
        None
    }
}

/// A Tenant whole: its spec, its name (which names its namespace `tenant-<name>` and is the
/// value of every child's `regie.dev/tenant` label) and the namespace it asks for, which must be
/// neither one every tenant's NetworkPolicy admits traffic from (`allowed_namespaces`: a tenant
/// there would reach all others and be reached by them) nor another tenant's `tenant-<other>`
/// (created first, it would take that namespace from the tenant it is named after for good).
/// The CLI passes the default or its `--allowed-namespaces`, the controller its settings.
pub fn tenant(tenant: &Tenant, allowed_namespaces: &[String]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = tenant.metadata.name.as_deref().unwrap_or_default();
    if !is_dns_label(name) || name.len() > MAX_TENANT_NAME {
        errors.push(FieldError {
            path: "metadata.name".into(),
            message: format!(
                "{name:?} cannot name a tenant: its namespace {NAMESPACE_PREFIX}<name> must be a \
                 DNS label, so at most {MAX_TENANT_NAME} lowercase letters, digits and '-', \
                 starting and ending with a letter or digit"
            ),
        });
    }
    errors.extend(tenant.spec.validate());
    if let Some(ns) = &tenant.spec.namespace {
        if allowed_namespaces.iter().any(|a| a == ns) {
            errors.push(FieldError {
                path: "spec.namespace".into(),
                message: format!(
                    "{ns:?} is one of the namespaces every tenant admits traffic from \
                     (allowed namespaces: {}), never a tenant's",
                    allowed_namespaces.join(", ")
                ),
            });
        } else if let Some(other) = ns.strip_prefix(NAMESPACE_PREFIX)
            && other != name
        {
            errors.push(FieldError {
                path: "spec.namespace".into(),
                message: format!(
                    "{ns:?} is the namespace of a Tenant named {other:?}: name this \
                     tenant's own {NAMESPACE_PREFIX}{name} or one without that prefix"
                ),
            });
        }
    }
    errors
}

/// Whether `s` can be a label value: at most 63 letters, digits, '-', '_' and '.', starting
/// and ending with a letter or digit.
pub fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && (s.is_empty()
            || (s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// A ServiceLevel whole: its spec and its name, the value of every child's
/// `regie.dev/service-level` label (so at most 63 characters, or every apply is refused).
pub fn service_level(level: &ServiceLevel) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = level.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() || !is_label_value(name) {
        errors.push(FieldError {
            path: "metadata.name".into(),
            message: format!(
                "{name:?} cannot name a ServiceLevel: it is a label value, at most 63 letters, \
                 digits, '-', '_' and '.', starting and ending with a letter or digit"
            ),
        });
    }
    errors.extend(level.spec.validate());
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
        if let Some(ns) = &self.namespace {
            if !is_dns_label(ns) {
                e.push(
                    "spec.namespace",
                    format!("{ns:?} is not a valid namespace name"),
                );
            } else if let Some(why) = system_namespace(ns) {
                e.push("spec.namespace", why);
            }
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
        if let Some(country) = self
            .billing
            .address
            .as_ref()
            .and_then(|a| a.country.as_ref())
            && !(country.len() == 2 && country.chars().all(|c| c.is_ascii_uppercase()))
        {
            // Written into the UBL invoice as it is: Peppol refuses anything but a code (BR-CL-14).
            e.push(
                "spec.billing.address.country",
                format!("{country:?} must be an ISO 3166-1 alpha-2 code, e.g. NL"),
            );
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
            } else if g.starts_with(SYSTEM_PREFIX) {
                // `system:authenticated`, `system:serviceaccounts`… are every user or every
                // workload of the cluster: binding them would give them all edit rights here.
                e.push(
                    format!("spec.access.groups[{i}]"),
                    format!(
                        "{g:?} is a Kubernetes system group (system:…), not the participant's own staff"
                    ),
                );
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
        } else if self.accounts > MAX_ACCOUNTS {
            e.push(
                "spec.accounts",
                format!("must be at most {MAX_ACCOUNTS}, not {}", self.accounts),
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
                        // The poller looks twice a second: anything shorter is every look.
                        Ok(v)
                            if path.ends_with("interval")
                                && v < std::time::Duration::from_secs(1) =>
                        {
                            e.push(path, format!("{d} is shorter than 1s"))
                        }
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
            } else if h.image.chars().any(char::is_whitespace) {
                // The Deployment is accepted, but every pod of it is refused.
                e.push(
                    "spec.hosted.image",
                    format!("{:?} must not contain spaces", h.image),
                );
            } else if let Err(m) = check_image(&h.image) {
                // Accepted too, and every pod fails in the kubelet (InvalidImageName).
                e.push("spec.hosted.image", m);
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
            if h.replicas.is_some_and(|r| !(0..=MAX_REPLICAS).contains(&r)) {
                e.push(
                    "spec.hosted.replicas",
                    format!("must be 0 to {MAX_REPLICAS}"),
                );
            }
            if let Some(r) = &h.resources {
                for (part, amounts) in [("requests", &r.requests), ("limits", &r.limits)] {
                    for (resource, value) in amounts {
                        if let Err(m) =
                            check_resource_name(resource).and_then(|()| check_quantity(value))
                        {
                            e.push(format!("spec.hosted.resources.{part}.{resource}"), m);
                        }
                    }
                }
                // Hugepages and extended resources are never overcommitted: the API server
                // refuses a request without a limit equal to it, and an extended resource in
                // parts of a unit.
                for (resource, request) in &r.requests {
                    let never_overcommitted =
                        resource.starts_with("hugepages-") || resource.contains('/');
                    if !never_overcommitted || check_resource_name(resource).is_err() {
                        continue;
                    }
                    let equal = r
                        .limits
                        .get(resource)
                        .and_then(|l| quantity_value(l))
                        .zip(quantity_value(request))
                        .is_some_and(|(l, rq)| l == rq);
                    if !equal {
                        e.push(
                            format!("spec.hosted.resources.requests.{resource}"),
                            format!(
                                "{request} needs a limit equal to it: the API server does not \
                                 overcommit {resource}"
                            ),
                        );
                    }
                }
                for (part, amounts) in [("requests", &r.requests), ("limits", &r.limits)] {
                    for (resource, value) in amounts {
                        let extended =
                            resource.contains('/') && check_resource_name(resource).is_ok();
                        if extended && quantity_value(value).is_some_and(|v| !v.fract().is_zero()) {
                            e.push(
                                format!("spec.hosted.resources.{part}.{resource}"),
                                format!("{value} must be a whole number of {resource}"),
                            );
                        }
                        let pages = hugepage_size(resource)
                            .zip(quantity_value(value))
                            .is_none_or(|(size, v)| (v % size).is_zero());
                        if !pages {
                            e.push(
                                format!("spec.hosted.resources.{part}.{resource}"),
                                format!("{value} must be a whole number of pages of {resource}"),
                            );
                        }
                    }
                }
                // The API server refuses a container whose request exceeds its limit, on every
                // try: the component would never run.
                for (resource, request) in &r.requests {
                    let Some(limit) = r.limits.get(resource) else {
                        continue;
                    };
                    if let (Some(rq), Some(lm)) = (quantity_value(request), quantity_value(limit))
                        && rq > lm
                    {
                        e.push(
                            format!("spec.hosted.resources.requests.{resource}"),
                            format!("{request} is above its limit {limit}"),
                        );
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

/// Whether rates `a` and `b` can both match one line with the same specificity: the same item,
/// as many of level, class and profile named, and none named differently.
fn rates_tie(a: &crate::commercial::Rate, b: &crate::commercial::Rate) -> bool {
    fn agree<T: PartialEq>(x: &Option<T>, y: &Option<T>) -> bool {
        match (x, y) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
    }
    let named = |r: &crate::commercial::Rate| {
        usize::from(r.service_level.is_some())
            + usize::from(r.class.is_some())
            + usize::from(r.profile.is_some())
    };
    a.item == b.item
        && named(a) == named(b)
        && agree(&a.service_level, &b.service_level)
        && agree(&a.class, &b.class)
        && agree(&a.profile, &b.profile)
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
                    // Dates are midnight in billing's time zone, as pricing reads them: in
                    // UTC an until of 2026-03-01 is after a from of 2026-02-28T23:30Z, for
                    // pricing it is half an hour before.
                    if let Ok(f) = from
                        && let Ok(tz) = jiff::tz::TimeZone::get(PRICE_TIME_ZONE)
                        && u.instant(&tz) <= f.instant(&tz)
                    {
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
        // Two rates that can both be the most specific for one line make pricing refuse every
        // tenant that line is for (see `billing::pricing::PricedList::rate`): refused here.
        for (j, b) in self.rates.iter().enumerate() {
            if let Some(i) = self.rates[..j].iter().position(|a| rates_tie(a, b)) {
                e.push(
                    format!("spec.rates[{j}]"),
                    format!(
                        "is as specific as spec.rates[{i}] for the same {:?} lines: one of them \
                         would never be the one that applies; make one name another level, \
                         class or profile, or remove it",
                        b.item
                    ),
                );
            }
        }
        if let Some(n) = &self.notice_period {
            match parse_duration(n) {
                Err(m) => e.push("spec.noticePeriod", m),
                Ok(d) if d.as_secs() > MAX_NOTICE_DAYS * 86_400 => e.push(
                    "spec.noticePeriod",
                    format!("{n} is longer than {MAX_NOTICE_DAYS}d (ten years)"),
                ),
                Ok(_) => {}
            }
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
        // A selector billing cannot read fails the pass of every tenant, not this pool's only.
        let expressions = self
            .tenant_selector
            .iter()
            .flat_map(|s| s.match_expressions.iter().flatten());
        for (i, x) in expressions.enumerate() {
            let path = format!("spec.tenantSelector.matchExpressions[{i}]");
            let values = x.values.as_deref().unwrap_or_default();
            match x.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => e.push(
                    format!("{path}.values"),
                    format!("{} needs values", x.operator),
                ),
                "Exists" | "DoesNotExist" if !values.is_empty() => e.push(
                    format!("{path}.values"),
                    format!("{} takes no values", x.operator),
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => e.push(
                    format!("{path}.operator"),
                    format!("{other:?} is not In, NotIn, Exists or DoesNotExist"),
                ),
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_named(name: &str, namespace: Option<&str>, groups: &[&str]) -> Tenant {
        let mut t: Tenant = serde_yaml::from_str(&format!(
            "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: {name:?}}}\nspec: {{displayName: X, serviceLevel: gold, membership: {{joined: \"2026-01-01\"}}}}\n"
        ))
        .expect("tenant");
        t.spec.namespace = namespace.map(Into::into);
        t.spec.access.groups = groups.iter().map(|g| g.to_string()).collect();
        t
    }

    fn allowed() -> Vec<String> {
        ["regie-system", "monitoring", "ingress-nginx"]
            .map(String::from)
            .to_vec()
    }

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn a_tenant_cannot_take_a_namespace_that_breaks_isolation() {
        for ns in [
            "ingress-nginx",
            "monitoring",
            "regie-system",
            "default",
            "kube-system",
            "kube-public",
            "tenant-a",
        ] {
            let errors = tenant(&tenant_named("b", Some(ns), &[]), &allowed());
            assert_eq!(paths(&errors), ["spec.namespace"], "{ns}: {errors:?}");
        }
        // The allowed namespaces are the installation's, not a fixed list.
        let other = vec!["observability".to_string()];
        assert!(tenant(&tenant_named("b", Some("monitoring"), &[]), &other).is_empty());
        assert_eq!(
            paths(&tenant(
                &tenant_named("b", Some("observability"), &[]),
                &other
            )),
            ["spec.namespace"]
        );
        // Its own default namespace, named explicitly, and a name of its own are fine.
        for ns in ["tenant-b", "gem-b", "kubernetes-b"] {
            let errors = tenant(&tenant_named("b", Some(ns), &[]), &allowed());
            assert!(errors.is_empty(), "{ns}: {errors:?}");
        }
    }

    #[test]
    fn system_groups_get_no_access() {
        let errors = tenant(
            &tenant_named("b", None, &["gem-b-admins", "system:authenticated"]),
            &allowed(),
        );
        assert_eq!(paths(&errors), ["spec.access.groups[1]"], "{errors:?}");
        assert!(errors[0].message.contains("system group"));
    }

    #[test]
    fn tenant_names_must_make_a_namespace_and_a_label() {
        let long = "a".repeat(MAX_TENANT_NAME + 1);
        for name in ["gemeente.roosendaal", long.as_str(), "Roosendaal", "-x"] {
            let errors = tenant(&tenant_named(name, None, &[]), &allowed());
            assert_eq!(paths(&errors), ["metadata.name"], "{name}: {errors:?}");
        }
        let longest = "a".repeat(MAX_TENANT_NAME);
        assert_eq!(format!("{NAMESPACE_PREFIX}{longest}").len(), 63);
        assert!(tenant(&tenant_named(&longest, None, &[]), &allowed()).is_empty());
    }

    #[test]
    fn quantities_have_exact_values() {
        for (s, want) in [
            ("2", "2"),
            ("250m", "0.250"),
            ("1.5", "1.5"),
            (".5", "0.5"),
            ("1Gi", "1073741824"),
            ("512Mi", "536870912"),
            ("1G", "1000000000"),
            ("1e3", "1000"),
            ("5E-3", "0.005"),
            ("100n", "0.0000001"),
        ] {
            assert_eq!(
                quantity_value(s),
                Some(Decimal::from_str_exact(want).expect("decimal")),
                "{s}"
            );
        }
        assert_eq!(quantity_value("1e40"), None);
        assert_eq!(quantity_value("lots"), None);
        assert!(quantity_value("1Gi") > quantity_value("1000Mi"));
        assert!(quantity_value("501m") > quantity_value("0.5"));
    }

    #[test]
    fn a_hosted_resource_the_api_server_does_not_know_is_refused() {
        let spec: HostingComponentSpec = serde_yaml::from_str(
            "class: applicationHosting\nhosted: {image: x, port: 8080, healthPath: /, resources: {requests: {memroy: 256Mi, cpu: 100m, ephemeral-storage: 1Gi, hugepages-2Mi: 4Mi, example.com/gpu: \"1\"}, limits: {kubernetes.io/x: \"1\", hugepages-2Mi: 4Mi, example.com/gpu: \"1\"}}}\n",
        )
        .expect("spec");
        let errors = spec.validate();
        assert_eq!(
            paths(&errors),
            [
                "spec.hosted.resources.requests.memroy",
                "spec.hosted.resources.limits.kubernetes.io/x"
            ],
            "{errors:?}"
        );
        assert!(errors[0].message.contains("not a container resource"));
    }

    #[test]
    fn hugepages_and_extended_resources_need_an_equal_limit_and_whole_units() {
        let spec: HostingComponentSpec = serde_yaml::from_str(
            "class: applicationHosting\nhosted: {image: x, port: 8080, healthPath: /, resources: {requests: {hugepages-2Mi: 4Mi, example.com/gpu: \"1\", example.com/fpga: 500m, memory: 1Gi}, limits: {hugepages-2Mi: 8Mi, example.com/fpga: 500m}}}\n",
        )
        .expect("spec");
        let errors = spec.validate();
        assert_eq!(
            paths(&errors),
            [
                "spec.hosted.resources.requests.example.com/gpu",
                "spec.hosted.resources.requests.hugepages-2Mi",
                "spec.hosted.resources.requests.example.com/fpga",
                "spec.hosted.resources.limits.example.com/fpga",
            ],
            "{errors:?}"
        );
        assert!(errors[0].message.contains("needs a limit equal to it"));
        assert!(errors[2].message.contains("whole number"));
    }

    /// Names and amounts the API server refuses in a Deployment, on every reconcile.
    #[test]
    fn resource_names_and_amounts_are_what_the_api_server_takes() {
        for bad in [
            "Example.COM/fpga",
            "example.com/a/b",
            "requests.example.com/gpu",
            "example.com/-gpu",
            "example..com/x",
            "hugepages-foo",
            "hugepages-",
            "kubernetes.io/x",
        ] {
            assert!(check_resource_name(bad).is_err(), "{bad}");
        }
        for ok in [
            "cpu",
            "hugepages-2Mi",
            "hugepages-1Gi",
            "example.com/gpu",
            "nvidia.com/gpu",
        ] {
            assert_eq!(check_resource_name(ok), Ok(()), "{ok}");
        }
        let spec: HostingComponentSpec = serde_yaml::from_str(
            "class: applicationHosting\nhosted: {image: x, port: 8080, healthPath: /, replicas: 1001, resources: {requests: {hugepages-2Mi: 3Mi, memory: 1e29, cpu: 1e-30}, limits: {hugepages-2Mi: 3Mi, memory: \"1e99999999999999999999\"}}}\n",
        )
        .expect("spec");
        let errors = spec.validate();
        assert_eq!(
            paths(&errors),
            [
                "spec.hosted.replicas",
                "spec.hosted.resources.requests.cpu",
                "spec.hosted.resources.requests.memory",
                "spec.hosted.resources.limits.memory",
                "spec.hosted.resources.requests.hugepages-2Mi",
                "spec.hosted.resources.limits.hugepages-2Mi",
            ],
            "{errors:?}"
        );
        assert!(
            errors[1].message.contains("beyond the quantities"),
            "{errors:?}"
        );
        assert!(
            errors[4].message.contains("whole number of pages"),
            "{errors:?}"
        );
        assert_eq!(
            check_quantity("1e-10"),
            Err("\"1e-10\" is below the smallest quantity, 1n (one billionth)".into())
        );
        assert_eq!(check_quantity("0"), Ok(()));
        assert_eq!(check_quantity("1n"), Ok(()));
    }

    #[test]
    fn names_and_labels_are_what_the_api_server_takes() {
        assert!(namespace_name("monitoring").is_ok());
        assert!(namespace_name(" monitoring").is_err());
        assert!(is_dns_subdomain("tenant-a.b"));
        assert!(!is_dns_subdomain("Web_Site"));
        assert!(is_label_key("regie.dev/organisation"));
        assert!(is_label_key("tier"));
        assert!(!is_label_key("Bad Key"));
        assert!(!is_label_key("Regie.dev/x"));
        assert!(is_label_value("ict-wbw"));
        assert!(!is_label_value("ICT WBW"));
    }

    #[test]
    fn rates_that_tie_for_a_line_are_refused() {
        let list = |rates: &str| -> PriceListSpec {
            serde_yaml::from_str(&format!(
                "currency: EUR\neffectiveFrom: \"2026-01-01\"\nrates: {rates}\n"
            ))
            .expect("list")
        };
        // The same rate twice, and a level-only next to a class-only component rate (a gold
        // application-hosting line matches both), are refused; a more specific one is not.
        let twice = list(
            "[{item: account, profile: standard, serviceLevel: gold, per: month, amount: \"2.00\"}, {item: account, profile: standard, serviceLevel: gold, per: month, amount: \"2.10\"}]",
        );
        assert_eq!(paths(&twice.validate()), ["spec.rates[1]"]);
        let crossed = list(
            "[{item: component, serviceLevel: gold, per: month, amount: \"100.00\"}, {item: component, class: applicationHosting, per: month, amount: \"90.00\"}]",
        );
        assert_eq!(paths(&crossed.validate()), ["spec.rates[1]"]);
        let nested = list(
            "[{item: component, per: month, amount: \"80.00\"}, {item: component, serviceLevel: gold, per: month, amount: \"100.00\"}, {item: component, serviceLevel: silver, per: month, amount: \"90.00\"}, {item: component, serviceLevel: gold, class: applicationHosting, per: month, amount: \"120.00\"}]",
        );
        assert_eq!(paths(&nested.validate()), Vec::<&str>::new());
    }

    #[test]
    fn image_references_are_what_the_runtime_reads() {
        for ok in [
            "x",
            "nginx",
            "nginx:1.27",
            "registry.example/shared/gis-viewer:1.18.4",
            "localhost:5000/web",
            "Registry.Example/app:LATEST",
            "ghcr.io/org/a__b/c-d_e.f:v1_2",
            "[::1]:5000/web:1",
            "[::1]/web",
            "registry.example/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_image(ok), Ok(()), "{ok}");
        }
        for bad in [
            "Registry.Example/App:LATEST",
            "registry.example/web@sha256:xyz",
            "registry.example/web:",
            "registry.example/web:-1",
            "registry.example//web",
            "registry.example/web-",
            "registry.example:port/web",
            "Nginx",
            "web:1:2",
        ] {
            assert!(check_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_hosted_image_with_a_space_is_refused() {
        let spec: HostingComponentSpec = serde_yaml::from_str(
            "class: applicationHosting\nhosted: {image: \"nginx \", port: 8080, healthPath: /}\n",
        )
        .expect("spec");
        assert_eq!(paths(&spec.validate()), ["spec.hosted.image"]);
    }

    #[test]
    fn a_cost_pool_selector_billing_cannot_read_is_refused() {
        let pool: CostPoolSpec = serde_yaml::from_str(
            "amount: \"1000.00\"\nfrom: \"2026-01-01\"\nuntil: \"2026-12-31\"\nallocation: equalShares\ntenantSelector: {matchExpressions: [{key: a, operator: in, values: [x]}, {key: b, operator: In}, {key: c, operator: Exists, values: [y]}, {key: d, operator: NotIn, values: [z]}]}\n",
        )
        .expect("pool");
        assert_eq!(
            paths(&pool.validate()),
            [
                "spec.tenantSelector.matchExpressions[0].operator",
                "spec.tenantSelector.matchExpressions[1].values",
                "spec.tenantSelector.matchExpressions[2].values",
            ]
        );
    }

    #[test]
    fn bounds_on_accounts_and_country() {
        let package: WorkplacePackageSpec =
            serde_yaml::from_str("profile: standard\naccounts: 9223372036854775807\n").unwrap();
        assert_eq!(paths(&package.validate()), ["spec.accounts"]);
        let mut tenant = tenant_named("tholen", None, &[]);
        tenant.spec.billing.address = Some(crate::tenancy::PostalAddress {
            country: Some("Nederland".into()),
            ..Default::default()
        });
        assert_eq!(
            paths(&tenant.spec.validate()),
            ["spec.billing.address.country"]
        );
    }

    #[test]
    fn a_hosted_request_above_its_limit_is_refused() {
        let spec = |resources: &str| -> HostingComponentSpec {
            serde_yaml::from_str(&format!(
                "class: applicationHosting\nhosted: {{image: x, port: 8080, healthPath: /, resources: {resources}}}\n"
            ))
            .expect("spec")
        };
        let errors =
            spec("{requests: {memory: 1Gi, cpu: \"2\"}, limits: {memory: 1000Mi, cpu: 2000m}}")
                .validate();
        assert_eq!(
            paths(&errors),
            ["spec.hosted.resources.requests.memory"],
            "{errors:?}"
        );
        assert!(errors[0].message.contains("1Gi is above its limit 1000Mi"));
        assert!(
            spec("{requests: {memory: 1Gi}, limits: {memory: 1Gi}}")
                .validate()
                .is_empty()
        );
        assert!(spec("{requests: {memory: 1Gi}}").validate().is_empty());
    }

    #[test]
    fn price_list_dates_are_midnight_where_pricing_reads_them() {
        let spec = |from: &str, until: &str| -> PriceListSpec {
            serde_yaml::from_str(&format!(
                "currency: EUR\neffectiveFrom: {from:?}\neffectiveUntil: {until:?}\nvat: {{category: S, percent: \"21\"}}\nrates: [{{item: account, per: month, amount: \"1.00\"}}]\n"
            ))
            .expect("spec")
        };
        // Midnight of 1 March in Amsterdam is 23:00 UTC on 28 February: before this from.
        let errors = spec("2026-02-28T23:30:00Z", "2026-03-01").validate();
        assert_eq!(paths(&errors), ["spec.effectiveUntil"], "{errors:?}");
        assert!(
            spec("2026-02-28T22:30:00Z", "2026-03-01")
                .validate()
                .is_empty()
        );
        assert!(spec("2026-01-01", "2026-07-01").validate().is_empty());
    }

    #[test]
    fn service_level_names_must_be_label_values() {
        let level = |name: &str| -> ServiceLevel {
            serde_yaml::from_str(&format!(
                "apiVersion: regie.dev/v1alpha1\nkind: ServiceLevel\nmetadata: {{name: {name:?}}}\nspec: {{rank: 0, serviceHours: [\"Mon-Fri 08:00-17:00\"], responseTimes: {{urgent: 1h, other: 2d}}, kpiReport: monthly, availability: {{target: \"98\"}}, probe: {{interval: 60s, timeout: 10s}}}}\n"
            ))
            .expect("level")
        };
        assert!(service_level(&level("bronze")).is_empty());
        assert!(service_level(&level(&"b".repeat(63))).is_empty());
        let errors = service_level(&level(&"b".repeat(64)));
        assert_eq!(paths(&errors), ["metadata.name"], "{errors:?}");
    }
}

//! Probe targets and their safety. A probe target is a URL that someone typed into a YAML file,
//! so it is hostile until checked: this module owns the [`ProbeTarget`] the scheduler runs, the
//! operator's [`ProbePolicy`] (which address ranges may be probed), and the checks that refuse a
//! URL before anything is sent — on its scheme, its user info, its literal host and, through
//! [`GuardedResolver`], on every address its name resolves to at the moment of connecting.
//!
//! Some refusals are hard and no configuration lifts them: link-local addresses (169.254.0.0/16,
//! fe80::/10, where cloud metadata services answer), the known cloud metadata addresses and
//! names (`metadata`, `metadata.*`, `instance-data`), unspecified, multicast and reserved
//! addresses. Loopback and private ranges, and the operator's own `denyCidrs` / `allowCidrs`,
//! are policy. A URL someone typed (a SaaS URL, an account source) is judged by the policy as
//! configured, where private ranges are refused by default; the URL regie builds itself for a
//! hosted component's own Service is judged by [`ProbePolicy::for_own_services`], which lets it
//! reach the cluster's private Service addresses. IPv4 addresses embedded in IPv6
//! (`::ffff:169.254.169.254`, NAT64, 6to4) are judged as the IPv4 address they carry.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kube::ResourceExt;
use regie_crds::{HostingComponent, Tenant};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::{Host, Url};

use crate::desired::{component_level, hosted_probe_url, service_host};
use crate::tier::Tier;

/// Why a target is not probed. The controller shows `reason` in the component's `Stalled`
/// condition, so it names the rule and never echoes the URL's query string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub reason: String,
    /// When a probe was refused as it ran, because the target's host name resolved to a refused
    /// address (see [`Refused::when_probed`]); None for a target refused as written, which is
    /// never probed.
    pub at: Option<jiff::Timestamp>,
}

impl Refused {
    pub fn new(reason: impl Into<String>) -> Refused {
        Refused {
            reason: reason.into(),
            at: None,
        }
    }

    /// This refusal as the outcome of the probe started at `at`: the name resolved to a
    /// refused address (a parked or blocked DNS answer such as 127.0.0.1 or 0.0.0.0). To the
    /// participant's users the service is unreachable then, so the SLA counts it as a failed
    /// sample (see [`super::prober::ProbeResult::sla_sample`]).
    pub fn when_probed(mut self, at: jiff::Timestamp) -> Refused {
        self.at = Some(at);
        self
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "probe target refused: {}", self.reason)
    }
}

impl std::error::Error for Refused {}

/// An IP network such as `10.0.0.0/8` or `fd00::/8`; a bare address means a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, String> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("prefix /{prefix} is longer than /{max} for {addr}"));
        }
        Ok(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True when `ip` lies in this network. IPv4 networks also match IPv6 addresses that carry
    /// an IPv4 address (mapped, NAT64, 6to4, Teredo): those reach the IPv4 address, so a
    /// `denyCidrs` entry must hold for them too (was: the mapped form only — `64:ff9b::a14:1`
    /// passed a deny of 10.20.0.0/16).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match embedded_ipv4(v6) {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let bad =
            || format!("{s:?} is not an IP network (use e.g. 10.0.0.0/8, fd00::/8 or 192.0.2.7)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Which addresses the operator may probe, beyond the hard refusals no setting lifts.
///
/// Between `allowCidrs` and `denyCidrs` the longest matching prefix decides (a tie denies), so
/// `denyCidrs: [10.0.0.0/8]` with `allowCidrs: [10.1.2.0/24]` opens one subnet, and the reverse
/// closes one. Addresses in neither list fall to `allowLoopback` and `allowPrivate`. The
/// default closes everything that is policy: loopback, private ranges, no lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProbePolicy {
    /// RFC 1918, carrier-grade NAT (100.64.0.0/10) and unique-local IPv6, behind a URL someone
    /// typed. Refused by default: whoever may write a SaaS URL could otherwise map the internal
    /// network through the probe results (which ports answer, how fast). Hosted components are
    /// probed through their Service all the same (see [`ProbePolicy::for_own_services`]); an
    /// internal SaaS is opened with `allowCidrs` for its range, or with this.
    pub allow_private: bool,
    /// 127.0.0.0/8, ::1 and `localhost`. Refused by default: the prober would probe itself.
    pub allow_loopback: bool,
    pub deny_cidrs: Vec<Cidr>,
    pub allow_cidrs: Vec<Cidr>,
}

/// What an address is, for the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Never probed, whatever the policy says; the text says why.
    Forbidden(&'static str),
    Loopback,
    Private,
    Public,
}

/// The IPv4 address an IPv6 address carries, where it is one in disguise: mapped
/// (`::ffff:a.b.c.d`), translated (SIIT, `::ffff:0:a.b.c.d`), the deprecated compatible form
/// (`::a.b.c.d`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`) and Teredo (`2001::/32`, whose
/// client address is stored inverted).
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback() {
        return Some(tail);
    }
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    if s[..2] == [0x2001, 0] {
        return Some(Ipv4Addr::from(!u32::from(tail)));
    }
    None
}

const LINK_LOCAL_V4: &str =
    "a link-local address (169.254.0.0/16), where cloud metadata services answer";
const METADATA_ADDRESS: &str = "a cloud metadata service address";

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return classify_v4(v4);
            }
            let s = v6.segments();
            if v6.is_unspecified() {
                Class::Forbidden("the unspecified address")
            } else if v6.is_loopback() {
                Class::Loopback
            } else if s[0] & 0xffc0 == 0xfe80 {
                Class::Forbidden("a link-local address (fe80::/10)")
            } else if s[0] & 0xff00 == 0xff00 {
                Class::Forbidden("a multicast address")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                // AWS's IPv6 instance metadata endpoint, inside the unique-local range.
                Class::Forbidden(METADATA_ADDRESS)
            } else if s[..3] == [0x64, 0xff9b, 1] {
                // The local-use NAT64 prefix (RFC 8215): where it leads is the local
                // translator's choice, so it is judged as private — but an address that
                // carries a link-local or metadata address in its last 32 bits (the common
                // /96 layout) stays refused whatever the policy says.
                let tail = Ipv4Addr::from(u128::from(v6) as u32);
                match classify_v4(tail) {
                    forbidden @ Class::Forbidden(_) => forbidden,
                    _ => Class::Private,
                }
            } else if s[0] & 0xfe00 == 0xfc00 || s[0] & 0xffc0 == 0xfec0 {
                Class::Private
            } else {
                Class::Public
            }
        }
    }
}

fn classify_v4(v4: Ipv4Addr) -> Class {
    let o = v4.octets();
    match o {
        [0, ..] => Class::Forbidden("an unspecified (\"this network\", 0.0.0.0/8) address"),
        [169, 254, ..] => Class::Forbidden(LINK_LOCAL_V4),
        // Alibaba Cloud's metadata service and Azure's host endpoint (wire server).
        [100, 100, 100, 200] | [168, 63, 129, 16] => Class::Forbidden(METADATA_ADDRESS),
        // IETF protocol assignments, none of them a service to probe; Oracle Cloud's older
        // metadata service answers at 192.0.0.192.
        [192, 0, 0, _] => Class::Forbidden("an IETF protocol assignment (192.0.0.0/24)"),
        [224..=239, ..] => Class::Forbidden("a multicast address"),
        [240..=255, ..] => Class::Forbidden("a reserved or broadcast address"),
        [127, ..] => Class::Loopback,
        [10, ..] | [192, 168, ..] => Class::Private,
        [172, b, ..] if (16..32).contains(&b) => Class::Private,
        [100, b, ..] if (64..128).contains(&b) => Class::Private,
        _ => Class::Public,
    }
}

/// Host names that lead to cloud metadata services whatever they resolve to.
fn is_metadata_name(name: &str) -> bool {
    ["metadata", "instance-data"].iter().any(|m| {
        name == *m
            || name
                .strip_prefix(m)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

impl ProbePolicy {
    /// The policy for the URLs regie builds itself for hosted components' own Services
    /// (`http://<component>.<namespace>.svc/...`): a Service's address is private, so private
    /// ranges are allowed; every other rule, `denyCidrs` included, stays.
    pub fn for_own_services(&self) -> ProbePolicy {
        ProbePolicy {
            allow_private: true,
            ..self.clone()
        }
    }

    /// Checks one address, as written in a URL or as resolved.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        let class = classify(ip);
        if let Class::Forbidden(what) = class {
            return Err(Refused::new(format!("{ip} is {what}; it is never probed")));
        }
        let best = |list: &[Cidr]| {
            list.iter()
                .filter(|c| c.contains(ip))
                .max_by_key(|c| c.prefix())
                .copied()
        };
        match (best(&self.allow_cidrs), best(&self.deny_cidrs)) {
            (Some(allow), Some(deny)) if allow.prefix() > deny.prefix() => return Ok(()),
            (_, Some(deny)) => {
                return Err(Refused::new(format!(
                    "{ip} is in {deny}, which the probe policy denies (denyCidrs)"
                )));
            }
            (Some(_), None) => return Ok(()),
            (None, None) => {}
        }
        match class {
            Class::Loopback if !self.allow_loopback => Err(Refused::new(format!(
                "{ip} is a loopback address, which the probe policy refuses (allowLoopback: false)"
            ))),
            Class::Private if !self.allow_private => Err(Refused::new(format!(
                "{ip} is a private address, which the probe policy refuses (allowPrivate: false)"
            ))),
            _ => Ok(()),
        }
    }

    /// Checks a host name before it is resolved: metadata names always, `localhost` by policy.
    pub fn check_name(&self, name: &str) -> Result<(), Refused> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if is_metadata_name(&name) {
            return Err(Refused::new(format!(
                "host {name:?} is a cloud metadata service name; it is never probed"
            )));
        }
        let localhost = name == "localhost" || name.ends_with(".localhost");
        if localhost && !self.allow_loopback {
            return Err(Refused::new(format!(
                "host {name:?} is loopback, which the probe policy refuses (allowLoopback: false)"
            )));
        }
        Ok(())
    }

    /// Every check that needs no DNS: scheme, user info, and the literal host.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(Refused::new(format!(
                    "scheme {other:?} is not probed; only http and https are"
                )));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::new(
                "the URL carries a user name or password; credentials do not belong in a probe URL",
            ));
        }
        match url.host() {
            None => Err(Refused::new("the URL has no host")),
            Some(Host::Domain(name)) => self.check_name(name),
            Some(Host::Ipv4(v4)) => self.check_ip(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => self.check_ip(IpAddr::V6(v6)),
        }
    }

    /// Checks what a name resolved to: every address must pass, or none is used.
    pub fn check_resolved(&self, name: &str, addrs: &[IpAddr]) -> Result<(), Refused> {
        if addrs.is_empty() {
            return Err(Refused::new(format!(
                "host {name:?} resolves to no address"
            )));
        }
        for ip in addrs {
            self.check_ip(*ip).map_err(|r| {
                Refused::new(format!(
                    "host {name:?} resolves to a refused address: {}",
                    r.reason
                ))
            })?;
        }
        Ok(())
    }
}

/// Parses a target URL; an unparsable one is refused like an unsafe one.
pub fn parse_target_url(s: &str) -> Result<Url, Refused> {
    Url::parse(s).map_err(|e| Refused::new(format!("not a valid URL: {e}")))
}

/// Name resolution, replaceable so tests can play DNS (including rebinding) offline.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, name: String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The system resolver (getaddrinfo on tokio's blocking pool), honouring the pod's resolv.conf
/// search path, so `component.namespace.svc` resolves in the cluster. At most
/// [`SYSTEM_LOOKUPS_AT_ONCE`] run at a time in the whole process.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemLookup;

/// Each system lookup holds a thread of tokio's blocking pool for as long as the DNS server
/// takes to answer — also after its probe gave up on it, as getaddrinfo cannot be cancelled. A
/// server that answers a burst slowly (the first probes of hundreds of new components) would
/// otherwise grow the pool towards its 512 threads, each keeping its stack and allocator arena —
/// measured: 395 threads and ≈ 16 MB more RSS during the first probes of 400 tenants — while the
/// extra lookups only queue at the same server. A lookup waiting for a slot counts against its
/// probe's timeout like a slow answer would.
pub const SYSTEM_LOOKUPS_AT_ONCE: usize = 16;

static SYSTEM_LOOKUP_SLOTS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(SYSTEM_LOOKUPS_AT_ONCE);

impl Lookup for SystemLookup {
    fn lookup(&self, name: String) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        blocking_within_slots(&SYSTEM_LOOKUP_SLOTS, move || {
            use std::net::ToSocketAddrs as _;
            Ok((name.as_str(), 0)
                .to_socket_addrs()?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// Runs `lookup` on the blocking pool once it holds one of `slots`' permits. The blocking task,
/// not the future, holds the permit: a caller that stops waiting frees no slot while its lookup
/// still occupies a thread.
fn blocking_within_slots(
    slots: &'static tokio::sync::Semaphore,
    lookup: impl FnOnce() -> std::io::Result<Vec<IpAddr>> + Send + 'static,
) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
    Box::pin(async move {
        // The semaphores are statics that are never closed; the error cannot happen.
        let slot = slots.acquire().await.map_err(std::io::Error::other)?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            lookup()
        })
        .await
        .map_err(std::io::Error::other)?
    })
}

/// The resolver the probe client connects through: it resolves, checks every address against
/// the policy and hands the connector only checked addresses. Check and connect use the same
/// answer, so a DNS server that changes its answer between the two (DNS rebinding) cannot slip
/// a refused address in. Literal IP hosts never reach a resolver; [`ProbePolicy::check_url`]
/// covers them before each request.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<ProbePolicy>,
    lookup: Arc<dyn Lookup>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<ProbePolicy>, lookup: Arc<dyn Lookup>) -> GuardedResolver {
        GuardedResolver { policy, lookup }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let lookup = self.lookup.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            policy.check_name(&name)?;
            let ips = lookup.lookup(name.clone()).await?;
            policy.check_resolved(&name, &ips)?;
            // Port 0 is replaced by the URL's port (or the scheme's default) by the connector.
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The labels every probe series carries, in the order of [`super::LABELS`]. Shared strings: the
/// scheduler's target, the prober's record of the component and its metric series hold one copy
/// (`regie run` keeps them for every component, see `controller::probing`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetLabels {
    pub tenant: Arc<str>,
    pub component: Arc<str>,
    pub service_level: Arc<str>,
}

impl TargetLabels {
    pub fn new(
        tenant: impl Into<Arc<str>>,
        component: impl Into<Arc<str>>,
        service_level: impl Into<Arc<str>>,
    ) -> Self {
        TargetLabels {
            tenant: tenant.into(),
            component: component.into(),
            service_level: service_level.into(),
        }
    }

    /// The label values in the order of [`super::LABELS`].
    pub fn values(&self) -> [&str; 3] {
        [&self.tenant, &self.component, &self.service_level]
    }
}

/// One thing to probe: what, how often, how long to wait, and what counts as up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTarget {
    /// A parsed URL's text: `regie run` keeps a target for every component, and a `Url` is 88
    /// bytes besides its text; parsing it again for each probe costs about a microsecond.
    url: Box<str>,
    pub interval: Duration,
    pub timeout: Duration,
    /// The status that counts as up; any 2xx when absent.
    pub expect_status: Option<u16>,
    pub labels: TargetLabels,
    /// Known to have nothing behind it: a hosted component's Service while its Deployment has
    /// no available replica has no endpoint, so the probe fails without a request — no name
    /// lookup, no connection attempt — and says why.
    pub without_endpoints: bool,
    /// The URL is one regie built for a hosted component's own Service, not one someone typed:
    /// it is judged by [`ProbePolicy::for_own_services`] (and so are redirects that stay on its
    /// host; a redirect elsewhere is judged like a typed URL).
    pub own_service: bool,
}

impl ProbeTarget {
    /// A target with any-2xx success and empty labels; parse errors are refusals.
    pub fn new(url: &str, interval: Duration, timeout: Duration) -> Result<ProbeTarget, Refused> {
        Ok(ProbeTarget {
            url: String::from(parse_target_url(url)?).into_boxed_str(),
            interval,
            timeout,
            expect_status: None,
            labels: TargetLabels::default(),
            without_endpoints: false,
            own_service: false,
        })
    }

    pub fn with_labels(mut self, labels: TargetLabels) -> ProbeTarget {
        self.labels = labels;
        self
    }

    pub fn with_expect_status(mut self, status: Option<u16>) -> ProbeTarget {
        self.expect_status = status;
        self
    }

    /// Marks the URL as one regie built for a component's own Service (see [`Self::own_service`]).
    pub fn for_own_service(mut self) -> ProbeTarget {
        self.own_service = true;
        self
    }

    pub fn with_endpoints(mut self, endpoints: bool) -> ProbeTarget {
        self.without_endpoints = !endpoints;
        self
    }

    /// The URL to probe. An error only if the text a parsed URL wrote does not parse again,
    /// which the `url` crate rules out.
    pub fn url(&self) -> Result<Url, Refused> {
        Url::parse(&self.url).map_err(|e| Refused::new(format!("target URL does not parse: {e}")))
    }

    /// The URL to probe as text, for people.
    pub fn url_text(&self) -> &str {
        &self.url
    }

    /// True when `status` counts as up for this target.
    pub fn is_success(&self, status: u16) -> bool {
        match self.expect_status {
            Some(expected) => status == expected,
            None => (200..300).contains(&status),
        }
    }
}

/// The scheduler key of a component: `namespace/name`.
pub fn component_key(component: &HostingComponent) -> String {
    format!(
        "{}/{}",
        component.namespace().unwrap_or_default(),
        component.name_any()
    )
}

/// The probe target of a component at its tier: hosted components through their Service,
/// SaaS components at their URL (with the probe's `path` in place of the URL's own when set).
/// The result is not yet checked against a [`ProbePolicy`]; the scheduler does that.
pub fn component_target(
    tenant: &Tenant,
    component: &HostingComponent,
    tier: &Tier,
) -> Result<ProbeTarget, Refused> {
    let probe = component.spec.probe.as_ref();
    let own_service = hosted_probe_url(tenant, component);
    let url = if let Some(url) = &own_service {
        let parsed = parse_target_url(url)?;
        // The probe path is typed; the host must stay the Service's for the URL to be ours.
        let service = service_host(tenant, component);
        if parsed.host_str() != Some(service.as_str()) {
            return Err(Refused::new(format!(
                "the probe path takes the probe away from the Service {service}"
            )));
        }
        parsed
    } else if let Some(saas) = &component.spec.saas {
        let base = parse_target_url(&saas.url)?;
        match probe.and_then(|p| p.path.as_deref()) {
            Some(path) => base.join(path).map_err(|e| {
                Refused::new(format!("probe path {path:?} does not make a URL: {e}"))
            })?,
            None => base,
        }
    } else {
        return Err(Refused::new(
            "the component is neither hosted nor SaaS; there is nothing to probe",
        ));
    };
    let expect_status = match probe.and_then(|p| p.expect_status) {
        Some(s) => Some(
            u16::try_from(s)
                .ok()
                .filter(|s| (100..600).contains(s))
                .ok_or_else(|| Refused::new(format!("expectStatus {s} is not an HTTP status")))?,
        ),
        None => None,
    };
    Ok(ProbeTarget {
        url: String::from(url).into_boxed_str(),
        interval: tier.probe_interval,
        timeout: tier.probe_timeout,
        expect_status,
        labels: TargetLabels::new(
            tenant.name_any(),
            component.name_any(),
            component_level(tenant, component),
        ),
        without_endpoints: false,
        own_service: own_service.is_some(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL parses")
    }

    fn refused(policy: &ProbePolicy, s: &str) -> String {
        match policy.check_url(&url(s)) {
            Err(r) => r.reason,
            Ok(()) => panic!("{s} should be refused"),
        }
    }

    fn allowed(policy: &ProbePolicy, s: &str) {
        if let Err(r) = policy.check_url(&url(s)) {
            panic!("{s} should be allowed, got: {}", r.reason);
        }
    }

    #[test]
    fn only_http_and_https() {
        let p = ProbePolicy::default();
        allowed(&p, "http://app.example.nl/health");
        allowed(&p, "https://app.example.nl/health");
        for s in [
            "ftp://app.example.nl/",
            "file:///etc/passwd",
            "gopher://x.example/",
            "data:text/plain,hi",
        ] {
            assert!(refused(&p, s).contains("only http and https"), "{s}");
        }
    }

    #[test]
    fn user_info_is_refused() {
        let p = ProbePolicy::default();
        assert!(refused(&p, "https://user@app.example.nl/").contains("user name or password"));
        assert!(
            refused(&p, "https://user:secret@app.example.nl/").contains("user name or password")
        );
        assert!(refused(&p, "https://:secret@app.example.nl/").contains("user name or password"));
        assert!(
            !refused(&p, "https://user:secret@app.example.nl/").contains("secret"),
            "never echo credentials"
        );
    }

    #[test]
    fn link_local_and_metadata_addresses_are_always_refused() {
        let open = ProbePolicy {
            allow_private: true,
            allow_loopback: true,
            deny_cidrs: vec![],
            allow_cidrs: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
        };
        for s in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.0.1/",
            "http://[fe80::1]/",
            "http://[febf::1]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://168.63.129.16/",
            "http://192.0.0.192/",
            "http://[::ffff:192.0.0.192]/",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[ff02::1]/",
        ] {
            assert!(refused(&open, s).contains("never probed"), "{s}");
        }
        assert!(refused(&open, "http://169.254.169.254/").contains("link-local"));
    }

    #[test]
    fn metadata_names_are_always_refused() {
        let open = ProbePolicy {
            allow_loopback: true,
            ..ProbePolicy::default()
        };
        for s in [
            "http://metadata/computeMetadata/v1/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.Google.Internal./",
            "http://instance-data/latest/",
            "http://instance-data.ec2.internal/latest/",
        ] {
            assert!(
                refused(&open, s).contains("cloud metadata service name"),
                "{s}"
            );
        }
        allowed(&open, "http://metadatastore.example.nl/");
        allowed(&open, "http://my-metadata.example.nl/");
    }

    #[test]
    fn ipv4_in_ipv6_is_judged_as_ipv4() {
        let p = ProbePolicy::default();
        for s in [
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[::169.254.169.254]/",
            "http://[::ffff:0:169.254.169.254]/",
            "http://[64:ff9b::169.254.169.254]/",
            "http://[2002:a9fe:a9fe::1]/",
            // Teredo: server 192.0.2.1, client 169.254.169.254 inverted (5601:5601).
            "http://[2001:0:c000:201::5601:5601]/",
        ] {
            assert!(refused(&p, s).contains("link-local"), "{s}");
        }
        assert!(refused(&p, "http://[::ffff:127.0.0.1]/").contains("loopback"));
        assert!(refused(&p, "http://[::ffff:10.0.0.1]/").contains("allowPrivate: false"));
        allowed(&p.for_own_services(), "http://[::ffff:10.0.0.1]/");
        assert!(refused(&p, "http://[64:ff9b:1::a00:1]/").contains("allowPrivate: false"));
        allowed(&p, "http://[2a00:1450:4001::1]/");
    }

    #[test]
    fn numeric_hosts_are_normalised_before_the_check() {
        // The url crate follows WHATWG: decimal, octal, hex and short forms become dotted quads.
        let p = ProbePolicy::default();
        for s in [
            "http://2852039166/",
            "http://0xa9fea9fe/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://0xA9.0xFE.0xA9.0xFE/",
        ] {
            assert_eq!(url(s).host_str(), Some("169.254.169.254"), "{s}");
            assert!(refused(&p, s).contains("link-local"), "{s}");
        }
        assert!(refused(&p, "http://127.1/").contains("loopback"));
        assert!(refused(&p, "http://0x7f000001/").contains("loopback"));
    }

    #[test]
    fn loopback_is_refused_by_default_and_allowed_by_policy() {
        let p = ProbePolicy::default();
        for s in [
            "http://127.0.0.1:8080/",
            "http://127.8.9.10/",
            "http://[::1]/",
            "http://localhost/",
            "http://app.localhost/",
        ] {
            assert!(refused(&p, s).contains("allowLoopback: false"), "{s}");
        }
        let lo = ProbePolicy {
            allow_loopback: true,
            ..ProbePolicy::default()
        };
        for s in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://localhost/",
        ] {
            allowed(&lo, s);
        }
    }

    #[test]
    fn private_is_refused_for_typed_urls_and_allowed_for_own_services() {
        let typed = ProbePolicy::default();
        let private = [
            "http://10.0.0.1/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://[fd12:3456::1]/",
        ];
        for s in private {
            assert!(refused(&typed, s).contains("allowPrivate: false"), "{s}");
        }
        allowed(&typed, "http://172.32.0.1/");
        allowed(&typed, "http://93.184.215.14/");
        allowed(&typed, "http://[2001:db8::1]/");
        let own = typed.for_own_services();
        for s in private {
            allowed(&own, s);
        }
        let opened = ProbePolicy {
            allow_private: true,
            ..ProbePolicy::default()
        };
        for s in private {
            allowed(&opened, s);
        }
    }

    #[test]
    fn own_services_keep_every_other_rule() {
        let policy = ProbePolicy {
            deny_cidrs: vec!["10.96.0.0/12".parse().unwrap()],
            ..ProbePolicy::default()
        };
        let own = policy.for_own_services();
        assert!(refused(&own, "http://10.96.0.10/").contains("denyCidrs"));
        assert!(refused(&own, "http://127.0.0.1/").contains("allowLoopback: false"));
        assert!(refused(&own, "http://169.254.169.254/").contains("never probed"));
        assert!(refused(&own, "http://metadata.google.internal/").contains("metadata"));
        allowed(&own, "http://10.0.0.1/");
    }

    #[test]
    fn cidr_lists_decide_by_longest_prefix() {
        let p = ProbePolicy {
            allow_private: true,
            allow_loopback: false,
            deny_cidrs: vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.0.2.0/24".parse().unwrap(),
                "10.1.2.3".parse().unwrap(),
            ],
            allow_cidrs: vec![
                "10.1.2.0/24".parse().unwrap(),
                "127.0.0.0/8".parse().unwrap(),
                "192.0.2.0/24".parse().unwrap(),
            ],
        };
        assert!(
            refused(&p, "http://10.9.9.9/").contains("10.0.0.0/8, which the probe policy denies")
        );
        allowed(&p, "http://10.1.2.4/");
        assert!(
            refused(&p, "http://10.1.2.3/").contains("10.1.2.3/32"),
            "a longer deny closes a hole"
        );
        assert!(
            refused(&p, "http://192.0.2.1/").contains("denyCidrs"),
            "a tie denies"
        );
        allowed(&p, "http://127.0.0.1/");
        allowed(&p, "http://[::ffff:10.1.2.4]/");
        assert!(refused(&p, "http://[::ffff:10.9.9.9]/").contains("denies"));
        // NAT64 and 6to4 forms of a denied address are denied; of an allowed one, allowed.
        assert!(refused(&p, "http://[64:ff9b::a09:909]/").contains("10.0.0.0/8"));
        assert!(refused(&p, "http://[2002:a09:909::1]/").contains("10.0.0.0/8"));
        allowed(&p, "http://[64:ff9b::a01:204]/");
    }

    #[test]
    fn the_local_use_nat64_prefix_never_reaches_link_local() {
        let p = ProbePolicy {
            allow_private: true,
            ..ProbePolicy::default()
        };
        assert!(refused(&p, "http://[64:ff9b:1::a9fe:a9fe]/").contains("never probed"));
        allowed(&p, "http://[64:ff9b:1::a00:1]/");
    }

    #[test]
    fn cidrs_parse_and_print() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("fd00::1/8".parse::<Cidr>().unwrap().to_string(), "fd00::/8");
        assert_eq!(
            "192.0.2.7".parse::<Cidr>().unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("ten/8".parse::<Cidr>().is_err());
        let p: ProbePolicy =
            serde_json::from_str(r#"{"denyCidrs": ["10.0.0.0/8"], "allowLoopback": true}"#)
                .unwrap();
        assert!(!p.allow_private, "unset fields keep their defaults");
        assert!(p.allow_loopback);
        assert_eq!(p.deny_cidrs, vec!["10.0.0.0/8".parse::<Cidr>().unwrap()]);
        assert!(serde_json::from_str::<ProbePolicy>(r#"{"denyCidrs": ["nope"]}"#).is_err());
    }

    #[test]
    fn resolved_addresses_must_all_pass() {
        let p = ProbePolicy::default();
        let ok: IpAddr = "93.184.215.14".parse().unwrap();
        let meta: IpAddr = "169.254.169.254".parse().unwrap();
        assert!(p.check_resolved("app.example.nl", &[ok]).is_ok());
        let r = p.check_resolved("app.example.nl", &[ok, meta]).unwrap_err();
        assert!(
            r.reason
                .contains("\"app.example.nl\" resolves to a refused address: 169.254.169.254"),
            "{}",
            r.reason
        );
        assert!(p.check_resolved("app.example.nl", &[]).is_err());
    }

    #[test]
    fn unparsable_urls_are_refused() {
        assert!(
            parse_target_url("not a url")
                .unwrap_err()
                .reason
                .contains("not a valid URL")
        );
        assert!(parse_target_url("http://").is_err());
    }

    #[test]
    fn success_is_expect_status_or_any_2xx() {
        let t = ProbeTarget::new(
            "http://a.example/",
            Duration::from_secs(10),
            Duration::from_secs(3),
        )
        .unwrap();
        assert!(t.is_success(200) && t.is_success(204) && !t.is_success(302) && !t.is_success(503));
        let t = t.with_expect_status(Some(401));
        assert!(t.is_success(401) && !t.is_success(200));
    }

    #[test]
    fn component_targets_follow_the_component_and_tier() {
        let tenant: Tenant = serde_yaml::from_str(
            "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {name: roosendaal}\nspec: {displayName: Roosendaal, serviceLevel: silver, membership: {joined: \"2025-01-01\"}}\n",
        )
        .unwrap();
        let saas: HostingComponent = serde_yaml::from_str(
            "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: zaaksysteem, namespace: tenant-roosendaal}\nspec: {class: applicationHosting, serviceLevel: gold, saas: {url: \"https://zaken.example.nl/app?x=1\"}, probe: {path: /health, expectStatus: 204}}\n",
        )
        .unwrap();
        let tier = crate::tier::Tier::from_level(&crate::tier::tests::gold()).unwrap();
        let t = component_target(&tenant, &saas, &tier).unwrap();
        assert_eq!(t.url_text(), "https://zaken.example.nl/health");
        assert_eq!(t.expect_status, Some(204));
        assert_eq!(t.interval, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(3));
        assert_eq!(
            t.labels,
            TargetLabels::new("roosendaal", "zaaksysteem", "gold")
        );
        assert_eq!(component_key(&saas), "tenant-roosendaal/zaaksysteem");
        assert!(!t.own_service, "a SaaS URL is typed");

        let hosted: HostingComponent = serde_yaml::from_str(
            "apiVersion: regie.dev/v1alpha1\nkind: HostingComponent\nmetadata: {name: website, namespace: tenant-roosendaal}\nspec: {class: applicationHosting, hosted: {image: nginx, port: 8080, healthPath: /healthz}}\n",
        )
        .unwrap();
        let t = component_target(&tenant, &hosted, &tier).unwrap();
        assert_eq!(t.url_text(), "http://website.tenant-roosendaal.svc/healthz");
        assert!(
            t.own_service,
            "regie built this URL for the component's Service"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_hold_their_slot_until_they_end_even_when_abandoned() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let lookup = |i: u8| {
            let (running, peak) = (running.clone(), peak.clone());
            blocking_within_slots(&SLOTS, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))])
            })
        };
        // Callers that give up at once, as probes past their timeout do.
        for i in 0..6 {
            let abandoned = tokio::time::timeout(Duration::from_millis(1), lookup(i)).await;
            assert!(abandoned.is_err());
        }
        let answers = futures::future::join_all((0..6).map(lookup)).await;
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().is_ok_and(|ips| ips.len() == 1))
        );
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(SLOTS.available_permits(), 2);
    }

    #[tokio::test]
    async fn the_system_lookup_resolves_localhost() {
        let ips = SystemLookup.lookup("localhost".into()).await.unwrap();
        assert!(ips.iter().all(|ip| ip.is_loopback()) && !ips.is_empty());
    }
}

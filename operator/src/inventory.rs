//! The whole desired world as one set of objects, and the rules that need more than one object:
//! references to service levels, components in a tenant's namespace, duplicate names.
//!
//! The offline commands build an [`Inventory`] from files; the controller answers the same
//! questions from its caches with the same helper functions, so both give the same verdicts.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use regie_crds::tenancy::NAMESPACE_PREFIX;
use regie_crds::validate::{FieldError, Validate};
use regie_crds::{
    CostPool, HostingComponent, PriceList, ServiceLevel, ServiceOrder, SlaReport, Tenant, Usage,
    WorkplacePackage,
};

use crate::input::{Object, Problem, Source};
use crate::tier::Tier;

/// Whether `ns` is the tenant's namespace, without building its name (this is asked once per
/// tenant for every component and package: it must not allocate).
pub fn has_namespace(tenant: &Tenant, ns: &str) -> bool {
    match &tenant.spec.namespace {
        Some(own) => own == ns,
        None => ns
            .strip_prefix(NAMESPACE_PREFIX)
            .is_some_and(|rest| Some(rest) == tenant.metadata.name.as_deref()),
    }
}

/// The namespace a tenant's objects live in.
pub fn tenant_namespace(tenant: &Tenant) -> String {
    tenant
        .spec
        .namespace
        .clone()
        .unwrap_or_else(|| format!("{NAMESPACE_PREFIX}{}", tenant.name_any()))
}

/// The message for a reference to a ServiceLevel that does not exist.
pub fn unknown_level(name: &str, known: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let known: Vec<String> = known.into_iter().map(|k| k.as_ref().to_string()).collect();
    if known.is_empty() {
        format!("unknown ServiceLevel {name:?} (none is defined)")
    } else {
        format!(
            "unknown ServiceLevel {name:?} (known: {})",
            known.join(", ")
        )
    }
}

/// An object and the file it came from.
#[derive(Clone, Debug)]
pub struct Sourced<T> {
    pub source: Source,
    pub object: T,
}

impl<T: kube::Resource> Sourced<T> {
    /// A problem with field `field` of this object, of kind `kind`.
    fn problem(&self, kind: &str, field: &str, message: String) -> Problem {
        let meta = self.object.meta();
        Problem {
            file: self.source.to_string(),
            object: ident(
                kind,
                meta.namespace.as_deref(),
                meta.name.as_deref().unwrap_or_default(),
            ),
            field: field.into(),
            message,
        }
    }
}

/// Every regie object of a repository, by kind.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub levels: Vec<Sourced<ServiceLevel>>,
    pub tenants: Vec<Sourced<Tenant>>,
    pub packages: Vec<Sourced<WorkplacePackage>>,
    pub components: Vec<Sourced<HostingComponent>>,
    pub price_lists: Vec<Sourced<PriceList>>,
    pub pools: Vec<Sourced<CostPool>>,
    pub orders: Vec<Sourced<ServiceOrder>>,
    pub usages: Vec<Sourced<Usage>>,
    /// Read back for their credits (`regie bill`) and figures (`regie sla`).
    pub reports: Vec<Sourced<SlaReport>>,
}

fn ident(kind: &str, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

impl Inventory {
    pub fn new(objects: Vec<(Source, Object)>) -> Inventory {
        let mut inv = Inventory::default();
        for (source, object) in objects {
            match object {
                Object::ServiceLevel(o) => inv.levels.push(Sourced { source, object: o }),
                Object::Tenant(o) => inv.tenants.push(Sourced { source, object: o }),
                Object::WorkplacePackage(o) => inv.packages.push(Sourced { source, object: o }),
                Object::HostingComponent(o) => inv.components.push(Sourced { source, object: o }),
                Object::PriceList(o) => inv.price_lists.push(Sourced { source, object: o }),
                Object::CostPool(o) => inv.pools.push(Sourced { source, object: o }),
                Object::ServiceOrder(o) => inv.orders.push(Sourced { source, object: o }),
                Object::Usage(o) => inv.usages.push(Sourced { source, object: o }),
                Object::SlaReport(o) => inv.reports.push(Sourced { source, object: o }),
                // Invoices are outputs; reading them back is allowed (for their numbers).
                Object::Invoice(_) => {}
            }
        }
        inv
    }

    /// Parsed tiers of every valid ServiceLevel, by name.
    pub fn tiers(&self) -> BTreeMap<String, Tier> {
        self.levels
            .iter()
            .filter_map(|l| {
                Tier::from_level(&l.object)
                    .ok()
                    .map(|t| (l.object.name_any(), t))
            })
            .collect()
    }

    /// The tenant whose namespace is `ns`.
    pub fn tenant_of_namespace(&self, ns: &str) -> Option<&Tenant> {
        self.tenants
            .iter()
            .map(|t| &t.object)
            .find(|t| has_namespace(t, ns))
    }

    /// Components of one tenant, in name order.
    pub fn components_of(&self, tenant: &Tenant) -> Vec<&HostingComponent> {
        let ns = tenant_namespace(tenant);
        let mut v: Vec<_> = self
            .components
            .iter()
            .map(|c| &c.object)
            .filter(|c| c.metadata.namespace.as_deref() == Some(ns.as_str()))
            .collect();
        v.sort_by_key(|c| c.name_any());
        v
    }

    /// Packages of one tenant, in name order.
    pub fn packages_of(&self, tenant: &Tenant) -> Vec<&WorkplacePackage> {
        let ns = tenant_namespace(tenant);
        let mut v: Vec<_> = self
            .packages
            .iter()
            .map(|c| &c.object)
            .filter(|c| c.metadata.namespace.as_deref() == Some(ns.as_str()))
            .collect();
        v.sort_by_key(|c| c.name_any());
        v
    }

    /// Every problem, a tenant's namespace judged against the default allowed namespaces.
    pub fn check(&self) -> Vec<Problem> {
        self.check_with(&crate::desired::Settings::default().allowed_namespaces)
    }

    /// Every problem: each object's own rules, then the rules across objects. A tenant may not
    /// take one of `allowed_namespaces` (those every tenant admits traffic from) as its own.
    pub fn check_with(&self, allowed_namespaces: &[String]) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut push = |source: &Source, object: String, errs: Vec<FieldError>| {
            for e in errs {
                out.push(Problem {
                    file: source.to_string(),
                    object: object.clone(),
                    field: e.path,
                    message: e.message,
                });
            }
        };
        for l in &self.levels {
            push(
                &l.source,
                ident("ServiceLevel", None, &l.object.name_any()),
                regie_crds::validate::service_level(&l.object),
            );
        }
        for t in &self.tenants {
            push(
                &t.source,
                ident("Tenant", None, &t.object.name_any()),
                regie_crds::validate::tenant(&t.object, allowed_namespaces),
            );
        }
        for p in &self.packages {
            let o = &p.object;
            push(
                &p.source,
                ident("WorkplacePackage", o.namespace().as_deref(), &o.name_any()),
                o.spec.validate(),
            );
        }
        for c in &self.components {
            let o = &c.object;
            push(
                &c.source,
                ident("HostingComponent", o.namespace().as_deref(), &o.name_any()),
                regie_crds::validate::hosting_component(o),
            );
        }
        for p in &self.price_lists {
            push(
                &p.source,
                ident("PriceList", None, &p.object.name_any()),
                p.object.spec.validate(),
            );
        }
        for p in &self.pools {
            push(
                &p.source,
                ident("CostPool", None, &p.object.name_any()),
                p.object.spec.validate(),
            );
        }
        for o in &self.orders {
            let x = &o.object;
            push(
                &o.source,
                ident("ServiceOrder", x.namespace().as_deref(), &x.name_any()),
                x.spec.validate(),
            );
        }
        for u in &self.usages {
            push(
                &u.source,
                ident("Usage", None, &u.object.name_any()),
                u.object.spec.validate(),
            );
        }
        out.extend(self.cross_checks());
        // A kind's own rule for its name (a tenant's names its namespace, a hosted component's
        // its Service) is stricter than the API server's: one message for one mistake.
        let named: BTreeSet<(String, String)> = (out.iter())
            .filter(|p| p.field == "metadata.name")
            .map(|p| (p.file.clone(), p.object.clone()))
            .collect();
        out.extend(self.metadata_checks(&named));
        out
    }

    fn cross_checks(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let problem = |source: &Source, object: String, field: &str, message: String| Problem {
            file: source.to_string(),
            object,
            field: field.into(),
            message,
        };
        let level_names: BTreeSet<String> =
            self.levels.iter().map(|l| l.object.name_any()).collect();

        // Duplicate names, per kind and namespace.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut dup = |kind: &str,
                       ns: Option<String>,
                       name: String,
                       source: &Source,
                       out: &mut Vec<Problem>| {
            let id = ident(kind, ns.as_deref(), &name);
            if let Some(first) = seen.get(&id) {
                out.push(problem(
                    source,
                    id.clone(),
                    "metadata.name",
                    format!("duplicate: also defined in {first}"),
                ));
            } else {
                seen.insert(id, source.to_string());
            }
        };
        for l in &self.levels {
            dup(
                "ServiceLevel",
                None,
                l.object.name_any(),
                &l.source,
                &mut out,
            );
        }
        for t in &self.tenants {
            dup("Tenant", None, t.object.name_any(), &t.source, &mut out);
        }
        for p in &self.packages {
            dup(
                "WorkplacePackage",
                p.object.namespace(),
                p.object.name_any(),
                &p.source,
                &mut out,
            );
        }
        for c in &self.components {
            dup(
                "HostingComponent",
                c.object.namespace(),
                c.object.name_any(),
                &c.source,
                &mut out,
            );
        }
        for p in &self.price_lists {
            dup("PriceList", None, p.object.name_any(), &p.source, &mut out);
        }
        for p in &self.pools {
            dup("CostPool", None, p.object.name_any(), &p.source, &mut out);
        }
        for o in &self.orders {
            dup(
                "ServiceOrder",
                o.object.namespace(),
                o.object.name_any(),
                &o.source,
                &mut out,
            );
        }
        for u in &self.usages {
            dup("Usage", None, u.object.name_any(), &u.source, &mut out);
        }
        for r in &self.reports {
            dup("SlaReport", None, r.object.name_any(), &r.source, &mut out);
        }

        // Tenants: their level exists; no two share a namespace.
        let mut namespaces: BTreeMap<String, String> = BTreeMap::new();
        for t in &self.tenants {
            let id = ident("Tenant", None, &t.object.name_any());
            let level = &t.object.spec.service_level;
            if !level.is_empty() && !level_names.contains(level) {
                out.push(problem(
                    &t.source,
                    id.clone(),
                    "spec.serviceLevel",
                    unknown_level(level, &level_names),
                ));
            }
            let ns = tenant_namespace(&t.object);
            if let Some(other) = namespaces.get(&ns) {
                if *other != t.object.name_any() {
                    out.push(problem(
                        &t.source,
                        id,
                        "spec.namespace",
                        format!("namespace {ns} is already Tenant {other}'s"),
                    ));
                }
            } else {
                namespaces.insert(ns, t.object.name_any());
            }
        }

        // Namespaced objects live in a tenant's namespace.
        let in_tenant_ns = |kind: &str,
                            ns: Option<String>,
                            name: String,
                            source: &Source,
                            out: &mut Vec<Problem>| {
            let id = ident(kind, ns.as_deref(), &name);
            match ns {
                None => out.push(problem(source, id, "metadata.namespace", format!("is required: a {kind} lives in its tenant's namespace"))),
                Some(ns) if !namespaces.contains_key(&ns) => out.push(problem(
                    source,
                    id,
                    "metadata.namespace",
                    format!("namespace {ns} belongs to no Tenant (a tenant's namespace is tenant-<name> unless its spec.namespace says otherwise)"),
                )),
                Some(_) => {}
            }
        };
        for p in &self.packages {
            in_tenant_ns(
                "WorkplacePackage",
                p.object.namespace(),
                p.object.name_any(),
                &p.source,
                &mut out,
            );
        }
        for c in &self.components {
            in_tenant_ns(
                "HostingComponent",
                c.object.namespace(),
                c.object.name_any(),
                &c.source,
                &mut out,
            );
            if let Some(level) = &c.object.spec.service_level
                && !level.is_empty()
                && !level_names.contains(level)
            {
                let id = ident(
                    "HostingComponent",
                    c.object.namespace().as_deref(),
                    &c.object.name_any(),
                );
                out.push(problem(
                    &c.source,
                    id,
                    "spec.serviceLevel",
                    unknown_level(level, &level_names),
                ));
            }
        }
        for o in &self.orders {
            in_tenant_ns(
                "ServiceOrder",
                o.object.namespace(),
                o.object.name_any(),
                &o.source,
                &mut out,
            );
        }

        // Price lists name known levels.
        for p in &self.price_lists {
            for (i, r) in p.object.spec.rates.iter().enumerate() {
                if let Some(level) = &r.service_level
                    && !level_names.contains(level)
                {
                    out.push(problem(
                        &p.source,
                        ident("PriceList", None, &p.object.name_any()),
                        &format!("spec.rates[{i}].serviceLevel"),
                        unknown_level(level, &level_names),
                    ));
                }
            }
        }

        // Fixed shares name known tenants; usages are named after their tenant and period.
        let tenant_names: BTreeSet<String> =
            self.tenants.iter().map(|t| t.object.name_any()).collect();
        for p in &self.pools {
            for tenant in p.object.spec.shares.keys() {
                if !tenant_names.contains(tenant) {
                    out.push(problem(
                        &p.source,
                        ident("CostPool", None, &p.object.name_any()),
                        &format!("spec.shares.{tenant}"),
                        format!("unknown Tenant {tenant:?}"),
                    ));
                }
            }
        }
        out.extend(self.pool_allocations());
        out.extend(self.price_list_starts());
        out.extend(self.ledger_counts());
        out.extend(self.report_checks());
        for u in &self.usages {
            let want = format!("{}-{}", u.object.spec.tenant, u.object.spec.period);
            if u.object.name_any() != want {
                out.push(problem(
                    &u.source,
                    ident("Usage", None, &u.object.name_any()),
                    "metadata.name",
                    format!("must be {want} (<tenant>-<yyyy-mm>)"),
                ));
            }
        }
        out
    }
}

impl Inventory {
    /// Every object's name and labels as the API server checks them: a name that is no DNS
    /// subdomain (`Web_Site`) or a label that is no label (`ICT WBW`) passed `regie validate`,
    /// the pull request's gate, and failed the sync to the cluster.
    /// `named`: the objects (file, object) whose name a rule of their own refused already.
    fn metadata_checks(&self, named: &BTreeSet<(String, String)>) -> Vec<Problem> {
        fn metas<'a, K: kube::Resource>(
            kind: &'static str,
            objects: &'a [Sourced<K>],
        ) -> impl Iterator<Item = (&'static str, &'a Source, &'a kube::api::ObjectMeta)> + 'a
        {
            objects
                .iter()
                .map(move |o| (kind, &o.source, o.object.meta()))
        }
        let all = metas("ServiceLevel", &self.levels)
            .chain(metas("Tenant", &self.tenants))
            .chain(metas("WorkplacePackage", &self.packages))
            .chain(metas("HostingComponent", &self.components))
            .chain(metas("PriceList", &self.price_lists))
            .chain(metas("CostPool", &self.pools))
            .chain(metas("ServiceOrder", &self.orders))
            .chain(metas("Usage", &self.usages))
            .chain(metas("SlaReport", &self.reports));
        let mut out = Vec::new();
        for (kind, source, meta) in all {
            let name = meta.name.as_deref().unwrap_or_default();
            let object = ident(kind, meta.namespace.as_deref(), name);
            let mut problem = |field: String, message: String| {
                out.push(Problem {
                    file: source.to_string(),
                    object: object.clone(),
                    field,
                    message,
                });
            };
            let refused = named.contains(&(source.to_string(), object.clone()));
            if !refused && !regie_crds::validate::is_dns_subdomain(name) {
                problem(
                    "metadata.name".into(),
                    format!(
                        "{name:?} cannot name a {kind}: at most 253 lowercase letters, digits, \
                         '-' and '.'"
                    ),
                );
            }
            for (key, value) in meta.labels.iter().flatten() {
                if !regie_crds::validate::is_label_key(key) {
                    problem(
                        format!("metadata.labels.{key}"),
                        "is no label key: an optional DNS subdomain and '/', then at most 63 \
                         letters, digits, '-', '_' and '.', starting and ending with a letter \
                         or digit"
                            .into(),
                    );
                } else if !regie_crds::validate::is_label_value(value) {
                    problem(
                        format!("metadata.labels.{key}"),
                        format!(
                            "{value:?} is no label value: at most 63 letters, digits, '-', '_' \
                             and '.', starting and ending with a letter or digit"
                        ),
                    );
                }
            }
        }
        out
    }

    /// Each tenant's quota holds its components' pods and a rolling update's next one
    /// ([`crate::desired::quota_shortfalls`] over what `regie render` makes): a pod past the
    /// quota is refused by the API server, and a rollout without room for its surge never ends.
    /// A question of capacity, asked by `regie validate` only: billing and SLA reports of a
    /// repository do not depend on it.
    pub fn quota_fits(&self) -> Vec<Problem> {
        let settings = crate::desired::Settings::default();
        let rendered = crate::desired::render(self, &settings);
        let mut out = Vec::new();
        for t in &self.tenants {
            let name = t.object.name_any();
            let Some(children) = rendered.get(&name) else {
                continue;
            };
            for message in crate::desired::quota_shortfalls(children, true) {
                out.push(Problem {
                    file: t.source.to_string(),
                    object: ident("Tenant", None, &name),
                    field: "spec.quota".into(),
                    message,
                });
            }
        }
        out
    }

    /// Two PriceLists that take effect at the same instant: neither supersedes the other, and
    /// pricing refuses every invoice (so `regie validate` refuses them first).
    fn price_list_starts(&self) -> Vec<Problem> {
        let Ok(tz) = crate::billing::amsterdam() else {
            return Vec::new();
        };
        let mut first: BTreeMap<jiff::Timestamp, &Sourced<PriceList>> = BTreeMap::new();
        let mut out = Vec::new();
        for p in &self.price_lists {
            let Ok(at) = regie_crds::validate::parse_date_or_time(&p.object.spec.effective_from)
            else {
                continue;
            };
            match first.entry(at.instant(&tz)) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(p);
                }
                std::collections::btree_map::Entry::Occupied(o) => out.push(Problem {
                    file: p.source.to_string(),
                    object: ident("PriceList", None, &p.object.name_any()),
                    field: "spec.effectiveFrom".into(),
                    message: format!(
                        "takes effect at the same instant as PriceList/{} ({}); one must \
                         supersede the other",
                        o.get().object.name_any(),
                        o.get().source
                    ),
                }),
            }
        }
        out
    }

    /// Usage ledgers read back (exported with kubectl) are priced as they are: their segments
    /// must be in order, and their counts within what a package may declare.
    fn ledger_counts(&self) -> Vec<Problem> {
        let most = regie_crds::validate::MAX_ACCOUNTS;
        let mut out = Vec::new();
        for u in &self.usages {
            let id = ident("Usage", None, &u.object.name_any());
            let problem = |field: String, message: String| Problem {
                file: u.source.to_string(),
                object: id.clone(),
                field,
                message,
            };
            let segments = u.object.status.as_ref().map_or(&[][..], |s| &s.segments);
            if let Err(e) = crate::billing::ledger::bounds(segments, &id) {
                let message = e.to_string();
                let message = message.strip_prefix(&format!("{id}: ")).unwrap_or(&message);
                out.push(problem(String::new(), message.to_string()));
            }
            for (i, s) in segments.iter().enumerate() {
                let counts = [
                    ("accounts", &s.accounts),
                    ("measuredAccounts", &s.measured_accounts),
                ];
                for (field, counts) in counts {
                    for (profile, n) in counts {
                        if !(0..=most).contains(n) {
                            out.push(problem(
                                format!("status.segments[{i}].{field}.{profile}"),
                                format!("must be 0 to {most}, not {n}"),
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    /// SlaReports read back for their credits: see [`Inventory::report_periods`]; what a credit
    /// names is checked where a bill takes it ([`Inventory::unclaimed_credits`]).
    fn report_checks(&self) -> Vec<Problem> {
        self.report_periods()
    }

    /// The credits of the monthly SlaReports of tenants in the input, for the months of
    /// `months`, that name a component neither the tenant's files nor its ledgers have: a
    /// credit the bill finds no line for (a misspelt component) was lost without a word.
    /// Reports of tenants not in the input (offboarded, exported with the rest) and of other
    /// months are not billed and not checked.
    pub fn unclaimed_credits(&self, months: &[(i16, i8)]) -> Vec<Problem> {
        let mut out = Vec::new();
        for r in &self.reports {
            let spec = &r.object.spec;
            let billed =
                regie_crds::validate::parse_month(&spec.period).is_ok_and(|m| months.contains(&m));
            let tenant = self
                .tenants
                .iter()
                .find(|t| t.object.name_any() == spec.tenant);
            let (true, Some(tenant)) = (billed, tenant) else {
                continue;
            };
            let known: BTreeSet<String> = self
                .components_of(&tenant.object)
                .into_iter()
                .map(ResourceExt::name_any)
                .chain(
                    self.usages
                        .iter()
                        .filter(|u| u.object.spec.tenant == spec.tenant)
                        .flat_map(|u| u.object.status.iter().flat_map(|s| &s.segments))
                        .flat_map(|s| s.components.iter().map(|c| c.name.clone())),
                )
                .collect();
            for (i, c) in (r.object.status.iter())
                .flat_map(|s| &s.components)
                .enumerate()
            {
                if c.credit_percent > 0 && !known.contains(&c.component) {
                    out.push(r.problem(
                        "SlaReport",
                        &format!("status.components[{i}].component"),
                        format!(
                            "a credit for Tenant {}'s HostingComponent {:?}, which the input \
                             has neither in its files nor in its ledgers",
                            spec.tenant, c.component
                        ),
                    ));
                }
            }
        }
        out
    }

    /// The SlaReports' periods: each one a report can have, and one report per tenant and
    /// period (a report read twice, under two names or from two exports, counted its credits
    /// twice and listed its rows twice).
    pub fn report_periods(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut periods: BTreeMap<(&str, &str), &Sourced<SlaReport>> = BTreeMap::new();
        for r in &self.reports {
            let spec = &r.object.spec;
            let problem = |field: &str, message| r.problem("SlaReport", field, message);
            // The periods of monthly, weekly and daily reports, read as the prober names them.
            if spec.period.parse::<crate::sla::calendar::Period>().is_err() {
                out.push(problem(
                    "spec.period",
                    format!(
                        "{:?} is not a month (YYYY-MM), an ISO week (YYYY-Www) or a day \
                         (YYYY-MM-DD)",
                        spec.period
                    ),
                ));
            }
            if let Some(first) = periods.insert((&spec.tenant, &spec.period), r) {
                out.push(problem(
                    "spec.period",
                    format!(
                        "Tenant {} has another report of {}: SlaReport/{} ({}); its credits \
                         would count twice",
                        spec.tenant,
                        spec.period,
                        first.object.name_any(),
                        first.source
                    ),
                ));
            }
        }
        out
    }
}

impl Inventory {
    /// Each CostPool allocated over the tenants as billing allocates it
    /// ([`Pool::schedule`](crate::billing::pools::Pool::schedule), the very same code), so that
    /// a selector that picks no member, a `fixedShares` pool without a share for a tenant it
    /// selects, or weights that add up to zero (`perInhabitant` over tenants of 0 inhabitants)
    /// fail `regie validate` instead of only `regie bill`. A pool or tenant whose own fields are
    /// wrong is reported by its own rules and left out here. Inputs without any Tenant are a
    /// catalogue read on its own (`regie rules examples/catalogue`, the chart's generator): there
    /// is nothing to allocate over, and that is no fault of the pools.
    fn pool_allocations(&self) -> Vec<Problem> {
        use crate::billing::pools::{Member, Pool};
        if self.tenants.is_empty() {
            return Vec::new();
        }
        let members: Vec<Member> = self
            .tenants
            .iter()
            .filter_map(|t| {
                let spec = &t.object.spec;
                let joined = regie_crds::validate::parse_date(&spec.membership.joined).ok()?;
                let leaves = match &spec.membership.leaves {
                    Some(l) => Some(regie_crds::validate::parse_date(l).ok()?),
                    None => None,
                };
                // The accounts billing weighs: a package's billed count when it carries one.
                let accounts = self
                    .packages_of(&t.object)
                    .iter()
                    .map(|p| {
                        p.status
                            .as_ref()
                            .and_then(|s| s.billed_accounts)
                            .unwrap_or(p.spec.accounts)
                    })
                    .sum();
                Some(Member {
                    tenant: t.object.name_any(),
                    labels: t.object.labels().clone(),
                    joined,
                    leaves,
                    inhabitants: spec.inhabitants,
                    accounts,
                })
            })
            .collect();
        let mut out = Vec::new();
        for p in &self.pools {
            let Ok(pool) = Pool::from_object(&p.object) else {
                continue;
            };
            // Its instalments, as billing works them out: the split of each instalment day
            // may fail where the whole period's does not.
            let Err(e) = pool.schedule(&members) else {
                continue;
            };
            // Billing's message is `CostPool/<name>: <field> …` or `CostPool/<name>: <why>`;
            // the field is split off so the line reads like every other problem.
            let id = ident("CostPool", None, &p.object.name_any());
            let text = e.to_string();
            let text = text
                .strip_prefix(&format!("{id}: "))
                .unwrap_or(&text)
                .to_string();
            let (field, message) = match text.strip_prefix("spec.") {
                Some(rest) => {
                    let end = rest.find([':', ' ']).unwrap_or(rest.len());
                    let field = format!("spec.{}", &rest[..end]);
                    let message = rest[end..].trim_start_matches([':', ' ']).to_string();
                    (field, message)
                }
                None => ("spec.allocation".to_string(), text),
            };
            out.push(Problem {
                file: p.source.to_string(),
                object: id,
                field,
                message,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str, namespace: Option<&str>) -> Tenant {
        let mut t: Tenant = serde_yaml::from_str(&format!(
            "apiVersion: regie.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: {name}}}\nspec: {{displayName: X, serviceLevel: gold, membership: {{joined: \"2026-01-01\"}}, access: {{groups: [g]}}}}\n"
        ))
        .expect("tenant");
        t.spec.namespace = namespace.map(Into::into);
        t
    }

    /// Validation reads a PriceList's dates in the time zone pricing reads them in.
    #[test]
    fn price_lists_are_validated_in_billings_time_zone() {
        assert_eq!(
            regie_crds::validate::PRICE_TIME_ZONE,
            crate::billing::TIME_ZONE
        );
    }

    #[test]
    fn a_tenants_namespace_is_recognised_without_building_it() {
        for (t, ns, expected) in [
            (tenant("tholen", None), "tenant-tholen", true),
            (tenant("tholen", None), "tenant-tholenx", false),
            (tenant("tholen", None), "tholen", false),
            (tenant("tholen", Some("gem-tholen")), "gem-tholen", true),
            (tenant("tholen", Some("gem-tholen")), "tenant-tholen", false),
        ] {
            assert_eq!(has_namespace(&t, ns), expected, "{ns}");
            assert_eq!(tenant_namespace(&t) == ns, expected, "{ns}");
        }
    }
}

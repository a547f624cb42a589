//! How a cache keeps the status of a Tenant, a component or a package, its conditions aside
//! (see `kept_conditions`): in a form of regie's own about half the size of the generated type,
//! when the status reads back equal from it, else as it came.
//!
//! The generated statuses give every optional number 16 bytes, every string 24 and a tenant's
//! roll-ups a vector each, and are held inline in every cached object: 96 to 160 bytes per
//! object, thousands of objects. The compact forms keep the same values in fewer bytes —
//! generations that are never 0, roll-ups without names of objects not ready (a tenant with
//! such names keeps its status whole), strings as boxed text.

use std::num::NonZeroI64;

use regie_crds::status::Text;
use regie_crds::tenancy::{HostingComponentStatus, Rollup, TenantStatus, WorkplacePackageStatus};

/// A status with a compact form.
pub trait CompactStatus: Clone + PartialEq {
    type Compact: Clone;
    /// The status, its conditions left out, in compact form; None when a field holds a value
    /// the form cannot.
    fn compact(&self) -> Option<Self::Compact>;
    /// The status from its compact form, without conditions.
    fn expand(compact: &Self::Compact) -> Self;
}

/// A status as a cache keeps it.
#[derive(Clone)]
pub enum KeptStatus<S: CompactStatus> {
    Compact(S::Compact),
    /// A status its compact form does not give back equal (conditions that are kept with it,
    /// a generation of 0, a tenant's roll-up naming objects not ready).
    Whole(Box<S>),
}

impl<S: CompactStatus> KeptStatus<S> {
    pub fn new(status: S) -> Self {
        match status.compact() {
            Some(compact) if S::expand(&compact) == status => KeptStatus::Compact(compact),
            _ => KeptStatus::Whole(Box::new(status)),
        }
    }

    /// The status as it was kept.
    pub fn get(&self) -> S {
        match self {
            KeptStatus::Compact(compact) => S::expand(compact),
            KeptStatus::Whole(status) => S::clone(status),
        }
    }
}

/// A generation that is not 0: the API server starts at 1.
fn generation(g: Option<i64>) -> Option<Option<NonZeroI64>> {
    match g {
        None => Some(None),
        Some(g) => NonZeroI64::new(g).map(Some),
    }
}

fn boxed(s: &Option<String>) -> Option<Box<str>> {
    s.as_deref().map(Box::from)
}

fn owned(s: &Option<Box<str>>) -> Option<String> {
    s.as_deref().map(str::to_owned)
}

/// A roll-up's counts, when it names no object.
fn counts(r: &Option<Rollup>) -> Option<Option<(i32, i32)>> {
    match r {
        None => Some(None),
        Some(r) if r.not_ready.is_empty() => Some(Some((r.total, r.ready))),
        Some(_) => None,
    }
}

fn rollup(counts: Option<(i32, i32)>) -> Option<Rollup> {
    counts.map(|(total, ready)| Rollup {
        total,
        ready,
        not_ready: Vec::new(),
    })
}

#[derive(Clone, Debug)]
pub struct CompactTenantStatus {
    observed_generation: Option<NonZeroI64>,
    accounts: Option<i64>,
    namespace: Option<Box<str>>,
    service_level: Option<Text>,
    components_summary: Option<Text>,
    components: Option<(i32, i32)>,
    packages: Option<(i32, i32)>,
}

impl CompactStatus for TenantStatus {
    type Compact = CompactTenantStatus;

    fn compact(&self) -> Option<CompactTenantStatus> {
        Some(CompactTenantStatus {
            observed_generation: generation(self.observed_generation)?,
            accounts: self.accounts,
            namespace: boxed(&self.namespace),
            service_level: self.service_level.clone(),
            components_summary: self.components_summary.clone(),
            components: counts(&self.components)?,
            packages: counts(&self.packages)?,
        })
    }

    fn expand(c: &CompactTenantStatus) -> TenantStatus {
        TenantStatus {
            observed_generation: c.observed_generation.map(NonZeroI64::get),
            conditions: Vec::new(),
            namespace: owned(&c.namespace),
            service_level: c.service_level.clone(),
            accounts: c.accounts,
            components: rollup(c.components),
            packages: rollup(c.packages),
            components_summary: c.components_summary.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CompactComponentStatus {
    observed_generation: Option<NonZeroI64>,
    replicas: Option<i32>,
    available_replicas: Option<i32>,
    service_level: Option<Text>,
    mode: Option<Text>,
    probe_url: Option<Box<str>>,
    availability: Option<Box<str>>,
}

impl CompactStatus for HostingComponentStatus {
    type Compact = CompactComponentStatus;

    fn compact(&self) -> Option<CompactComponentStatus> {
        Some(CompactComponentStatus {
            observed_generation: generation(self.observed_generation)?,
            replicas: self.replicas,
            available_replicas: self.available_replicas,
            service_level: self.service_level.clone(),
            mode: self.mode.clone(),
            probe_url: boxed(&self.probe_url),
            availability: boxed(&self.availability),
        })
    }

    fn expand(c: &CompactComponentStatus) -> HostingComponentStatus {
        HostingComponentStatus {
            observed_generation: c.observed_generation.map(NonZeroI64::get),
            conditions: Vec::new(),
            service_level: c.service_level.clone(),
            mode: c.mode.clone(),
            replicas: c.replicas,
            available_replicas: c.available_replicas,
            probe_url: owned(&c.probe_url),
            availability: owned(&c.availability),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CompactPackageStatus {
    observed_generation: Option<NonZeroI64>,
    measured_accounts: Option<i64>,
    billed_accounts: Option<i64>,
    measured_at: Option<Box<str>>,
}

impl CompactStatus for WorkplacePackageStatus {
    type Compact = CompactPackageStatus;

    fn compact(&self) -> Option<CompactPackageStatus> {
        Some(CompactPackageStatus {
            observed_generation: generation(self.observed_generation)?,
            measured_accounts: self.measured_accounts,
            billed_accounts: self.billed_accounts,
            measured_at: boxed(&self.measured_at),
        })
    }

    fn expand(c: &CompactPackageStatus) -> WorkplacePackageStatus {
        WorkplacePackageStatus {
            observed_generation: c.observed_generation.map(NonZeroI64::get),
            conditions: Vec::new(),
            measured_accounts: c.measured_accounts,
            measured_at: owned(&c.measured_at),
            billed_accounts: c.billed_accounts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    fn kept<S: CompactStatus + std::fmt::Debug>(status: &S) -> (bool, S) {
        let kept = KeptStatus::new(status.clone());
        (matches!(kept, KeptStatus::Compact(_)), kept.get())
    }

    #[test]
    fn usual_statuses_are_kept_compact_and_come_back_equal() {
        let tenant: TenantStatus = serde_json::from_value(serde_json::json!({
            "observedGeneration": 3, "namespace": "tenant-utrecht", "serviceLevel": "gold",
            "accounts": 1250, "components": {"total": 2, "ready": 2},
            "packages": {"total": 1, "ready": 1}, "componentsSummary": "2/2"
        }))
        .expect("a tenant status");
        let component: HostingComponentStatus = serde_json::from_value(serde_json::json!({
            "observedGeneration": 1, "serviceLevel": "silver", "mode": "hosted", "replicas": 2,
            "availableReplicas": 0, "probeUrl": "http://web.tenant-utrecht.svc:8080/healthz",
            "availability": "99.950"
        }))
        .expect("a component status");
        let package: WorkplacePackageStatus = serde_json::from_value(serde_json::json!({
            "observedGeneration": 1, "measuredAccounts": 1250, "billedAccounts": 1250,
            "measuredAt": "2026-12-05T02:00:00Z"
        }))
        .expect("a package status");
        assert_eq!(kept(&tenant), (true, tenant.clone()));
        assert_eq!(kept(&component), (true, component.clone()));
        assert_eq!(kept(&package), (true, package.clone()));
        for empty in [
            kept(&TenantStatus::default()).0,
            kept(&HostingComponentStatus::default()).0,
        ] {
            assert!(empty, "an empty status is compact too");
        }
        assert!(size_of::<KeptStatus<TenantStatus>>() <= size_of::<TenantStatus>() / 2);
        assert!(size_of::<KeptStatus<HostingComponentStatus>>() <= 72);
        assert!(size_of::<KeptStatus<WorkplacePackageStatus>>() <= 56);
    }

    #[test]
    fn what_the_compact_form_cannot_hold_is_kept_whole_and_comes_back_equal() {
        let not_ready = TenantStatus {
            components: Some(Rollup {
                total: 2,
                ready: 1,
                not_ready: vec!["web".into()],
            }),
            ..TenantStatus::default()
        };
        let generation_zero = HostingComponentStatus {
            observed_generation: Some(0),
            ..HostingComponentStatus::default()
        };
        let with_conditions = WorkplacePackageStatus {
            conditions: vec![regie_crds::status::condition(
                "Custom",
                true,
                "Why",
                "what",
                None,
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
            )],
            ..WorkplacePackageStatus::default()
        };
        assert_eq!(kept(&not_ready), (false, not_ready.clone()));
        assert_eq!(kept(&generation_zero), (false, generation_zero.clone()));
        assert_eq!(kept(&with_conditions), (false, with_conditions.clone()));
    }
}

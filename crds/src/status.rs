//! The status vocabulary every regie kind shares: kstatus conditions and their reasons.
//!
//! `Ready`, `Reconciling` and `Stalled` follow the kstatus conventions so that Argo CD, Flux and
//! people read health the same way. Conditions are merged so that `lastTransitionTime` only moves
//! when a condition's status flips.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub use crate::condition::{Condition, Text};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const AVAILABLE: &str = "Available";

/// `Stalled=False`: the message.
pub const NOTHING_BLOCKS: &str = "nothing blocks progress";
/// `Reconciling=False`: the message.
pub const NO_WORK_IN_PROGRESS: &str = "no work in progress";
/// A Tenant's `Ready=True`.
pub const TENANT_IN_SYNC: &str =
    "namespace, quota, isolation, access and every component are applied and in sync";
/// A HostingComponent's `Ready=True`.
pub const WORKLOAD_IN_SYNC: &str = "workload applied and in sync";
/// A WorkplacePackage's `Ready=True`.
pub const ACCOUNTS_RECORDED: &str = "accounts recorded for billing";
/// A SaaS component's `Available` before its first probe.
pub const NOT_PROBED_YET: &str = "no probe result yet";

/// Puts `new` into `conditions`, keeping the old `lastTransitionTime` when the status is unchanged.
/// Returns true when anything but the transition time changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            let changed = old.status != new.status
                || old.reason != new.reason
                || old.message != new.message
                || old.observed_generation != new.observed_generation;
            *old = new;
            changed
        }
        None => {
            conditions.push(new);
            conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
            true
        }
    }
}

/// Builds a condition; `status` true maps to "True".
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<Text>,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now,
    }
}

/// Looks a condition up by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of that type exists and is "True".
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

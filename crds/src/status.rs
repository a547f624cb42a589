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

/// A hosted component's `Available` message: how many of its replicas are available and, when
/// fewer than `needed`, that too few are.
pub fn replicas_message(available: i32, wanted: i32, needed: i32) -> String {
    if available >= needed {
        format!("{available} of {wanted} replicas available")
    } else {
        format!(
            "{available} of {wanted} replicas available (at least {needed} needed); no pod of this Deployment is ready"
        )
    }
}

/// Whether `s` is a [`replicas_message`] whose counts are below 100. Such a message names no
/// object and few of them exist, so they are shared like regie's fixed messages.
pub fn is_replicas_message(s: &str) -> bool {
    fn count(digits: &str) -> Option<i32> {
        let canonical = (1..=2).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        canonical.then(|| digits.parse().ok()).flatten()
    }
    let Some((available, rest)) = s.split_once(" of ") else {
        return false;
    };
    let Some((wanted, rest)) = rest.split_once(" replicas available") else {
        return false;
    };
    let (Some(available), Some(wanted)) = (count(available), count(wanted)) else {
        return false;
    };
    let needed = match rest
        .strip_prefix(" (at least ")
        .and_then(|r| r.split_once(' '))
    {
        Some((needed, _)) => count(needed),
        None if rest.is_empty() => Some(available),
        None => None,
    };
    needed.is_some_and(|needed| replicas_message(available, wanted, needed) == s)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_messages_are_recognised_only_as_written() {
        for (available, wanted, needed) in
            [(0, 2, 1), (2, 2, 1), (3, 3, 2), (0, 1, 1), (99, 99, 99)]
        {
            let m = replicas_message(available, wanted, needed);
            assert!(is_replicas_message(&m), "{m}");
        }
        for not in [
            "",
            "2 of 3 replicas available, more or less",
            "02 of 3 replicas available",
            "100 of 100 replicas available",
            "-1 of 3 replicas available",
            "2 of 3 replicas available (at least 2 needed); no pod of this Deployment is ready",
            "0 of 3 replicas available (at least 1 needed); no pod of tenant-x is ready",
            "0 of 3 replicas available (at least 1 needed)",
        ] {
            assert!(!is_replicas_message(not), "{not}");
        }
    }
}

//! How a cache keeps a status's conditions: each in 32 bytes ([`KeptCondition`]) and, in the
//! usual case, as a shape shared with every object whose conditions read the same words, with
//! only the times and generations of its own, held inline.
//!
//! A cached Tenant, component or package carries three or four conditions. Once converged,
//! thousands of them read alike — `Ready True InSync "…"`, `Reconciling False …`, `Stalled
//! False …` — and differ only in when they last changed and the generation they saw. Kept as a
//! list per object they were a heap block of 100–150 bytes each; as a shape (one pointer) and
//! eight 32-bit numbers they take no block at all. Only sets whose words and messages are all
//! shared text (see `regie_crds::condition`) have a shape, and the number of shapes is bounded,
//! so hostile or unusual conditions cost what they did before, never more.

use std::collections::HashSet;
use std::num::NonZeroI32;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use regie_crds::status::{Condition, Text};

/// The condition types and statuses a [`KeptCondition`] can hold.
const CONDITION_TYPES: [&str; 4] = [
    regie_crds::status::READY,
    regie_crds::status::RECONCILING,
    regie_crds::status::STALLED,
    regie_crds::status::AVAILABLE,
];
const CONDITION_STATUSES: [&str; 3] = ["True", "False", "Unknown"];

/// The most conditions a shaped set holds: one of each type regie writes.
const SLOTS: usize = CONDITION_TYPES.len();

/// How many distinct shapes are kept at most; a set of another shape is kept as a list. The
/// words and messages a shape holds are shared text, itself bounded; this bounds their
/// combinations.
const SHAPES_MAX: usize = 4096;

/// A status condition as a cache keeps it: 32 bytes instead of 64, its type and status as
/// their place in the few values regie's kinds use, its transition time in whole seconds since
/// 1970 (as the API server writes it; 32 bits last until 2106), its observed generation in 32
/// bits.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptCondition {
    words: Words,
    transition: u32,
    observed_generation: Option<NonZeroI32>,
}

/// What a condition says, without when: its type, status, reason and message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Words {
    reason: Text,
    message: Text,
    type_: u8,
    status: u8,
}

impl KeptCondition {
    /// None when `c` does not fit: another type or status, a fraction of a second, a time
    /// before 1970 or after 2106, an observed generation of 0 or beyond 32 bits.
    pub fn of(c: &Condition) -> Option<KeptCondition> {
        let place = |values: &[&str], text: &str| values.iter().position(|v| *v == text);
        let at = c.last_transition_time.0;
        if at.subsec_nanosecond() != 0 {
            return None;
        }
        let observed_generation = match c.observed_generation {
            None => None,
            Some(g) => Some(NonZeroI32::new(i32::try_from(g).ok()?)?),
        };
        Some(KeptCondition {
            words: Words {
                reason: c.reason.clone(),
                message: c.message.clone(),
                type_: place(&CONDITION_TYPES, &c.type_)? as u8,
                status: place(&CONDITION_STATUSES, &c.status)? as u8,
            },
            transition: u32::try_from(at.as_second()).ok()?,
            observed_generation,
        })
    }

    pub fn condition(&self) -> Condition {
        condition(&self.words, self.transition, self.observed_generation)
    }
}

fn condition(words: &Words, transition: u32, observed_generation: Option<NonZeroI32>) -> Condition {
    Condition {
        last_transition_time: Time(
            // Read from a timestamp when kept: always in range.
            jiff::Timestamp::from_second(i64::from(transition)).unwrap_or_default(),
        ),
        message: words.message.clone(),
        observed_generation: observed_generation.map(|g| i64::from(g.get())),
        reason: words.reason.clone(),
        status: CONDITION_STATUSES[words.status as usize].into(),
        type_: CONDITION_TYPES[words.type_ as usize].into(),
    }
}

/// The words of a set of conditions, in their order.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Shape(Box<[Words]>);

/// A status's conditions as a cache keeps them.
#[derive(Clone, Debug, PartialEq)]
pub enum KeptConditions {
    /// Up to [`SLOTS`] conditions: their words shared, slot `i` of `at` and `generations`
    /// the time and observed generation of the `i`th.
    Shaped {
        shape: Arc<Shape>,
        at: [u32; SLOTS],
        generations: [Option<NonZeroI32>; SLOTS],
    },
    /// Any other set, none included.
    Listed(Box<[KeptCondition]>),
}

impl Default for KeptConditions {
    fn default() -> Self {
        KeptConditions::Listed(Box::default())
    }
}

impl KeptConditions {
    /// None when one of `list` does not fit [`KeptCondition`] (the status then keeps the list).
    pub fn of(list: &[Condition]) -> Option<KeptConditions> {
        let kept = list
            .iter()
            .map(KeptCondition::of)
            .collect::<Option<Vec<_>>>()?;
        Some(Self::shaped(&kept, shapes()).unwrap_or_else(|| KeptConditions::Listed(kept.into())))
    }

    /// `kept` with a shape from `shapes`, when it fits one.
    fn shaped(kept: &[KeptCondition], shapes: &Shapes) -> Option<KeptConditions> {
        let fits = !kept.is_empty()
            && kept.len() <= SLOTS
            && kept
                .iter()
                .all(|c| c.words.reason.is_shared() && c.words.message.is_shared());
        if !fits {
            return None;
        }
        let shape = shapes.share(Shape(kept.iter().map(|c| c.words.clone()).collect()))?;
        let mut at = [0; SLOTS];
        let mut generations = [None; SLOTS];
        for (i, c) in kept.iter().enumerate() {
            at[i] = c.transition;
            generations[i] = c.observed_generation;
        }
        Some(KeptConditions::Shaped {
            shape,
            at,
            generations,
        })
    }

    pub fn len(&self) -> usize {
        match self {
            KeptConditions::Shaped { shape, .. } => shape.0.len(),
            KeptConditions::Listed(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The conditions, whole, in the order they came.
    pub fn conditions(&self) -> Vec<Condition> {
        match self {
            KeptConditions::Shaped {
                shape,
                at,
                generations,
            } => shape
                .0
                .iter()
                .zip(at.iter().zip(generations))
                .map(|(words, (at, generation))| condition(words, *at, *generation))
                .collect(),
            KeptConditions::Listed(list) => list.iter().map(KeptCondition::condition).collect(),
        }
    }
}

/// The shapes in use, one copy of each, at most `max`. Kept for the life of the process, like
/// the words they are made of.
struct Shapes {
    known: Mutex<HashSet<Arc<Shape>>>,
    max: usize,
}

impl Shapes {
    fn new(max: usize) -> Shapes {
        Shapes {
            known: Mutex::new(HashSet::new()),
            max,
        }
    }

    /// The one copy of `shape`; None once `max` others are known.
    fn share(&self, shape: Shape) -> Option<Arc<Shape>> {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = known.get(&shape) {
            return Some(s.clone());
        }
        if known.len() >= self.max {
            return None;
        }
        let s = Arc::new(shape);
        known.insert(s.clone());
        Some(s)
    }
}

fn shapes() -> &'static Shapes {
    static SHAPES: OnceLock<Shapes> = OnceLock::new();
    SHAPES.get_or_init(|| Shapes::new(SHAPES_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use regie_crds::status::{
        NO_WORK_IN_PROGRESS, NOTHING_BLOCKS, READY, RECONCILING, STALLED, TENANT_IN_SYNC,
    };

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).expect("in range"))
    }

    /// A converged tenant's three conditions, as regie writes them.
    fn converged(second: i64, generation: i64) -> Vec<Condition> {
        let c = |type_, status, reason, message| {
            regie_crds::status::condition(
                type_,
                status,
                reason,
                message,
                Some(generation),
                at(second),
            )
        };
        vec![
            c(READY, true, "InSync", TENANT_IN_SYNC),
            c(RECONCILING, false, "NoWork", NO_WORK_IN_PROGRESS),
            c(STALLED, false, "NothingBlocks", NOTHING_BLOCKS),
        ]
    }

    #[test]
    fn conditions_that_read_alike_share_one_shape_and_keep_their_own_times() {
        let (a, b) = (converged(1_780_000_000, 1), converged(1_780_000_777, 3));
        let (kept_a, kept_b) = (
            KeptConditions::of(&a).expect("fits"),
            KeptConditions::of(&b).expect("fits"),
        );
        match (&kept_a, &kept_b) {
            (
                KeptConditions::Shaped { shape: sa, .. },
                KeptConditions::Shaped { shape: sb, .. },
            ) => assert!(Arc::ptr_eq(sa, sb), "one shape for both"),
            other => panic!("not shaped: {other:?}"),
        }
        assert_eq!(kept_a.conditions(), a);
        assert_eq!(kept_b.conditions(), b);
        assert_eq!(kept_a.len(), 3);
        assert!(std::mem::size_of::<KeptConditions>() <= 40);
        assert!(std::mem::size_of::<KeptCondition>() <= 32);
    }

    #[test]
    fn a_message_of_its_own_or_more_conditions_than_slots_are_listed_and_come_back_equal() {
        let mut own = converged(1_780_000_000, 1);
        own[0].message = Text::from("tenant-a: HostingComponent web is missing its image");
        let mut many = converged(1_780_000_000, 1);
        many.extend(converged(1_780_000_001, 2));
        for list in [own, many, Vec::new()] {
            let kept = KeptConditions::of(&list).expect("fits KeptCondition");
            assert!(matches!(kept, KeptConditions::Listed(_)), "{kept:?}");
            assert_eq!(kept.conditions(), list);
        }
    }

    #[test]
    fn shapes_beyond_the_bound_are_listed() {
        let shapes = Shapes::new(1);
        let kept = |list: &[Condition]| -> Vec<KeptCondition> {
            list.iter()
                .map(|c| KeptCondition::of(c).expect("fits"))
                .collect()
        };
        let first = converged(1_780_000_000, 1);
        let mut second = first.clone();
        second[0].reason = Text::from("Other");
        assert!(KeptConditions::shaped(&kept(&first), &shapes).is_some());
        assert!(
            KeptConditions::shaped(&kept(&first), &shapes).is_some(),
            "known"
        );
        assert!(
            KeptConditions::shaped(&kept(&second), &shapes).is_none(),
            "full"
        );
    }
}

//! Giving back the room a burst left in a collection. A hash table, queue or heap never
//! shrinks by itself, and `regie run` fills several to the number of tenants for a moment (a
//! start queues, resumes and writes for every tenant at once); kept at that size they would
//! cost memory per tenant for good. One rule for all of them: once more than twice what is
//! left plus a little is free, shrink to twice what is left, so the next burst grows it again
//! and a steady trickle never reallocates.

use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;

/// Slots kept free however small the collection gets.
const KEEP: usize = 64;

/// A collection whose spare room can be given back.
pub trait Room {
    fn used(&self) -> usize;
    fn room(&self) -> usize;
    fn shrink(&mut self, to: usize);
}

/// Shrinks `c` to twice what it holds when more than that plus [`KEEP`] is free.
pub fn give_back(c: &mut impl Room) {
    let used = c.used();
    if c.room() > 2 * used + KEEP {
        c.shrink(2 * used);
    }
}

/// The standard collections' own `len`, `capacity` and `shrink_to`.
macro_rules! room {
    ($($ty:ty => [$($generics:tt)*]),* $(,)?) => {$(
        impl<$($generics)*> Room for $ty {
            fn used(&self) -> usize {
                self.len()
            }
            fn room(&self) -> usize {
                self.capacity()
            }
            fn shrink(&mut self, to: usize) {
                self.shrink_to(to);
            }
        }
    )*};
}

room!(
    HashMap<K, V> => [K: Eq + Hash, V],
    HashSet<T> => [T: Eq + Hash],
    VecDeque<T> => [T],
    BinaryHeap<T> => [T: Ord],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_given_back_and_a_little_room_is_kept() {
        let mut m: HashMap<u32, u32> = (0..5_000).map(|i| (i, i)).collect();
        m.retain(|k, _| *k < 10);
        give_back(&mut m);
        assert!(m.capacity() < 100, "{}", m.capacity());
        let small = m.capacity();
        give_back(&mut m);
        assert_eq!(m.capacity(), small, "nothing to give back twice");
    }
}

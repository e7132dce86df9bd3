//! What the picture learnt about the parts of one app (its tasks, its Marathon deployments,
//! its launched instances), each with what it learnt: a small map kept as a sorted list.
//!
//! What it promises:
//! - the operations of a map: one value per key, an insert replaces, lookups by key in
//!   logarithmic time;
//! - no room beyond its items, and no allocation at all once it is empty. An app has a
//!   handful of marks at a time, most none once its reads are done; a hash map keeps room
//!   for four after its first insert and keeps it after its last removal, which at ten
//!   thousand apps was megabytes of the controller's memory.
//!
//! What it does not do: decide what a mark means or when it goes (the picture does).

/// A small map from a part of an app to what the picture learnt about it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Marks<K, V>(Vec<(K, V)>);

impl<K, V> Default for Marks<K, V> {
    fn default() -> Self {
        Marks(Vec::new())
    }
}

impl<K: Ord, V> Marks<K, V> {
    /// Sets `key`'s value.
    pub(super) fn insert(&mut self, key: K, value: V) {
        match self.position(&key) {
            Ok(at) => self.0[at].1 = value,
            Err(at) => {
                self.0.reserve_exact(1);
                self.0.insert(at, (key, value));
            }
        }
    }

    /// Whether `key` has a value.
    pub(super) fn contains_key(&self, key: &K) -> bool {
        self.position(key).is_ok()
    }

    /// Removes `key`, returning its value.
    pub(super) fn remove(&mut self, key: &K) -> Option<V> {
        let at = self.position(key).ok()?;
        let (_, value) = self.0.remove(at);
        self.fit();
        Some(value)
    }

    /// Keeps only the marks `keep` says to.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.0.retain(|(key, value)| keep(key, value));
        self.fit();
    }

    /// The keys, in order.
    pub(super) fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(key, _)| key)
    }

    /// Whether there are none.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    fn position(&self, key: &K) -> Result<usize, usize> {
        self.0.binary_search_by(|(held, _)| held.cmp(key))
    }

    /// Gives back the room removals left.
    fn fit(&mut self) {
        if self.0.is_empty() {
            self.0 = Vec::new();
        } else if self.0.capacity() > 2 * self.0.len() {
            self.0.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_a_map_whatever_the_order_of_inserts() {
        let mut marks = Marks::default();
        for (key, value) in [("c", 1), ("a", 2), ("b", 3), ("a", 4)] {
            marks.insert(key, value);
        }
        assert_eq!(marks.len(), 3);
        assert_eq!(marks.remove(&"a"), Some(4), "an insert replaces");
        marks.insert("a", 2);
        assert!(marks.contains_key(&"b"));
        assert_eq!(marks.keys().copied().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(marks.remove(&"b"), Some(3));
        assert_eq!(marks.remove(&"b"), None);
        marks.retain(|_, value| *value > 1);
        assert_eq!(marks.keys().copied().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn it_holds_no_room_beyond_its_marks_and_none_once_empty() {
        let mut marks = Marks::default();
        marks.insert(1, ());
        assert_eq!(marks.0.capacity(), 1);
        for key in 2..=16 {
            marks.insert(key, ());
        }
        marks.retain(|key, _| *key <= 2);
        assert_eq!(marks.0.capacity(), 2);
        marks.remove(&1);
        marks.remove(&2);
        assert!(marks.is_empty());
        assert_eq!(marks.0.capacity(), 0, "an empty list allocates nothing");
    }
}

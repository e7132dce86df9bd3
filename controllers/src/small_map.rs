//! A map of a handful of entries, kept as a sorted list: what the controller holds per
//! deployment or per app thousands of times over (the map of an app in the Marathon
//! picture, the entries of a deployment's history and journal).
//!
//! What it promises:
//! - the operations of an ordered map: one value per key, an insert replaces, lookups by key
//!   in logarithmic time, iteration in key order;
//! - no room beyond its entries, and no allocation at all once it is empty. A hash map keeps
//!   room for four entries from its first insert on, and keeps it after its last removal; a
//!   B-tree map of one entry keeps a node with room for eleven. At ten thousand deployments
//!   either was megabytes of the controller's memory.
//!
//! What it does not do: suit many entries (an insert moves the entries after it).

/// A map of a few entries, kept as a list sorted by key.
#[derive(Debug, Clone, PartialEq)]
pub struct SmallMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap(Vec::new())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// Sets `key`'s value.
    pub fn insert(&mut self, key: K, value: V) {
        match self.position(&key) {
            Ok(at) => self.0[at].1 = value,
            Err(at) => {
                self.0.reserve_exact(1);
                self.0.insert(at, (key, value));
            }
        }
    }

    /// `key`'s value, if it has one.
    pub fn get(&self, key: &K) -> Option<&V> {
        let at = self.position(key).ok()?;
        Some(&self.0[at].1)
    }

    /// Whether `key` has a value.
    pub fn contains_key(&self, key: &K) -> bool {
        self.position(key).is_ok()
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let at = self.position(key).ok()?;
        let (_, value) = self.0.remove(at);
        self.fit();
        Some(value)
    }

    /// Keeps only the entries `keep` says to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.0.retain(|(key, value)| keep(key, value));
        self.fit();
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> {
        self.0.iter().map(|(key, value)| (key, value))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.0.iter().map(|(key, _)| key)
    }

    /// The values, in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.0.iter().map(|(_, value)| value)
    }

    /// The values, in key order, to change in place.
    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, value)| value)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many there are.
    #[cfg(test)]
    pub fn len(&self) -> usize {
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
        let mut map = SmallMap::default();
        for (key, value) in [("c", 1), ("a", 2), ("b", 3), ("a", 4)] {
            map.insert(key, value);
        }
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&"a"), Some(&4), "an insert replaces");
        map.insert("a", 2);
        assert!(map.contains_key(&"b"));
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(map.values().rev().copied().collect::<Vec<_>>(), [1, 3, 2]);
        assert_eq!(map.remove(&"b"), Some(3));
        assert_eq!(map.remove(&"b"), None);
        map.retain(|_, value| *value > 1);
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn it_holds_no_room_beyond_its_map_and_none_once_empty() {
        let mut map = SmallMap::default();
        map.insert(1, ());
        assert_eq!(map.0.capacity(), 1);
        for key in 2..=16 {
            map.insert(key, ());
        }
        map.retain(|key, _| *key <= 2);
        assert_eq!(map.0.capacity(), 2);
        map.remove(&1);
        map.remove(&2);
        assert!(map.is_empty());
        assert_eq!(map.0.capacity(), 0, "an empty list allocates nothing");
    }
}

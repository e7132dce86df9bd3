//! An app's labels and environment: small maps of names to text, held compactly.
//!
//! The controller keeps one [`App`](super::App) per Marathon app it knows, and every app
//! carries a handful of labels and environment variables. As `BTreeMap<String, _>` each map
//! costs a tree node and two allocations per entry (about a kilobyte for ten entries); here
//! each map is its text and an index of where every entry ends, two allocations whatever
//! its size.
//!
//! What it promises:
//! - Entries are sorted by name and names are unique: building from a list keeps the last
//!   value given for a name, as inserting into a map would; two maps with the same entries
//!   are equal, whatever order they were built in.
//! - On the wire a map is a JSON object, names in sorted order, values as Marathon has them:
//!   a label's value is a string; an environment value is a string or `{"secret": name}`.
//!
//! What it does not do: edit in place cheaply. Inserting or removing an entry rebuilds the
//! map; apps are read far more often than they are edited.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::app::EnvValue;

/// Where one entry ends in a [`Packed`] map's text: its name, then its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct EntryEnd {
    name: u32,
    value: u32,
    /// The value names a secret (environment variables only).
    secret: bool,
}

/// The storage both maps share: every name and value one after the other, in name order.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
struct Packed {
    text: Box<str>,
    ends: Box<[EntryEnd]>,
}

/// One entry of a [`Packed`] map: name, value, whether the value names a secret.
type PackedEntry<'a> = (&'a str, &'a str, bool);

impl Packed {
    /// Packs `entries`; a later entry for a name replaces an earlier one.
    fn from_entries<'a>(entries: impl IntoIterator<Item = PackedEntry<'a>>) -> Packed {
        let mut entries: Vec<PackedEntry<'a>> = entries.into_iter().collect();
        // Stable: entries of one name keep their order, and the last one is kept.
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut unique: Vec<PackedEntry<'a>> = Vec::with_capacity(entries.len());
        for entry in entries {
            match unique.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => unique.push(entry),
            }
        }
        let mut text = String::with_capacity(
            unique
                .iter()
                .map(|(name, value, _)| name.len() + value.len())
                .sum(),
        );
        let ends = unique
            .iter()
            .map(|(name, value, secret)| {
                text.push_str(name);
                let name = offset(text.len());
                text.push_str(value);
                EntryEnd {
                    name,
                    value: offset(text.len()),
                    secret: *secret,
                }
            })
            .collect();
        Packed {
            text: text.into_boxed_str(),
            ends,
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Entry `index`.
    fn entry(&self, index: usize) -> PackedEntry<'_> {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1].value as usize,
        };
        let end = self.ends[index];
        (
            &self.text[start..end.name as usize],
            &self.text[end.name as usize..end.value as usize],
            end.secret,
        )
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = PackedEntry<'_>> + '_ {
        (0..self.len()).map(|index| self.entry(index))
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        let mut low = 0;
        let mut high = self.len();
        while low < high {
            let middle = low + (high - low) / 2;
            match self.entry(middle).0.cmp(name) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Ok(middle),
            }
        }
        Err(low)
    }

    fn get(&self, name: &str) -> Option<(&str, bool)> {
        let (_, value, secret) = self.entry(self.find(name).ok()?);
        Some((value, secret))
    }

    fn insert(&mut self, name: &str, value: &str, secret: bool) {
        let replaced = Packed::from_entries(self.iter().chain([(name, value, secret)]));
        *self = replaced;
    }

    /// Removes `name`; whether it was there.
    fn remove(&mut self, name: &str) -> bool {
        if self.find(name).is_err() {
            return false;
        }
        let kept = Packed::from_entries(self.iter().filter(|(held, _, _)| *held != name));
        *self = kept;
        true
    }
}

/// An offset into a map's text. Maps hold a few hundred bytes; one over 4 GiB is not an app's.
fn offset(at: usize) -> u32 {
    u32::try_from(at).expect("labels or environment over 4 GiB")
}

/// An app's labels: names to text, sorted by name.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Packed);

impl Labels {
    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|(value, _)| value)
    }

    /// Whether label `name` is set.
    pub fn contains_key(&self, name: &str) -> bool {
        self.0.find(name).is_ok()
    }

    /// Sets label `name` to `value`.
    pub fn insert(&mut self, name: &str, value: &str) {
        self.0.insert(name, value, false);
    }

    /// Removes label `name`; whether it was set.
    pub fn remove(&mut self, name: &str) -> bool {
        self.0.remove(name)
    }

    /// The labels in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(name, value, _)| (name, value))
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let pairs: Vec<(N, V)> = pairs.into_iter().collect();
        Labels(Packed::from_entries(
            pairs
                .iter()
                .map(|(name, value)| (name.as_ref(), value.as_ref(), false)),
        ))
    }
}

impl<N: AsRef<str>, V: AsRef<str>, const COUNT: usize> From<[(N, V); COUNT]> for Labels {
    fn from(pairs: [(N, V); COUNT]) -> Self {
        pairs.into_iter().collect()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs: Vec<(String, String)> = deserializer.deserialize_map(PairsVisitor::new())?;
        Ok(pairs.into_iter().collect())
    }
}

/// A reference to an environment value inside an [`Environment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvValueRef<'a> {
    /// A plain value.
    Value(&'a str),
    /// The name of the app's secret whose value the variable takes.
    Secret(&'a str),
}

impl<'a> From<&'a str> for EnvValueRef<'a> {
    fn from(value: &'a str) -> Self {
        EnvValueRef::Value(value)
    }
}

impl EnvValueRef<'_> {
    /// The value as an owned [`EnvValue`].
    pub fn to_owned_value(self) -> EnvValue {
        match self {
            EnvValueRef::Value(value) => EnvValue::Value(value.to_owned()),
            EnvValueRef::Secret(secret) => EnvValue::Secret {
                secret: secret.to_owned(),
            },
        }
    }

    fn from_packed((value, secret): (&str, bool)) -> EnvValueRef<'_> {
        if secret {
            EnvValueRef::Secret(value)
        } else {
            EnvValueRef::Value(value)
        }
    }
}

impl EnvValue {
    /// This value as an [`EnvValueRef`].
    pub fn as_borrowed(&self) -> EnvValueRef<'_> {
        match self {
            EnvValue::Value(value) => EnvValueRef::Value(value),
            EnvValue::Secret { secret } => EnvValueRef::Secret(secret),
        }
    }
}

/// An app's environment: variable names to values, sorted by name.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Environment(Packed);

impl Environment {
    /// The value of variable `name`.
    pub fn get(&self, name: &str) -> Option<EnvValueRef<'_>> {
        self.0.get(name).map(EnvValueRef::from_packed)
    }

    /// The plain value of variable `name` (`None` if unset or a secret).
    pub fn value(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            EnvValueRef::Value(value) => Some(value),
            EnvValueRef::Secret(_) => None,
        }
    }

    /// Sets variable `name` to `value`.
    pub fn insert<'a>(&mut self, name: &str, value: impl Into<EnvValueRef<'a>>) {
        let (text, secret) = packed_value(value.into());
        self.0.insert(name, text, secret);
    }

    /// Removes variable `name`; whether it was set.
    pub fn remove(&mut self, name: &str) -> bool {
        self.0.remove(name)
    }

    /// The variables in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, EnvValueRef<'_>)> + '_ {
        self.0
            .iter()
            .map(|(name, value, secret)| (name, EnvValueRef::from_packed((value, secret))))
    }

    /// How many variables.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }
}

fn packed_value(value: EnvValueRef<'_>) -> (&str, bool) {
    match value {
        EnvValueRef::Value(value) => (value, false),
        EnvValueRef::Secret(secret) => (secret, true),
    }
}

impl<'a, N: AsRef<str>> FromIterator<(N, EnvValueRef<'a>)> for Environment {
    fn from_iter<I: IntoIterator<Item = (N, EnvValueRef<'a>)>>(pairs: I) -> Self {
        let pairs: Vec<(N, EnvValueRef<'a>)> = pairs.into_iter().collect();
        Environment(Packed::from_entries(pairs.iter().map(|(name, value)| {
            let (text, secret) = packed_value(*value);
            (name.as_ref(), text, secret)
        })))
    }
}

impl<N: AsRef<str>> FromIterator<(N, EnvValue)> for Environment {
    fn from_iter<I: IntoIterator<Item = (N, EnvValue)>>(pairs: I) -> Self {
        let pairs: Vec<(N, EnvValue)> = pairs.into_iter().collect();
        pairs
            .iter()
            .map(|(name, value)| (name.as_ref(), value.as_borrowed()))
            .collect()
    }
}

impl<N: AsRef<str>, const COUNT: usize> From<[(N, EnvValue); COUNT]> for Environment {
    fn from(pairs: [(N, EnvValue); COUNT]) -> Self {
        pairs.into_iter().collect()
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Environment {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in self.iter() {
            match value {
                EnvValueRef::Value(value) => map.serialize_entry(name, value)?,
                EnvValueRef::Secret(secret) => map.serialize_entry(name, &Secret { secret })?,
            }
        }
        map.end()
    }
}

/// `{"secret": name}` on the wire.
#[derive(Serialize)]
struct Secret<'a> {
    secret: &'a str,
}

impl<'de> Deserialize<'de> for Environment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pairs: Vec<(String, EnvValue)> = deserializer.deserialize_map(PairsVisitor::new())?;
        Ok(pairs.into_iter().collect())
    }
}

/// Reads a JSON object as its list of pairs, in the order they came.
struct PairsVisitor<V>(std::marker::PhantomData<V>);

impl<V> PairsVisitor<V> {
    fn new() -> Self {
        PairsVisitor(std::marker::PhantomData)
    }
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<V> {
    type Value = Vec<(String, V)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(pair) = map.next_entry::<String, V>()? {
            pairs.push(pair);
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_sorted_unique_and_equal_whatever_the_order_built() {
        let a = Labels::from([("b", "2"), ("a", "1"), ("b", "3")]);
        let b = Labels::from([("a", "1"), ("b", "3")]);
        assert_eq!(a, b);
        assert_eq!(a.iter().collect::<Vec<_>>(), [("a", "1"), ("b", "3")]);
        assert_eq!(a.get("b"), Some("3"));
        assert_eq!(a.get("c"), None);
        assert!(a.contains_key("a"));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn labels_insert_and_remove() {
        let mut labels = Labels::from([("m", "1")]);
        labels.insert("a", "first");
        labels.insert("z", "last");
        labels.insert("m", "replaced");
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            [("a", "first"), ("m", "replaced"), ("z", "last")]
        );
        assert!(labels.remove("m"));
        assert!(!labels.remove("m"));
        assert_eq!(labels, Labels::from([("z", "last"), ("a", "first")]));
        assert!(labels.remove("a") && labels.remove("z"));
        assert!(labels.is_empty());
        assert_eq!(labels, Labels::default());
    }

    #[test]
    fn labels_read_and_write_as_an_object() {
        let labels: Labels = serde_json::from_value(json!({"z": "", "a": "ä ✓"})).unwrap();
        assert_eq!(labels.get("a"), Some("ä ✓"));
        assert_eq!(labels.get("z"), Some(""));
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            r#"{"a":"ä ✓","z":""}"#
        );
        let error = serde_json::from_value::<Labels>(json!({"a": 1})).unwrap_err();
        assert!(error.to_string().contains("expected a string"), "{error}");
        assert!(serde_json::from_value::<Labels>(json!(["a"])).is_err());
    }

    #[test]
    fn an_environment_keeps_values_and_secrets_apart() {
        let env: Environment = serde_json::from_value(json!({
            "PLAIN": "text", "PASSWORD": {"secret": "db"}, "EMPTY": ""
        }))
        .unwrap();
        assert_eq!(env.get("PLAIN"), Some(EnvValueRef::Value("text")));
        assert_eq!(env.get("PASSWORD"), Some(EnvValueRef::Secret("db")));
        assert_eq!(env.value("PASSWORD"), None, "a secret has no plain value");
        assert_eq!(env.value("EMPTY"), Some(""));
        assert_eq!(
            serde_json::to_value(&env).unwrap(),
            json!({"EMPTY": "", "PASSWORD": {"secret": "db"}, "PLAIN": "text"})
        );
        let as_value_named_db = Environment::from([("PASSWORD", EnvValue::from("db"))]);
        let as_secret_named_db = Environment::from([(
            "PASSWORD",
            EnvValue::Secret {
                secret: "db".into(),
            },
        )]);
        assert_ne!(as_value_named_db, as_secret_named_db);
    }

    #[test]
    fn an_environment_edits_like_a_map() {
        let mut env = Environment::from([("B", EnvValue::from("2"))]);
        env.insert("A", EnvValueRef::Value("1"));
        env.insert("B", EnvValueRef::Secret("s"));
        assert_eq!(
            env.iter()
                .map(|(name, value)| (name, value.to_owned_value()))
                .collect::<Vec<_>>(),
            [
                ("A", EnvValue::from("1")),
                ("B", EnvValue::Secret { secret: "s".into() })
            ]
        );
        assert!(env.remove("A"));
        assert_eq!(env.len(), 1);
    }
}

//! Keys and values as read from etcd, with the revisions that make compare-and-swap and
//! resumable watches possible, and typed decoding whose errors name the key.

use serde::de::DeserializeOwned;

use super::Error;

/// An etcd revision: the cluster-wide counter every write increments.
pub type Revision = i64;

/// One key-value pair as etcd stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key (non-UTF-8 bytes are replaced; theseus writes only UTF-8 keys).
    pub key: String,
    /// The raw value.
    pub value: Vec<u8>,
    /// The revision that created the key (since its last deletion).
    pub create_revision: Revision,
    /// The revision of the last write to the key: the token for compare-and-swap.
    pub mod_revision: Revision,
    /// How often the key was written since it was created (1 on creation).
    pub version: i64,
    /// The lease the key is bound to, 0 for none.
    pub lease: i64,
}

impl Entry {
    /// The value as text.
    pub fn value_str(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.value).map_err(|_| Error::NotUtf8 {
            key: self.key.clone(),
        })
    }

    /// The value decoded from JSON; the error names the key and the expected type.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.value).map_err(|error| Error::Decode {
            key: self.key.clone(),
            target: short_type_name::<T>(),
            reason: error.to_string(),
        })
    }
}

impl From<&etcd_client::KeyValue> for Entry {
    fn from(kv: &etcd_client::KeyValue) -> Entry {
        Entry {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        }
    }
}

/// Every entry under a prefix as of one revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// The entries, ordered by key.
    pub entries: Vec<Entry>,
    /// The revision the listing is consistent at: a watch from `revision + 1` misses nothing.
    pub revision: Revision,
}

/// `theseus::api::Deployment` → `Deployment`; generic names are kept whole.
fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    if full.contains('<') {
        full
    } else {
        full.rsplit("::").next().unwrap_or(full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &[u8]) -> Entry {
        Entry {
            key: "/desired/ingestor/dev".into(),
            value: value.to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: 0,
        }
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Spec {
        instances: u32,
    }

    #[test]
    fn json_decodes_a_well_formed_value() {
        let spec: Spec = entry(br#"{"instances": 4}"#).json().unwrap();
        assert_eq!(spec, Spec { instances: 4 });
    }

    #[test]
    fn decode_errors_name_the_key_and_the_type() {
        let error = entry(br#"{"instances": "four"}"#)
            .json::<Spec>()
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("/desired/ingestor/dev"), "{text}");
        assert!(text.contains("Spec"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn value_str_refuses_binary_values_naming_the_key() {
        assert_eq!(entry(b"text").value_str().unwrap(), "text");
        let error = entry(&[0xff, 0xfe]).value_str().unwrap_err();
        assert!(matches!(error, Error::NotUtf8 { key } if key == "/desired/ingestor/dev"));
    }
}

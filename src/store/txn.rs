//! Compare-and-swap transactions: every compare must hold, then every operation applies
//! atomically at one revision; if a compare fails, nothing is written.

use etcd_client::{Compare, CompareOp, DeleteOptions, TxnOp};

use super::Revision;

/// A transaction under construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    compares: Vec<RevisionCompare>,
    operations: Vec<Operation>,
}

/// One compare of a transaction: a key's mod or create revision must equal `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RevisionCompare {
    ModRevision { key: String, revision: Revision },
    CreateRevision { key: String, revision: Revision },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operation {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
    DeletePrefix { prefix: String },
}

impl Operation {
    /// Whether `other` writes a key this one writes or deletes.
    fn overlaps(&self, other: &Operation) -> bool {
        let theirs = match other {
            Operation::Put { key, .. } | Operation::Delete { key } => key,
            Operation::DeletePrefix { prefix } => prefix,
        };
        match self {
            Operation::Put { key, .. } | Operation::Delete { key } => match other {
                Operation::DeletePrefix { prefix } => key.starts_with(prefix.as_str()),
                _ => key == theirs,
            },
            Operation::DeletePrefix { prefix } => theirs.starts_with(prefix.as_str()),
        }
    }
}

/// How a transaction went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnOutcome {
    /// Every compare held and every operation was applied.
    pub succeeded: bool,
    /// The store's revision after the transaction (the revision of its writes if it
    /// succeeded and wrote anything).
    pub revision: Revision,
}

impl Txn {
    /// An empty transaction: no compares, no operations.
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Requires `key`'s mod revision to be `revision`; 0 means the key must not exist.
    pub fn require_mod_revision(mut self, key: &str, revision: Revision) -> Txn {
        self.compares.push(RevisionCompare::ModRevision {
            key: key.to_owned(),
            revision,
        });
        self
    }

    /// Requires `key`'s create revision to be `revision` (0: the key must not exist). A
    /// leader key's create revision is the fencing token of its leadership.
    pub fn require_create_revision(mut self, key: &str, revision: Revision) -> Txn {
        self.compares.push(RevisionCompare::CreateRevision {
            key: key.to_owned(),
            revision,
        });
        self
    }

    /// Writes `value` at `key`.
    pub fn put(mut self, key: &str, value: impl Into<Vec<u8>>) -> Txn {
        self.operations.push(Operation::Put {
            key: key.to_owned(),
            value: value.into(),
        });
        self
    }

    /// Deletes `key`.
    pub fn delete(mut self, key: &str) -> Txn {
        self.operations.push(Operation::Delete {
            key: key.to_owned(),
        });
        self
    }

    /// Deletes every key that starts with `prefix`.
    pub fn delete_prefix(mut self, prefix: &str) -> Txn {
        self.operations.push(Operation::DeletePrefix {
            prefix: prefix.to_owned(),
        });
        self
    }

    /// Whether the transaction has no operation (compares alone write nothing).
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// How many operations it holds.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether it has compares (conditions) of its own.
    pub fn has_compares(&self) -> bool {
        !self.compares.is_empty()
    }

    /// The bytes of the values it puts.
    pub fn value_bytes(&self) -> usize {
        self.operations
            .iter()
            .map(|operation| match operation {
                Operation::Put { key, value } => key.len() + value.len(),
                Operation::Delete { key } => key.len(),
                Operation::DeletePrefix { prefix } => prefix.len(),
            })
            .sum()
    }

    /// Whether this and `other` write a key in common (the same key, or a key under a prefix
    /// the other deletes): etcd refuses such a pair of operations in one transaction.
    pub fn touches(&self, other: &Txn) -> bool {
        self.operations.iter().any(|mine| {
            other
                .operations
                .iter()
                .any(|theirs| mine.overlaps(theirs) || theirs.overlaps(mine))
        })
    }

    /// This transaction's compares and operations followed by `other`'s: both apply
    /// atomically, or neither.
    pub fn and(mut self, other: Txn) -> Txn {
        self.compares.extend(other.compares);
        self.operations.extend(other.operations);
        self
    }

    /// The keys and prefixes it touches, for messages: `/a`, `/b/*`.
    pub(crate) fn describe(&self) -> String {
        let mut keys: Vec<String> = self
            .compares
            .iter()
            .map(|compare| match compare {
                RevisionCompare::ModRevision { key, .. }
                | RevisionCompare::CreateRevision { key, .. } => key.clone(),
            })
            .chain(self.operations.iter().map(|operation| match operation {
                Operation::Put { key, .. } | Operation::Delete { key } => key.clone(),
                Operation::DeletePrefix { prefix } => format!("{prefix}*"),
            }))
            .collect();
        keys.dedup();
        format!("txn on {}", keys.join(", "))
    }

    /// The etcd-client form; built afresh for every attempt.
    pub(crate) fn to_etcd(&self) -> etcd_client::Txn {
        let compares: Vec<Compare> = self
            .compares
            .iter()
            .map(|compare| match compare {
                RevisionCompare::ModRevision { key, revision } => {
                    Compare::mod_revision(key.as_str(), CompareOp::Equal, *revision)
                }
                RevisionCompare::CreateRevision { key, revision } => {
                    Compare::create_revision(key.as_str(), CompareOp::Equal, *revision)
                }
            })
            .collect();
        let operations: Vec<TxnOp> = self
            .operations
            .iter()
            .map(|operation| match operation {
                Operation::Put { key, value } => TxnOp::put(key.as_str(), value.clone(), None),
                Operation::Delete { key } => TxnOp::delete(key.as_str(), None),
                Operation::DeletePrefix { prefix } => {
                    TxnOp::delete(prefix.as_str(), Some(DeleteOptions::new().with_prefix()))
                }
            })
            .collect();
        etcd_client::Txn::new().when(compares).and_then(operations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_transactions_joined_keep_every_compare_and_operation_in_order() {
        let first = Txn::new()
            .require_create_revision("/leader", 7)
            .put("/a", "1")
            .delete("/b");
        let second = Txn::new().put("/c", "2").delete_prefix("/d/");
        let joined = first.and(second);
        assert_eq!(joined.len(), 4);
        assert_eq!(joined.describe(), "txn on /leader, /a, /b, /c, /d/*");
        assert!(Txn::new().and(Txn::new()).is_empty());
    }

    #[test]
    fn transactions_touch_when_they_write_a_key_in_common() {
        let status = Txn::new().put("/o/web/dev/status", "{}");
        assert!(status.touches(&Txn::new().put("/o/web/dev/status", "[]")));
        assert!(status.touches(&Txn::new().delete("/o/web/dev/status")));
        assert!(status.touches(&Txn::new().delete_prefix("/o/web/dev/")));
        assert!(Txn::new().delete_prefix("/o/web/").touches(&status));
        assert!(!status.touches(&Txn::new().put("/o/web/dev/history/7", "{}")));
        assert!(!status.touches(&Txn::new().delete_prefix("/o/web/dev/history/")));
        assert!(
            !Txn::new()
                .require_create_revision("/leader", 1)
                .touches(&Txn::new().put("/leader", "x")),
            "compares are not writes"
        );
    }
}

//! The store handle: typed reads and writes of keys, consistent listings, transactions and
//! compaction, each tried on every configured endpoint before it fails.

use std::fmt;
use std::sync::Arc;

use etcd_client::{Client, CompactionOptions, GetOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::members::Members;
use super::watch::WatchStream;
use super::{Entry, Error, EtcdConfig, Layout, Listing, Revision, Txn, TxnOutcome};

/// The most keys one page of a listing holds.
const LIST_PAGE: i64 = 500;
/// The keys of a listing's first page, before the size of the values is known.
const FIRST_PAGE: i64 = 64;
/// The size a page of a listing aims at: pages hold as many keys as fit, judged by the
/// values of the page before.
const PAGE_BYTES: usize = 2 << 20;
/// The largest response this client decodes: the most etcd sends (its gRPC server's default
/// send limit is 2 GiB − 1), so no value etcd accepted is unreadable here.
pub const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

/// A connection to etcd under one key layout. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// The largest response decoded.
    max_response: usize,
}

struct Inner {
    layout: Layout,
    members: Members,
}

impl Store {
    /// Connects to the endpoints of `config` and checks that at least one answers; the error
    /// otherwise names every endpoint tried and why it failed (or which one refused the
    /// credentials).
    pub async fn connect(config: EtcdConfig, layout: Layout) -> Result<Store, Error> {
        let endpoints = config.endpoint_urls()?;
        let options = config.connect_options(&endpoints)?;
        let members = Members::new(
            endpoints,
            options.clone(),
            config.username.clone(),
            config.request_timeout,
        );
        members
            .call("a status check", |mut client| async move {
                Ok(client.status().await?)
            })
            .await?;
        Ok(Store {
            inner: Arc::new(Inner { layout, members }),
            max_response: MAX_RESPONSE_BYTES,
        })
    }

    /// Connects like [`Store::connect`], retrying with backoff (jittered, from 100 ms up to
    /// `max_delay`) while no member answers, for a long-lived process that must wait for etcd
    /// rather than fail; `on_failure` hears of every failed attempt. `None` once `stop` is
    /// cancelled first.
    pub async fn connect_until(
        config: &EtcdConfig,
        layout: &Layout,
        max_delay: std::time::Duration,
        stop: &tokio_util::sync::CancellationToken,
        mut on_failure: impl FnMut(&Error),
    ) -> Option<Store> {
        use backon::BackoffBuilder;
        let mut delays = backon::ExponentialBuilder::new()
            .with_min_delay(std::time::Duration::from_millis(100))
            .with_max_delay(max_delay)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            let connected = tokio::select! {
                () = stop.cancelled() => return None,
                connected = Store::connect(config.clone(), layout.clone()) => connected,
            };
            match connected {
                Ok(store) => return Some(store),
                Err(error) => {
                    on_failure(&error);
                    let delay = delays.next().unwrap_or(max_delay);
                    tokio::select! {
                        () = stop.cancelled() => return None,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// The same connections with a lower limit on the size of one response (default
    /// [`MAX_RESPONSE_BYTES`]): listings read smaller pages under it, and a single value
    /// beyond it is an [`Error::ValueTooLarge`] naming its key.
    pub fn with_max_response_bytes(&self, bytes: usize) -> Store {
        Store {
            inner: Arc::clone(&self.inner),
            max_response: bytes.max(1),
        }
    }

    /// The largest response this store decodes.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response
    }

    /// The key layout this store was opened with.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The configured endpoints (normalised URLs), in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.members.endpoints().map(str::to_owned).collect()
    }

    /// The entry at `key`, if there is one.
    pub async fn get(&self, key: &str) -> Result<Option<Entry>, Error> {
        let (_, entry) = self
            .inner
            .members
            .call(&format!("get `{key}`"), |client| async move {
                let response = client
                    .kv_client()
                    .max_decoding_message_size(self.max_response)
                    .get(key, None)
                    .await?;
                Ok(response.kvs().first().map(Entry::from))
            })
            .await
            .map_err(|error| too_large(error, key))?;
        Ok(entry)
    }

    /// The entry at `key` decoded from JSON, with the entry (for its revisions).
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<(T, Entry)>, Error> {
        match self.get(key).await? {
            Some(entry) => Ok(Some((entry.json()?, entry))),
            None => Ok(None),
        }
    }

    /// Every entry whose key starts with `prefix`, as of one revision. Large listings are
    /// read in pages, all at the revision of the first page, each holding as many keys as fit
    /// in about [`PAGE_BYTES`] judged by the page before: values of any size etcd accepts
    /// are listed, and a page that still comes back too large is read again in halves.
    pub async fn list(&self, prefix: &str) -> Result<Listing, Error> {
        let operation = format!("list `{prefix}`");
        let range_end = prefix_range_end(prefix.as_bytes());
        // etcd reads all keys for the key "\0" with range end "\0".
        let mut from: Vec<u8> = if prefix.is_empty() {
            vec![0]
        } else {
            prefix.as_bytes().to_vec()
        };
        let mut revision: Revision = 0;
        let mut limit = FIRST_PAGE;
        let mut entries = Vec::new();
        loop {
            let read = self
                .inner
                .members
                .call(&operation, |client| {
                    let from = from.clone();
                    let range_end = range_end.clone();
                    async move {
                        let mut options = GetOptions::new().with_range(range_end).with_limit(limit);
                        if revision != 0 {
                            options = options.with_revision(revision);
                        }
                        let response = client
                            .kv_client()
                            .max_decoding_message_size(self.max_response)
                            .get(from, Some(options))
                            .await?;
                        let page: Vec<Entry> = response.kvs().iter().map(Entry::from).collect();
                        let page_revision = response.header().map_or(0, |h| h.revision());
                        Ok((page, response.more(), page_revision))
                    }
                })
                .await;
            let (page, more, page_revision) = match read {
                Ok((_, page)) => page,
                Err(error) if is_too_large(&error) && limit > 1 => {
                    limit /= 2;
                    continue;
                }
                Err(error) if is_too_large(&error) => {
                    let key = self.first_key(&from, &range_end, revision).await?;
                    return Err(too_large(error, &key.unwrap_or_else(|| prefix.to_owned())));
                }
                Err(error) => return Err(error),
            };
            if revision == 0 {
                revision = page_revision;
            }
            limit = next_page_limit(&page, self.max_response);
            let last = page.last().map(|entry| entry.key.clone());
            entries.extend(page);
            match last {
                Some(last) if more => {
                    from = last.into_bytes();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(Listing { entries, revision })
    }

    /// The first key in `[from, range_end)` at `revision`, without its value.
    async fn first_key(
        &self,
        from: &[u8],
        range_end: &[u8],
        revision: Revision,
    ) -> Result<Option<String>, Error> {
        let (_, key) = self
            .inner
            .members
            .call("find the key of a value too large to read", |mut client| {
                let from = from.to_vec();
                let range_end = range_end.to_vec();
                async move {
                    let mut options = GetOptions::new()
                        .with_range(range_end)
                        .with_limit(1)
                        .with_keys_only();
                    if revision != 0 {
                        options = options.with_revision(revision);
                    }
                    let response = client.get(from, Some(options)).await?;
                    Ok(response.kvs().first().map(|kv| Entry::from(kv).key))
                }
            })
            .await?;
        Ok(key)
    }

    /// Writes `value` at `key`; returns the revision of the write.
    ///
    /// If an endpoint fails after it may have applied the write, the put is repeated on the
    /// next one: the value ends up written (last writer wins), possibly at two revisions.
    pub async fn put(&self, key: &str, value: impl Into<Vec<u8>>) -> Result<Revision, Error> {
        let value = value.into();
        let (_, revision) = self
            .inner
            .members
            .call(&format!("put `{key}`"), |mut client| {
                let value = value.clone();
                async move {
                    let response = client.put(key, value, None).await?;
                    Ok(response.header().map_or(0, |h| h.revision()))
                }
            })
            .await?;
        Ok(revision)
    }

    /// Writes `value` as JSON at `key`; returns the revision of the write.
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<Revision, Error> {
        let bytes = serde_json::to_vec(value).map_err(|error| Error::Encode {
            key: key.to_owned(),
            reason: error.to_string(),
        })?;
        self.put(key, bytes).await
    }

    /// Deletes `key`; returns whether it existed. (After a retry on another endpoint, a key
    /// the failed attempt already deleted reports `false`.)
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        let (_, deleted) = self
            .inner
            .members
            .call(&format!("delete `{key}`"), |mut client| async move {
                Ok(client.delete(key, None).await?.deleted() > 0)
            })
            .await?;
        Ok(deleted)
    }

    /// Runs `txn`: if every compare holds, every operation applies at one revision; if not,
    /// nothing is written and `succeeded` is false.
    ///
    /// A transaction retried on another endpoint after an attempt that was in fact applied
    /// fails its compares the second time and reports `succeeded: false` although its writes
    /// are in etcd; callers re-read before they conclude (revisions make that safe: it is
    /// never applied twice).
    pub async fn txn(&self, txn: Txn) -> Result<TxnOutcome, Error> {
        let (_, outcome) = self
            .inner
            .members
            .call(&txn.describe(), |mut client| {
                let request = txn.to_etcd();
                async move {
                    let response = client.txn(request).await?;
                    Ok(TxnOutcome {
                        succeeded: response.succeeded(),
                        revision: response.header().map_or(0, |h| h.revision()),
                    })
                }
            })
            .await?;
        Ok(outcome)
    }

    /// Discards the history before `revision` (physically, before returning). Watches that
    /// still need older revisions relist.
    pub async fn compact(&self, revision: Revision) -> Result<(), Error> {
        self.inner
            .members
            .call(
                &format!("compaction to revision {revision}"),
                |mut client| async move {
                    client
                        .compact(revision, Some(CompactionOptions::new().with_physical()))
                        .await?;
                    Ok(())
                },
            )
            .await?;
        Ok(())
    }

    /// A stream of every change under `prefix`: first the current entries and a
    /// [`Synced`](super::WatchEvent::Synced) mark, then each change, across broken streams,
    /// etcd restarts, failed members and compactions. See [`WatchStream`].
    pub fn watch(&self, prefix: &str) -> WatchStream {
        WatchStream::new(self.clone(), prefix.to_owned())
    }

    /// A raw etcd-client for what the store does not wrap (leases, elections): the client
    /// of the member that answered the store's last call. It does not fail over: when a call
    /// on it fails, get a fresh one with [`Store::live_client`].
    pub fn client(&self) -> Client {
        self.inner
            .members
            .last_answered()
            .expect("connect succeeded on some member, so one has answered")
    }

    /// The client of a member that answers a status request now (tried in the store's
    /// failover order); use it again after a call on a raw client failed.
    pub async fn live_client(&self) -> Result<Client, Error> {
        let (_, client) = self
            .inner
            .members
            .call("a status check", |mut client| async move {
                client.status().await?;
                Ok(client)
            })
            .await?;
        Ok(client)
    }

    pub(crate) fn members(&self) -> &Members {
        &self.inner.members
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("layout", &self.inner.layout)
            .field("endpoints", &self.endpoints())
            .finish_non_exhaustive()
    }
}

/// How many keys the page after `page` may hold: as many as fit in [`PAGE_BYTES`] (and in
/// `max_response`) if they are as large as the largest of `page`.
fn next_page_limit(page: &[Entry], max_response: usize) -> i64 {
    let largest = page
        .iter()
        .map(|entry| entry.key.len() + entry.value.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let fit = PAGE_BYTES.min(max_response) / largest;
    i64::try_from(fit).unwrap_or(LIST_PAGE).clamp(1, LIST_PAGE)
}

/// Whether etcd's answer was larger than the client may decode.
fn is_too_large(error: &Error) -> bool {
    matches!(error, Error::Refused { reason, .. } if reason.contains("message length too large"))
}

/// `error`, as a [`Error::ValueTooLarge`] of `key` when the answer was too large to decode.
fn too_large(error: Error, key: &str) -> Error {
    match error {
        Error::Refused {
            endpoint, reason, ..
        } if reason.contains("message length too large") => Error::ValueTooLarge {
            key: key.to_owned(),
            endpoint,
            reason,
        },
        other => other,
    }
}

/// The end of the key range of every key that starts with `prefix` (etcd's convention: the
/// prefix with its last byte below 0xff incremented; `"\0"`, meaning "to the end", if there
/// is none).
pub(crate) fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_hold_as_many_keys_as_fit_judged_by_the_largest_value() {
        let entry = |size: usize| Entry {
            key: "/desired/a/b".into(),
            value: vec![b'x'; size],
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            lease: 0,
        };
        assert_eq!(next_page_limit(&[], MAX_RESPONSE_BYTES), LIST_PAGE);
        assert_eq!(
            next_page_limit(&[entry(100)], MAX_RESPONSE_BYTES),
            LIST_PAGE
        );
        let ten_kb = next_page_limit(&[entry(100), entry(10_000)], MAX_RESPONSE_BYTES);
        assert!((100..LIST_PAGE).contains(&ten_kb), "{ten_kb}");
        assert_eq!(next_page_limit(&[entry(1_500_000)], MAX_RESPONSE_BYTES), 1);
        assert_eq!(
            next_page_limit(&[entry(100)], 1_000),
            8,
            "within a lower limit"
        );
    }

    #[test]
    fn prefix_range_end_covers_exactly_the_prefix() {
        assert_eq!(prefix_range_end(b"/desired/"), b"/desired0".to_vec());
        assert_eq!(prefix_range_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_range_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_range_end(b""), vec![0]);
    }
}

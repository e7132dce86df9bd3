//! The etcd members a store talks to, and failover between them.
//!
//! etcd-client neither retries nor fails over: a call routed to a dead member fails at once
//! or after its timeout. So the store keeps one client per configured endpoint, created on
//! first use, and runs every call through [`Members::call`]: it tries the member that
//! answered last, then each other one, for a few passes with a short backoff between
//! passes. A failure that another member would repeat (permission denied, bad credentials,
//! a compacted revision) ends the call at once. A client whose call failed for a reason of
//! its own (connection refused, timeout, broken stream) is dropped and made anew next time.
//!
//! Retrying is safe for reads and for transactions guarded by revisions. A plain put that
//! timed out may have been applied before it is retried elsewhere; that is last-writer-wins,
//! which is what a plain put means anyway.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use etcd_client::{Client, ConnectOptions};
use tonic::Code;

use super::Error;
use super::error::{Attempt, Attempts, describe};

/// How many times every member is tried before a call gives up.
const PASSES: usize = 3;

/// Why one try of one member failed.
pub(crate) enum CallError {
    /// etcd-client failed: classified by [`Members::call`].
    Etcd(etcd_client::Error),
    /// The member answered and refused, with this reason: no other member would do better.
    Refused(String),
}

impl From<etcd_client::Error> for CallError {
    fn from(error: etcd_client::Error) -> CallError {
        CallError::Etcd(error)
    }
}

/// What the failover does with a failure.
enum Recourse {
    /// Try the next member; drop this member's client.
    NextMember(String),
    /// Stop: the error stands.
    Fail(Error),
}

struct Member {
    endpoint: String,
    client: Mutex<Option<Client>>,
}

/// One lazily-connected client per endpoint, and the index of the one that answered last.
pub(crate) struct Members {
    members: Vec<Member>,
    preferred: AtomicUsize,
    /// The client of the member that answered last.
    last_answered: Mutex<Option<Client>>,
    options: ConnectOptions,
    username: Option<String>,
    request_timeout: Duration,
}

impl Members {
    pub fn new(
        endpoints: Vec<String>,
        options: ConnectOptions,
        username: Option<String>,
        request_timeout: Duration,
    ) -> Members {
        Members {
            members: endpoints
                .into_iter()
                .map(|endpoint| Member {
                    endpoint,
                    client: Mutex::new(None),
                })
                .collect(),
            preferred: AtomicUsize::new(0),
            last_answered: Mutex::new(None),
            options,
            username,
            request_timeout,
        }
    }

    /// The configured endpoints, in order.
    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|member| member.endpoint.as_str())
    }

    /// Member `i`'s endpoint.
    pub fn endpoint(&self, i: usize) -> &str {
        &self.members[i].endpoint
    }

    /// The client of the member that answered the last call, if any call succeeded yet.
    pub fn last_answered(&self) -> Option<Client> {
        lock(&self.last_answered).clone()
    }

    /// The member the next call starts with.
    pub fn preferred(&self) -> usize {
        self.preferred.load(Ordering::Relaxed)
    }

    /// Marks member `i` as failed by something outside [`Members::call`] (a broken watch):
    /// its client is dropped and the next call starts with the member after it.
    pub fn demote(&self, i: usize) {
        self.forget(i);
        let next = (i + 1) % self.members.len();
        let _ = self
            .preferred
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Runs `call` on one member after another until one succeeds; returns which one did.
    /// `operation` names the call and its key for error messages (`get /desired/a/b`).
    pub async fn call<T, F, Fut>(&self, operation: &str, mut call: F) -> Result<(usize, T), Error>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let count = self.members.len();
        let mut delays = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(1))
            .with_jitter()
            .without_max_times()
            .build();
        let mut attempts = Vec::with_capacity(count);
        for pass in 0..PASSES {
            attempts.clear();
            let start = self.preferred();
            for offset in 0..count {
                let i = (start + offset) % count;
                match self.try_member(i, &mut call).await {
                    Ok(value) => {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok((i, value));
                    }
                    Err(Recourse::Fail(error)) => return Err(error_for(error, operation)),
                    Err(Recourse::NextMember(reason)) => {
                        tracing::debug!(
                            endpoint = %self.members[i].endpoint,
                            %operation,
                            %reason,
                            "etcd call failed; trying the next endpoint"
                        );
                        self.forget(i);
                        attempts.push(Attempt {
                            endpoint: self.members[i].endpoint.clone(),
                            reason,
                        });
                    }
                }
            }
            if pass + 1 < PASSES {
                let delay = delays.next().unwrap_or(Duration::from_secs(1));
                tokio::time::sleep(delay).await;
            }
        }
        Err(Error::Unreachable {
            operation: operation.to_owned(),
            attempts: Attempts(attempts),
        })
    }

    async fn try_member<T, F, Fut>(&self, i: usize, call: &mut F) -> Result<T, Recourse>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let client = self.client(i).await?;
        let endpoint = &self.members[i].endpoint;
        match tokio::time::timeout(self.request_timeout, call(client.clone())).await {
            Ok(Ok(value)) => {
                *lock(&self.last_answered) = Some(client);
                Ok(value)
            }
            Ok(Err(CallError::Refused(reason))) => Err(Recourse::Fail(Error::Refused {
                endpoint: endpoint.clone(),
                operation: String::new(),
                reason,
            })),
            Ok(Err(CallError::Etcd(error))) => Err(self.judge(i, &error, false)),
            Err(_) => Err(Recourse::NextMember(format!(
                "no answer within {:?}",
                self.request_timeout
            ))),
        }
    }

    /// Member `i`'s client, connecting (and, with a user, authenticating) if needed.
    async fn client(&self, i: usize) -> Result<Client, Recourse> {
        let member = &self.members[i];
        if let Some(client) = lock(&member.client).clone() {
            return Ok(client);
        }
        // With credentials `connect` authenticates, which is a request like any other.
        let connect = Client::connect([member.endpoint.as_str()], Some(self.options.clone()));
        let client = match tokio::time::timeout(self.request_timeout, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => return Err(self.judge(i, &error, true)),
            Err(_) => {
                return Err(Recourse::NextMember(format!(
                    "no answer to authentication within {:?}",
                    self.request_timeout
                )));
            }
        };
        // Two concurrent calls may both connect; either client will do.
        *lock(&member.client) = Some(client.clone());
        Ok(client)
    }

    fn forget(&self, i: usize) {
        lock(&self.members[i].client).take();
    }

    /// Whether a failure is the member's (try another) or the request's (stop).
    fn judge(&self, i: usize, error: &etcd_client::Error, connecting: bool) -> Recourse {
        let endpoint = self.members[i].endpoint.clone();
        let reason = describe(error);
        let refused = |reason: String| Error::Refused {
            endpoint: endpoint.clone(),
            operation: String::new(),
            reason,
        };
        match error {
            etcd_client::Error::GRpcStatus(status) => match status.code() {
                // Member-local trouble: no leader, leader changed, request timed out (a
                // proposal lost with a dying leader), too many requests, connection reset.
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Unknown
                | Code::Internal
                | Code::Cancelled
                | Code::Aborted
                | Code::ResourceExhausted
                | Code::DataLoss => Recourse::NextMember(reason),
                // Tokens live in one etcd's memory: after a restart the old one is invalid
                // and a fresh client authenticates again.
                Code::Unauthenticated if status.message().contains("invalid auth token") => {
                    Recourse::NextMember(reason)
                }
                _ if status.message().contains("user name is empty") => {
                    Recourse::Fail(Error::AuthRequired { endpoint, reason })
                }
                // Authentication is the only request `connect` makes.
                _ if connecting => Recourse::Fail(Error::Auth {
                    endpoint,
                    user: self.username.clone().unwrap_or_default(),
                    reason,
                }),
                _ => Recourse::Fail(refused(reason)),
            },
            etcd_client::Error::TransportError(_)
            | etcd_client::Error::IoError(_)
            | etcd_client::Error::WatchError(_)
            | etcd_client::Error::Internal(_) => Recourse::NextMember(reason),
            etcd_client::Error::InvalidUri(_) | etcd_client::Error::InvalidArgs(_) => {
                Recourse::Fail(Error::InvalidEndpoint { endpoint, reason })
            }
            _ => Recourse::Fail(refused(reason)),
        }
    }
}

/// Fills in the operation of a refusal, which only the caller knows.
fn error_for(error: Error, operation: &str) -> Error {
    match error {
        Error::Refused {
            endpoint, reason, ..
        } => Error::Refused {
            endpoint,
            operation: operation.to_owned(),
            reason,
        },
        other => other,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded value is an Option<Client>; a panic elsewhere cannot leave it half-written.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

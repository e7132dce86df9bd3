//! Sends one request to whichever configured Marathon answers, and learns who leads.
//!
//! What it promises:
//! - URLs are tried in order starting from the one that answered last; a request that could
//!   not even connect moves on to the next URL, whatever its method.
//! - A read (`GET`) also moves on after a timeout, a broken connection, or a 502/503 answer:
//!   repeating a read is harmless.
//! - A write moves on only after a 503 (Marathon answers 503 when it has no leader, before it
//!   acts on the request). A write that timed out, broke off or got a 502 (a non-leader failed
//!   to proxy it to the leader, which may or may not have received it) is NOT repeated: the
//!   error goes back to the caller, who must re-read Marathon's state before deciding again.
//! - A `3xx` answer to a `GET` is followed by hand (at most [`MAX_REDIRECTS`] hops), sending
//!   the credentials again: a non-leader answers `/v2/events` with a 302 to the leader.
//! - The `X-Marathon-Leader` header and redirect targets are compared with the configured
//!   URLs; when they name one of them, later requests go there first. A leader that is not
//!   among the configured URLs is only reached through redirects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};

use super::error::{self, Error, Target};
use super::observer::{ObservedRequest, RequestObserver, Route};

/// The header in which Marathon names its leader.
const LEADER_HEADER: &str = "x-marathon-leader";

/// The most redirects followed for one request.
pub(crate) const MAX_REDIRECTS: usize = 3;

/// One request, independent of which Marathon URL it goes to.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    pub route: Route,
    /// Path segments after the base URL's path, e.g. `["v2", "apps", "ingestor", "dev"]`;
    /// each is percent-encoded as one segment.
    pub segments: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    /// A JSON body.
    pub body: Option<Vec<u8>>,
    pub accept: &'static str,
    /// Whether the answer is a long-lived stream: then the request timeout bounds only the
    /// wait for the answer's headers.
    pub streaming: bool,
}

impl Call {
    /// A call without body or query, accepting JSON.
    pub fn new(method: Method, route: Route, segments: Vec<String>) -> Self {
        Self {
            method,
            route,
            segments,
            query: Vec::new(),
            body: None,
            accept: "application/json",
            streaming: false,
        }
    }

    /// Whether repeating the call cannot change anything on Marathon.
    fn is_read(&self) -> bool {
        self.method == Method::GET
    }
}

/// An answer with a status that is not a failover reason.
pub(crate) struct Answer {
    /// The URL that answered (after redirects).
    pub url: Url,
    pub response: Response,
}

/// Why one attempt failed.
enum AttemptFailure {
    /// Nothing reached Marathon: any call may go to the next URL.
    NotSent(Error),
    /// The request may have reached Marathon.
    MaybeSent(Error),
}

/// The configured Marathon URLs and how to reach them.
pub(crate) struct MarathonEndpoints {
    pub http: reqwest::Client,
    pub urls: Vec<Url>,
    /// Index of the URL to try first.
    pub preferred: AtomicUsize,
    pub credentials: Option<(String, Option<String>)>,
    pub request_timeout: Duration,
    pub observer: Option<Arc<dyn RequestObserver>>,
    /// What the client was built from, to build another with connections of its own.
    pub config: super::client::MarathonConfig,
}

impl MarathonEndpoints {
    /// Sends `call`, failing over as the module documentation says.
    pub async fn send(&self, call: &Call) -> Result<Answer, Error> {
        let count = self.urls.len();
        let start = self.preferred.load(Ordering::Relaxed) % count;
        let mut last_error = None;
        for offset in 0..count {
            let index = (start + offset) % count;
            let url = request_url(&self.urls[index], call);
            match self.attempt(call, url).await {
                Ok(answer) => {
                    let status = answer.response.status();
                    let unavailable = status == StatusCode::SERVICE_UNAVAILABLE
                        || (status == StatusCode::BAD_GATEWAY && call.is_read());
                    if unavailable {
                        let body = answer.response.bytes().await.unwrap_or_default();
                        let error = error::from_status(
                            &Target::Other("Marathon"),
                            &answer.url,
                            status,
                            &body,
                        );
                        tracing::debug!(url = %answer.url, %status, "Marathon unavailable, trying the next URL");
                        last_error = Some(error);
                        continue;
                    }
                    // Prefer who answered: the URL asked, or the configured URL a redirect
                    // led to, or the leader the answer names.
                    self.preferred.store(index, Ordering::Relaxed);
                    self.prefer_matching(&answer.url);
                    self.learn_leader(answer.response.headers());
                    return Ok(answer);
                }
                Err(AttemptFailure::NotSent(error)) => {
                    tracing::debug!(%error, "Marathon not reached, trying the next URL");
                    last_error = Some(error);
                }
                Err(AttemptFailure::MaybeSent(error)) if call.is_read() => {
                    tracing::debug!(%error, "Marathon read failed, trying the next URL");
                    last_error = Some(error);
                }
                Err(AttemptFailure::MaybeSent(error)) => return Err(error),
            }
        }
        Err(last_error.expect("a client always has at least one URL"))
    }

    /// One request to one URL, following redirects of a `GET`.
    async fn attempt(&self, call: &Call, mut url: Url) -> Result<Answer, AttemptFailure> {
        for _ in 0..=MAX_REDIRECTS {
            let response = self.exchange(call, &url).await?;
            let redirect = response.status().is_redirection() && call.is_read();
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| url.join(value).ok());
            match location {
                Some(next) if redirect => {
                    tracing::debug!(from = %url, to = %next, "following Marathon's redirect");
                    url = next;
                }
                _ => return Ok(Answer { url, response }),
            }
        }
        Err(AttemptFailure::MaybeSent(Error::UnexpectedStatus {
            url: url.to_string(),
            status: StatusCode::TEMPORARY_REDIRECT,
            body: format!("more than {MAX_REDIRECTS} redirects"),
        }))
    }

    /// Sends the request once and reports it to the observer.
    async fn exchange(&self, call: &Call, url: &Url) -> Result<Response, AttemptFailure> {
        let mut request = self
            .http
            .request(call.method.clone(), url.clone())
            .header(ACCEPT, call.accept);
        if let Some((username, password)) = &self.credentials {
            request = request.basic_auth(username, password.as_ref());
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let started = Instant::now();
        let result = if call.streaming {
            match tokio::time::timeout(self.request_timeout, request.send()).await {
                Ok(result) => result.map_err(|e| classify(url, e)),
                Err(_elapsed) => Err(AttemptFailure::MaybeSent(Error::Timeout {
                    url: url.to_string(),
                })),
            }
        } else {
            request
                .timeout(self.request_timeout)
                .send()
                .await
                .map_err(|e| classify(url, e))
        };
        if let Some(observer) = &self.observer {
            observer.observe(&ObservedRequest {
                method: &call.method,
                route: call.route,
                url,
                status: result.as_ref().ok().map(Response::status),
                duration: started.elapsed(),
            });
        }
        result
    }

    /// Prefers the configured URL the `X-Marathon-Leader` header names, if any.
    fn learn_leader(&self, headers: &HeaderMap) {
        let Some(leader) = headers.get(LEADER_HEADER).and_then(|v| v.to_str().ok()) else {
            return;
        };
        // Marathon sends `http://host:port`; some proxies strip it to `host:port`.
        let parsed = Url::parse(leader)
            .ok()
            .filter(|u| u.has_host())
            .or_else(|| Url::parse(&format!("http://{leader}")).ok());
        if let Some(leader) = parsed {
            self.prefer_matching(&leader);
        }
    }

    /// Prefers the configured URL with the same host and port as `url`, if any.
    fn prefer_matching(&self, url: &Url) {
        let same = |candidate: &Url| {
            candidate.host_str() == url.host_str()
                && candidate.port_or_known_default() == url.port_or_known_default()
        };
        if let Some(index) = self.urls.iter().position(same) {
            self.preferred.store(index, Ordering::Relaxed);
        }
    }
}

/// Sorts a transport error into "never reached Marathon" and "may have reached it".
fn classify(url: &Url, error: reqwest::Error) -> AttemptFailure {
    let url = url.to_string();
    if error.is_connect() {
        AttemptFailure::NotSent(Error::Connect { url, source: error })
    } else if error.is_timeout() {
        AttemptFailure::MaybeSent(Error::Timeout { url })
    } else {
        AttemptFailure::MaybeSent(Error::Transport { url, source: error })
    }
}

/// The full URL of `call` on the Marathon at `base` (which may have a path prefix).
fn request_url(base: &Url, call: &Call) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        // `pop_if_empty` drops the empty segment of a trailing slash, so that
        // `http://m:8080/` and `http://m:8080` both give `/v2/...`, never `//v2/...`.
        segments.pop_if_empty().extend(&call.segments);
    }
    if !call.query.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(call.query.iter().map(|(k, v)| (*k, v.as_str())));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Call {
        let mut call = Call::new(
            Method::GET,
            Route::AppTask,
            vec![
                "v2".into(),
                "apps".into(),
                "a".into(),
                "tasks".into(),
                "a.instance-1/x".into(),
            ],
        );
        call.query.push(("label", "tier!=front end".into()));
        call
    }

    #[test]
    fn request_urls_never_double_slashes_whatever_the_base() {
        for (base, expected) in [
            ("http://m:8080", "http://m:8080/v2/apps/a/tasks/"),
            ("http://m:8080/", "http://m:8080/v2/apps/a/tasks/"),
            ("http://m/marathon/", "http://m/marathon/v2/apps/a/tasks/"),
            ("http://m/marathon", "http://m/marathon/v2/apps/a/tasks/"),
        ] {
            let url = request_url(&Url::parse(base).unwrap(), &call());
            assert!(url.as_str().starts_with(expected), "{base} gave {url}");
        }
    }

    #[test]
    fn task_ids_are_one_encoded_segment_and_queries_are_encoded() {
        let url = request_url(&Url::parse("http://m:8080").unwrap(), &call());
        assert_eq!(
            url.as_str(),
            "http://m:8080/v2/apps/a/tasks/a.instance-1%2Fx?label=tier%21%3Dfront+end"
        );
    }
}

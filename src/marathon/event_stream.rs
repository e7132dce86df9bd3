//! The body of `GET /v2/events` as a stream of typed [`Event`]s ([`EventStream`]), or as its
//! parts ([`EventBody`]) for a caller that decodes them elsewhere ([`EventDecoder`]).
//!
//! What it promises: the SSE framing is decoded as [`sse`](super::sse) describes (LF, CR and
//! CRLF line ends, as Marathon's Jetty sends, also when a line end is split across reads, at
//! a cost that grows with the bytes read, however many events a read holds); every event is
//! yielded, typed or as [`Event::Unknown`]. A transport or framing error is yielded once and
//! ends the stream.
//!
//! What it does not do: reconnect. Marathon's events carry no ids and there is no replay, so
//! after the stream ends the caller reconnects and relists Marathon's state, since events in
//! between are lost.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt, stream};
use reqwest::Url;

use super::error::Error;
use super::events::Event;
use super::sse::SseDecoder;

/// Marathon's event stream; see the module documentation.
pub struct EventStream {
    url: Url,
    inner: Pin<Box<dyn Stream<Item = Result<Event, Error>> + Send>>,
}

impl EventStream {
    /// Decodes the SSE body `bytes` that came from `url`.
    pub(crate) fn new<S, B>(url: Url, bytes: S) -> Self
    where
        S: Stream<Item = Result<B, reqwest::Error>> + Send + 'static,
        B: AsRef<[u8]> + Send + 'static,
    {
        let source = url.clone();
        let reading = Some((Box::pin(bytes), EventDecoder::new(url.clone())));
        let inner = stream::unfold(reading, move |reading| {
            let source = source.clone();
            async move {
                let (mut bytes, mut decoder) = reading?;
                loop {
                    match decoder.next_event() {
                        Some(Ok(event)) => return Some((Ok(event), Some((bytes, decoder)))),
                        Some(Err(error)) => return Some((Err(error), None)),
                        None => {}
                    }
                    match bytes.next().await? {
                        Ok(chunk) => decoder.push(chunk.as_ref()),
                        Err(error) => return Some((Err(transport_error(&source, error)), None)),
                    }
                }
            }
        });
        Self {
            url,
            inner: Box::pin(inner),
        }
    }

    /// The URL that serves the stream (the leader's, after a redirect).
    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// The body of `GET /v2/events` read a part at a time ([`MarathonClient::event_body`]), for
/// a caller that reads on one thread and decodes on another ([`EventDecoder`]): reading
/// then costs no more than copying bytes, however slowly the events are decoded.
///
/// [`MarathonClient::event_body`]: super::MarathonClient::event_body
pub struct EventBody {
    url: Url,
    response: reqwest::Response,
}

impl EventBody {
    pub(crate) fn new(url: Url, response: reqwest::Response) -> Self {
        Self { url, response }
    }

    /// The URL that serves the stream (the leader's, after a redirect).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The next part of the body as it arrived; `None` when the stream ended.
    pub async fn next_part(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let part = super::client::next_part(&mut self.response, &self.url).await?;
        Ok(part.map(|part| part.as_ref().to_vec()))
    }
}

impl fmt::Debug for EventBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBody")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// Decodes the bytes of an event stream, pushed as they arrive in parts of any size, into
/// [`Event`]s, as [`EventStream`] does.
#[derive(Debug)]
pub struct EventDecoder {
    url: Url,
    sse: SseDecoder,
    broken: bool,
}

impl EventDecoder {
    /// A decoder of the stream `url` serves, at its start.
    pub fn new(url: Url) -> Self {
        Self {
            url,
            sse: SseDecoder::default(),
            broken: false,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.broken {
            self.sse.push(bytes);
        }
    }

    /// The next complete event of what was pushed; `None` until more is pushed. A framing
    /// error is returned once, and nothing after it: the stream cannot be read further.
    pub fn next_event(&mut self) -> Option<Result<Event, Error>> {
        if self.broken {
            return None;
        }
        match self.sse.next_event() {
            Ok(Some(sse)) => Some(Ok(Event::from_sse(&sse.event, &sse.data))),
            Ok(None) => None,
            Err(error) => {
                self.broken = true;
                Some(Err(Error::EventStream {
                    url: self.url.to_string(),
                    message: error.to_string(),
                }))
            }
        }
    }
}

/// A failed read of a body from `url`: a timeout, or the transport's error.
pub(super) fn transport_error(url: &Url, source: reqwest::Error) -> Error {
    let url = url.to_string();
    if source.is_timeout() {
        Error::Timeout { url }
    } else {
        Error::Transport { url, source }
    }
}

impl Stream for EventStream {
    type Item = Result<Event, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;
    use crate::marathon::events::EventKind;

    fn decode(chunks: &[&'static str]) -> Vec<Result<Event, Error>> {
        let bytes = stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, reqwest::Error>(c.as_bytes()))
                .collect::<Vec<_>>(),
        );
        let events = EventStream::new(Url::parse("http://m:8080/v2/events").unwrap(), bytes);
        futures::executor::block_on(events.collect())
    }

    #[test]
    fn crlf_split_between_reads_does_not_cut_an_event_short() {
        let events = decode(&[
            "event: app_terminated_event\r\ndata: {\"appId\":\"/a\",",
            "\"eventType\":\"app_terminated_event\"}\r",
            "\n\r",
            "\nevent: app_terminated_event\r\ndata: {\"appId\":\"/b\"}\r\n\r\n",
        ]);
        let apps: Vec<String> = events
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                assert_eq!(e.kind(), Some(EventKind::AppTerminated));
                e.app_id().unwrap().to_string()
            })
            .collect();
        assert_eq!(apps, ["/a", "/b"]);
    }

    #[test]
    fn comments_and_blank_keepalives_yield_no_events() {
        let events = decode(&[
            ":keepalive\r\n\r\n\r\n",
            "event: app_terminated_event\r\ndata: {\"appId\":\"/a\"}\r\n\r\n",
        ]);
        assert_eq!(events.len(), 1);
    }
}

//! The body of `GET /v2/events` as a stream of typed [`Event`]s.
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
        let reading = Some((Box::pin(bytes), SseDecoder::default()));
        let inner = stream::unfold(reading, move |reading| {
            let source = source.clone();
            async move {
                let (mut bytes, mut decoder) = reading?;
                loop {
                    match decoder.next_event() {
                        Ok(Some(sse)) => {
                            let event = Event::from_sse(&sse.event, &sse.data);
                            return Some((Ok(event), Some((bytes, decoder))));
                        }
                        Ok(None) => {}
                        Err(error) => {
                            let error = Error::EventStream {
                                url: source.to_string(),
                                message: error.to_string(),
                            };
                            return Some((Err(error), None));
                        }
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

fn transport_error(url: &Url, source: reqwest::Error) -> Error {
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

//! The `text/event-stream` framing of `GET /v2/events`, decoded from the bytes as they come.
//!
//! What it promises:
//! - lines end in LF, CR or CRLF, as Marathon's Jetty may send them, also when a CRLF or a
//!   character is split between two reads;
//! - an event is dispatched at the empty line that ends it, with its `event:` name
//!   (`message` when it has none) and its `data:` lines joined by LF; an event without data
//!   is not dispatched; comments (`:` lines), `id:` and `retry:` fields and a byte order mark
//!   at the start are skipped; an event cut short by the end of the stream is dropped;
//! - each byte is looked at once: a read holding many events costs what its bytes cost, and
//!   what was decoded is dropped from the buffer only once it is half of it.
//!
//! A line that is not UTF-8 is an error: the stream cannot be trusted after it.

use std::fmt;

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, `message` when the event has none.
    pub(crate) event: String,
    /// The `data:` lines, joined by LF.
    pub(crate) data: String,
}

/// A line of the stream that is not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotUtf8 {
    /// The line's position in the stream, from 1.
    line: u64,
}

impl fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} of the event stream is not UTF-8", self.line)
    }
}

/// Decodes events from the stream's bytes; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    buffer: Vec<u8>,
    /// Where the undecoded bytes of `buffer` start.
    start: usize,
    /// The last line ended in a CR that was the last byte read: an LF next belongs to it.
    after_cr: bool,
    /// Past the start of the stream (and its byte order mark, if any).
    started: bool,
    lines: u64,
    event: String,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// Adds bytes read from the stream.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete event of what was pushed, if there is one.
    pub(crate) fn next_event(&mut self) -> Result<Option<SseEvent>, NotUtf8> {
        loop {
            if !self.started {
                const BOM: &[u8] = "\u{feff}".as_bytes();
                let rest = &self.buffer[self.start..];
                if rest.len() < BOM.len() && BOM.starts_with(rest) {
                    return Ok(None);
                }
                if rest.starts_with(BOM) {
                    self.start += BOM.len();
                }
                self.started = true;
            }
            if self.after_cr {
                match self.buffer.get(self.start) {
                    None => return Ok(None),
                    Some(b'\n') => self.start += 1,
                    Some(_) => {}
                }
                self.after_cr = false;
            }
            let rest = &self.buffer[self.start..];
            let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                return Ok(None);
            };
            let line_start = self.start;
            let line_end = line_start + end;
            self.start = line_end + 1;
            if self.buffer[line_end] == b'\r' {
                match self.buffer.get(self.start) {
                    Some(b'\n') => self.start += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            self.lines += 1;
            let line = std::str::from_utf8(&self.buffer[line_start..line_end])
                .map_err(|_| NotUtf8 { line: self.lines })?;
            if line.is_empty() {
                if let Some(event) = self.dispatch() {
                    return Ok(Some(event));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "event" => {
                    self.event.clear();
                    self.event.push_str(value);
                }
                "data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                // Marathon sends no ids, and reconnecting is the caller's.
                _ => {}
            }
        }
    }

    /// The event the empty line just read ends, if it has data; starts the next one.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        Some(SseEvent {
            event: if event.is_empty() {
                "message".to_owned()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `chunks`, read one after the other.
    fn decode(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, NotUtf8> {
        let mut decoder = SseDecoder::default();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(event) = decoder.next_event()? {
                events.push(event);
            }
        }
        Ok(events)
    }

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: data.into(),
        }
    }

    #[test]
    fn every_line_end_ends_a_line_also_split_between_reads() {
        let text = "event: a\r\ndata: 1\r\n\r\nevent: b\ndata: 2\n\nevent: c\rdata: 3\r\r";
        let whole = decode(&[text.as_bytes()]).unwrap();
        assert_eq!(whole, [event("a", "1"), event("b", "2"), event("c", "3")]);
        // Cut at every byte: the same events.
        for cut in 0..=text.len() {
            let (first, second) = text.as_bytes().split_at(cut);
            assert_eq!(decode(&[first, second]).unwrap(), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
        assert_eq!(decode(&bytes).unwrap(), whole, "one byte at a time");
    }

    #[test]
    fn a_character_split_between_reads_is_whole() {
        let text = "data: caf\u{e9} \u{1f600}\n\n".as_bytes();
        for cut in 0..=text.len() {
            let (first, second) = text.split_at(cut);
            assert_eq!(
                decode(&[first, second]).unwrap(),
                [event("message", "caf\u{e9} \u{1f600}")],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn data_lines_join_and_what_is_not_data_is_skipped() {
        let events = decode(&[
            b"\xef\xbb\xbf: a comment\nid: 7\nretry: 10\nevent: x\ndata\ndata:one\ndata: two\n\n",
            b"event: no data\n\n\ndata: {}\n\n",
        ])
        .unwrap();
        assert_eq!(events, [event("x", "\none\ntwo"), event("message", "{}")]);
    }

    #[test]
    fn an_event_cut_short_by_the_end_is_not_dispatched() {
        assert_eq!(decode(&[b"event: x\ndata: 1\n"]).unwrap(), []);
    }

    #[test]
    fn a_line_that_is_not_utf8_is_an_error_naming_it() {
        let error = decode(&[b"data: 1\n\ndata: \xff\n\n"]).unwrap_err();
        assert_eq!(error, NotUtf8 { line: 3 });
        assert_eq!(error.to_string(), "line 3 of the event stream is not UTF-8");
    }

    #[test]
    fn many_events_in_one_read_keep_their_order() {
        let text: String = (0..1000)
            .map(|i| format!("event: e\r\ndata: {i}\r\n\r\n"))
            .collect();
        let events = decode(&[text.as_bytes()]).unwrap();
        let data: Vec<String> = events.into_iter().map(|e| e.data).collect();
        let expected: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        assert_eq!(data, expected);
    }
}

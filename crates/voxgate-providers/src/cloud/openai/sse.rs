//! The `text/event-stream` framing of streamed replies, sans-IO: bytes in,
//! split anywhere, and the data of each complete event out.
//!
//! Lines end with LF, CRLF or a lone CR; a blank line ends an event; the
//! `data:` lines of one event are joined with LF; comments (lines starting
//! with `:`) and the other fields (`event`, `id`, `retry`) are skipped, as
//! nothing here uses them.

/// The longest event (or line) accepted: far above any real chunk, it keeps
/// a broken server from growing the buffers without end.
const MAX_EVENT_BYTES: usize = 4 << 20;

/// Why a stream is not a valid event stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SseError {
    /// A line is not UTF-8, as the format requires.
    #[error("a line of the event stream is not valid UTF-8")]
    InvalidUtf8,
    /// An event grew past [`MAX_EVENT_BYTES`].
    #[error("an event of the stream is longer than {MAX_EVENT_BYTES} bytes")]
    TooLong,
}

/// Reassembles events from the pieces of a body.
#[derive(Debug, Default)]
pub(super) struct SseParser {
    /// The line being read, without its terminator. Bytes, not text, since
    /// a piece may end inside a UTF-8 sequence.
    line: Vec<u8>,
    /// The last piece ended with CR: a LF starting the next one belongs to
    /// the same line ending.
    after_cr: bool,
    /// The `data:` values of the event being read, joined by LF.
    data: String,
    /// Whether the event has a `data:` line (an empty one counts).
    has_data: bool,
}

impl SseParser {
    /// Reads `bytes`, appending the data of each event they complete to
    /// `events`.
    ///
    /// # Errors
    /// A line that is not UTF-8, or an event past the size limit; the
    /// stream is unusable after either.
    pub(super) fn push(&mut self, bytes: &[u8], events: &mut Vec<String>) -> Result<(), SseError> {
        let mut rest = bytes;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.extend_line(&rest[..end])?;
            self.end_line(events)?;
            let was_cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if was_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.extend_line(rest)
    }

    /// The end of the body: the data of an event whose closing blank line
    /// never came, if it has any. A last line without its line ending is
    /// dropped, as the format says, since it may have been cut short.
    pub(super) fn finish(self) -> Option<String> {
        self.has_data.then_some(self.data)
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + self.data.len() + bytes.len() > MAX_EVENT_BYTES {
            return Err(SseError::TooLong);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, events: &mut Vec<String>) -> Result<(), SseError> {
        let line = std::str::from_utf8(&self.line).map_err(|_| SseError::InvalidUtf8)?;
        if line.is_empty() {
            if self.has_data {
                self.has_data = false;
                events.push(std::mem::take(&mut self.data));
            }
        } else if !line.starts_with(':') {
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            if field == "data" {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
        }
        self.line.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of `pieces` fed in order, and what `finish` returned.
    fn parse(pieces: &[&[u8]]) -> (Vec<String>, Option<String>) {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for piece in pieces {
            parser.push(piece, &mut events).expect("a valid stream");
        }
        (events, parser.finish())
    }

    /// A stream with every line ending, a comment, other fields, a
    /// multi-line event, an empty data line, and multi-byte characters.
    const STREAM: &[u8] = b": keep-alive\n\n\
        data: {\"a\":\"h\xc3\xa9\"}\n\n\
        event: message\r\nid: 7\r\ndata:{\"b\":1}\r\n\r\n\
        data: one\rdata: two\r\r\
        retry: 100\n\ndata\n\n\
        data: \xe2\x82\xac\n\n\
        data: [DONE]\n\n";

    fn expected() -> Vec<String> {
        ["{\"a\":\"hé\"}", "{\"b\":1}", "one\ntwo", "", "€", "[DONE]"]
            .map(str::to_owned)
            .to_vec()
    }

    #[test]
    fn reads_a_whole_stream() {
        assert_eq!(parse(&[STREAM]), (expected(), None));
    }

    #[test]
    fn a_split_at_any_byte_gives_the_same_events() {
        for at in 0..=STREAM.len() {
            let (head, tail) = STREAM.split_at(at);
            assert_eq!(parse(&[head, tail]), (expected(), None), "split at {at}");
        }
    }

    #[test]
    fn two_splits_anywhere_give_the_same_events() {
        for first in 0..=STREAM.len() {
            for second in first..=STREAM.len() {
                let pieces = [&STREAM[..first], &STREAM[first..second], &STREAM[second..]];
                assert_eq!(
                    parse(&pieces),
                    (expected(), None),
                    "split at {first}, {second}"
                );
            }
        }
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_events() {
        let pieces: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse(&pieces), (expected(), None));
    }

    #[test]
    fn a_cr_then_a_lf_in_the_next_piece_is_one_line_ending() {
        let (events, _) = parse(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
        assert_eq!(events, ["a\nb"]);
    }

    #[test]
    fn an_unterminated_event_is_given_at_the_end_but_a_cut_line_is_not() {
        assert_eq!(
            parse(&[b"data: [DONE]\n"]),
            (Vec::new(), Some("[DONE]".to_owned()))
        );
        assert_eq!(parse(&[b"data: {\"cut"]), (Vec::new(), None));
        assert_eq!(
            parse(&[b"data: x\n\ndata: {\"cut"]),
            (vec!["x".to_owned()], None)
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        assert_eq!(
            parser.push(b"data: \xff\n", &mut events),
            Err(SseError::InvalidUtf8)
        );
    }

    #[test]
    fn an_endless_line_is_an_error() {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        let piece = vec![b'x'; 1 << 20];
        let mut outcome = Ok(());
        for _ in 0..5 {
            outcome = parser.push(&piece, &mut events);
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(outcome, Err(SseError::TooLong));
    }
}

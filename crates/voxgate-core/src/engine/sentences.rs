//! Splits streamed LLM text into sentences for TTS, so the first sentence
//! is spoken while the model writes the next.

/// Accumulates tokens and yields whole sentences.
#[derive(Debug, Clone, Default)]
pub struct SentenceSplitter {
    buffer: String,
    emitted_any: bool,
}

/// The first sentence may be short ("Sure."), so speech starts early; later
/// fragments are joined until they are at least this long, which keeps TTS
/// calls few and prosody natural.
const MIN_LATER_SENTENCE_CHARS: usize = 24;

/// The first segment may also end at a comma once it holds this many words,
/// so that a long first sentence does not hold back the first audio.
const MIN_FIRST_CLAUSE_WORDS: usize = 4;

impl SentenceSplitter {
    /// Adds a token; returns any sentences it completes.
    pub fn push(&mut self, token: &str) -> Vec<String> {
        self.buffer.push_str(token);
        let mut out = Vec::new();
        while let Some(end) = self.sentence_end() {
            let rest = self.buffer.split_off(end);
            let sentence = std::mem::replace(&mut self.buffer, rest);
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_owned());
                self.emitted_any = true;
            }
        }
        out
    }

    /// The rest of the text, once the model is done.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buffer);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }

    /// Whether a comma at byte `i` ends a first segment long enough to speak.
    fn is_first_clause(&self, i: usize) -> bool {
        !self.emitted_any && self.buffer[..i].split_whitespace().count() >= MIN_FIRST_CLAUSE_WORDS
    }

    /// Byte index just past a sentence end followed by whitespace, if the
    /// sentence so far is long enough to stand alone.
    fn sentence_end(&self) -> Option<usize> {
        let min = if self.emitted_any {
            MIN_LATER_SENTENCE_CHARS
        } else {
            1
        };
        let bytes = self.buffer.as_bytes();
        let mut i = 0;
        while i + 1 < bytes.len() {
            let is_end = matches!(bytes[i], b'.' | b'!' | b'?' | b';' | b':')
                || (bytes[i] == b'\n')
                || (bytes[i] == b',' && self.is_first_clause(i));
            if is_end && bytes[i + 1].is_ascii_whitespace() && self.buffer[..=i].trim().len() >= min
            {
                // A decimal point or an abbreviation like "Dr." followed by a
                // capital is still a boundary for speech purposes; a digit
                // right before and after (3.5) never reaches here because the
                // next byte is not whitespace.
                return Some(i + 1);
            }
            i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(tokens: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::default();
        let mut out: Vec<String> = tokens.iter().flat_map(|t| s.push(t)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn a_long_first_sentence_goes_out_at_its_first_clause() {
        assert_eq!(
            split(&[
                "Sure, I can book a table, ",
                "and we open at nine, ",
                "every day. Bye."
            ]),
            [
                "Sure, I can book a table,",
                "and we open at nine, every day.",
                "Bye."
            ]
        );
    }

    #[test]
    fn the_first_sentence_goes_out_as_soon_as_it_ends() {
        let mut s = SentenceSplitter::default();
        assert!(s.push("Sure").is_empty());
        assert!(s.push(".").is_empty(), "needs the following space");
        assert_eq!(s.push(" A table"), vec!["Sure.".to_owned()]);
    }

    #[test]
    fn later_short_fragments_are_joined() {
        assert_eq!(
            split(&[
                "Hi. ",
                "Yes. ",
                "No. ",
                "That works for two at seven tonight. ",
                "Bye"
            ]),
            vec![
                "Hi.".to_owned(),
                "Yes. No. That works for two at seven tonight.".to_owned(),
                "Bye".to_owned()
            ]
        );
    }

    #[test]
    fn numbers_do_not_split() {
        assert_eq!(
            split(&["It costs 3.50 dollars", " per person."]),
            vec!["It costs 3.50 dollars per person.".to_owned()]
        );
    }

    #[test]
    fn multibyte_text_is_split_on_char_boundaries() {
        assert_eq!(
            split(&["Voilà, c'est réservé. ", "À ce soir !"]),
            vec!["Voilà, c'est réservé.".to_owned(), "À ce soir !".to_owned()]
        );
    }
}

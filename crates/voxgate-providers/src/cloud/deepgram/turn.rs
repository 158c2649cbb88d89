//! The caller's turn as Deepgram reports it: final segments accumulate
//! until the turn is answered; the latest interim hypothesis follows them.

use super::messages::Results;

/// What Deepgram has said about the turn in progress.
#[derive(Debug, Default)]
pub(super) struct Turn {
    finals: Vec<String>,
    interim: String,
    /// The last partial handed out, so an unchanged text is not repeated.
    shown: String,
}

impl Turn {
    /// Takes in one `Results`; returns the turn's new text for display when
    /// it changed.
    pub(super) fn apply(&mut self, results: &Results) -> Option<String> {
        let transcript = results.transcript();
        if results.is_final {
            // A final replaces the interim hypothesis of the same audio,
            // even when it found no words there.
            self.interim.clear();
            if !transcript.is_empty() {
                self.finals.push(transcript.to_owned());
            }
        } else {
            transcript.clone_into(&mut self.interim);
        }
        let so_far = self.so_far();
        if so_far.is_empty() || so_far == self.shown {
            return None;
        }
        self.shown.clone_from(&so_far);
        Some(so_far)
    }

    /// The final segments since the turn began.
    pub(super) fn finals(&self) -> String {
        self.finals.join(" ")
    }

    /// The final segments and the latest interim hypothesis after them.
    pub(super) fn so_far(&self) -> String {
        let interim = (!self.interim.is_empty()).then_some(self.interim.as_str());
        let parts: Vec<&str> = self
            .finals
            .iter()
            .map(String::as_str)
            .chain(interim)
            .collect();
        parts.join(" ")
    }

    /// The turn was answered: the next one starts empty.
    pub(super) fn next_turn(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::super::messages::{ServerMessage, decode};
    use super::*;

    fn results(transcript: &str, is_final: bool) -> Results {
        let frame = serde_json::json!({
            "type": "Results", "channel_index": [0, 1], "duration": 0.5, "start": 0.0,
            "is_final": is_final, "speech_final": false, "from_finalize": false,
            "channel": {"alternatives": [{"transcript": transcript, "confidence": 0.9, "words": []}]}
        });
        match decode(&frame.to_string()) {
            Ok(ServerMessage::Results(results)) => results,
            other => panic!("expected Results, got {other:?}"),
        }
    }

    #[test]
    fn partials_show_finals_then_the_latest_interim() {
        let mut turn = Turn::default();
        assert_eq!(
            turn.apply(&results("hello", false)),
            Some("hello".to_owned())
        );
        assert_eq!(
            turn.apply(&results("hello there", false)),
            Some("hello there".to_owned())
        );
        assert_eq!(
            turn.apply(&results("Hello there.", true)),
            Some("Hello there.".to_owned())
        );
        assert_eq!(
            turn.apply(&results("how", false)),
            Some("Hello there. how".to_owned())
        );
        assert_eq!(
            turn.apply(&results("how", false)),
            None,
            "unchanged text is not repeated"
        );
        assert_eq!(turn.finals(), "Hello there.");
        assert_eq!(turn.so_far(), "Hello there. how");
    }

    #[test]
    fn empty_transcripts_add_nothing_and_a_final_clears_the_interim() {
        let mut turn = Turn::default();
        assert_eq!(turn.apply(&results("", false)), None);
        assert_eq!(turn.apply(&results("", true)), None);
        turn.apply(&results("um", false));
        assert_eq!(turn.apply(&results("", true)), None);
        assert_eq!(turn.finals(), "");
        assert_eq!(turn.so_far(), "");
        turn.apply(&results("Yes.", true));
        turn.apply(&results("", true));
        turn.apply(&results("Please.", true));
        assert_eq!(turn.finals(), "Yes. Please.");
    }

    #[test]
    fn next_turn_starts_empty() {
        let mut turn = Turn::default();
        turn.apply(&results("One.", true));
        turn.apply(&results("two", false));
        turn.next_turn();
        assert_eq!(turn.so_far(), "");
        assert_eq!(
            turn.apply(&results("One.", true)),
            Some("One.".to_owned()),
            "the same text is shown again in a new turn"
        );
    }
}

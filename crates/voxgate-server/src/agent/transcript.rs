//! A call's transcript as stored: one turn per utterance of the caller and
//! per reply of the agent (its sentences joined as they are heard), on the
//! call's timeline.

use std::time::Instant;

use voxgate_core::engine::Role;
use voxgate_core::ids::CallSid;
use voxgate_store::{TranscriptTurn, TurnRole};

/// Builds the stored turns of one call from the engine's transcript events.
#[derive(Debug)]
pub(super) struct TranscriptLog {
    call_sid: CallSid,
    call_started: Instant,
    next_seq: u32,
    /// The turn still growing: the engine's turn id and the stored turn.
    open: Option<(u64, TranscriptTurn)>,
}

impl TranscriptLog {
    pub(super) fn new(call_sid: CallSid, call_started: Instant) -> Self {
        Self {
            call_sid,
            call_started,
            next_seq: 0,
            open: None,
        }
    }

    fn ms(&self, at: Instant) -> i64 {
        i64::try_from(at.saturating_duration_since(self.call_started).as_millis())
            .unwrap_or(i64::MAX)
    }

    /// Final words of `role` in exchange `turn`; returns the turn to store
    /// (a growing reply is stored again with each sentence).
    pub(super) fn words(
        &mut self,
        turn: u64,
        role: Role,
        text: &str,
        started: Instant,
        ended: Instant,
    ) -> Option<TranscriptTurn> {
        let role = match role {
            Role::User => TurnRole::User,
            Role::Assistant => TurnRole::Assistant,
            Role::System | Role::Tool => return None,
        };
        let (started_ms, ended_ms) = (self.ms(started), self.ms(ended));
        if let Some((open_turn, open)) = self.open.as_mut()
            && *open_turn == turn
            && open.role == role
        {
            open.text.push(' ');
            open.text.push_str(text);
            open.ended_ms = ended_ms;
            return Some(open.clone());
        }
        let stored = TranscriptTurn {
            call_sid: self.call_sid.clone(),
            seq: self.next_seq,
            role,
            text: text.to_owned(),
            started_ms,
            ended_ms,
            interrupted: false,
        };
        self.next_seq += 1;
        self.open = Some((turn, stored.clone()));
        Some(stored)
    }

    /// The caller cut reply `turn` off at `at`, having heard `heard` of it.
    pub(super) fn interrupted(
        &mut self,
        turn: u64,
        heard: &str,
        at: Instant,
    ) -> Option<TranscriptTurn> {
        let at_ms = self.ms(at);
        match self.open.as_mut() {
            Some((open_turn, open)) if *open_turn == turn && open.role == TurnRole::Assistant => {
                open.text = heard.to_owned();
                open.ended_ms = at_ms;
                open.interrupted = true;
                let stored = open.clone();
                self.open = None;
                Some(stored)
            }
            _ if heard.trim().is_empty() => None,
            _ => {
                let stored = TranscriptTurn {
                    call_sid: self.call_sid.clone(),
                    seq: self.next_seq,
                    role: TurnRole::Assistant,
                    text: heard.to_owned(),
                    started_ms: at_ms,
                    ended_ms: at_ms,
                    interrupted: true,
                };
                self.next_seq += 1;
                self.open = None;
                Some(stored)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_reply_grows_by_sentence_and_an_interruption_keeps_what_was_heard() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let sid = CallSid::new("CAtranscript").expect("sid");
        let mut log = TranscriptLog::new(sid, t0);
        let greeting = log
            .words(0, Role::Assistant, "Hello!", at(100), at(900))
            .expect("turn");
        assert_eq!(
            (greeting.seq, greeting.started_ms, greeting.ended_ms),
            (0, 100, 900)
        );
        let user = log
            .words(1, Role::User, "Hi there.", at(1500), at(2300))
            .expect("turn");
        assert_eq!((user.seq, user.role), (1, TurnRole::User));
        let first = log
            .words(1, Role::Assistant, "Sure.", at(3000), at(3500))
            .expect("turn");
        let grown = log
            .words(1, Role::Assistant, "When?", at(3500), at(4000))
            .expect("turn");
        assert_eq!((first.seq, grown.seq), (2, 2));
        assert_eq!(grown.text, "Sure. When?");
        assert_eq!((grown.started_ms, grown.ended_ms), (3000, 4000));
        let cut = log.interrupted(1, "Sure. Wh", at(3800)).expect("turn");
        assert_eq!(
            (cut.seq, cut.text.as_str(), cut.interrupted),
            (2, "Sure. Wh", true)
        );
        let next = log
            .words(2, Role::User, "Tomorrow.", at(3700), at(4500))
            .expect("turn");
        assert_eq!(next.seq, 3);
    }
}

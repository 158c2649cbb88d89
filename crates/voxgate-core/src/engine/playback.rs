//! What the agent has said, what was sent to the carrier, and what the
//! caller actually heard, from acknowledged marks.
//!
//! Audio is sent in chunks, each followed by a named mark; the carrier
//! echoes a mark once everything before it has played. After a `clear`
//! the carrier echoes every pending mark at once, so marks carry a
//! generation and echoes from before the clear are ignored.

use std::collections::HashMap;

/// Identifies one TTS segment (about one sentence) of agent speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentId(pub u64);

/// A chunk of audio to send, followed by the mark to send after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingAudio {
    /// The segment it belongs to.
    pub segment: SegmentId,
    /// Samples at the engine's output rate.
    pub samples: Vec<i16>,
    /// The mark to send right after the samples.
    pub mark: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Not sent (held, or cleared before it played).
    Unsent,
    /// Sent; its mark has not come back.
    Sent,
    /// Its mark came back: the caller heard it.
    Played,
}

#[derive(Debug, Clone)]
struct Chunk {
    samples: Vec<i16>,
    state: ChunkState,
}

#[derive(Debug, Clone)]
struct Segment {
    id: SegmentId,
    text: String,
    chunks: Vec<Chunk>,
    synthesized: bool,
}

impl Segment {
    fn samples(&self, filter: impl Fn(ChunkState) -> bool) -> usize {
        self.chunks
            .iter()
            .filter(|c| filter(c.state))
            .map(|c| c.samples.len())
            .sum()
    }

    fn fully_played(&self) -> bool {
        self.synthesized && self.chunks.iter().all(|c| c.state == ChunkState::Played)
    }
}

/// The playback state of one agent reply.
#[derive(Debug, Clone)]
pub struct Playback {
    chunk_samples: usize,
    generation: u64,
    next_mark: u64,
    segments: Vec<Segment>,
    /// Mark name → (segment index, chunk index), current generation only.
    marks: HashMap<String, (usize, usize)>,
    held: bool,
}

impl Playback {
    /// Audio is cut into chunks of `chunk_samples`, each with its own mark,
    /// which bounds how precisely "what was heard" is known.
    pub fn new(chunk_samples: usize) -> Self {
        Self {
            chunk_samples: chunk_samples.max(1),
            generation: 0,
            next_mark: 0,
            segments: Vec::new(),
            marks: HashMap::new(),
            held: false,
        }
    }

    /// Starts a segment whose text is `text`.
    pub fn add_segment(&mut self, id: SegmentId, text: String) {
        self.segments.push(Segment {
            id,
            text,
            chunks: Vec::new(),
            synthesized: false,
        });
    }

    /// Adds synthesized audio to a segment; returns what to send now
    /// (nothing while playback is held).
    pub fn add_audio(&mut self, id: SegmentId, samples: &[i16]) -> Vec<OutgoingAudio> {
        let Some(index) = self.segments.iter().position(|s| s.id == id) else {
            return Vec::new();
        };
        let chunk_samples = self.chunk_samples;
        let segment = &mut self.segments[index];
        let mut rest = samples;
        // Top up a last chunk that was cut short by the TTS's chunking, so
        // marks stay evenly spaced, unless it already went out.
        if let Some(last) = segment.chunks.last_mut()
            && last.state == ChunkState::Unsent
            && last.samples.len() < chunk_samples
        {
            let take = (chunk_samples - last.samples.len()).min(rest.len());
            last.samples.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        for piece in rest.chunks(chunk_samples) {
            segment.chunks.push(Chunk {
                samples: piece.to_vec(),
                state: ChunkState::Unsent,
            });
        }
        self.send_ready(false)
    }

    /// Marks a segment's synthesis complete; returns what to send now.
    pub fn finish_segment(&mut self, id: SegmentId) -> Vec<OutgoingAudio> {
        if let Some(segment) = self.segments.iter_mut().find(|s| s.id == id) {
            segment.synthesized = true;
        }
        self.send_ready(true)
    }

    /// Sends every unsent chunk unless held. Full chunks go at once; a
    /// short last chunk waits for `segment_done` so it can still be topped up.
    fn send_ready(&mut self, segment_done: bool) -> Vec<OutgoingAudio> {
        if self.held {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (si, segment) in self.segments.iter_mut().enumerate() {
            let last_index = segment.chunks.len().saturating_sub(1);
            let synthesized = segment.synthesized;
            for (ci, chunk) in segment.chunks.iter_mut().enumerate() {
                if chunk.state != ChunkState::Unsent {
                    continue;
                }
                let short_tail = ci == last_index && chunk.samples.len() < self.chunk_samples;
                if short_tail && !synthesized && !segment_done {
                    continue;
                }
                let mark = format!("g{}.{}", self.generation, self.next_mark);
                self.next_mark += 1;
                self.marks.insert(mark.clone(), (si, ci));
                chunk.state = ChunkState::Sent;
                out.push(OutgoingAudio {
                    segment: segment.id,
                    samples: chunk.samples.clone(),
                    mark,
                });
            }
        }
        out
    }

    /// Records an echoed mark. Returns the segments that became fully
    /// played with it: id, text (what the caller has now heard) and length
    /// in samples.
    pub fn mark_played(&mut self, name: &str) -> Vec<(SegmentId, String, usize)> {
        let Some((si, ci)) = self.marks.remove(name) else {
            return Vec::new();
        };
        let Some(segment) = self.segments.get_mut(si) else {
            return Vec::new();
        };
        if let Some(chunk) = segment.chunks.get_mut(ci) {
            chunk.state = ChunkState::Played;
        }
        if segment.fully_played() && ci + 1 == segment.chunks.len() {
            let samples = segment.samples(|_| true);
            vec![(segment.id, segment.text.clone(), samples)]
        } else {
            Vec::new()
        }
    }

    /// Whether any sent audio has not been acknowledged yet.
    pub fn is_playing(&self) -> bool {
        !self.marks.is_empty()
    }

    /// Whether any of this reply reached the caller's ears or is on its way.
    pub fn has_started(&self) -> bool {
        self.segments
            .iter()
            .flat_map(|s| &s.chunks)
            .any(|c| c.state != ChunkState::Unsent)
    }

    /// Whether every segment is synthesized and fully played.
    pub fn is_complete(&self) -> bool {
        self.segments.iter().all(Segment::fully_played)
    }

    /// Stops sending: new audio is kept, not sent.
    pub fn hold(&mut self) {
        self.held = true;
    }

    /// The carrier dropped its buffer: every sent, unacknowledged chunk
    /// becomes unsent again (kept for a resume), and their marks are void.
    pub fn clear(&mut self) {
        self.generation += 1;
        for (si, ci) in self.marks.drain().map(|(_, v)| v) {
            if let Some(chunk) = self.segments.get_mut(si).and_then(|s| s.chunks.get_mut(ci)) {
                chunk.state = ChunkState::Unsent;
            }
        }
        self.held = true;
    }

    /// Sends again everything not yet heard (after a false interruption).
    pub fn resume(&mut self) -> Vec<OutgoingAudio> {
        self.held = false;
        self.send_ready(false)
    }

    /// The text the caller heard: whole segments fully played, then the
    /// played share of the first segment that was not, cut at a word.
    pub fn heard_text(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for segment in &self.segments {
            if segment.fully_played() {
                parts.push(segment.text.clone());
                continue;
            }
            let played = segment.samples(|s| s == ChunkState::Played);
            let total = segment.samples(|_| true);
            if played > 0 && total > 0 {
                parts.push(prefix_by_share(&segment.text, played, total));
            }
            break;
        }
        parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The full text of every segment so far.
    pub fn full_text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Samples sent and acknowledged so far, for this reply.
    pub fn played_samples(&self) -> usize {
        self.segments
            .iter()
            .map(|s| s.samples(|st| st == ChunkState::Played))
            .sum()
    }
}

/// The leading share `played / total` of `text`, ending on a whole word.
fn prefix_by_share(text: &str, played: usize, total: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let cut = chars.len() * played / total;
    let prefix: String = chars[..cut.min(chars.len())].iter().collect();
    if cut >= chars.len() {
        return prefix;
    }
    // Only words the caller heard to the end count.
    let next_is_boundary = chars.get(cut).is_some_and(|c| c.is_whitespace());
    if next_is_boundary {
        return prefix.trim_end().to_owned();
    }
    match prefix.rfind(char::is_whitespace) {
        Some(i) => prefix[..i].trim_end().to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: usize = 100;

    fn seg(n: u64) -> SegmentId {
        SegmentId(n)
    }

    #[test]
    fn sends_in_marked_chunks_and_knows_what_was_heard() {
        let mut p = Playback::new(CHUNK);
        p.add_segment(seg(1), "Hello there.".into());
        let out = p.add_audio(seg(1), &[1; 250]);
        assert_eq!(out.len(), 2, "full chunks go at once");
        let tail = p.finish_segment(seg(1));
        assert_eq!(tail.len(), 1, "the short tail goes once synthesis is done");
        assert_eq!(tail[0].samples.len(), 50);
        assert!(p.is_playing());
        assert_eq!(p.heard_text(), "");
        p.mark_played(&out[0].mark);
        p.mark_played(&out[1].mark);
        assert_eq!(p.heard_text(), "Hello");
        let done = p.mark_played(&tail[0].mark);
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].0, done[0].1.as_str()), (seg(1), "Hello there."));
        assert_eq!(
            done[0].2,
            out.iter().map(|o| o.samples.len()).sum::<usize>() + 50
        );
        assert_eq!(p.heard_text(), "Hello there.");
        assert!(p.is_complete());
        assert!(!p.is_playing());
    }

    #[test]
    fn clear_voids_old_marks_and_resume_resends_the_unheard_rest() {
        let mut p = Playback::new(CHUNK);
        p.add_segment(seg(1), "One two three four.".into());
        let out = p.add_audio(seg(1), &[1; 400]);
        p.finish_segment(seg(1));
        p.mark_played(&out[0].mark);
        p.clear();
        // The carrier echoes pending marks after a clear: they mean nothing.
        for o in &out[1..] {
            assert!(p.mark_played(&o.mark).is_empty());
        }
        assert_eq!(p.heard_text(), "One");
        assert!(p.add_audio(seg(1), &[]).is_empty(), "held after a clear");
        let again = p.resume();
        assert_eq!(again.len(), 3);
        assert!(again.iter().all(|o| o.mark.starts_with("g1.")));
        for o in &again {
            p.mark_played(&o.mark);
        }
        assert_eq!(p.heard_text(), "One two three four.");
    }

    #[test]
    fn heard_text_cuts_at_whole_words() {
        assert_eq!(prefix_by_share("alpha beta gamma", 8, 16), "alpha");
        assert_eq!(prefix_by_share("alpha beta gamma", 10, 16), "alpha beta");
        assert_eq!(prefix_by_share("alpha", 2, 5), "");
        assert_eq!(prefix_by_share("alpha", 5, 5), "alpha");
    }
}

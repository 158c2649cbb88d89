//! Cutting a sample stream of arbitrary chunk sizes into fixed frames.
//!
//! Audio arrives in whatever sizes its source likes (a TTS provider's 4 KiB
//! chunks, a worklet's 128-sample quanta, a resampler's 20 ms blocks) but the
//! carriers, the VAD and the recorder want steady 20 ms frames.

use std::num::NonZeroUsize;

use super::SampleRate;

/// Accumulates samples and hands them out as fixed-length frames, keeping the
/// remainder for the next push.
///
/// Poll-style: [`Framer::push`] some samples, then call
/// [`Framer::pop_frame`] until it returns `None`. At the end of a stream,
/// [`Framer::flush_padded`] completes the last partial frame with silence.
///
/// Cost: each sample is copied once on push; the buffer compacts (moves at
/// most one frame's worth of leftover samples) on the next push after frames
/// were popped, and stops allocating once it has grown to the most samples
/// ever pending at once.
///
/// ```
/// use voxgate_core::audio::{Framer, SampleRate};
///
/// let mut framer = Framer::new(SampleRate::HZ_8000);
/// framer.push(&[0; 400]);
/// let mut frames = 0;
/// while let Some(frame) = framer.pop_frame() {
///     assert_eq!(frame.len(), 160);
///     frames += 1;
/// }
/// assert_eq!((frames, framer.pending()), (2, 80));
/// ```
#[derive(Debug, Clone)]
pub struct Framer {
    frame_len: NonZeroUsize,
    /// Samples pushed and not yet handed out start at `read`.
    buf: Vec<i16>,
    /// How much of `buf` has been handed out in frames.
    read: usize,
}

impl Framer {
    /// A framer for [`FRAME_MS`](super::FRAME_MS) (20 ms) frames at `rate`:
    /// 160 samples at 8 kHz, 320 at 16 kHz.
    pub fn new(rate: SampleRate) -> Self {
        // A rate below 50 Hz has no whole sample in 20 ms; one-sample frames
        // are the nearest meaningful answer, and panicking on a rate that
        // `SampleRate` accepts would be a bug.
        let len = NonZeroUsize::new(rate.frame_len()).unwrap_or(NonZeroUsize::MIN);
        Self::with_frame_len(len)
    }

    /// A framer with frames of exactly `frame_len` samples.
    pub fn with_frame_len(frame_len: NonZeroUsize) -> Self {
        Self {
            frame_len,
            buf: Vec::new(),
            read: 0,
        }
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len.get()
    }

    /// Appends samples to the stream.
    pub fn push(&mut self, samples: &[i16]) {
        if self.read > 0 {
            // Drop what has been handed out so the buffer does not grow with
            // the length of the call.
            self.buf.drain(..self.read);
            self.read = 0;
        }
        self.buf.extend_from_slice(samples);
    }

    /// The next complete frame, if there is one.
    pub fn pop_frame(&mut self) -> Option<&[i16]> {
        let start = self.read;
        let end = start + self.frame_len.get();
        if end > self.buf.len() {
            return None;
        }
        self.read = end;
        Some(&self.buf[start..end])
    }

    /// Samples pushed but not yet handed out: complete frames waiting for
    /// [`Framer::pop_frame`] plus the partial remainder.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.read
    }

    /// Complete frames waiting for [`Framer::pop_frame`].
    pub fn frames_ready(&self) -> usize {
        self.pending() / self.frame_len.get()
    }

    /// The samples after the last complete frame, which wait for more input.
    pub fn remainder(&self) -> &[i16] {
        let whole = self.frames_ready() * self.frame_len.get();
        &self.buf[self.read + whole..]
    }

    /// Pads the partial remainder with silence up to a whole frame, so that
    /// [`Framer::pop_frame`] returns it. Returns how many silent samples were
    /// added (0 if there was no remainder). Call at the end of a stream.
    pub fn flush_padded(&mut self) -> usize {
        let partial = self.pending() % self.frame_len.get();
        if partial == 0 {
            return 0;
        }
        let padding = self.frame_len.get() - partial;
        self.buf.resize(self.buf.len() + padding, 0);
        padding
    }

    /// Drops every pending sample, e.g. when barge-in discards queued speech.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.read = 0;
    }
}

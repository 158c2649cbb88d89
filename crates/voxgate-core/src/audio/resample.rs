//! Streaming mono sample-rate conversion between the rates a call meets:
//! 8 kHz phone audio, 16 kHz browser and STT audio, 22.05/24 kHz TTS output,
//! and 32/44.1/48 kHz files and browsers.
//!
//! The filtering is rubato's synchronous FFT resampler ([`rubato::Fft`]):
//! the rates of a call are fixed, for which rubato recommends it as both the
//! fastest and the highest-quality choice (it matches its sinc resampler's
//! quality). This module adds what a call needs on top: any input length,
//! `i16` samples, trimming of the filter's startup delay so output sample `k`
//! lines up with input time `k / to`, and a flush that emits exactly the
//! output the input implies.
//!
//! The alignment is exact when the 20 ms block holds an even number of
//! samples at both rates. At 22.05 kHz (441 samples) rubato centres its
//! filter on a whole input sample, so the true delay is not a whole number of
//! output samples and up to half an output sample (about 30 µs) remains.

use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler as _};

use super::{AudioError, SampleRate};

/// A streaming mono resampler from one [`SampleRate`] to another.
///
/// Feed it any number of samples with [`Resampler::process`]; it converts
/// whole internal blocks of [`FRAME_MS`](super::FRAME_MS) (20 ms) of input as they fill up and
/// keeps the rest for the next call. The output does not depend on how the
/// input is split. At the end of a stream, [`Resampler::flush`] emits the
/// tail, bringing the total output to exactly `ceil(input × to / from)`
/// samples, and makes the resampler ready for a new stream.
///
/// The FFT filter is built from one 20 ms block: its anti-aliasing cutoff is
/// about 92% of the lower Nyquist frequency (3.66 kHz for 8 kHz output) with
/// a Blackman-Harris² window.
///
/// # Latency
/// The filter delays the signal by half a block, 10 ms, which this type
/// trims from the start of the output. A block is only converted once
/// complete, so when fed whole 20 ms frames the output trails the input by
/// 10 ms ([`Resampler::delay_samples`]), and when fed odd sizes by up to
/// 30 ms ([`Resampler::latency_samples`]). Same-rate "resampling" is a plain
/// copy with no latency.
///
/// # Cost
/// Per 20 ms block: one real FFT of two blocks' worth of input, one
/// multiplication by the filter spectrum and one inverse FFT of two blocks'
/// worth of output, i.e. O(n log n) in the block length, plus a convert per
/// sample. After [`Resampler::new`] nothing is allocated except growth of
/// the caller's output `Vec`. Construction plans the FFTs; reuse a resampler
/// for the life of a call rather than building one per packet.
#[derive(Debug)]
pub struct Resampler {
    from: SampleRate,
    to: SampleRate,
    /// `None` when `from == to`: a copy, no filter, no delay.
    stage: Option<Box<FftStage>>,
}

/// The rubato resampler and the buffers that adapt it to a stream.
#[derive(Debug)]
struct FftStage {
    fft: Fft<f32>,
    /// Input samples per block (20 ms at `from`).
    chunk_in: usize,
    /// Output samples per block (20 ms at `to`).
    chunk_out: usize,
    /// The filter's startup delay, in output samples.
    delay: usize,
    /// Input of the block being filled; never holds a full block between
    /// calls.
    input: Vec<f32>,
    /// Output of the last block, `chunk_out` long.
    output: Vec<f32>,
    /// Startup-delay samples still to drop from the output.
    to_skip: usize,
    /// Input samples taken since the stream started.
    taken: u64,
    /// Output samples emitted since the stream started.
    given: u64,
}

impl Resampler {
    /// A resampler from `from` to `to`.
    ///
    /// # Errors
    /// [`AudioError::UnsupportedRate`] if either rate is not in
    /// [`SampleRate::RESAMPLABLE`]; [`AudioError::Resampler`] if rubato
    /// rejects the configuration (not expected for those rates).
    pub fn new(from: SampleRate, to: SampleRate) -> Result<Self, AudioError> {
        for rate in [from, to] {
            if !rate.is_resamplable() {
                return Err(AudioError::UnsupportedRate { hz: rate.hz() });
            }
        }
        if from == to {
            return Ok(Self {
                from,
                to,
                stage: None,
            });
        }
        // Every resamplable rate is a multiple of 50 Hz, so 20 ms at either
        // rate is a whole number of rubato's minimum blocks and `Both` keeps
        // the block at exactly 20 ms on each side.
        let fft = Fft::<f32>::new(
            from.hz() as usize,
            to.hz() as usize,
            from.frame_len(),
            1,
            FixedSync::Both,
        )
        .map_err(|e| AudioError::Resampler(e.to_string()))?;
        let chunk_in = fft.input_frames_next();
        let chunk_out = fft.output_frames_next();
        let delay = fft.output_delay();
        Ok(Self {
            from,
            to,
            stage: Some(Box::new(FftStage {
                fft,
                chunk_in,
                chunk_out,
                delay,
                input: Vec::with_capacity(chunk_in),
                output: vec![0.0; chunk_out],
                to_skip: delay,
                taken: 0,
                given: 0,
            })),
        })
    }

    /// The input rate.
    pub fn from(&self) -> SampleRate {
        self.from
    }

    /// The output rate.
    pub fn to(&self) -> SampleRate {
        self.to
    }

    /// Input samples per internal block: 20 ms at the input rate, or 1 for
    /// same-rate passthrough.
    pub fn block_len(&self) -> usize {
        self.stage.as_ref().map_or(1, |s| s.chunk_in)
    }

    /// The filter's delay in output samples (10 ms' worth; 0 for
    /// passthrough). When fed whole blocks, the output owed for the input so
    /// far is exactly this many samples.
    pub fn delay_samples(&self) -> usize {
        self.stage.as_ref().map_or(0, |s| s.delay)
    }

    /// The most output samples the resampler can owe for input it has
    /// already taken: a block waiting to fill plus the filter delay (30 ms'
    /// worth; 0 for passthrough). [`Resampler::flush`] emits them.
    pub fn latency_samples(&self) -> usize {
        self.stage.as_ref().map_or(0, |s| s.chunk_out + s.delay)
    }

    /// Resamples `input` and appends whatever output is ready to `output`.
    ///
    /// Accepts any length, including 0; samples that do not complete a block
    /// wait for the next call or for [`Resampler::flush`].
    pub fn process(&mut self, input: &[i16], output: &mut Vec<i16>) {
        let Some(stage) = self.stage.as_deref_mut() else {
            output.extend_from_slice(input);
            return;
        };
        let blocks = (stage.input.len() + input.len()) / stage.chunk_in;
        output.reserve(blocks * stage.chunk_out);
        let mut rest = input;
        while !rest.is_empty() {
            let room = stage.chunk_in - stage.input.len();
            let (head, tail) = rest.split_at(room.min(rest.len()));
            // i16 values are exact in f32 and the filter is linear, so there
            // is no need to scale to [-1, 1] and back.
            stage.input.extend(head.iter().map(|&s| f32::from(s)));
            stage.taken += head.len() as u64;
            rest = tail;
            if stage.input.len() == stage.chunk_in {
                stage.run_block(output);
            }
        }
    }

    /// Ends the stream: emits the output still owed, so that the total since
    /// the stream started is exactly `ceil(input × to / from)` samples, and
    /// resets the resampler for a new stream.
    pub fn flush(&mut self, output: &mut Vec<i16>) {
        let Some(stage) = self.stage.as_deref_mut() else {
            return;
        };
        let (from, to) = (u64::from(self.from.hz()), u64::from(self.to.hz()));
        let expected = (stage.taken * to).div_ceil(from);
        // Push silence through until the filter has released every output
        // sample that falls inside the input's span: the block in progress,
        // then at most one more for the filter's tail.
        while stage.given < expected {
            stage.input.resize(stage.chunk_in, 0.0);
            stage.run_block(output);
        }
        // Output past the end of the input is the filter ringing into the
        // padding; drop it.
        let surplus = stage.given - expected;
        // `surplus` is at most one block, so it fits in usize.
        output.truncate(output.len() - surplus as usize);
        stage.reset();
    }

    /// Drops buffered input and filter state without emitting anything, for
    /// a new stream (e.g. after barge-in cleared the old one).
    pub fn reset(&mut self) {
        if let Some(stage) = self.stage.as_deref_mut() {
            stage.reset();
        }
    }
}

impl FftStage {
    /// Converts the full input block and appends its output, minus any
    /// startup delay still to drop.
    fn run_block(&mut self, output: &mut Vec<i16>) {
        debug_assert_eq!(self.input.len(), self.chunk_in);
        let input = SequentialSlice::new(&self.input[..], 1, self.chunk_in)
            .expect("input buffer holds exactly one block");
        let mut block_out = SequentialSlice::new_mut(&mut self.output[..], 1, self.chunk_out)
            .expect("output buffer was sized to one block");
        self.fft
            .process_into_buffer(&input, &mut block_out, None)
            .expect("buffers match the block sizes rubato reported");
        self.input.clear();

        let skip = self.to_skip.min(self.chunk_out);
        self.to_skip -= skip;
        let ready = &self.output[skip..];
        // `as` saturates, which clips filter overshoot on full-scale input.
        output.extend(ready.iter().map(|&v| v.round() as i16));
        self.given += ready.len() as u64;
    }

    fn reset(&mut self) {
        self.fft.reset();
        self.input.clear();
        self.to_skip = self.delay;
        self.taken = 0;
        self.given = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_20_ms_on_both_sides() {
        for from in SampleRate::RESAMPLABLE {
            for to in SampleRate::RESAMPLABLE {
                let r = Resampler::new(from, to).expect("resamplable pair");
                if from == to {
                    assert_eq!(r.latency_samples(), 0);
                    continue;
                }
                let stage = r.stage.as_ref().expect("different rates");
                assert_eq!(stage.chunk_in, from.frame_len(), "{from} -> {to}");
                assert_eq!(stage.chunk_out, to.frame_len(), "{from} -> {to}");
                // Half a block: 10 ms, rounded down at 22.05/44.1 kHz.
                assert_eq!(stage.delay, to.frame_len() / 2, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn rejects_rates_it_cannot_frame() {
        let odd = SampleRate::new(11_025).expect("valid rate");
        assert_eq!(
            Resampler::new(odd, SampleRate::HZ_8000).err(),
            Some(AudioError::UnsupportedRate { hz: 11_025 })
        );
    }
}

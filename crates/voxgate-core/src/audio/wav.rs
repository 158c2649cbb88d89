//! In-memory WAV: the 44-byte header for PCM files, a stereo interleaver for
//! call recordings, and a parser for PCM16 WAVs (test fixtures and the
//! offline `voxgate call FILE.wav` demo).
//!
//! Nothing here touches a file; callers hand over and receive bytes.

use std::collections::VecDeque;

use super::{AudioError, SampleRate};

/// Size of the canonical PCM WAV header written by [`wav_header`].
pub const WAV_HEADER_LEN: usize = 44;

/// `fmt ` format tag for integer PCM.
const FORMAT_PCM: u16 = 1;
/// `fmt ` format tag for WAVE_FORMAT_EXTENSIBLE, whose real format is the
/// first two bytes of the sub-format GUID.
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// The canonical 44-byte header of a PCM WAV file (`RIFF`, a 16-byte
/// `fmt ` chunk, and the `data` chunk header) for `data_len` bytes of
/// samples.
///
/// Streaming writers that do not know `data_len` up front can write this
/// with 0 and patch the two size fields (offsets 4 and 40) at the end. For an
/// odd `data_len` (8-bit mono) the RIFF size counts the pad byte the caller
/// must append after the data. Sizes saturate at `u32::MAX` rather than wrap.
pub fn wav_header(
    sample_rate: SampleRate,
    channels: u16,
    bits_per_sample: u16,
    data_len: u32,
) -> [u8; WAV_HEADER_LEN] {
    let block_align = channels.saturating_mul(bits_per_sample.div_ceil(8));
    let byte_rate = sample_rate.hz().saturating_mul(u32::from(block_align));
    let riff_len = data_len.saturating_add(36 + (data_len & 1));

    let mut h = [0u8; WAV_HEADER_LEN];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&riff_len.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&FORMAT_PCM.to_le_bytes());
    h[22..24].copy_from_slice(&channels.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.hz().to_le_bytes());
    h[28..32].copy_from_slice(&byte_rate.to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&bits_per_sample.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Appends a complete PCM16 WAV file (header and little-endian samples) to
/// `out`. `samples` are interleaved when `channels > 1`.
pub fn write_wav_into(sample_rate: SampleRate, channels: u16, samples: &[i16], out: &mut Vec<u8>) {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    out.reserve(WAV_HEADER_LEN + samples.len() * 2);
    out.extend_from_slice(&wav_header(sample_rate, channels, 16, data_len));
    super::pcm::pcm16le_encode_into(samples, out);
}

/// A decoded PCM16 WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second per channel.
    pub sample_rate: SampleRate,
    /// Channels, at least 1.
    pub channels: u16,
    /// Samples, interleaved when there is more than one channel.
    pub samples: Vec<i16>,
}

impl Wav {
    /// Samples per channel.
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// The channels averaged into one, e.g. to feed a stereo fixture to the
    /// mono call pipeline. Mono files are returned as they are.
    pub fn to_mono(&self) -> Vec<i16> {
        let channels = usize::from(self.channels.max(1));
        if channels == 1 {
            return self.samples.clone();
        }
        self.samples
            .chunks_exact(channels)
            .map(|frame| {
                let sum: i32 = frame.iter().map(|&s| i32::from(s)).sum();
                // The mean of i16 values is an i16.
                (sum / channels as i32) as i16
            })
            .collect()
    }
}

/// The parts of a `fmt ` chunk the parser needs.
struct Format {
    format_tag: u16,
    channels: u16,
    sample_rate: u32,
    block_align: u16,
    bits_per_sample: u16,
}

/// Parses a PCM16 WAV file.
///
/// Chunks other than `fmt ` and `data` (`LIST`, `fact`, …) are skipped. A
/// `data` chunk whose size runs past the end of the input is read to the end,
/// since streaming writers leave the size at 0xFFFFFFFF and recordings get
/// cut off; a trailing partial sample frame is dropped. `WAVE_FORMAT_EXTENSIBLE`
/// is accepted when it wraps 16-bit PCM.
///
/// # Errors
/// - [`AudioError::NotWav`] if the bytes do not start with `RIFF....WAVE`;
/// - [`AudioError::MalformedWav`] for a missing or truncated `fmt ` chunk, no
///   `data` chunk, zero channels or an inconsistent block size;
/// - [`AudioError::UnsupportedFormat`] for anything but 16-bit integer PCM;
/// - [`AudioError::UnsupportedRate`] for a sample rate of 0 or above
///   [`MAX_SAMPLE_RATE_HZ`](super::MAX_SAMPLE_RATE_HZ).
pub fn parse_wav(bytes: &[u8]) -> Result<Wav, AudioError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(AudioError::NotWav {
            found: bytes[..bytes.len().min(12)].to_vec(),
        });
    }
    let mut format = None;
    let mut data = None;
    let mut pos = 12;
    while let Some(header) = bytes.get(pos..pos + 8) {
        let id = &header[0..4];
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let body_start = pos + 8;
        let available = bytes.len() - body_start;
        match id {
            b"fmt " => {
                if size > available {
                    return Err(AudioError::MalformedWav {
                        reason: "fmt chunk runs past the end of the file",
                    });
                }
                format = Some(parse_format(&bytes[body_start..body_start + size])?);
            }
            b"data" => {
                data = Some(&bytes[body_start..body_start + size.min(available)]);
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        match body_start.checked_add(size + (size & 1)) {
            Some(next) if next <= bytes.len() => pos = next,
            _ => break,
        }
    }
    let format = format.ok_or(AudioError::MalformedWav {
        reason: "no fmt chunk",
    })?;
    let data = data.ok_or(AudioError::MalformedWav {
        reason: "no data chunk",
    })?;
    let sample_rate = SampleRate::new(format.sample_rate)?;
    if format.channels == 0 {
        return Err(AudioError::MalformedWav {
            reason: "zero channels",
        });
    }
    if usize::from(format.block_align) != usize::from(format.channels) * 2 {
        return Err(AudioError::MalformedWav {
            reason: "block align does not match channels × 2 bytes",
        });
    }
    let whole_frames = data.len() / usize::from(format.block_align);
    let data = &data[..whole_frames * usize::from(format.block_align)];
    let mut samples = Vec::new();
    // `data` is a whole number of 2-byte samples, so this cannot fail.
    super::pcm::pcm16le_decode_into(data, &mut samples)?;
    Ok(Wav {
        sample_rate,
        channels: format.channels,
        samples,
    })
}

/// Reads a `fmt ` chunk body and checks that it describes 16-bit PCM.
fn parse_format(body: &[u8]) -> Result<Format, AudioError> {
    let u16_at = |at: usize| u16::from_le_bytes([body[at], body[at + 1]]);
    if body.len() < 16 {
        return Err(AudioError::MalformedWav {
            reason: "fmt chunk shorter than 16 bytes",
        });
    }
    let mut format = Format {
        format_tag: u16_at(0),
        channels: u16_at(2),
        sample_rate: u32::from_le_bytes([body[4], body[5], body[6], body[7]]),
        block_align: u16_at(12),
        bits_per_sample: u16_at(14),
    };
    let mut valid_bits = format.bits_per_sample;
    if format.format_tag == FORMAT_EXTENSIBLE {
        // cbSize (2) + valid bits (2) + channel mask (4) + GUID (16).
        if body.len() < 40 {
            return Err(AudioError::MalformedWav {
                reason: "extensible fmt chunk shorter than 40 bytes",
            });
        }
        valid_bits = u16_at(18);
        // The GUID's first two bytes are the real format tag.
        format.format_tag = u16_at(24);
    }
    if format.format_tag != FORMAT_PCM || format.bits_per_sample != 16 || valid_bits != 16 {
        return Err(AudioError::UnsupportedFormat {
            format_tag: format.format_tag,
            bits_per_sample: format.bits_per_sample,
        });
    }
    Ok(format)
}

/// A channel of a two-channel call recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The remote party: the left channel.
    Caller,
    /// The voice agent: the right channel.
    Agent,
}

/// Builds the interleaved stereo stream of a call recording (caller left,
/// agent right) from two mono streams placed on one sample clock.
///
/// Each [`StereoInterleaver::push`] says where on the clock its samples
/// start, so audio that arrives late, in bursts (TTS runs ahead of playback)
/// or with gaps still lands at the right time; gaps are silence, and audio
/// pushed twice over the same span is mixed. The owner decides when a span is
/// final with [`StereoInterleaver::drain_until`] (typically "now" on the
/// call's sample clock), which bounds memory for calls of any length.
///
/// Cost: push copies each sample once (plus silence for a gap);
/// draining writes two samples per position. Buffers stop growing once they
/// hold the most audio ever pending between drains.
#[derive(Debug, Clone, Default)]
pub struct StereoInterleaver {
    /// Caller samples at positions `drained..drained + caller.len()`.
    caller: VecDeque<i16>,
    /// Agent samples at positions `drained..drained + agent.len()`.
    agent: VecDeque<i16>,
    /// Clock position of the next sample pair to emit.
    drained: u64,
}

impl StereoInterleaver {
    /// An empty recording starting at sample 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places `samples` on `side` starting at clock position `start`.
    ///
    /// A gap before `start` is filled with silence; samples overlapping
    /// earlier pushes are added to them (saturating). Samples before the
    /// drained position can no longer be recorded: they are dropped, and
    /// their number is returned (0 when nothing was late).
    ///
    /// `start` is trusted: a position far ahead of the stream allocates
    /// silence up to it.
    pub fn push(&mut self, side: Side, start: u64, samples: &[i16]) -> usize {
        let late = usize::try_from(self.drained.saturating_sub(start))
            .map_or(samples.len(), |late| late.min(samples.len()));
        let samples = &samples[late..];
        if samples.is_empty() {
            return late;
        }
        // After dropping the late part, the start is at or after `drained`.
        let offset = usize::try_from(start.max(self.drained) - self.drained)
            .expect("gap fits in memory, so it fits in usize");
        let track = match side {
            Side::Caller => &mut self.caller,
            Side::Agent => &mut self.agent,
        };
        if offset > track.len() {
            track.resize(offset, 0);
        }
        let overlap = (track.len() - offset).min(samples.len());
        for (held, &new) in track
            .range_mut(offset..offset + overlap)
            .zip(&samples[..overlap])
        {
            *held = held.saturating_add(new);
        }
        track.extend(&samples[overlap..]);
        late
    }

    /// Drops `side`'s audio at clock positions from `at` on, e.g. agent
    /// speech queued past the point where barge-in cleared playback, so the
    /// recording holds what the caller actually heard.
    pub fn truncate(&mut self, side: Side, at: u64) {
        let keep = usize::try_from(at.saturating_sub(self.drained)).unwrap_or(usize::MAX);
        match side {
            Side::Caller => self.caller.truncate(keep),
            Side::Agent => self.agent.truncate(keep),
        }
    }

    /// Clock position of the next sample pair [`StereoInterleaver::drain_until`]
    /// will emit.
    pub fn drained(&self) -> u64 {
        self.drained
    }

    /// Heap bytes held for pending audio: the capacity of both tracks,
    /// which stays at the most ever pending between drains.
    pub fn memory_bytes(&self) -> usize {
        (self.caller.capacity() + self.agent.capacity()) * std::mem::size_of::<i16>()
    }

    /// Clock position just past the last sample pushed on either side.
    pub fn end(&self) -> u64 {
        self.drained + self.caller.len().max(self.agent.len()) as u64
    }

    /// Appends interleaved `[caller, agent]` pairs for every clock position
    /// from [`StereoInterleaver::drained`] up to (not including) `until`,
    /// with silence where a side has no audio, and returns how many pairs
    /// were written. Positions already drained are not written again.
    pub fn drain_until(&mut self, until: u64, out: &mut Vec<i16>) -> usize {
        let Ok(pairs) = usize::try_from(until.saturating_sub(self.drained)) else {
            // More positions than memory can hold: the caller passed a bogus
            // clock; emit what is buffered rather than attempting it.
            return self.finish(out);
        };
        out.reserve(pairs * 2);
        for _ in 0..pairs {
            out.push(self.caller.pop_front().unwrap_or(0));
            out.push(self.agent.pop_front().unwrap_or(0));
        }
        self.drained = until;
        pairs
    }

    /// Drains everything pushed so far (up to [`StereoInterleaver::end`]),
    /// padding the shorter side with silence, and returns the pairs written.
    pub fn finish(&mut self, out: &mut Vec<i16>) -> usize {
        self.drain_until(self.end(), out)
    }
}

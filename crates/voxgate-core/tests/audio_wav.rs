//! WAV header and parser against `hound`, and the stereo recording
//! interleaver.

use std::io::Cursor;

use proptest::prelude::*;
use voxgate_core::audio::wav::{WAV_HEADER_LEN, write_wav_into};
use voxgate_core::audio::{AudioError, SampleRate, Side, StereoInterleaver, parse_wav, wav_header};

fn hound_spec(rate: u32, channels: u16) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// A WAV written by hound into memory.
fn hound_wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
    let mut cursor = Cursor::new(Vec::new());
    let mut writer =
        hound::WavWriter::new(&mut cursor, hound_spec(rate, channels)).expect("in-memory writer");
    for &s in samples {
        writer.write_sample(s).expect("in-memory write");
    }
    writer.finalize().expect("in-memory finalize");
    cursor.into_inner()
}

#[test]
fn header_layout() {
    let h = wav_header(SampleRate::HZ_8000, 1, 16, 320);
    assert_eq!(&h[0..4], b"RIFF");
    assert_eq!(u32::from_le_bytes([h[4], h[5], h[6], h[7]]), 36 + 320);
    assert_eq!(&h[8..16], b"WAVEfmt ");
    assert_eq!(u32::from_le_bytes([h[28], h[29], h[30], h[31]]), 16_000);
    assert_eq!(&h[36..40], b"data");
    assert_eq!(u32::from_le_bytes([h[40], h[41], h[42], h[43]]), 320);
}

#[test]
fn our_header_matches_hounds_byte_for_byte() {
    for (rate, channels) in [(8000, 1), (16000, 1), (24000, 2), (44100, 2)] {
        let samples: Vec<i16> = (0..channels as i16 * 50).map(|i| i * 300 - 7000).collect();
        let theirs = hound_wav(rate, channels, &samples);
        let ours = wav_header(
            SampleRate::new(rate).expect("valid rate"),
            channels,
            16,
            (samples.len() * 2) as u32,
        );
        assert_eq!(
            &theirs[..WAV_HEADER_LEN],
            &ours[..],
            "{rate} Hz x{channels}"
        );
    }
}

#[test]
fn hound_reads_what_we_write() {
    let samples: Vec<i16> = (0..640)
        .map(|i| ((i * 97) % 65_536 - 32_768) as i16)
        .collect();
    let mut bytes = Vec::new();
    write_wav_into(SampleRate::HZ_16000, 2, &samples, &mut bytes);
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).expect("hound accepts our file");
    assert_eq!(reader.spec(), hound_spec(16_000, 2));
    let read: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("hound reads our samples");
    assert_eq!(read, samples);
}

#[test]
fn we_read_what_hound_writes() {
    let samples: Vec<i16> = (0..999).map(|i| (i * 31 - 15_000) as i16).collect();
    let wav = parse_wav(&hound_wav(22_050, 1, &samples)).expect("hound writes valid PCM16");
    assert_eq!(wav.sample_rate, SampleRate::HZ_22050);
    assert_eq!(wav.channels, 1);
    assert_eq!(wav.frames(), 999);
    assert_eq!(wav.samples, samples);
}

#[test]
fn unknown_chunks_are_skipped_and_odd_ones_padded() {
    let mut bytes = Vec::new();
    write_wav_into(SampleRate::HZ_8000, 1, &[1, -2, 3], &mut bytes);
    // Splice an odd-sized LIST chunk (with its pad byte) before `data`.
    let list = [b"LIST".as_slice(), &3u32.to_le_bytes(), b"abc", &[0]].concat();
    bytes.splice(36..36, list);
    let wav = parse_wav(&bytes).expect("LIST is skipped");
    assert_eq!(wav.samples, [1, -2, 3]);
}

#[test]
fn streaming_size_fields_and_truncation_are_tolerated() {
    let mut bytes = Vec::new();
    write_wav_into(SampleRate::HZ_8000, 2, &[1, 2, 3, 4, 5, 6], &mut bytes);
    // A streaming writer never came back to fill in the sizes.
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    bytes[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    // And the recording was cut mid-frame.
    bytes.truncate(bytes.len() - 3);
    let wav = parse_wav(&bytes).expect("sizes past the end are clamped");
    assert_eq!(wav.samples, [1, 2, 3, 4]);
    assert_eq!(wav.to_mono(), [1, 3]);
}

#[test]
fn rejects_what_is_not_pcm16() {
    assert_eq!(
        parse_wav(b"OggS\0\0\0\0").err(),
        Some(AudioError::NotWav {
            found: b"OggS\0\0\0\0".to_vec()
        })
    );

    let mut float = Vec::new();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::new(Cursor::new(&mut float), spec).expect("writer");
    writer.write_sample(0.5f32).expect("write");
    writer.finalize().expect("finalize");
    assert_eq!(
        parse_wav(&float).err(),
        Some(AudioError::UnsupportedFormat {
            format_tag: 3,
            bits_per_sample: 32
        })
    );

    // μ-law WAV: format tag 7, 8 bits.
    let mut ulaw = wav_header(SampleRate::HZ_8000, 1, 8, 2).to_vec();
    ulaw[20..22].copy_from_slice(&7u16.to_le_bytes());
    ulaw.extend_from_slice(&[0xFF, 0xFF]);
    assert_eq!(
        parse_wav(&ulaw).err(),
        Some(AudioError::UnsupportedFormat {
            format_tag: 7,
            bits_per_sample: 8
        })
    );

    let header_only = wav_header(SampleRate::HZ_8000, 1, 16, 0);
    assert_eq!(
        parse_wav(&header_only[..36]).err(),
        Some(AudioError::MalformedWav {
            reason: "no data chunk"
        })
    );
}

#[test]
fn extensible_pcm16_is_accepted() {
    // hound writes WAVE_FORMAT_EXTENSIBLE for more than two channels.
    let samples: Vec<i16> = (0..30).collect();
    let wav = parse_wav(&hound_wav(48_000, 3, &samples)).expect("extensible PCM16");
    assert_eq!((wav.channels, wav.frames()), (3, 10));
    assert_eq!(wav.samples, samples);
}

#[test]
fn interleaver_aligns_both_sides_on_the_clock() {
    let mut rec = StereoInterleaver::new();
    assert_eq!(rec.push(Side::Caller, 0, &[1, 2, 3, 4]), 0);
    // The agent starts speaking two samples in.
    assert_eq!(rec.push(Side::Agent, 2, &[10, 20, 30, 40]), 0);
    let mut out = Vec::new();
    assert_eq!(rec.drain_until(3, &mut out), 3);
    assert_eq!(out, [1, 0, 2, 0, 3, 10]);
    // A caller packet after a gap (lost packets) lands at its own time.
    rec.push(Side::Caller, 7, &[8]);
    assert_eq!(rec.end(), 8);
    assert_eq!(rec.finish(&mut out), 5);
    assert_eq!(out, [1, 0, 2, 0, 3, 10, 4, 20, 0, 30, 0, 40, 0, 0, 8, 0]);
    assert_eq!(rec.drained(), 8);
}

#[test]
fn interleaver_mixes_overlaps_drops_late_audio_and_truncates() {
    let mut rec = StereoInterleaver::new();
    rec.push(Side::Agent, 0, &[100, 100, 100]);
    rec.push(Side::Agent, 1, &[1, i16::MAX]);
    let mut out = Vec::new();
    rec.drain_until(2, &mut out);
    assert_eq!(out, [0, 100, 0, 101]);
    // Two of these three samples fall before what was already written.
    assert_eq!(rec.push(Side::Caller, 0, &[5, 6, 7]), 2);
    // Barge-in: agent audio from position 2 on never played.
    rec.push(Side::Agent, 3, &[9, 9]);
    rec.truncate(Side::Agent, 2);
    rec.finish(&mut out);
    assert_eq!(out, [0, 100, 0, 101, 7, 0]);
}

proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_wav(&bytes);
        let mut with_magic = b"RIFF\0\0\0\0WAVE".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = parse_wav(&with_magic);
    }

    #[test]
    fn write_then_parse_round_trips(
        rate in prop::sample::select(SampleRate::RESAMPLABLE.to_vec()),
        channels in 1u16..4,
        frames in prop::collection::vec(any::<i16>(), 0..300),
    ) {
        let samples: Vec<i16> = frames.iter().flat_map(|&s| std::iter::repeat_n(s, usize::from(channels))).collect();
        let mut bytes = Vec::new();
        write_wav_into(rate, channels, &samples, &mut bytes);
        let wav = parse_wav(&bytes).expect("our own file parses");
        prop_assert_eq!(wav.sample_rate, rate);
        prop_assert_eq!(wav.channels, channels);
        prop_assert_eq!(wav.to_mono(), frames);
        prop_assert_eq!(wav.samples, samples);
    }

    #[test]
    fn each_side_comes_back_out_of_its_channel(
        caller in prop::collection::vec(any::<i16>(), 0..200),
        agent in prop::collection::vec(any::<i16>(), 0..200),
        caller_start in 0u64..100,
        agent_start in 0u64..100,
        drain_step in 1u64..50,
    ) {
        let mut rec = StereoInterleaver::new();
        prop_assert_eq!(rec.push(Side::Caller, caller_start, &caller), 0);
        prop_assert_eq!(rec.push(Side::Agent, agent_start, &agent), 0);
        let end = rec.end();
        let mut out = Vec::new();
        while rec.drained() < end {
            let until = (rec.drained() + drain_step).min(end);
            rec.drain_until(until, &mut out);
        }
        prop_assert_eq!(out.len() as u64, end * 2);
        let place = |start: u64, samples: &[i16]| {
            let mut track = vec![0i16; end as usize];
            if samples.is_empty() {
                // An empty push places nothing, not even a gap.
                return track;
            }
            track[start as usize..start as usize + samples.len()].copy_from_slice(samples);
            track
        };
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        let right: Vec<i16> = out.iter().skip(1).step_by(2).copied().collect();
        prop_assert_eq!(left, place(caller_start, &caller));
        prop_assert_eq!(right, place(agent_start, &agent));
    }
}

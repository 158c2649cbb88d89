//! `audio::parse_wav` on arbitrary bytes (uploaded fixtures, `voxgate call
//! FILE.wav`).
//!
//! Never panics and never returns more samples than the input holds; a parsed
//! file has at least one channel, whole sample frames and a valid rate, and
//! survives `write_wav_into` → `parse_wav` unchanged. Errors render a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxgate_core::audio::{AudioError, MAX_SAMPLE_RATE_HZ, parse_wav, write_wav_into};

fuzz_target!(|data: &[u8]| {
    match parse_wav(data) {
        Err(err) => {
            assert!(!err.to_string().is_empty(), "{err:?}");
            if let AudioError::NotWav { found } = &err {
                assert!(found.len() <= 12 && data.starts_with(found), "{err:?}");
            }
        }
        Ok(wav) => {
            let channels = usize::from(wav.channels);
            assert!(channels >= 1);
            assert!(wav.sample_rate.hz() >= 1 && wav.sample_rate.hz() <= MAX_SAMPLE_RATE_HZ);
            assert_eq!(wav.samples.len() % channels, 0, "partial sample frame kept");
            assert!(
                wav.samples.len() * 2 + 44 <= data.len(),
                "more samples than bytes"
            );
            assert_eq!(wav.frames() * channels, wav.samples.len());
            assert_eq!(wav.to_mono().len(), wav.frames());

            let mut out = Vec::new();
            write_wav_into(wav.sample_rate, wav.channels, &wav.samples, &mut out);
            let again = parse_wav(&out).expect("a written WAV parses");
            assert_eq!(again, wav, "write/parse round trip changed the file");
        }
    }
});

//! The cloud vendors' server messages, as one arbitrary UTF-8 frame fed to
//! each decoder: Deepgram's results, OpenAI Realtime's events (GA and beta
//! names), ElevenLabs' audio messages in μ-law and in PCM.
//!
//! Never panics: a frame a vendor could send, malformed or not, is either
//! understood or an error, never a crash of the call.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxgate_providers::cloud::deepgram::messages::decode;
use voxgate_providers::cloud::elevenlabs::OutputFormat;
use voxgate_providers::cloud::elevenlabs::messages::Reply;
use voxgate_providers::cloud::openai::realtime::messages::parse_server_event;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = decode(text);
    let _ = parse_server_event(text);
    for format in [OutputFormat::Ulaw8000, OutputFormat::Pcm16000] {
        let mut reply = Reply::new(format);
        // Twice: the second frame continues the first (odd PCM bytes).
        let _ = reply.on_text(text);
        let _ = reply.on_text(text);
    }
});

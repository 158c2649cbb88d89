//! The providers every call of this server shares, and the apology said when
//! one of them fails.

use std::fmt;
use std::sync::Arc;

use voxgate_core::audio::{Resampler, SampleRate};
use voxgate_providers::{
    EndOfTurnModel, LanguageModel, ProviderError, SpeechToText, TaskScope, TextToSpeech, VadModel,
};

/// What the agent says before hanging up when a provider fails mid-call.
pub const APOLOGY: &str = "I'm sorry, something went wrong on my side. Please call again later.";

/// One set of providers, shared by every call (models are loaded once).
#[derive(Clone)]
pub struct Providers {
    /// Voice activity.
    pub vad: Arc<dyn VadModel>,
    /// Semantic end of turn; without it the silence fallback decides.
    pub end_of_turn: Option<Arc<dyn EndOfTurnModel>>,
    /// Speech to text.
    pub stt: Arc<dyn SpeechToText>,
    /// The language model.
    pub llm: Arc<dyn LanguageModel>,
    /// Text to speech.
    pub tts: Arc<dyn TextToSpeech>,
    /// [`APOLOGY`], synthesized at start-up, at the TTS rate.
    apology: Arc<[i16]>,
}

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Providers")
            .field("end_of_turn", &self.end_of_turn.is_some())
            .field("tts_rate", &self.tts.sample_rate())
            .field("apology_samples", &self.apology.len())
            .finish_non_exhaustive()
    }
}

impl Providers {
    /// Bundles the providers and synthesizes the apology now, in `scope`
    /// (the server's): when a provider fails mid-call, TTS may be the one
    /// that failed.
    ///
    /// # Errors
    /// The TTS cannot say the apology, or speaks at a rate that cannot be
    /// resampled to a carrier's.
    pub async fn new(
        vad: Arc<dyn VadModel>,
        end_of_turn: Option<Arc<dyn EndOfTurnModel>>,
        stt: Arc<dyn SpeechToText>,
        llm: Arc<dyn LanguageModel>,
        tts: Arc<dyn TextToSpeech>,
        scope: &TaskScope,
    ) -> Result<Providers, ProviderError> {
        let rate = SampleRate::new(tts.sample_rate()).map_err(|e| load_error("tts", &e))?;
        if !rate.is_resamplable() {
            return Err(load_error("tts", &format!("{rate} cannot be resampled")));
        }
        let mut chunks = tts.synthesize(APOLOGY.to_owned(), scope);
        let mut apology = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            apology.extend(chunk?);
        }
        if apology.is_empty() {
            return Err(load_error("tts", &"the apology synthesized to no audio"));
        }
        Ok(Providers {
            vad,
            end_of_turn,
            stt,
            llm,
            tts,
            apology: apology.into(),
        })
    }

    /// The TTS's output rate (checked resamplable in [`Providers::new`]).
    pub fn tts_rate(&self) -> SampleRate {
        SampleRate::new(self.tts.sample_rate()).unwrap_or(SampleRate::HZ_22050)
    }

    /// The apology at `rate`.
    pub fn apology_at(&self, rate: SampleRate) -> Vec<i16> {
        let from = self.tts_rate();
        if from == rate {
            return self.apology.to_vec();
        }
        let mut out = Vec::with_capacity(self.apology.len());
        match Resampler::new(from, rate) {
            Ok(mut resampler) => {
                resampler.process(&self.apology, &mut out);
                resampler.flush(&mut out);
            }
            Err(e) => tracing::error!(error = %e, "cannot resample the apology"),
        }
        out
    }
}

fn load_error(what: &str, reason: &dyn fmt::Display) -> ProviderError {
    ProviderError::Load {
        what: what.to_owned(),
        reason: reason.to_string(),
    }
}

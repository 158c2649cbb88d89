//! ElevenLabs streaming text to speech over the `stream-input` WebSocket.
//!
//! Each sentence gets a socket of its own: the engine synthesizes one
//! sentence at a time and drops the receiver on a barge-in, and closing
//! the socket is how the vendor is told to stop. A handshake costs a
//! round trip or two, so [`ElevenLabsTts`] keeps one spare socket already
//! connected and initialised, hands it to the next sentence and opens
//! another in the background. The vendor closes a socket that hears no
//! text for `inactivity_timeout` (20 s by default), so a spare is replaced
//! once it has waited [`ElevenLabsConfig::spare_max_idle`].
//!
//! [`messages`] holds the protocol as plain data; `client` and `spare` do
//! the IO.

mod client;
pub mod messages;
mod spare;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use client::ElevenLabsTts;

use crate::cloud::{BaseUrl, check_status};
use crate::{ProviderError, Secret};

/// The vendor's name, for its [`Supervisor`](crate::supervisor::Supervisor)
/// and in errors.
pub const VENDOR: &str = "elevenlabs";

/// The default base URL (`ELEVENLABS_BASE_URL` overrides it).
pub const DEFAULT_BASE_URL: &str = "https://api.elevenlabs.io";

/// The environment variables that may hold the API key, in order of
/// preference: the one ElevenLabs' SDKs read, then LiveKit's.
pub const API_KEY_VARS: [&str; 2] = ["ELEVENLABS_API_KEY", "ELEVEN_API_KEY"];

/// A low-latency model suited to phone calls.
pub const DEFAULT_MODEL_ID: &str = "eleven_flash_v2_5";

/// How long `check` waits for the vendor.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The API key from the first of [`API_KEY_VARS`] that `lookup` finds set
/// and not blank.
pub fn api_key_from_env(lookup: impl Fn(&str) -> Option<String>) -> Option<Secret> {
    API_KEY_VARS.iter().find_map(|name| {
        lookup(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .map(Secret::new)
    })
}

/// A setting ElevenLabs would not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not 20 letters and digits.
    #[error(
        "invalid ElevenLabs voice id {0:?}: expected 20 letters and digits, such as 21m00Tcm4TlvDq8ikWAM"
    )]
    VoiceId(String),
    /// Not an output format voxgate can decode.
    #[error(
        "unsupported ElevenLabs output format {0:?}: use ulaw_8000 or pcm_8000, pcm_16000, pcm_22050, pcm_24000, pcm_44100, pcm_48000"
    )]
    OutputFormat(String),
}

/// A voice id: 20 ASCII letters and digits (`21m00Tcm4TlvDq8ikWAM`).
///
/// That is the form every id seen so far has, not a documented format, so
/// nothing more is checked; [`check`] asks the vendor whether it exists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VoiceId(String);

impl VoiceId {
    /// Checks the form of `text`.
    ///
    /// # Errors
    /// [`ConfigError::VoiceId`], naming `text`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.len() == 20 && text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(ConfigError::VoiceId(text.to_owned()))
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VoiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for VoiceId {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// The audio the vendor sends. Only formats voxgate decodes without a
/// codec library: μ-law for phone calls, or raw little-endian PCM16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// `ulaw_8000`: G.711 μ-law at 8 kHz, what carriers carry.
    Ulaw8000,
    /// `pcm_8000`.
    Pcm8000,
    /// `pcm_16000`.
    Pcm16000,
    /// `pcm_22050`.
    Pcm22050,
    /// `pcm_24000`.
    Pcm24000,
    /// `pcm_44100`.
    Pcm44100,
    /// `pcm_48000`.
    Pcm48000,
}

impl OutputFormat {
    const ALL: [Self; 7] = [
        Self::Ulaw8000,
        Self::Pcm8000,
        Self::Pcm16000,
        Self::Pcm22050,
        Self::Pcm24000,
        Self::Pcm44100,
        Self::Pcm48000,
    ];

    /// The vendor's name for it (the `output_format` query parameter).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ulaw8000 => "ulaw_8000",
            Self::Pcm8000 => "pcm_8000",
            Self::Pcm16000 => "pcm_16000",
            Self::Pcm22050 => "pcm_22050",
            Self::Pcm24000 => "pcm_24000",
            Self::Pcm44100 => "pcm_44100",
            Self::Pcm48000 => "pcm_48000",
        }
    }

    /// Its sample rate in hertz.
    pub fn sample_rate(self) -> u32 {
        match self {
            Self::Ulaw8000 | Self::Pcm8000 => 8_000,
            Self::Pcm16000 => 16_000,
            Self::Pcm22050 => 22_050,
            Self::Pcm24000 => 24_000,
            Self::Pcm44100 => 44_100,
            Self::Pcm48000 => 48_000,
        }
    }

    /// Parses the vendor's name.
    ///
    /// # Errors
    /// [`ConfigError::OutputFormat`] for MP3, Opus or an unknown name.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::ALL
            .into_iter()
            .find(|format| format.as_str() == text)
            .ok_or_else(|| ConfigError::OutputFormat(text.to_owned()))
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OutputFormat {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// How the voice sounds (the vendor's `voice_settings`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct VoiceSettings {
    /// 0 to 1: lower is more expressive, higher more even.
    pub stability: f64,
    /// 0 to 1: how closely to match the original voice.
    pub similarity_boost: f64,
    /// 0.7 to 1.2: speaking rate.
    pub speed: f64,
}

impl Default for VoiceSettings {
    /// The vendor's defaults.
    fn default() -> Self {
        Self {
            stability: 0.5,
            similarity_boost: 0.75,
            speed: 1.0,
        }
    }
}

/// Where ElevenLabs is, which voice to use, and how the sockets are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ElevenLabsConfig {
    /// `ELEVENLABS_BASE_URL`, [`DEFAULT_BASE_URL`] by default; the
    /// WebSocket URL is derived from it (https→wss).
    pub base_url: BaseUrl,
    /// See [`api_key_from_env`]; sent as the `xi-api-key` header.
    pub api_key: Secret,
    /// The voice.
    pub voice_id: VoiceId,
    /// [`DEFAULT_MODEL_ID`] by default.
    pub model_id: String,
    /// [`OutputFormat::Ulaw8000`] by default, for phone calls.
    pub output_format: OutputFormat,
    /// Sent when a socket is initialised.
    pub voice_settings: VoiceSettings,
    /// Characters buffered before each successive generation; the vendor
    /// accepts 1 to 4 values from 50 to 500. Sentences are flushed whole,
    /// so it matters only for long ones. Empty leaves the vendor's.
    pub chunk_length_schedule: Vec<u32>,
    /// How long the vendor keeps a socket that hears no text (whole
    /// seconds, 1 to 180; 20 by default), sent as `inactivity_timeout`.
    pub inactivity_timeout: Duration,
    /// Whether to keep a spare socket connected ahead of the next
    /// sentence.
    pub prewarm: bool,
    /// How long a spare may wait unused before it is replaced; keep it
    /// well under `inactivity_timeout` (15 s by default).
    pub spare_max_idle: Duration,
    /// How long a sentence may wait for the vendor's next message before
    /// it fails (5 s by default).
    pub response_timeout: Duration,
}

impl ElevenLabsConfig {
    /// A configuration with the defaults above, checking the voice id's
    /// form.
    ///
    /// # Errors
    /// [`ConfigError::VoiceId`], naming the bad id.
    pub fn new(base_url: BaseUrl, api_key: Secret, voice_id: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url,
            api_key,
            voice_id: VoiceId::parse(voice_id)?,
            model_id: DEFAULT_MODEL_ID.to_owned(),
            output_format: OutputFormat::Ulaw8000,
            voice_settings: VoiceSettings::default(),
            chunk_length_schedule: vec![120, 160, 250, 290],
            inactivity_timeout: Duration::from_secs(20),
            prewarm: true,
            spare_max_idle: Duration::from_secs(15),
            response_timeout: Duration::from_secs(5),
        })
    }

    /// The `stream-input` WebSocket URL with its query.
    pub fn stream_url(&self) -> String {
        let seconds = self.inactivity_timeout.as_secs().clamp(1, 180);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("model_id", &self.model_id)
            .append_pair("output_format", self.output_format.as_str())
            .append_pair("inactivity_timeout", &seconds.to_string())
            .finish();
        self.base_url.websocket(&format!(
            "/v1/text-to-speech/{}/stream-input?{query}",
            self.voice_id
        ))
    }
}

/// Checks at start-up that the key works and the voice exists:
/// `GET /v1/voices/{voice_id}`.
///
/// # Errors
/// [`ProviderError::Rejected`] for a refused key (401) or an unknown voice
/// (named); otherwise as [`check_status`] maps the status, or
/// [`ProviderError::Unavailable`] when the vendor cannot be reached.
pub async fn check(config: &ElevenLabsConfig) -> Result<(), ProviderError> {
    let unavailable = |error: reqwest::Error| ProviderError::Unavailable {
        provider: VENDOR,
        reason: error.to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(CHECK_TIMEOUT)
        .build()
        .map_err(unavailable)?;
    let mut key = reqwest::header::HeaderValue::from_str(config.api_key.expose())
        .map_err(|_| invalid_key())?;
    key.set_sensitive(true);
    let response = client
        .get(
            config
                .base_url
                .join(&format!("/v1/voices/{}", config.voice_id)),
        )
        .header("xi-api-key", key)
        .send()
        .await
        .map_err(unavailable)?;
    let (status, retry_after, body) = crate::cloud::status_parts(response).await;
    voice_lookup_result(&config.voice_id, status, retry_after.as_deref(), &body)
}

/// The error a key that cannot even be sent as a header gets.
fn invalid_key() -> ProviderError {
    ProviderError::Load {
        what: "the ElevenLabs API key".to_owned(),
        reason: "it is not a valid HTTP header value".to_owned(),
    }
}

/// What the answer to a voice lookup means. The API has answered an
/// unknown voice with 404 and, in older versions, with 400 and a
/// `voice_not_found` or `voice_does_not_exist` status.
fn voice_lookup_result(
    voice_id: &VoiceId,
    status: u16,
    retry_after: Option<&str>,
    body: &str,
) -> Result<(), ProviderError> {
    let unknown_voice = body.contains("voice_not_found") || body.contains("voice_does_not_exist");
    match status {
        404 => {}
        400 if unknown_voice => {}
        401 => {
            return Err(ProviderError::Rejected {
                provider: VENDOR,
                status,
                reason: format!("the API key was refused: {}", body.trim()),
            });
        }
        _ => return check_status(VENDOR, status, retry_after, body),
    }
    Err(ProviderError::Rejected {
        provider: VENDOR,
        status,
        reason: format!("unknown voice id {voice_id}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice() -> VoiceId {
        VoiceId::parse("21m00Tcm4TlvDq8ikWAM").expect("a valid id")
    }

    #[test]
    fn voice_ids_are_twenty_letters_and_digits() {
        assert!(VoiceId::parse("JBFqnCBsd6RMkjVDRZzb").is_ok());
        for bad in [
            "",
            "21m00Tcm4TlvDq8ikWA",
            "21m00Tcm4TlvDq8ikWAMx",
            "21m00Tcm4TlvDq8ik-AM",
        ] {
            let error = VoiceId::parse(bad).expect_err("rejected");
            assert!(error.to_string().contains(&format!("{bad:?}")), "{error}");
        }
    }

    #[test]
    fn output_formats_round_trip_their_names() {
        for format in OutputFormat::ALL {
            assert_eq!(OutputFormat::parse(format.as_str()), Ok(format));
        }
        assert_eq!(OutputFormat::Ulaw8000.sample_rate(), 8_000);
        assert_eq!(OutputFormat::Pcm22050.sample_rate(), 22_050);
        assert!(OutputFormat::parse("mp3_44100").is_err());
    }

    #[test]
    fn the_stream_url_carries_model_format_and_timeout() {
        let base = BaseUrl::parse("https://api.elevenlabs.io").expect("valid");
        let mut config =
            ElevenLabsConfig::new(base, Secret::new("k"), "21m00Tcm4TlvDq8ikWAM").expect("valid");
        config.inactivity_timeout = Duration::from_millis(500);
        assert_eq!(
            config.stream_url(),
            "wss://api.elevenlabs.io/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM/stream-input\
             ?model_id=eleven_flash_v2_5&output_format=ulaw_8000&inactivity_timeout=1"
        );
    }

    #[test]
    fn voice_lookups_name_the_unknown_voice() {
        assert!(voice_lookup_result(&voice(), 200, None, "{}").is_ok());
        let not_found = r#"{"detail":{"status":"voice_not_found","message":"A voice with the voice_id 21m00Tcm4TlvDq8ikWAM was not found."}}"#;
        for status in [404, 400] {
            let error =
                voice_lookup_result(&voice(), status, None, not_found).expect_err("unknown");
            assert!(matches!(error, ProviderError::Rejected { .. }));
            assert!(
                error
                    .to_string()
                    .contains("unknown voice id 21m00Tcm4TlvDq8ikWAM")
            );
        }
        assert!(matches!(
            voice_lookup_result(&voice(), 401, None, "invalid_api_key"),
            Err(ProviderError::Rejected { status: 401, .. })
        ));
        assert!(matches!(
            voice_lookup_result(&voice(), 503, None, ""),
            Err(ProviderError::Unavailable { .. })
        ));
    }
}

//! Configuration: defaults, then a TOML file, then `VOXGATE_*` environment
//! variables, then command-line flags. Every problem found is reported, one
//! line each, instead of stopping at the first.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use voxgate_core::heartbeat::HeartbeatConfig;
use voxgate_core::outbound::AllowedHosts;
use voxgate_providers::Secret;
use voxgate_providers::cloud::BaseUrl;

/// Everything the server needs to know before it takes a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address the one HTTP/WebSocket listener binds.
    pub listen: SocketAddr,
    /// Public base URL of this server (used in TwiML); the request's Host
    /// header is used when unset.
    pub public_url: Option<PublicUrl>,
    /// Where call records go: a SQLite file or a `postgres://` URL.
    pub database_url: String,
    /// WebSocket heartbeat and limits, for every endpoint.
    pub ws: WsConfig,
    /// How long live calls may go on after SIGTERM before they are ended.
    pub drain_timeout: Duration,
    /// Most calls handled at once; more are refused with 503.
    pub max_concurrent_calls: usize,
    /// How many call events the bus keeps for slow monitors before they lag.
    pub events_buffer: usize,
    /// Outbound queue per connection (bulk lane); overflow is reported as `lagged`.
    pub connection_queue: usize,
    /// Where call recordings (one WAV per call) are written; relative
    /// paths are from the working directory. Created on the first recording.
    pub recordings_dir: PathBuf,
    /// Twilio's REST API and webhook signatures.
    pub twilio: TwilioConfig,
    /// Which providers the agent uses, and how to reach them.
    pub agent: AgentConfig,
    /// Who may use the server: the admin token, origins and hosts.
    pub access: AccessConfig,
    /// Limits on outbound calls placed through the API.
    pub outbound: OutboundConfig,
    /// Bounds on what untrusted peers may hold open.
    pub limits: LimitsConfig,
    /// Where personas' HTTP tools may send requests.
    pub tools: ToolsConfig,
}

/// Personas' HTTP tools (`[tools]`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolsConfig {
    /// `VOXGATE_TOOLS_ALLOWED_HOSTS`: hosts tools may call even though
    /// they are loopback, private or otherwise internal (comma-separated
    /// names or addresses). Empty by default: tools reach only the public
    /// internet.
    pub allowed_hosts: AllowedHosts,
}

/// Who may use the server (`[auth]`; see [`crate::access`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessConfig {
    /// `VOXGATE_ADMIN_TOKEN`: the bearer token of `/api/*`, `/events`,
    /// `/browser-stream` and `/metrics`. Required when the server is
    /// reachable from outside.
    pub admin_token: Option<Secret>,
    /// `VOXGATE_ALLOWED_ORIGINS`: browser origins (`https://host[:port]`)
    /// allowed besides the server's own.
    pub allowed_origins: Vec<String>,
    /// `VOXGATE_ALLOWED_HOSTS`: `Host` names served besides the public
    /// URL's, the listen address's and localhost.
    pub allowed_hosts: Vec<String>,
    /// How long a console login lasts.
    pub session_ttl: Duration,
    /// How long a browser call token may wait to be used.
    pub call_token_ttl: Duration,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            admin_token: None,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            session_ttl: Duration::from_secs(12 * 3600),
            call_token_ttl: Duration::from_secs(5 * 60),
        }
    }
}

/// Limits on `POST /api/calls` (`[outbound]`): toll fraud is the costliest
/// abuse of a phone agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundConfig {
    /// Calls placed per minute, at most.
    pub max_per_minute: u32,
    /// When not empty, destinations must start with one of these (`+1`).
    pub allowed_prefixes: Vec<String>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            max_per_minute: 10,
            allowed_prefixes: Vec::new(),
        }
    }
}

/// Bounds on connections and what they may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// A call socket that has not sent `start` by then is closed.
    pub start_timeout: Duration,
    /// Time to read a request's headers, idle keep-alive waits included.
    pub header_timeout: Duration,
    /// Open TCP connections, all peers.
    pub max_connections: usize,
    /// Open TCP connections from one IP address.
    pub max_connections_per_ip: usize,
    /// New TCP connections per second from one IP address (the burst is
    /// twice this).
    pub connections_per_ip_per_second: u32,
    /// Open `/events` connections.
    pub events_connections: usize,
    /// Subscriptions per `/events` connection.
    pub events_subscriptions: usize,
    /// Monitor sessions parked for a reconnect.
    pub parked_sessions: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            start_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            max_connections: 4096,
            max_connections_per_ip: 1024,
            connections_per_ip_per_second: 100,
            events_connections: 256,
            events_subscriptions: 64,
            parked_sessions: 1024,
        }
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The agent's providers: local models by default, cloud vendors by
/// configuration (`VOXGATE_MODE`, `VOXGATE_STT`, `VOXGATE_LLM`,
/// `VOXGATE_TTS`, the vendors' keys and base URLs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentConfig {
    /// Pipeline (VAD, STT, LLM, TTS) or speech to speech.
    pub mode: AgentMode,
    /// Speech to text.
    pub stt: SttProvider,
    /// The language model.
    pub llm: LlmProvider,
    /// Text to speech.
    pub tts: TtsProvider,
    /// `VOXGATE_STT_MODEL`: the STT vendor's model (its default when unset).
    pub stt_model: Option<String>,
    /// `VOXGATE_LLM_MODEL`: the LLM vendor's model.
    pub llm_model: Option<String>,
    /// `VOXGATE_TTS_VOICE`: the TTS vendor's voice.
    pub tts_voice: Option<String>,
    /// `VOXGATE_TTS_MODEL`: the TTS vendor's model.
    pub tts_model: Option<String>,
    /// `VOXGATE_REALTIME_MODEL`: the speech-to-speech model.
    pub realtime_model: Option<String>,
    /// OpenAI or any compatible server (`OPENAI_API_KEY`, `OPENAI_BASE_URL`).
    pub openai: VendorAccess,
    /// Deepgram (`DEEPGRAM_API_KEY`, `DEEPGRAM_BASE_URL`).
    pub deepgram: VendorAccess,
    /// ElevenLabs (`ELEVENLABS_API_KEY` or `ELEVEN_API_KEY`,
    /// `ELEVENLABS_BASE_URL`).
    pub elevenlabs: VendorAccess,
}

/// How to reach one vendor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VendorAccess {
    /// The API key.
    pub api_key: Option<Secret>,
    /// Its base URL; the vendor's public one when unset.
    pub base_url: Option<BaseUrl>,
}

/// How the agent talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentMode {
    /// VAD, speech to text, language model, text to speech.
    #[default]
    Pipeline,
    /// OpenAI Realtime: caller audio straight to a speech-to-speech model.
    Realtime,
}

/// Which speech to text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SttProvider {
    /// Whisper on this machine.
    #[default]
    Local,
    /// Deepgram live streaming.
    Deepgram,
    /// OpenAI transcription, per turn.
    OpenAi,
}

/// Which language model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LlmProvider {
    /// SmolLM2 on this machine.
    #[default]
    Local,
    /// Any OpenAI-compatible Chat Completions server.
    OpenAi,
}

/// Which text to speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtsProvider {
    /// Piper on this machine.
    #[default]
    Local,
    /// ElevenLabs streaming.
    ElevenLabs,
    /// OpenAI speech.
    OpenAi,
}

/// Parses one of `names` (case-insensitive) into its value.
fn choose<T: Copy>(value: &str, names: &[(&str, T)]) -> Result<T, String> {
    let value = value.trim().to_ascii_lowercase();
    names
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, choice)| *choice)
        .ok_or_else(|| {
            let known: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
            format!("{value:?} is not one of {}", known.join(", "))
        })
}

fn optional(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn secret(value: &str) -> Result<Option<Secret>, String> {
    Ok(optional(value).map(Secret::new))
}

fn base_url(value: &str) -> Result<Option<BaseUrl>, String> {
    optional(value)
        .map(|v| BaseUrl::parse(&v).map_err(|e| e.to_string()))
        .transpose()
}

/// Twilio settings: `TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN` and
/// `TWILIO_BASE_URL` as Twilio's SDKs name them (or `VOXGATE_TWILIO_*`, or
/// `[twilio]` in the file).
#[derive(Debug, Clone, PartialEq)]
pub struct TwilioConfig {
    /// The account whose calls the REST API places and controls.
    pub account_sid: Option<String>,
    /// The account's auth token: the REST API's password, and the key
    /// Twilio signs its webhooks with. When set, `/twiml` and
    /// `/twilio/status` accept only requests with a valid
    /// `X-Twilio-Signature`.
    pub auth_token: Option<Secret>,
    /// Where the REST API is (`https://api.twilio.com`; tests use a fake).
    pub base_url: BaseUrl,
}

/// Twilio's REST API.
pub const DEFAULT_TWILIO_BASE_URL: &str = "https://api.twilio.com";

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            account_sid: None,
            auth_token: None,
            base_url: BaseUrl::parse(DEFAULT_TWILIO_BASE_URL)
                .expect("the default Twilio base URL is valid"),
        }
    }
}

/// WebSocket settings shared by all endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsConfig {
    /// Server pings this often; a peer silent for the idle timeout is closed.
    pub heartbeat: HeartbeatConfig,
    /// Largest message accepted; larger ones close the connection with 1009.
    pub max_message_bytes: usize,
    /// How long a disconnected monitor session is kept for resumption.
    pub resume_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            database_url: "voxgate.db".to_owned(),
            ws: WsConfig {
                heartbeat: HeartbeatConfig::default(),
                max_message_bytes: 1024 * 1024,
                resume_grace: Duration::from_secs(30),
            },
            drain_timeout: Duration::from_secs(30),
            max_concurrent_calls: 1000,
            events_buffer: 1024,
            connection_queue: 256,
            recordings_dir: PathBuf::from("recordings"),
            twilio: TwilioConfig::default(),
            agent: AgentConfig::default(),
            access: AccessConfig::default(),
            outbound: OutboundConfig::default(),
            limits: LimitsConfig::default(),
            tools: ToolsConfig::default(),
        }
    }
}

/// The public base URL, split into what TwiML needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// Whether the server is reached over TLS (https/wss).
    pub secure: bool,
    /// Host and optional port.
    pub authority: String,
    /// Path prefix without a trailing slash ("" for none).
    pub path_prefix: String,
}

impl PublicUrl {
    /// Parses `https://host[:port][/prefix]` (also http, ws, wss).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| format!("{raw:?} is not a URL (expected https://host)"))?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "https" | "wss" => true,
            "http" | "ws" => false,
            other => return Err(format!("scheme {other:?} is not http, https, ws or wss")),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
            return Err(format!("{raw:?} has no usable host"));
        }
        if path.contains(['?', '#']) {
            return Err(format!("{raw:?} must not have a query or fragment"));
        }
        let path = path.trim_end_matches('/');
        Ok(Self {
            secure,
            authority: authority.to_owned(),
            path_prefix: if path.is_empty() {
                String::new()
            } else {
                format!("/{path}")
            },
        })
    }

    /// The WebSocket URL of `path` on this server (wss for TLS, else ws).
    pub fn ws_url(&self, path: &str) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{}{path}", self.authority, self.path_prefix)
    }

    /// The HTTP URL of `path` (with any query) on this server (https for
    /// TLS, else http): what Twilio requests, and signs.
    pub fn http_url(&self, path: &str) -> String {
        let scheme = if self.secure { "https" } else { "http" };
        format!("{scheme}://{}{}{path}", self.authority, self.path_prefix)
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The setting, as the user wrote it (env var name, `[section] key`, flag).
    pub setting: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

/// Every problem found while loading the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Settings given on the command line; they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
}

/// Shortest admin token accepted: a guessable token is no protection.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

type Apply = fn(&mut Config, &str) -> Result<(), String>;

/// One setting: where it lives in the file, and how to apply a value.
struct Setting {
    section: Option<&'static str>,
    key: &'static str,
    apply: Apply,
}

impl Setting {
    /// `VOXGATE_<SECTION>_<KEY>`, the architecture's naming rule.
    fn env_name(&self) -> String {
        let mut name = String::from("VOXGATE_");
        if let Some(section) = self.section {
            name.push_str(&section.to_ascii_uppercase());
            name.push('_');
        }
        name.push_str(&self.key.to_ascii_uppercase());
        name
    }

    /// The vendor's own variable for this setting, read when the
    /// `VOXGATE_` one is unset: Twilio's SDKs and docs name these.
    /// The architecture's short names (`VOXGATE_STT`) are read the same way.
    fn vendor_env_names(&self) -> &'static [&'static str] {
        match (self.section, self.key) {
            (Some("auth"), "admin_token") => &["VOXGATE_ADMIN_TOKEN"],
            (Some("auth"), "allowed_origins") => &["VOXGATE_ALLOWED_ORIGINS"],
            (Some("auth"), "allowed_hosts") => &["VOXGATE_ALLOWED_HOSTS"],
            (Some("twilio"), "account_sid") => &["TWILIO_ACCOUNT_SID"],
            (Some("twilio"), "auth_token") => &["TWILIO_AUTH_TOKEN"],
            (Some("twilio"), "base_url") => &["TWILIO_BASE_URL"],
            (Some("agent"), "mode") => &["VOXGATE_MODE"],
            (Some("stt"), "provider") => &["VOXGATE_STT"],
            (Some("llm"), "provider") => &["VOXGATE_LLM"],
            (Some("tts"), "provider") => &["VOXGATE_TTS"],
            (Some("openai"), "api_key") => &["OPENAI_API_KEY"],
            (Some("openai"), "base_url") => &["OPENAI_BASE_URL"],
            (Some("deepgram"), "api_key") => &["DEEPGRAM_API_KEY"],
            (Some("deepgram"), "base_url") => &["DEEPGRAM_BASE_URL"],
            (Some("elevenlabs"), "api_key") => &["ELEVENLABS_API_KEY", "ELEVEN_API_KEY"],
            (Some("elevenlabs"), "base_url") => &["ELEVENLABS_BASE_URL"],
            _ => &[],
        }
    }
}

const SETTINGS: &[Setting] = &[
    Setting {
        section: None,
        key: "public_url",
        apply: |c, v| {
            c.public_url = Some(PublicUrl::parse(v)?);
            Ok(())
        },
    },
    Setting {
        section: Some("server"),
        key: "listen",
        apply: |c, v| {
            c.listen = parse_listen(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("database"),
        key: "url",
        apply: |c, v| {
            if v.trim().is_empty() {
                return Err("must not be empty".into());
            }
            c.database_url = v.trim().to_owned();
            Ok(())
        },
    },
    Setting {
        section: Some("ws"),
        key: "ping_interval",
        apply: |c, v| {
            c.ws.heartbeat.ping_interval = parse_duration(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("ws"),
        key: "idle_timeout",
        apply: |c, v| {
            c.ws.heartbeat.idle_timeout = parse_duration(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("ws"),
        key: "max_message_bytes",
        apply: |c, v| {
            c.ws.max_message_bytes = parse_count(v, 1024)?;
            Ok(())
        },
    },
    Setting {
        section: Some("ws"),
        key: "resume_grace",
        apply: |c, v| {
            c.ws.resume_grace = parse_duration_allow_zero(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("drain"),
        key: "timeout",
        apply: |c, v| {
            c.drain_timeout = parse_duration_allow_zero(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("calls"),
        key: "max_concurrent",
        apply: |c, v| {
            c.max_concurrent_calls = parse_count(v, 1)?;
            Ok(())
        },
    },
    Setting {
        section: Some("calls"),
        key: "start_timeout",
        apply: |c, v| {
            c.limits.start_timeout = parse_duration(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("auth"),
        key: "admin_token",
        apply: |c, v| {
            let token = v.trim();
            if token.is_empty() {
                c.access.admin_token = None;
                return Ok(());
            }
            if token.len() < MIN_ADMIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "must be at least {MIN_ADMIN_TOKEN_LEN} printable characters without \
                     spaces (e.g. the output of `openssl rand -hex 32`)"
                ));
            }
            c.access.admin_token = Some(Secret::new(token));
            Ok(())
        },
    },
    Setting {
        section: Some("auth"),
        key: "allowed_origins",
        apply: |c, v| {
            let origins = list(v);
            for origin in &origins {
                voxgate_core::access::Origin::parse(origin).map_err(|e| e.to_string())?;
            }
            c.access.allowed_origins = origins;
            Ok(())
        },
    },
    Setting {
        section: Some("auth"),
        key: "allowed_hosts",
        apply: |c, v| {
            c.access.allowed_hosts = list(v);
            Ok(())
        },
    },
    Setting {
        section: Some("auth"),
        key: "session_ttl",
        apply: |c, v| {
            c.access.session_ttl = parse_duration(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("auth"),
        key: "call_token_ttl",
        apply: |c, v| {
            c.access.call_token_ttl = parse_duration(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("outbound"),
        key: "max_per_minute",
        apply: |c, v| {
            c.outbound.max_per_minute =
                u32::try_from(parse_count(v, 0)?).map_err(|_| "is too large".to_owned())?;
            Ok(())
        },
    },
    Setting {
        section: Some("outbound"),
        key: "allowed_prefixes",
        apply: |c, v| {
            let prefixes = list(v);
            for prefix in &prefixes {
                let digits = prefix.strip_prefix('+').unwrap_or("");
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{prefix:?} is not a prefix like +1 or +44"));
                }
            }
            c.outbound.allowed_prefixes = prefixes;
            Ok(())
        },
    },
    Setting {
        section: Some("http"),
        key: "header_timeout",
        apply: |c, v| {
            c.limits.header_timeout = parse_duration(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("http"),
        key: "max_connections",
        apply: |c, v| {
            c.limits.max_connections = parse_count(v, 1)?;
            Ok(())
        },
    },
    Setting {
        section: Some("http"),
        key: "max_connections_per_ip",
        apply: |c, v| {
            c.limits.max_connections_per_ip = parse_count(v, 1)?;
            Ok(())
        },
    },
    Setting {
        section: Some("http"),
        key: "connections_per_ip_per_second",
        apply: |c, v| {
            c.limits.connections_per_ip_per_second =
                u32::try_from(parse_count(v, 1)?).map_err(|_| "is too large".to_owned())?;
            Ok(())
        },
    },
    Setting {
        section: Some("events"),
        key: "max_connections",
        apply: |c, v| {
            c.limits.events_connections = parse_count(v, 1)?;
            Ok(())
        },
    },
    Setting {
        section: Some("events"),
        key: "max_subscriptions",
        apply: |c, v| {
            c.limits.events_subscriptions = parse_count(v, 1)?;
            Ok(())
        },
    },
    Setting {
        section: Some("events"),
        key: "max_parked_sessions",
        apply: |c, v| {
            c.limits.parked_sessions = parse_count(v, 0)?;
            Ok(())
        },
    },
    Setting {
        section: Some("events"),
        key: "buffer",
        apply: |c, v| {
            c.events_buffer = parse_count(v, 1)?;
            Ok(())
        },
    },
    Setting {
        section: Some("events"),
        key: "connection_queue",
        apply: |c, v| {
            c.connection_queue = parse_count(v, 1)?;
            Ok(())
        },
    },
    Setting {
        section: Some("recordings"),
        key: "dir",
        apply: |c, v| {
            if v.trim().is_empty() {
                return Err("must not be empty".into());
            }
            c.recordings_dir = PathBuf::from(v.trim());
            Ok(())
        },
    },
    Setting {
        section: Some("twilio"),
        key: "account_sid",
        apply: |c, v| {
            let sid = v.trim();
            // It goes into REST paths. Not checked for `AC…`: compatible
            // APIs (SignalWire) use UUIDs.
            if sid.is_empty() || !sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err("must be an account SID (letters, digits and `-`)".into());
            }
            c.twilio.account_sid = Some(sid.to_owned());
            Ok(())
        },
    },
    Setting {
        section: Some("twilio"),
        key: "auth_token",
        apply: |c, v| {
            // Never echo the value: it is a secret.
            if v.trim().is_empty() {
                return Err("must not be empty".into());
            }
            c.twilio.auth_token = Some(Secret::new(v.trim()));
            Ok(())
        },
    },
    Setting {
        section: Some("twilio"),
        key: "base_url",
        apply: |c, v| {
            c.twilio.base_url = BaseUrl::parse(v.trim()).map_err(|e| e.to_string())?;
            Ok(())
        },
    },
    Setting {
        section: Some("agent"),
        key: "mode",
        apply: |c, v| {
            c.agent.mode = choose(
                v,
                &[
                    ("pipeline", AgentMode::Pipeline),
                    ("realtime", AgentMode::Realtime),
                ],
            )?;
            Ok(())
        },
    },
    Setting {
        section: Some("stt"),
        key: "provider",
        apply: |c, v| {
            c.agent.stt = choose(
                v,
                &[
                    ("local", SttProvider::Local),
                    ("deepgram", SttProvider::Deepgram),
                    ("openai", SttProvider::OpenAi),
                ],
            )?;
            Ok(())
        },
    },
    Setting {
        section: Some("llm"),
        key: "provider",
        apply: |c, v| {
            c.agent.llm = choose(
                v,
                &[
                    ("local", LlmProvider::Local),
                    ("openai", LlmProvider::OpenAi),
                ],
            )?;
            Ok(())
        },
    },
    Setting {
        section: Some("tts"),
        key: "provider",
        apply: |c, v| {
            c.agent.tts = choose(
                v,
                &[
                    ("local", TtsProvider::Local),
                    ("elevenlabs", TtsProvider::ElevenLabs),
                    ("openai", TtsProvider::OpenAi),
                ],
            )?;
            Ok(())
        },
    },
    Setting {
        section: Some("stt"),
        key: "model",
        apply: |c, v| {
            c.agent.stt_model = optional(v);
            Ok(())
        },
    },
    Setting {
        section: Some("llm"),
        key: "model",
        apply: |c, v| {
            c.agent.llm_model = optional(v);
            Ok(())
        },
    },
    Setting {
        section: Some("tts"),
        key: "voice",
        apply: |c, v| {
            c.agent.tts_voice = optional(v);
            Ok(())
        },
    },
    Setting {
        section: Some("tts"),
        key: "model",
        apply: |c, v| {
            c.agent.tts_model = optional(v);
            Ok(())
        },
    },
    Setting {
        section: Some("realtime"),
        key: "model",
        apply: |c, v| {
            c.agent.realtime_model = optional(v);
            Ok(())
        },
    },
    Setting {
        section: Some("openai"),
        key: "api_key",
        apply: |c, v| {
            c.agent.openai.api_key = secret(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("openai"),
        key: "base_url",
        apply: |c, v| {
            c.agent.openai.base_url = base_url(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("deepgram"),
        key: "api_key",
        apply: |c, v| {
            c.agent.deepgram.api_key = secret(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("deepgram"),
        key: "base_url",
        apply: |c, v| {
            c.agent.deepgram.base_url = base_url(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("elevenlabs"),
        key: "api_key",
        apply: |c, v| {
            c.agent.elevenlabs.api_key = secret(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("elevenlabs"),
        key: "base_url",
        apply: |c, v| {
            c.agent.elevenlabs.base_url = base_url(v)?;
            Ok(())
        },
    },
    Setting {
        section: Some("tools"),
        key: "allowed_hosts",
        apply: |c, v| {
            c.tools.allowed_hosts = AllowedHosts::parse(v)?;
            Ok(())
        },
    },
];

impl Config {
    /// Loads the configuration. `file` is read when given (it must exist);
    /// otherwise `./voxgate.toml` is read if present. `env` looks up
    /// environment variables (tests pass a map instead of the process env).
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut problems = Vec::new();

        let default_file = Path::new("voxgate.toml");
        let file = match file {
            Some(path) => Some(path),
            None if default_file.exists() => Some(default_file),
            None => None,
        };
        if let Some(path) = file {
            apply_file(&mut config, path, &mut problems);
        }

        for setting in SETTINGS {
            let name = setting.env_name();
            let found = match env(&name) {
                Some(value) => Some((name, value)),
                None => setting
                    .vendor_env_names()
                    .iter()
                    .find_map(|vendor| Some(((*vendor).to_owned(), env(vendor)?))),
            };
            if let Some((shown, value)) = found {
                apply_one(&mut config, setting, &value, shown, &mut problems);
            }
        }

        let flags = [
            ("--listen", &overrides.listen, "listen"),
            ("--database-url", &overrides.database_url, "url"),
        ];
        for (flag, value, key) in flags {
            if let Some(value) = value
                && let Some(setting) = SETTINGS.iter().find(|s| s.key == key)
            {
                apply_one(&mut config, setting, value, flag.to_owned(), &mut problems);
            }
        }

        config.check_consistency(&mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(problems))
        }
    }

    /// Why the server is reachable from outside this machine, if it is:
    /// it listens on a non-loopback address, or has a public URL.
    pub fn exposure(&self) -> Option<String> {
        if !self.listen.ip().is_loopback() {
            return Some(format!("the server listens on {}", self.listen));
        }
        self.public_url
            .as_ref()
            .map(|url| format!("VOXGATE_PUBLIC_URL is set ({})", url.authority))
    }

    fn check_consistency(&self, problems: &mut Vec<ConfigProblem>) {
        let hb = self.ws.heartbeat;
        if hb.idle_timeout <= hb.ping_interval {
            problems.push(ConfigProblem {
                setting: "VOXGATE_WS_IDLE_TIMEOUT".into(),
                message: format!(
                    "idle timeout ({}) must be longer than the ping interval ({}), \
                     or peers that only answer pings are dropped",
                    humantime::format_duration(hb.idle_timeout),
                    humantime::format_duration(hb.ping_interval)
                ),
            });
        }
        self.agent.check_keys(problems);
        if let Some(exposure) = self.exposure()
            && self.access.admin_token.is_none()
        {
            problems.push(ConfigProblem {
                setting: "VOXGATE_ADMIN_TOKEN".into(),
                message: format!(
                    "must be set: {exposure}, so anyone who reaches it could place calls \
                     and read transcripts; set it to a long random secret \
                     (`openssl rand -hex 32`), or listen on 127.0.0.1 without a public URL"
                ),
            });
        }
        if self.twilio.account_sid.is_some() && self.twilio.auth_token.is_none() {
            problems.push(ConfigProblem {
                setting: "TWILIO_AUTH_TOKEN".into(),
                message: "must be set with TWILIO_ACCOUNT_SID: the REST API authenticates \
                          with both"
                    .into(),
            });
        }
    }
}

impl AgentConfig {
    /// A cloud provider chosen without its key is a problem now, not on the
    /// first call. An OpenAI-compatible server at a base URL of its own may
    /// need no key (a local vLLM or Ollama).
    fn check_keys(&self, problems: &mut Vec<ConfigProblem>) {
        let openai_usable = self.openai.api_key.is_some() || self.openai.base_url.is_some();
        let mut need = |used: bool, usable: bool, setting: &str, what: &str| {
            if used && !usable {
                problems.push(ConfigProblem {
                    setting: setting.to_owned(),
                    message: format!("must be set: {what}"),
                });
            }
        };
        let pipeline = self.mode == AgentMode::Pipeline;
        need(
            pipeline && self.stt == SttProvider::Deepgram,
            self.deepgram.api_key.is_some(),
            "DEEPGRAM_API_KEY",
            "VOXGATE_STT is deepgram",
        );
        need(
            pipeline && self.tts == TtsProvider::ElevenLabs,
            self.elevenlabs.api_key.is_some(),
            "ELEVENLABS_API_KEY",
            "VOXGATE_TTS is elevenlabs (ELEVEN_API_KEY is read too)",
        );
        need(
            pipeline && self.tts == TtsProvider::ElevenLabs,
            self.tts_voice.is_some(),
            "VOXGATE_TTS_VOICE",
            "VOXGATE_TTS is elevenlabs: the voice id to speak with",
        );
        need(
            pipeline && self.stt == SttProvider::OpenAi,
            self.openai.api_key.is_some(),
            "OPENAI_API_KEY",
            "VOXGATE_STT is openai",
        );
        need(
            pipeline && self.tts == TtsProvider::OpenAi,
            self.openai.api_key.is_some(),
            "OPENAI_API_KEY",
            "VOXGATE_TTS is openai",
        );
        need(
            pipeline && self.llm == LlmProvider::OpenAi,
            openai_usable,
            "OPENAI_API_KEY",
            "VOXGATE_LLM is openai (or set OPENAI_BASE_URL for a server without keys)",
        );
        need(
            self.mode == AgentMode::Realtime,
            self.openai.api_key.is_some(),
            "OPENAI_API_KEY",
            "VOXGATE_MODE is realtime",
        );
    }
}

fn apply_file(config: &mut Config, path: &Path, problems: &mut Vec<ConfigProblem>) {
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(ConfigProblem {
                setting: shown,
                message: format!("cannot read the config file: {e}"),
            });
            return;
        }
    };
    let table: toml::Table = match text.parse() {
        Ok(table) => table,
        Err(e) => {
            problems.push(ConfigProblem {
                setting: shown,
                message: format!("not valid TOML: {}", e.message()),
            });
            return;
        }
    };
    for (key, value) in &table {
        match value {
            toml::Value::Table(section) => {
                for (inner, value) in section {
                    apply_file_value(config, path, Some(key), inner, value, problems);
                }
            }
            value => apply_file_value(config, path, None, key, value, problems),
        }
    }
}

fn apply_file_value(
    config: &mut Config,
    path: &Path,
    section: Option<&str>,
    key: &str,
    value: &toml::Value,
    problems: &mut Vec<ConfigProblem>,
) {
    let shown = match section {
        Some(section) => format!("{}: [{section}] {key}", path.display()),
        None => format!("{}: {key}", path.display()),
    };
    let Some(setting) = SETTINGS
        .iter()
        .find(|s| s.section == section && s.key == key)
    else {
        problems.push(ConfigProblem {
            setting: shown,
            message: "unknown setting".into(),
        });
        return;
    };
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(n) => n.to_string(),
        other => {
            problems.push(ConfigProblem {
                setting: shown,
                message: format!("expected a string or integer, found {}", other.type_str()),
            });
            return;
        }
    };
    apply_one(config, setting, &text, shown, problems);
}

fn apply_one(
    config: &mut Config,
    setting: &Setting,
    value: &str,
    shown: String,
    problems: &mut Vec<ConfigProblem>,
) {
    if let Err(message) = (setting.apply)(config, value) {
        problems.push(ConfigProblem {
            setting: shown,
            message,
        });
    }
}

fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not an address like 127.0.0.1:8080"))
}

fn parse_duration_allow_zero(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v.trim())
        .map_err(|e| format!("{v:?} is not a duration like 300ms or 30s ({e})"))
}

fn parse_duration(v: &str) -> Result<Duration, String> {
    let d = parse_duration_allow_zero(v)?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn parse_count(v: &str, min: usize) -> Result<usize, String> {
    let n: usize = v
        .trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number"))?;
    if n < min {
        return Err(format!("must be at least {min}"));
    }
    Ok(n)
}

/// The names of every environment variable voxgate reads for settings.
pub fn env_names() -> Vec<String> {
    SETTINGS
        .iter()
        .flat_map(|setting| {
            let vendor = setting.vendor_env_names().iter().map(|v| (*v).to_owned());
            std::iter::once(setting.env_name()).chain(vendor)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::load(None, |name| env.get(name).cloned(), &Overrides::default())
    }

    #[test]
    fn env_names_follow_the_contract() {
        let names = env_names();
        for expected in [
            "VOXGATE_PUBLIC_URL",
            "VOXGATE_DATABASE_URL",
            "VOXGATE_WS_PING_INTERVAL",
            "VOXGATE_WS_IDLE_TIMEOUT",
            "VOXGATE_DRAIN_TIMEOUT",
            "VOXGATE_RECORDINGS_DIR",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing");
        }
    }

    #[test]
    fn tools_allowed_hosts_are_parsed_and_checked() {
        assert!(Config::default().tools.allowed_hosts.is_empty());
        let config =
            load_env(&[("VOXGATE_TOOLS_ALLOWED_HOSTS", "tools.lan, 10.0.0.5")]).expect("valid");
        assert_eq!(
            config.tools.allowed_hosts,
            AllowedHosts::parse("10.0.0.5,tools.lan").expect("valid")
        );
        let err = load_env(&[("VOXGATE_TOOLS_ALLOWED_HOSTS", "http://tools.lan")])
            .expect_err("a URL is not a host");
        assert_eq!(err.0[0].setting, "VOXGATE_TOOLS_ALLOWED_HOSTS");
    }

    #[test]
    fn env_overrides_defaults() {
        let config = load_env(&[
            ("VOXGATE_WS_PING_INTERVAL", "300ms"),
            ("VOXGATE_WS_IDLE_TIMEOUT", "1s"),
            ("VOXGATE_DRAIN_TIMEOUT", "0s"),
            ("VOXGATE_PUBLIC_URL", "https://voice.example.com/vg/"),
            ("VOXGATE_DATABASE_URL", "postgres://db/x"),
            ("VOXGATE_RECORDINGS_DIR", "/var/lib/voxgate/rec"),
            ("VOXGATE_ADMIN_TOKEN", "0123456789abcdef0123"),
        ])
        .expect("valid");
        assert_eq!(config.recordings_dir, PathBuf::from("/var/lib/voxgate/rec"));
        assert_eq!(
            config.ws.heartbeat.ping_interval,
            Duration::from_millis(300)
        );
        assert_eq!(config.ws.heartbeat.idle_timeout, Duration::from_secs(1));
        assert_eq!(config.drain_timeout, Duration::ZERO);
        assert_eq!(config.database_url, "postgres://db/x");
        let public = config.public_url.expect("set");
        assert_eq!(
            public.ws_url("/stream"),
            "wss://voice.example.com/vg/stream"
        );
    }

    #[test]
    fn reachable_from_outside_needs_an_admin_token() {
        let err = load_env(&[("VOXGATE_SERVER_LISTEN", "0.0.0.0:8080")]).expect_err("exposed");
        let text = err.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with(
                "VOXGATE_ADMIN_TOKEN: must be set: the server listens on 0.0.0.0:8080"
            ),
            "{text}"
        );
        let err = load_env(&[("VOXGATE_PUBLIC_URL", "https://v.example")]).expect_err("exposed");
        assert!(
            err.to_string().contains("VOXGATE_PUBLIC_URL is set"),
            "{err}"
        );
        let config = load_env(&[
            ("VOXGATE_SERVER_LISTEN", "0.0.0.0:8080"),
            ("VOXGATE_ADMIN_TOKEN", "0123456789abcdef0123"),
        ])
        .expect("a token makes it safe");
        let token = config.access.admin_token.expect("token");
        assert_eq!(token.expose(), "0123456789abcdef0123");
        assert!(
            load_env(&[])
                .expect("loopback")
                .access
                .admin_token
                .is_none()
        );
    }

    #[test]
    fn short_admin_tokens_and_bad_access_lists_are_problems_without_echoing_the_token() {
        let err = load_env(&[
            ("VOXGATE_ADMIN_TOKEN", "hunter2"),
            (
                "VOXGATE_ALLOWED_ORIGINS",
                "https://ok.example, javascript:alert(1)",
            ),
            ("VOXGATE_OUTBOUND_ALLOWED_PREFIXES", "+1,44"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("VOXGATE_ADMIN_TOKEN: must be at least 16"),
            "{text}"
        );
        assert!(text.contains("VOXGATE_ALLOWED_ORIGINS"), "{text}");
        assert!(text.contains("\"44\" is not a prefix"), "{text}");
    }

    #[test]
    fn access_and_limit_settings_load() {
        let config = load_env(&[
            (
                "VOXGATE_ALLOWED_ORIGINS",
                "https://shop.example,http://localhost:3000",
            ),
            ("VOXGATE_ALLOWED_HOSTS", "voice.internal"),
            ("VOXGATE_OUTBOUND_MAX_PER_MINUTE", "3"),
            ("VOXGATE_OUTBOUND_ALLOWED_PREFIXES", "+1, +44"),
            ("VOXGATE_CALLS_START_TIMEOUT", "2s"),
            ("VOXGATE_HTTP_MAX_CONNECTIONS_PER_IP", "8"),
            ("VOXGATE_EVENTS_MAX_SUBSCRIPTIONS", "4"),
        ])
        .expect("valid");
        assert_eq!(config.access.allowed_origins.len(), 2);
        assert_eq!(config.access.allowed_hosts, ["voice.internal"]);
        assert_eq!(config.outbound.max_per_minute, 3);
        assert_eq!(config.outbound.allowed_prefixes, ["+1", "+44"]);
        assert_eq!(config.limits.start_timeout, Duration::from_secs(2));
        assert_eq!(config.limits.max_connections_per_ip, 8);
        assert_eq!(config.limits.events_subscriptions, 4);
    }

    #[test]
    fn every_problem_is_reported_on_its_own_line() {
        let err = load_env(&[
            ("VOXGATE_WS_PING_INTERVAL", "soon"),
            ("VOXGATE_SERVER_LISTEN", "localhost"),
            ("VOXGATE_PUBLIC_URL", "ftp://x"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("VOXGATE_WS_PING_INTERVAL: \"soon\" is not a duration"));
        assert!(text.contains("VOXGATE_SERVER_LISTEN"));
        assert!(text.contains("VOXGATE_PUBLIC_URL: scheme \"ftp\""));
    }

    #[test]
    fn idle_timeout_must_exceed_ping_interval() {
        let err = load_env(&[
            ("VOXGATE_WS_PING_INTERVAL", "30s"),
            ("VOXGATE_WS_IDLE_TIMEOUT", "30s"),
        ])
        .expect_err("inconsistent");
        assert!(
            err.to_string()
                .contains("must be longer than the ping interval")
        );
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = std::env::temp_dir().join(format!("voxgate-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("voxgate.toml");
        std::fs::write(
            &path,
            "public_url = \"http://a.test\"\n[server]\nlisten = \"127.0.0.1:1\"\n\
             [ws]\nmax_message_bytes = 4096\n[database]\nurl = \"file.db\"\n\
             [recordings]\ndir = \"rec\"\n[auth]\nadmin_token = \"0123456789abcdef0123\"\n",
        )
        .expect("write");
        let env = |name: &str| (name == "VOXGATE_SERVER_LISTEN").then(|| "127.0.0.1:2".to_owned());
        let overrides = Overrides {
            listen: None,
            database_url: Some("flag.db".into()),
        };
        let config = Config::load(Some(&path), env, &overrides).expect("valid");
        assert_eq!(config.listen.port(), 2);
        assert_eq!(config.ws.max_message_bytes, 4096);
        assert_eq!(config.database_url, "flag.db");
        assert_eq!(config.recordings_dir, PathBuf::from("rec"));
        assert_eq!(
            config.public_url.map(|u| u.ws_url("/stream")).as_deref(),
            Some("ws://a.test/stream")
        );

        std::fs::write(&path, "[ws]\npign_interval = \"1s\"\nidle_timeout = true\n")
            .expect("write");
        let err = Config::load(Some(&path), |_| None, &Overrides::default()).expect_err("bad");
        let text = err.to_string();
        assert!(
            text.contains("[ws] pign_interval: unknown setting"),
            "{text}"
        );
        assert!(
            text.contains("[ws] idle_timeout: expected a string or integer"),
            "{text}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn providers_are_chosen_by_the_architectures_names() {
        let config = load_env(&[
            ("VOXGATE_STT", "Deepgram"),
            ("VOXGATE_LLM", "openai"),
            ("VOXGATE_TTS", "elevenlabs"),
            ("VOXGATE_LLM_MODEL", "gpt-4o-mini"),
            ("VOXGATE_TTS_VOICE", "21m00Tcm4TlvDq8ikWAM"),
            ("DEEPGRAM_API_KEY", "dg-secret"),
            ("OPENAI_API_KEY", "sk-secret"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("ELEVEN_API_KEY", "el-secret"),
        ])
        .expect("valid");
        let agent = &config.agent;
        assert_eq!(
            (agent.mode, agent.stt, agent.llm, agent.tts),
            (
                AgentMode::Pipeline,
                SttProvider::Deepgram,
                LlmProvider::OpenAi,
                TtsProvider::ElevenLabs
            )
        );
        assert_eq!(agent.llm_model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(
            agent.elevenlabs.api_key.as_ref().map(Secret::expose),
            Some("el-secret"),
            "LiveKit's ELEVEN_API_KEY is accepted"
        );
        assert_eq!(
            agent
                .openai
                .base_url
                .as_ref()
                .map(|b| b.join("/chat/completions")),
            Some("http://127.0.0.1:9/v1/chat/completions".to_owned())
        );
        let shown = format!("{config:?}");
        for key in ["dg-secret", "sk-secret", "el-secret"] {
            assert!(!shown.contains(key), "{shown}");
        }
        let preferred = load_env(&[
            ("ELEVENLABS_API_KEY", "first"),
            ("ELEVEN_API_KEY", "second"),
        ])
        .expect("valid");
        assert_eq!(
            preferred
                .agent
                .elevenlabs
                .api_key
                .as_ref()
                .map(Secret::expose),
            Some("first")
        );
        assert_eq!(load_env(&[]).expect("valid").agent, AgentConfig::default());
        for name in [
            "VOXGATE_MODE",
            "VOXGATE_STT",
            "ELEVEN_API_KEY",
            "DEEPGRAM_BASE_URL",
        ] {
            assert!(env_names().iter().any(|n| n == name), "{name} missing");
        }
    }

    #[test]
    fn a_cloud_provider_without_its_key_is_a_problem_at_start_up() {
        let Err(ConfigError(problems)) = load_env(&[
            ("VOXGATE_STT", "deepgram"),
            ("VOXGATE_TTS", "elevenlabs"),
            ("VOXGATE_LLM", "chatgpt"),
        ]) else {
            panic!("keys are missing");
        };
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|p| p.starts_with("DEEPGRAM_API_KEY: must be set")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.starts_with("ELEVENLABS_API_KEY: must be set")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.starts_with("VOXGATE_TTS_VOICE: must be set")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|p| p.contains("VOXGATE_LLM") && p.contains("not one of local, openai")),
            "{text:?}"
        );
        // A keyless OpenAI-compatible server is fine when its URL is given.
        let local_server = load_env(&[
            ("VOXGATE_LLM", "openai"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1"),
        ]);
        assert!(local_server.is_ok(), "{local_server:?}");
        let realtime = load_env(&[("VOXGATE_MODE", "realtime")]);
        assert!(realtime.is_err(), "realtime needs OPENAI_API_KEY");
    }

    #[test]
    fn twilio_settings_come_from_twilios_names_or_ours() {
        let config = load_env(&[
            ("TWILIO_ACCOUNT_SID", "AC0123456789abcdef0123456789abcdef"),
            ("TWILIO_AUTH_TOKEN", "vendor-token"),
            ("VOXGATE_TWILIO_AUTH_TOKEN", "our-token"),
            ("TWILIO_BASE_URL", "http://127.0.0.1:9/"),
        ])
        .expect("valid");
        let twilio = &config.twilio;
        assert_eq!(
            twilio.account_sid.as_deref(),
            Some("AC0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            twilio.auth_token.as_ref().map(Secret::expose),
            Some("our-token"),
            "VOXGATE_ wins over the vendor's name"
        );
        assert_eq!(twilio.base_url.join("/x"), "http://127.0.0.1:9/x");
        let shown = format!("{config:?}");
        assert!(!shown.contains("our-token"), "{shown}");
        assert!(!shown.contains("vendor-token"), "{shown}");

        let defaults = load_env(&[]).expect("valid");
        assert_eq!(defaults.twilio, TwilioConfig::default());
        assert_eq!(
            defaults.twilio.base_url.join("/2010-04-01"),
            "https://api.twilio.com/2010-04-01"
        );
        for name in ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_BASE_URL"] {
            assert!(env_names().iter().any(|n| n == name), "{name} missing");
        }
    }

    #[test]
    fn bad_twilio_settings_are_reported_without_the_token() {
        let err = load_env(&[
            ("TWILIO_ACCOUNT_SID", "AC1/../x"),
            ("TWILIO_BASE_URL", "ftp://twilio"),
        ])
        .expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("TWILIO_ACCOUNT_SID: must be an account SID"),
            "{text}"
        );
        assert!(text.contains("TWILIO_BASE_URL"), "{text}");

        let err = load_env(&[("TWILIO_ACCOUNT_SID", "AC1")]).expect_err("no token");
        assert!(
            err.to_string()
                .contains("TWILIO_AUTH_TOKEN: must be set with TWILIO_ACCOUNT_SID"),
            "{err}"
        );
        // A token alone is fine: it checks webhook signatures.
        assert!(load_env(&[("TWILIO_AUTH_TOKEN", "t")]).is_ok());
        let err = load_env(&[("TWILIO_AUTH_TOKEN", "  ")]).expect_err("empty");
        assert!(
            err.to_string()
                .contains("TWILIO_AUTH_TOKEN: must not be empty"),
            "{err}"
        );
    }

    #[test]
    fn public_urls_give_http_and_websocket_urls() {
        let public = PublicUrl::parse("https://voice.example.com/vg/").expect("valid");
        assert_eq!(
            public.http_url("/twilio/status?x=1"),
            "https://voice.example.com/vg/twilio/status?x=1"
        );
        let plain = PublicUrl::parse("http://127.0.0.1:8080").expect("valid");
        assert_eq!(plain.http_url("/twiml"), "http://127.0.0.1:8080/twiml");
    }

    #[test]
    fn a_missing_config_file_is_a_problem() {
        let err = Config::load(
            Some(Path::new("/nonexistent/voxgate.toml")),
            |_| None,
            &Overrides::default(),
        )
        .expect_err("missing");
        assert!(err.to_string().contains("cannot read the config file"));
    }
}

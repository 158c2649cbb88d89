//! Configuration: defaults, then a TOML file, then `VOXGATE_*` environment
//! variables, then command-line flags. Every problem found is reported, one
//! line each, instead of stopping at the first.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use voxgate_core::heartbeat::HeartbeatConfig;

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
            if let Some(value) = env(&name) {
                apply_one(&mut config, setting, &value, name, &mut problems);
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
    SETTINGS.iter().map(Setting::env_name).collect()
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
    fn env_overrides_defaults() {
        let config = load_env(&[
            ("VOXGATE_WS_PING_INTERVAL", "300ms"),
            ("VOXGATE_WS_IDLE_TIMEOUT", "1s"),
            ("VOXGATE_DRAIN_TIMEOUT", "0s"),
            ("VOXGATE_PUBLIC_URL", "https://voice.example.com/vg/"),
            ("VOXGATE_DATABASE_URL", "postgres://db/x"),
            ("VOXGATE_RECORDINGS_DIR", "/var/lib/voxgate/rec"),
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
             [recordings]\ndir = \"rec\"\n",
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

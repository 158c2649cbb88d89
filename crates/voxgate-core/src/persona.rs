//! Personas as users write them (JSON in the API, rows in the store), and
//! their conversion into the engine's settings. Defaults come from the
//! engine's own, so there is one set of numbers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{
    END_CALL_TOOL, Persona, TRANSFER_CALL_TOOL, ToolSpec, TurnSettings, VadSettings,
};
use url::Url;

use crate::events::JobConfig;
use crate::outbound::{self, AllowedHosts};

/// The persona every call falls back to; it always exists.
pub const DEFAULT_PERSONA: &str = "default";

/// Longest duration any persona timing may have.
const MAX_TIMING_MS: u32 = 60_000;

// Size limits. Every persona is stored, listed whole by the API and sent
// to the model on every turn, so each field is bounded; the numbers are
// generous for their use and small enough that a full store stays small.

/// Most personas stored at once; creating another is refused until one is
/// deleted.
pub const MAX_PERSONAS: usize = 1000;
/// Longest persona or tool name, in bytes (names are ASCII).
pub const MAX_NAME_LEN: usize = 64;
/// Longest system prompt, in characters.
pub const MAX_INSTRUCTIONS_CHARS: usize = 8000;
/// Longest greeting, reprompt, goodbye or tool filler, in characters.
pub const MAX_PHRASE_CHARS: usize = 500;
/// Longest voice id, in bytes.
pub const MAX_VOICE_LEN: usize = 128;
/// Longest language tag, in bytes.
pub const MAX_LANGUAGE_LEN: usize = 16;
/// Most transfer numbers per persona.
pub const MAX_TRANSFER_NUMBERS: usize = 16;
/// Most HTTP tools per persona: each is described to the model on every
/// turn.
pub const MAX_TOOLS: usize = 16;
/// Longest tool description, in characters.
pub const MAX_TOOL_DESCRIPTION_CHARS: usize = 1000;
/// Longest tool URL, in bytes.
pub const MAX_TOOL_URL_LEN: usize = 2048;
/// Largest tool parameters schema, in bytes of JSON.
pub const MAX_TOOL_PARAMETERS_BYTES: usize = 8192;

/// A persona: who the agent is, what it says first, and how it takes turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersonaSpec {
    /// Unique name: letters, digits, `-` and `_`, up to 64.
    pub name: String,
    /// The system prompt.
    pub instructions: String,
    /// Said on answer; empty for none.
    pub greeting: String,
    /// Said after a long silence; empty for none.
    pub reprompt: String,
    /// Said when the agent ends the call and had not said goodbye.
    pub goodbye: String,
    /// Said while one of the persona's tools runs; empty for none.
    pub tool_filler: String,
    /// Numbers (E.164) the agent may transfer calls to.
    pub transfer_numbers: Vec<String>,
    /// HTTP tools the agent may call.
    pub tools: Vec<HttpToolSpec>,
    /// TTS voice id; the provider's default when unset.
    pub voice: Option<String>,
    /// Language tag of the conversation (`en`, `en-US`).
    pub language: String,
    /// Speech detection.
    pub vad: VadSpec,
    /// Turn-taking.
    pub turn: TurnSpec,
}

/// A tool the agent may call: voxgate POSTs the model's arguments (a JSON
/// object) to `url` and gives the model the response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpToolSpec {
    /// The name the model calls it by: letters, digits, `_`, `-`, up to 64.
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: String,
    /// JSON schema of its arguments (an object schema).
    #[serde(default = "empty_object_schema")]
    pub parameters: serde_json::Value,
    /// Where to POST the arguments (`http` or `https`).
    pub url: String,
    /// How long to wait for the answer.
    #[serde(default = "default_tool_timeout_ms")]
    pub timeout_ms: u32,
}

fn empty_object_schema() -> serde_json::Value {
    serde_json::json!({"type": "object", "properties": {}})
}

fn default_tool_timeout_ms() -> u32 {
    5000
}

impl HttpToolSpec {
    /// How the model sees it.
    pub fn to_tool(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self.parameters.clone(),
        }
    }

    /// How long to wait for the answer.
    pub fn timeout(&self) -> Duration {
        duration(self.timeout_ms)
    }
}

/// Speech detection settings, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VadSpec {
    /// Speech probability that counts as speech, 0 to 1.
    pub activation_threshold: f32,
    /// Speech needed before it counts as started.
    pub min_speech_ms: u32,
    /// Silence needed before speech counts as ended.
    pub min_silence_ms: u32,
    /// Audio kept from before the onset.
    pub prefix_padding_ms: u32,
}

/// Turn-taking settings, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnSpec {
    /// Ask the end-of-turn model after the caller stops.
    pub end_of_turn_model: bool,
    /// Silence before answering a complete sentence.
    pub min_endpoint_delay_ms: u32,
    /// Silence before answering an incomplete sentence.
    pub max_endpoint_delay_ms: u32,
    /// Silence before answering without an end-of-turn verdict.
    pub fallback_endpoint_delay_ms: u32,
    /// Caller speech needed to interrupt the agent.
    pub interrupt_min_speech_ms: u32,
    /// Shorter caller sounds after an interruption are noise.
    pub false_interruption_max_speech_ms: u32,
    /// Silence before asking whether the caller is still there.
    pub idle_reprompt_after_ms: u32,
    /// Reprompts before hanging up on a silent caller.
    pub max_reprompts: u32,
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn duration(ms: u32) -> Duration {
    Duration::from_millis(u64::from(ms))
}

impl Default for VadSpec {
    fn default() -> Self {
        let v = VadSettings::default();
        Self {
            activation_threshold: v.activation_threshold,
            min_speech_ms: ms(v.min_speech),
            min_silence_ms: ms(v.min_silence),
            prefix_padding_ms: ms(v.prefix_padding),
        }
    }
}

impl Default for TurnSpec {
    fn default() -> Self {
        let t = TurnSettings::default();
        Self {
            end_of_turn_model: t.use_end_of_turn_model,
            min_endpoint_delay_ms: ms(t.min_endpoint_delay),
            max_endpoint_delay_ms: ms(t.max_endpoint_delay),
            fallback_endpoint_delay_ms: ms(t.fallback_endpoint_delay),
            interrupt_min_speech_ms: ms(t.interrupt_min_speech),
            false_interruption_max_speech_ms: ms(t.false_interruption_max_speech),
            idle_reprompt_after_ms: ms(t.idle_reprompt_after),
            max_reprompts: t.max_reprompts,
        }
    }
}

impl Default for PersonaSpec {
    fn default() -> Self {
        let p = Persona::default();
        Self {
            name: DEFAULT_PERSONA.to_owned(),
            instructions: p.instructions,
            greeting: p.greeting,
            reprompt: p.reprompt,
            goodbye: p.goodbye,
            tool_filler: p.tool_filler,
            transfer_numbers: p.transfer_numbers,
            tools: Vec::new(),
            voice: None,
            language: "en".to_owned(),
            vad: VadSpec::default(),
            turn: TurnSpec::default(),
        }
    }
}

/// What is wrong with a tool's `url`, if anything: it must be an http or
/// https URL of bounded length whose host the outbound policy accepts.
fn tool_url_problem(url: &str, allowed: &AllowedHosts) -> Option<String> {
    if url.len() > MAX_TOOL_URL_LEN {
        return Some(format!("url must be at most {MAX_TOOL_URL_LEN} bytes"));
    }
    let parsed = match Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => parsed,
        _ => return Some("needs an http or https url".to_owned()),
    };
    outbound::check_url(&parsed, allowed).err().map(|refused| {
        format!("url is not allowed: {refused} (list the host in [tools] allowed_hosts to call it)")
    })
}

/// Whether `name` is a usable persona name.
pub fn is_valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl PersonaSpec {
    /// Every problem with this persona, one message each. Tool URLs whose
    /// host is refused by the [outbound policy](crate::outbound) are
    /// problems unless `allowed` lets them through.
    pub fn problems(&self, allowed: &AllowedHosts) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, message: &str| {
            if !ok {
                problems.push(message.to_owned());
            }
        };
        check(
            is_valid_name(&self.name),
            "name must be 1-64 letters, digits, '-' or '_'",
        );
        check(
            self.instructions.chars().count() <= MAX_INSTRUCTIONS_CHARS,
            &format!("instructions must be at most {MAX_INSTRUCTIONS_CHARS} characters"),
        );
        check(
            self.greeting.chars().count() <= MAX_PHRASE_CHARS,
            &format!("greeting must be at most {MAX_PHRASE_CHARS} characters"),
        );
        check(
            self.reprompt.chars().count() <= MAX_PHRASE_CHARS,
            &format!("reprompt must be at most {MAX_PHRASE_CHARS} characters"),
        );
        check(
            self.goodbye.chars().count() <= MAX_PHRASE_CHARS
                && self.tool_filler.chars().count() <= MAX_PHRASE_CHARS,
            &format!("goodbye and tool_filler must be at most {MAX_PHRASE_CHARS} characters"),
        );
        check(
            self.transfer_numbers.len() <= MAX_TRANSFER_NUMBERS,
            &format!("transfer_numbers may list at most {MAX_TRANSFER_NUMBERS} numbers"),
        );
        check(
            self.tools.len() <= MAX_TOOLS,
            &format!("tools may list at most {MAX_TOOLS} tools"),
        );
        for number in self.transfer_numbers.iter().take(MAX_TRANSFER_NUMBERS) {
            check(
                crate::phone::normalize_e164(number).as_deref() == Some(number.as_str()),
                &format!("transfer_numbers: {number:?} is not an E.164 number like +14155550100"),
            );
        }
        let mut names = std::collections::HashSet::new();
        // Past the limit, one problem says so; listing each extra tool's
        // problems too would only make a huge answer.
        for tool in self.tools.iter().take(MAX_TOOLS) {
            // A name too long to be valid is cut in messages: it is echoed.
            let name: String = tool.name.chars().take(MAX_NAME_LEN + 1).collect();
            let name = &name;
            check(
                is_valid_name(name) && name != END_CALL_TOOL && name != TRANSFER_CALL_TOOL,
                &format!(
                    "tools: {name:?} must be 1-64 letters, digits, '-' or '_', and not a \
                     built-in tool"
                ),
            );
            check(
                names.insert(tool.name.as_str()),
                &format!("tools: {name:?} is declared twice"),
            );
            check(
                tool.description.chars().count() <= MAX_TOOL_DESCRIPTION_CHARS,
                &format!(
                    "tools: {name:?} description must be at most {MAX_TOOL_DESCRIPTION_CHARS} \
                     characters"
                ),
            );
            if let Some(problem) = tool_url_problem(&tool.url, allowed) {
                check(false, &format!("tools: {name:?} {problem}"));
            }
            check(
                tool.parameters.get("type").and_then(|t| t.as_str()) == Some("object"),
                &format!("tools: {name:?} parameters must be a JSON schema of type object"),
            );
            check(
                tool.parameters.to_string().len() <= MAX_TOOL_PARAMETERS_BYTES,
                &format!(
                    "tools: {name:?} parameters must be at most {MAX_TOOL_PARAMETERS_BYTES} \
                     bytes of JSON"
                ),
            );
            check(
                (100..=MAX_TIMING_MS).contains(&tool.timeout_ms),
                &format!("tools: {name:?} timeout_ms must be between 100 and 60000"),
            );
        }
        check(
            !self.language.is_empty() && self.language.len() <= MAX_LANGUAGE_LEN,
            "language must be a language tag like en or en-US",
        );
        check(
            self.voice
                .as_ref()
                .is_none_or(|v| !v.trim().is_empty() && v.len() <= MAX_VOICE_LEN),
            &format!("voice must be a non-empty id of at most {MAX_VOICE_LEN} characters"),
        );
        check(
            (0.05..=0.95).contains(&self.vad.activation_threshold),
            "vad.activation_threshold must be between 0.05 and 0.95",
        );
        let t = &self.turn;
        let timings = [
            self.vad.min_speech_ms,
            self.vad.min_silence_ms,
            self.vad.prefix_padding_ms,
            t.min_endpoint_delay_ms,
            t.max_endpoint_delay_ms,
            t.fallback_endpoint_delay_ms,
            t.interrupt_min_speech_ms,
            t.false_interruption_max_speech_ms,
            t.idle_reprompt_after_ms,
        ];
        check(
            timings.iter().all(|ms| *ms <= MAX_TIMING_MS),
            "every timing must be at most 60000 ms",
        );
        check(
            t.min_endpoint_delay_ms <= t.max_endpoint_delay_ms,
            "turn.min_endpoint_delay_ms must not exceed turn.max_endpoint_delay_ms",
        );
        check(
            t.idle_reprompt_after_ms >= 1000,
            "turn.idle_reprompt_after_ms must be at least 1000",
        );
        check(
            t.max_reprompts <= 10,
            "turn.max_reprompts must be at most 10",
        );
        problems
    }

    /// Applies a call's job configuration on top of this persona (checked
    /// against the same limits by [`JobConfig::problems`]).
    pub fn with_job(mut self, job: &JobConfig) -> Self {
        if let Some(instructions) = &job.instructions {
            self.instructions.clone_from(instructions);
        }
        if let Some(greeting) = &job.greeting {
            self.greeting.clone_from(greeting);
        }
        if let Some(voice) = &job.voice {
            self.voice = Some(voice.clone());
        }
        self
    }

    /// The engine's settings for this persona.
    pub fn to_engine(&self) -> Persona {
        let activation = self.vad.activation_threshold;
        Persona {
            instructions: self.instructions.clone(),
            greeting: self.greeting.clone(),
            reprompt: self.reprompt.clone(),
            goodbye: self.goodbye.clone(),
            tool_filler: self.tool_filler.clone(),
            transfer_numbers: self.transfer_numbers.clone(),
            tools: self.tools.iter().map(HttpToolSpec::to_tool).collect(),
            turn: TurnSettings {
                vad: VadSettings {
                    activation_threshold: activation,
                    // Hysteresis as in Silero's own wrapper: 0.15 below.
                    deactivation_threshold: (activation - 0.15).max(0.01),
                    min_speech: duration(self.vad.min_speech_ms),
                    min_silence: duration(self.vad.min_silence_ms),
                    prefix_padding: duration(self.vad.prefix_padding_ms),
                },
                use_end_of_turn_model: self.turn.end_of_turn_model,
                end_of_turn_threshold: TurnSettings::default().end_of_turn_threshold,
                min_endpoint_delay: duration(self.turn.min_endpoint_delay_ms),
                max_endpoint_delay: duration(self.turn.max_endpoint_delay_ms),
                fallback_endpoint_delay: duration(self.turn.fallback_endpoint_delay_ms),
                interrupt_min_speech: duration(self.turn.interrupt_min_speech_ms),
                false_interruption_max_speech: duration(self.turn.false_interruption_max_speech_ms),
                idle_reprompt_after: duration(self.turn.idle_reprompt_after_ms),
                max_reprompts: self.turn.max_reprompts,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_persona_matches_the_engine_defaults() {
        let spec = PersonaSpec::default();
        assert!(
            spec.problems(&AllowedHosts::default()).is_empty(),
            "{:?}",
            spec.problems(&AllowedHosts::default())
        );
        let engine = spec.to_engine();
        let defaults = Persona::default();
        assert_eq!(engine.instructions, defaults.instructions);
        assert_eq!(
            engine.turn.min_endpoint_delay,
            defaults.turn.min_endpoint_delay
        );
        assert_eq!(engine.turn.vad.min_silence, defaults.turn.vad.min_silence);
        assert_eq!(
            engine.turn.vad.deactivation_threshold,
            defaults.turn.vad.deactivation_threshold
        );
    }

    #[test]
    fn partial_json_fills_in_defaults_and_typos_are_refused() {
        let spec: PersonaSpec =
            serde_json::from_str(r#"{"name":"sales","greeting":"Hi!","turn":{"max_reprompts":1}}"#)
                .expect("valid");
        assert_eq!(spec.greeting, "Hi!");
        assert_eq!(spec.turn.max_reprompts, 1);
        assert_eq!(
            spec.turn.min_endpoint_delay_ms,
            TurnSpec::default().min_endpoint_delay_ms
        );
        let typo = serde_json::from_str::<PersonaSpec>(r#"{"name":"x","greting":"Hi"}"#);
        assert!(
            typo.expect_err("unknown field")
                .to_string()
                .contains("greting")
        );
    }

    #[test]
    fn problems_are_listed_one_each() {
        let spec = PersonaSpec {
            name: "bad name!".into(),
            vad: VadSpec {
                activation_threshold: 1.5,
                ..VadSpec::default()
            },
            turn: TurnSpec {
                min_endpoint_delay_ms: 3000,
                max_endpoint_delay_ms: 1000,
                ..TurnSpec::default()
            },
            ..PersonaSpec::default()
        };
        let problems = spec.problems(&AllowedHosts::default());
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn job_configuration_overrides_the_persona() {
        let spec = PersonaSpec::default().with_job(&JobConfig {
            persona: Some("ignored here".into()),
            instructions: Some("Be brief.".into()),
            voice: Some("joe".into()),
            greeting: None,
        });
        assert_eq!(spec.instructions, "Be brief.");
        assert_eq!(spec.voice.as_deref(), Some("joe"));
        assert_eq!(spec.greeting, PersonaSpec::default().greeting);
    }
}

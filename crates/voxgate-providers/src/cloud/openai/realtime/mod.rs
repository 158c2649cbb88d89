//! OpenAI Realtime API: speech to speech over one WebSocket per call.
//!
//! [`messages`] parses server events and writes client events (no IO);
//! [`client`] opens the socket under the vendor's supervisor and moves
//! those events over it. Audio is G.711 μ-law at 8 kHz both ways, so a
//! phone call's audio needs no resampling.

pub mod client;
pub mod messages;

pub use client::{
    DEFAULT_MODEL, RealtimeClient, RealtimeConfig, RealtimeEvents, RealtimeSender, RealtimeSession,
};
pub use messages::{
    ClientEvent, Dialect, Item, ItemKind, ResponseStatus, ServerEvent, ServerVad, SessionConfig,
    VendorError, parse_server_event,
};

/// The vendor's name in errors, metrics and its [`Supervisor`].
///
/// [`Supervisor`]: crate::supervisor::Supervisor
pub const VENDOR: &str = "openai-realtime";

//! Cloud providers. Each takes a base URL (the fakes in
//! `voxgate-testkit` serve tests and benchmarks) and an API key, and runs
//! its connects and requests under its vendor's [`Supervisor`].
//!
//! [`Supervisor`]: crate::supervisor::Supervisor

pub mod deepgram;
pub mod elevenlabs;
mod http;
pub mod openai;

pub use http::{BaseUrl, check_status, handshake_error, status_parts, websocket_url};

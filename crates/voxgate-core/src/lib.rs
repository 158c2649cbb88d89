//! voxgate-core: the sans-IO heart of voxgate.
//!
//! Everything here is plain data in, data out: no sockets, no async runtime,
//! no wall clock. Time is always an argument (`now`), so the async shell in
//! `voxgate-server` can drive it from `tokio::time` and tests can drive it
//! from a fake clock.

pub mod access;
pub mod audio;
pub mod call;
pub mod engine;
pub mod events;
pub mod heartbeat;
pub mod ids;
pub mod outbound;
pub mod persona;
pub mod phone;
pub mod twilio;
pub mod twilio_signature;
pub mod wire;

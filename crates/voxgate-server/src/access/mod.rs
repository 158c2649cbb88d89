//! Who may use the server.
//!
//! - The admin token (`VOXGATE_ADMIN_TOKEN`) guards `/api/*`, `/events`,
//!   `/browser-stream` and `/metrics`, as `Authorization: Bearer <token>`
//!   or as the console's session cookie (from `POST /api/login`). Without
//!   one, the server only starts where nobody else can reach it (see
//!   [`crate::config::Config::exposure`]), and these routes are open.
//! - `POST /api/call-tokens` mints single-use tokens for one browser call
//!   each (`/browser-stream?token=…`), for a public "talk to us" button.
//! - Requests from a browser origin not allowed, and requests for a `Host`
//!   that is not this server (DNS rebinding), are refused before anything
//!   else runs.
//! - Carriers' routes take no admin token: carriers prove themselves with
//!   their own signatures ([`crate::twilio_routes`]).

mod guard;
mod origin;
mod routes;
mod tokens;

use std::net::SocketAddr;

pub use guard::{Credential, check_origin_and_host, require_admin, require_caller};
pub use origin::Allowed;
pub use routes::{admin_reset, create_call_token, login, logout, session_status};
pub use tokens::{AdminToken, CallGrant, CallTokens, LoginSessions, TooManyCallTokens};

use crate::config::Config;

/// Largest body the access routes read (`{"token"}`, `{"persona"}`): a
/// token or a name, far below the API's general limit.
pub const MAX_BODY_BYTES: usize = 4096;

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "voxgate_session";

/// The access model in force: built once from the configuration.
#[derive(Debug)]
pub struct Access {
    /// The admin token; `None` leaves the admin routes open (loopback only).
    pub admin: Option<AdminToken>,
    /// Console logins.
    pub sessions: LoginSessions,
    /// Unused browser call tokens.
    pub call_tokens: CallTokens,
    /// Origins and hosts this server answers.
    pub allowed: Allowed,
    /// Whether cookies must be `Secure` (the public URL is https).
    pub secure_cookies: bool,
}

impl Access {
    /// The access model for `config`, served on `bound`.
    pub fn new(config: &Config, bound: SocketAddr) -> Self {
        Self {
            admin: config
                .access
                .admin_token
                .as_ref()
                .map(|token| AdminToken::new(token.expose())),
            sessions: LoginSessions::new(config.access.session_ttl),
            call_tokens: CallTokens::new(config.access.call_token_ttl),
            allowed: Allowed::from_config(config, bound),
            secure_cookies: config.public_url.as_ref().is_some_and(|url| url.secure),
        }
    }
}

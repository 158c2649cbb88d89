//! Secrets the server hands out and checks: the admin token, console login
//! sessions and single-use browser call tokens. Secrets are compared by
//! their SHA-256 digests in constant time, and only digests are kept, so
//! neither timing nor a memory dump gives one away.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a secret.
type SecretDigest = [u8; 32];

fn digest(secret: &str) -> SecretDigest {
    Sha256::digest(secret.as_bytes()).into()
}

/// A fresh secret: 32 random bytes as 64 hex digits.
pub(super) fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The admin token, kept as its digest.
#[derive(Debug, Clone)]
pub struct AdminToken(SecretDigest);

impl AdminToken {
    /// Keeps `token`'s digest.
    pub fn new(token: &str) -> Self {
        Self(digest(token))
    }

    /// Whether `presented` is the token, in time independent of both.
    pub fn matches(&self, presented: &str) -> bool {
        bool::from(self.0.ct_eq(&digest(presented)))
    }
}

/// Live console logins: session cookie digests and when they expire.
#[derive(Debug)]
pub struct LoginSessions {
    ttl: Duration,
    sessions: Mutex<HashMap<SecretDigest, Instant>>,
}

/// Console logins kept at once; the oldest goes when one more logs in.
pub(super) const MAX_LOGIN_SESSIONS: usize = 1024;

impl LoginSessions {
    /// Sessions last `ttl` from login.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            sessions: Mutex::default(),
        }
    }

    fn lock(&self, now: Instant) -> MutexGuard<'_, HashMap<SecretDigest, Instant>> {
        // Every operation is one insert or remove: a poisoned map is consistent.
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.retain(|_, expires| *expires > now);
        sessions
    }

    /// Starts a session; returns the cookie value.
    pub fn open(&self, now: Instant) -> String {
        let id = new_secret();
        let mut sessions = self.lock(now);
        if sessions.len() >= MAX_LOGIN_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(digest(&id), now + self.ttl);
        id
    }

    /// Whether `id` is a live session.
    pub fn is_valid(&self, id: &str, now: Instant) -> bool {
        self.lock(now).contains_key(&digest(id))
    }

    /// Ends a session (logout); unknown ids are ignored.
    pub fn close(&self, id: &str, now: Instant) {
        self.lock(now).remove(&digest(id));
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// What a browser call token allows: one call, with one persona.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallGrant {
    /// The persona the call must use.
    pub persona: String,
}

/// Unused browser call tokens.
#[derive(Debug)]
pub struct CallTokens {
    ttl: Duration,
    tokens: Mutex<HashMap<SecretDigest, (CallGrant, Instant)>>,
}

/// Unused call tokens kept at once; minting more is refused until some
/// are used or expire.
pub(super) const MAX_CALL_TOKENS: usize = 10_000;

/// Too many unused call tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_CALL_TOKENS} call tokens are waiting to be used; try again when some expire")]
pub struct TooManyCallTokens;

impl CallTokens {
    /// Tokens may wait `ttl` to be used.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            tokens: Mutex::default(),
        }
    }

    fn lock(&self, now: Instant) -> MutexGuard<'_, HashMap<SecretDigest, (CallGrant, Instant)>> {
        // Every operation is one insert or remove: a poisoned map is consistent.
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.retain(|_, (_, expires)| *expires > now);
        tokens
    }

    /// Mints a token for `grant`; returns it and how long it is valid.
    pub fn mint(
        &self,
        grant: CallGrant,
        now: Instant,
    ) -> Result<(String, Duration), TooManyCallTokens> {
        let mut tokens = self.lock(now);
        if tokens.len() >= MAX_CALL_TOKENS {
            return Err(TooManyCallTokens);
        }
        let token = new_secret();
        tokens.insert(digest(&token), (grant, now + self.ttl));
        Ok((token, self.ttl))
    }

    /// Whether `token` is live, without using it up.
    pub fn is_live(&self, token: &str, now: Instant) -> bool {
        self.lock(now).contains_key(&digest(token))
    }

    /// Uses `token` up: its grant, if it is live. A token works once.
    pub fn redeem(&self, token: &str, now: Instant) -> Option<CallGrant> {
        self.lock(now)
            .remove(&digest(token))
            .map(|(grant, _)| grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_matches_only_itself() {
        let token = AdminToken::new("a-long-admin-token-123");
        assert!(token.matches("a-long-admin-token-123"));
        assert!(!token.matches("a-long-admin-token-124"));
        assert!(!token.matches(""));
    }

    #[test]
    fn sessions_expire_and_close() {
        let t0 = Instant::now();
        let sessions = LoginSessions::new(Duration::from_secs(60));
        let id = sessions.open(t0);
        assert_eq!(id.len(), 64);
        assert!(sessions.is_valid(&id, t0 + Duration::from_secs(59)));
        assert!(!sessions.is_valid(&id, t0 + Duration::from_secs(60)));
        let id = sessions.open(t0);
        sessions.close(&id, t0);
        assert!(!sessions.is_valid(&id, t0));
        assert!(!sessions.is_valid("forged", t0));
    }

    #[test]
    fn sessions_are_capped_oldest_first() {
        let t0 = Instant::now();
        let sessions = LoginSessions::new(Duration::from_secs(60));
        let first = sessions.open(t0);
        for i in 0..MAX_LOGIN_SESSIONS {
            sessions.open(t0 + Duration::from_millis(1 + i as u64));
        }
        let later = t0 + Duration::from_secs(1);
        assert!(!sessions.is_valid(&first, later));
        assert_eq!(sessions.lock(later).len(), MAX_LOGIN_SESSIONS);
    }

    #[test]
    fn call_tokens_work_once_and_expire() {
        let t0 = Instant::now();
        let tokens = CallTokens::new(Duration::from_secs(300));
        let grant = CallGrant {
            persona: "default".into(),
        };
        let (token, ttl) = tokens.mint(grant.clone(), t0).expect("minted");
        assert_eq!(ttl, Duration::from_secs(300));
        assert_eq!(tokens.redeem(&token, t0), Some(grant.clone()));
        assert_eq!(tokens.redeem(&token, t0), None);
        let (token, _) = tokens.mint(grant, t0).expect("minted");
        assert_eq!(tokens.redeem(&token, t0 + Duration::from_secs(300)), None);
    }

    #[test]
    fn unused_call_tokens_are_capped() {
        let t0 = Instant::now();
        let tokens = CallTokens::new(Duration::from_secs(300));
        let grant = CallGrant {
            persona: "default".into(),
        };
        for _ in 0..MAX_CALL_TOKENS {
            tokens.mint(grant.clone(), t0).expect("minted");
        }
        assert_eq!(tokens.mint(grant.clone(), t0), Err(TooManyCallTokens));
        assert!(tokens.mint(grant, t0 + Duration::from_secs(301)).is_ok());
    }
}

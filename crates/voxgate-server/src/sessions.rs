//! Monitor sessions parked after a disconnect, so a client that reconnects
//! within the grace period gets its subscriptions and held config back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use voxgate_core::events::{CallFilter, JobConfig};
use voxgate_core::ids::SessionId;

use crate::metrics;

/// What a monitor session carries across a reconnect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    /// Active subscriptions, in the order given.
    pub subscriptions: Vec<CallFilter>,
    /// Configuration held for the next call the session sees start.
    pub held_config: Option<JobConfig>,
}

#[derive(Debug)]
struct Parked {
    state: SessionState,
    expires_at: Instant,
}

/// Parked sessions, purged as they expire.
#[derive(Debug, Clone)]
pub struct ParkedSessions {
    grace: Duration,
    max: usize,
    parked: Arc<Mutex<HashMap<SessionId, Parked>>>,
}

impl ParkedSessions {
    /// Sessions are kept for `grace` after their connection closes; at
    /// most `max` at once, the one closest to expiry going first.
    pub fn new(grace: Duration, max: usize) -> Self {
        Self {
            grace,
            max,
            parked: Arc::default(),
        }
    }

    fn lock(&self, now: Instant) -> MutexGuard<'_, HashMap<SessionId, Parked>> {
        // Every operation is a single insert/remove, so a poisoned map is
        // still consistent.
        let mut parked = self
            .parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        parked.retain(|_, p| p.expires_at > now);
        parked
    }

    /// Keeps a session's state after its connection closed at `now`.
    pub fn park(&self, id: SessionId, state: SessionState, now: Instant) {
        if self.grace.is_zero() || self.max == 0 {
            return;
        }
        let expires_at = now + self.grace;
        let mut parked = self.lock(now);
        if parked.len() >= self.max
            && let Some(first) = parked
                .iter()
                .min_by_key(|(_, p)| p.expires_at)
                .map(|(id, _)| id.clone())
        {
            parked.remove(&first);
            metrics::limited("parked_sessions");
        }
        parked.insert(id, Parked { state, expires_at });
    }

    /// Takes a parked session back, if it has not expired.
    pub fn resume(&self, id: &SessionId, now: Instant) -> Option<SessionState> {
        self.lock(now).remove(id).map(|p| p.state)
    }

    /// Drops every parked session; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut parked = self
            .parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = parked.len();
        parked.clear();
        count
    }

    /// How many sessions are parked and unexpired at `now`.
    pub fn len(&self, now: Instant) -> usize {
        self.lock(now).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_within_grace_only_once() {
        let t0 = Instant::now();
        let sessions = ParkedSessions::new(Duration::from_secs(5), 16);
        let id = SessionId::new("s1").expect("id");
        let state = SessionState {
            subscriptions: vec![CallFilter::All],
            held_config: None,
        };
        sessions.park(id.clone(), state.clone(), t0);
        assert_eq!(sessions.len(t0), 1);
        assert_eq!(
            sessions.resume(&id, t0 + Duration::from_secs(4)),
            Some(state)
        );
        assert_eq!(sessions.resume(&id, t0 + Duration::from_secs(4)), None);
    }

    #[test]
    fn parked_sessions_are_capped_closest_to_expiry_first() {
        let t0 = Instant::now();
        let sessions = ParkedSessions::new(Duration::from_secs(5), 2);
        let id = |n: usize| SessionId::new(format!("s{n}")).expect("id");
        for n in 0..3 {
            sessions.park(
                id(n),
                SessionState::default(),
                t0 + Duration::from_millis(n as u64),
            );
        }
        let now = t0 + Duration::from_millis(3);
        assert_eq!(sessions.len(now), 2);
        assert_eq!(sessions.resume(&id(0), now), None);
        assert!(sessions.resume(&id(2), now).is_some());
    }

    #[test]
    fn expired_sessions_are_gone() {
        let t0 = Instant::now();
        let sessions = ParkedSessions::new(Duration::from_secs(5), 16);
        let id = SessionId::new("s1").expect("id");
        sessions.park(id.clone(), SessionState::default(), t0);
        assert_eq!(sessions.len(t0 + Duration::from_secs(5)), 0);
        assert_eq!(sessions.resume(&id, t0 + Duration::from_secs(6)), None);
    }
}

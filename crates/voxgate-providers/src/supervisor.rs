//! One supervisor per vendor, shared by every call: a cap on concurrent
//! requests or sockets, connect timeouts, retries with jittered exponential
//! back-off, and a circuit breaker that fails fast while the vendor is down.
//!
//! A vendor client wraps each connect or request in [`Supervisor::run`] and
//! holds the returned [`Permit`] for as long as the stream or socket lives.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::ProviderError;

/// How one vendor is treated.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorPolicy {
    /// Requests or sockets open at once, across all calls.
    pub max_concurrent: usize,
    /// How long one attempt may take to connect (or to get response
    /// headers).
    pub connect_timeout: Duration,
    /// Attempts after the first, for retryable errors.
    pub retries: u32,
    /// First back-off; doubled on each retry, with jitter.
    pub backoff_base: Duration,
    /// Longest back-off (and longest `retry-after` honoured).
    pub backoff_max: Duration,
    /// Failures in a row that open the circuit.
    pub breaker_failures: u32,
    /// How long an open circuit fails fast before one trial is let through.
    pub breaker_cooldown: Duration,
}

impl Default for VendorPolicy {
    fn default() -> Self {
        Self {
            max_concurrent: 64,
            connect_timeout: Duration::from_secs(5),
            retries: 2,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(10),
        }
    }
}

/// The circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// The vendor failed repeatedly: requests fail at once until the
    /// cooldown ends.
    Open,
    /// The cooldown ended: one trial request is in flight.
    HalfOpen,
}

#[derive(Debug)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

#[derive(Debug)]
struct Inner {
    vendor: &'static str,
    policy: VendorPolicy,
    slots: Arc<Semaphore>,
    breaker: Mutex<Breaker>,
}

/// The supervisor of one vendor. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// One of the vendor's concurrent slots; released when dropped.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
}

impl Supervisor {
    /// A supervisor for `vendor` (its name in errors and metrics).
    pub fn new(vendor: &'static str, policy: VendorPolicy) -> Self {
        let slots = Arc::new(Semaphore::new(policy.max_concurrent.max(1)));
        Self {
            inner: Arc::new(Inner {
                vendor,
                policy,
                slots,
                breaker: Mutex::new(Breaker {
                    failures: 0,
                    open_until: None,
                    trial_in_flight: false,
                }),
            }),
        }
    }

    /// The vendor's name.
    pub fn vendor(&self) -> &'static str {
        self.inner.vendor
    }

    /// The policy.
    pub fn policy(&self) -> &VendorPolicy {
        &self.inner.policy
    }

    /// The breaker's state now.
    pub fn state(&self) -> BreakerState {
        let breaker = self.breaker();
        match breaker.open_until {
            None => BreakerState::Closed,
            Some(until) if Instant::now() < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Runs `attempt` (numbered from 0) until it succeeds, fails for good,
    /// or the retries are spent, and returns its value with the slot it
    /// ran in. Each attempt is bounded by the connect timeout; retryable
    /// failures wait a jittered exponential back-off (or the vendor's
    /// `retry-after`, if longer, up to `backoff_max`).
    ///
    /// # Errors
    /// The circuit is open, or the last attempt's error.
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<(T, Permit), ProviderError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let policy = &self.inner.policy;
        let mut number = 0;
        loop {
            self.admit()?;
            let slot = tokio::time::timeout(policy.connect_timeout, self.slot())
                .await
                .map_err(|_| ProviderError::Unavailable {
                    provider: self.inner.vendor,
                    reason: format!("all {} slots busy", policy.max_concurrent),
                })??;
            let outcome = match tokio::time::timeout(policy.connect_timeout, attempt(number)).await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(ProviderError::Unavailable {
                    provider: self.inner.vendor,
                    reason: format!("no answer within {:?}", policy.connect_timeout),
                }),
            };
            match outcome {
                Ok(value) => {
                    self.record_success();
                    return Ok((value, slot));
                }
                Err(error) => {
                    self.record_outcome_error(&error);
                    drop(slot);
                    if !error.is_retryable() || number >= policy.retries {
                        return Err(error);
                    }
                    let wait = self.backoff(number).max(
                        error
                            .retry_after()
                            .unwrap_or_default()
                            .min(policy.backoff_max),
                    );
                    tracing::debug!(vendor = self.inner.vendor, %error, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                    number += 1;
                }
            }
        }
    }

    /// The back-off before retry `attempt` (0 = first retry): full jitter
    /// over `base * 2^attempt`, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let policy = &self.inner.policy;
        let ceiling = policy
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(policy.backoff_max);
        let half = ceiling / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Records a success that happened outside [`Supervisor::run`] (a
    /// stream that completed): closes the circuit.
    pub fn record_success(&self) {
        let mut breaker = self.breaker();
        breaker.failures = 0;
        breaker.open_until = None;
        breaker.trial_in_flight = false;
    }

    /// Records a vendor failure that happened outside
    /// [`Supervisor::run`] (a socket that dropped mid-call).
    pub fn record_failure(&self) {
        let policy = &self.inner.policy;
        let mut breaker = self.breaker();
        breaker.failures = breaker.failures.saturating_add(1);
        breaker.trial_in_flight = false;
        if breaker.failures >= policy.breaker_failures || breaker.open_until.is_some() {
            if breaker.open_until.is_none() {
                tracing::warn!(vendor = self.inner.vendor, "circuit opened");
            }
            breaker.open_until = Some(Instant::now() + policy.breaker_cooldown);
        }
    }

    /// Only the vendor's own failures count against it: a rejected key or
    /// a bad request says nothing about its health.
    fn record_outcome_error(&self, error: &ProviderError) {
        if error.is_retryable() || matches!(error, ProviderError::Protocol { .. }) {
            self.record_failure();
        } else {
            let mut breaker = self.breaker();
            breaker.trial_in_flight = false;
        }
    }

    /// Fails fast while the circuit is open; after the cooldown lets one
    /// trial through.
    fn admit(&self) -> Result<(), ProviderError> {
        let mut breaker = self.breaker();
        let Some(until) = breaker.open_until else {
            return Ok(());
        };
        if Instant::now() >= until && !breaker.trial_in_flight {
            breaker.trial_in_flight = true;
            return Ok(());
        }
        Err(ProviderError::Unavailable {
            provider: self.inner.vendor,
            reason: "circuit open after repeated failures".to_owned(),
        })
    }

    async fn slot(&self) -> Result<Permit, ProviderError> {
        let slot = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ProviderError::Unavailable {
                provider: self.inner.vendor,
                reason: "supervisor closed".to_owned(),
            })?;
        Ok(Permit { _slot: slot })
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.inner
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn policy() -> VendorPolicy {
        VendorPolicy {
            max_concurrent: 2,
            connect_timeout: Duration::from_millis(500),
            retries: 2,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(10),
        }
    }

    fn down() -> ProviderError {
        ProviderError::Unavailable {
            provider: "test",
            reason: "503".to_owned(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_errors_then_succeeds() {
        let supervisor = Supervisor::new("test", policy());
        let tries = AtomicU32::new(0);
        let (value, _permit) = supervisor
            .run(|n| {
                tries.fetch_add(1, Ordering::SeqCst);
                async move { if n < 2 { Err(down()) } else { Ok(n) } }
            })
            .await
            .expect("third attempt succeeds");
        assert_eq!(value, 2);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert_eq!(supervisor.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rejection_is_not_retried_and_does_not_open_the_circuit() {
        let supervisor = Supervisor::new("test", policy());
        let tries = AtomicU32::new(0);
        for _ in 0..5 {
            let result = supervisor
                .run(|_| {
                    tries.fetch_add(1, Ordering::SeqCst);
                    async {
                        Err::<(), _>(ProviderError::Rejected {
                            provider: "test",
                            status: 401,
                            reason: "bad key".to_owned(),
                        })
                    }
                })
                .await;
            assert!(matches!(
                result,
                Err(ProviderError::Rejected { status: 401, .. })
            ));
        }
        assert_eq!(tries.load(Ordering::SeqCst), 5);
        assert_eq!(supervisor.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_up_to_the_cap() {
        let supervisor = Supervisor::new("test", policy());
        let started = Instant::now();
        let result = supervisor
            .run(|n| async move {
                if n == 0 {
                    Err(ProviderError::RateLimited {
                        provider: "test",
                        retry_after: Some(Duration::from_millis(800)),
                    })
                } else {
                    Ok(())
                }
            })
            .await;
        assert!(result.is_ok());
        assert!(started.elapsed() >= Duration::from_millis(800));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_attempt_times_out() {
        let supervisor = Supervisor::new(
            "test",
            VendorPolicy {
                retries: 0,
                ..policy()
            },
        );
        let result = supervisor
            .run(|_| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(ProviderError::Unavailable { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_fails_fast_and_closes_after_a_good_trial() {
        let supervisor = Supervisor::new(
            "test",
            VendorPolicy {
                retries: 0,
                ..policy()
            },
        );
        for _ in 0..3 {
            let _ = supervisor.run(|_| async { Err::<(), _>(down()) }).await;
        }
        assert_eq!(supervisor.state(), BreakerState::Open);
        let tries = AtomicU32::new(0);
        let result = supervisor
            .run(|_| {
                tries.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
            .await;
        assert!(matches!(result, Err(ProviderError::Unavailable { .. })));
        assert_eq!(tries.load(Ordering::SeqCst), 0, "fails without trying");

        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(supervisor.state(), BreakerState::HalfOpen);
        let _ = supervisor.run(|_| async { Err::<(), _>(down()) }).await;
        assert_eq!(
            supervisor.state(),
            BreakerState::Open,
            "a failed trial reopens"
        );

        tokio::time::advance(Duration::from_secs(11)).await;
        supervisor
            .run(|_| async { Ok(()) })
            .await
            .expect("the trial goes through");
        assert_eq!(supervisor.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_capped_across_callers() {
        let supervisor = Supervisor::new("test", policy());
        let (_, first) = supervisor.run(|_| async { Ok(()) }).await.expect("slot");
        let (_, second) = supervisor.run(|_| async { Ok(()) }).await.expect("slot");
        let waiting = tokio::time::timeout(
            Duration::from_millis(100),
            supervisor.run(|_| async { Ok(()) }),
        )
        .await;
        assert!(waiting.is_err(), "a third waits while two slots are held");
        drop(first);
        let third = supervisor.run(|_| async { Ok(()) }).await;
        assert!(third.is_ok());
        drop(second);
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let supervisor = Supervisor::new("test", policy());
        for _ in 0..50 {
            let first = supervisor.backoff(0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = supervisor.backoff(2);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            assert!(supervisor.backoff(20) <= Duration::from_secs(1));
        }
    }
}

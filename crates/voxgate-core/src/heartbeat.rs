//! WebSocket liveness, sans-IO.
//!
//! Drive loop: call [`Heartbeat::heard`] whenever anything arrives from the
//! peer (a frame of any kind, a pong, a JSON `ping`), sleep until
//! [`Heartbeat::next_deadline`], then call [`Heartbeat::poll`] and act on what
//! it returns. The caller supplies `now`; nothing here reads a clock.

use std::time::{Duration, Instant};

/// Heartbeat timing for one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// How often the server sends a WebSocket ping.
    pub ping_interval: Duration,
    /// How long the peer may stay silent before the connection is closed.
    pub idle_timeout: Duration,
}

impl Default for HeartbeatConfig {
    /// 30 s pings keep nginx's and AWS ALB's 60 s idle timers from firing.
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What the shell must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatAction {
    /// Send a WebSocket ping.
    SendPing,
    /// Nothing has been heard for the idle timeout: close the connection.
    Close,
}

/// Liveness state of one connection.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    config: HeartbeatConfig,
    last_heard: Instant,
    next_ping: Instant,
}

impl Heartbeat {
    /// Starts the clocks at `now`, the moment the connection opened.
    pub fn new(config: HeartbeatConfig, now: Instant) -> Self {
        Self {
            config,
            last_heard: now,
            next_ping: now + config.ping_interval,
        }
    }

    /// The timing this heartbeat runs on.
    pub fn config(&self) -> HeartbeatConfig {
        self.config
    }

    /// Records that something arrived from the peer.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// The earliest instant at which [`Heartbeat::poll`] has something to do.
    pub fn next_deadline(&self) -> Instant {
        self.next_ping.min(self.idle_deadline())
    }

    /// Returns the action due at `now`, if any. Closing wins over pinging:
    /// a peer that is already idle for too long gets no more chances.
    pub fn poll(&mut self, now: Instant) -> Option<HeartbeatAction> {
        if now >= self.idle_deadline() {
            return Some(HeartbeatAction::Close);
        }
        if now >= self.next_ping {
            // Keep the cadence when the driver is slightly late (timers
            // round up), but a driver late by a whole interval or more
            // sends one ping, not a burst of catch-up pings.
            self.next_ping += self.config.ping_interval;
            if self.next_ping <= now {
                self.next_ping = now + self.config.ping_interval;
            }
            return Some(HeartbeatAction::SendPing);
        }
        None
    }

    fn idle_deadline(&self) -> Instant {
        self.last_heard + self.config.idle_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> HeartbeatConfig {
        HeartbeatConfig {
            ping_interval: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(250),
        }
    }

    #[test]
    fn pings_on_interval_then_closes_a_silent_peer() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(config(), t0);
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(hb.poll(ms(99)), None);
        assert_eq!(hb.next_deadline(), ms(100));
        assert_eq!(hb.poll(ms(100)), Some(HeartbeatAction::SendPing));
        assert_eq!(hb.poll(ms(100)), None);
        assert_eq!(hb.poll(ms(200)), Some(HeartbeatAction::SendPing));
        assert_eq!(hb.next_deadline(), ms(250));
        assert_eq!(hb.poll(ms(250)), Some(HeartbeatAction::Close));
    }

    #[test]
    fn anything_heard_postpones_the_close() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(config(), t0);
        let ms = |n| t0 + Duration::from_millis(n);
        hb.heard(ms(200));
        assert_eq!(hb.poll(ms(250)), Some(HeartbeatAction::SendPing));
        assert_eq!(hb.poll(ms(449)), Some(HeartbeatAction::SendPing));
        assert_eq!(hb.poll(ms(450)), Some(HeartbeatAction::Close));
    }

    #[test]
    fn a_late_driver_sends_one_ping_not_a_burst() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(config(), t0);
        hb.heard(t0 + Duration::from_millis(230));
        assert_eq!(
            hb.poll(t0 + Duration::from_millis(240)),
            Some(HeartbeatAction::SendPing)
        );
        assert_eq!(hb.poll(t0 + Duration::from_millis(241)), None);
        assert_eq!(hb.next_deadline(), t0 + Duration::from_millis(340));
    }

    #[test]
    fn slight_lateness_does_not_drift_the_cadence() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(config(), t0);
        hb.heard(t0 + Duration::from_millis(150));
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(hb.poll(ms(101)), Some(HeartbeatAction::SendPing));
        assert_eq!(hb.next_deadline(), ms(200));
    }

    #[test]
    fn heard_never_moves_time_backwards() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(config(), t0 + Duration::from_millis(50));
        hb.heard(t0);
        assert_eq!(hb.next_deadline(), t0 + Duration::from_millis(150));
    }
}

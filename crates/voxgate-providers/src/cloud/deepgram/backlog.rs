//! Audio held while the socket is (re)connecting: the most recent few
//! seconds, sent as soon as it opens, so a reconnect loses as little of the
//! caller as possible without holding memory without bound.

use std::collections::VecDeque;

use bytes::Bytes;

/// Binary frames waiting for a socket, oldest first, at most `capacity`
/// bytes.
#[derive(Debug)]
pub(super) struct Backlog {
    frames: VecDeque<Bytes>,
    bytes: usize,
    capacity: usize,
}

impl Backlog {
    /// An empty backlog of at most `capacity` bytes.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            bytes: 0,
            capacity,
        }
    }

    /// Adds `frame`, dropping the oldest frames past the capacity; returns
    /// how many were dropped.
    pub(super) fn push(&mut self, frame: Bytes) -> usize {
        self.bytes += frame.len();
        self.frames.push_back(frame);
        let mut dropped = 0;
        while self.bytes > self.capacity {
            let Some(oldest) = self.frames.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
            dropped += 1;
        }
        dropped
    }

    /// Takes the oldest frame.
    pub(super) fn pop(&mut self) -> Option<Bytes> {
        let frame = self.frames.pop_front()?;
        self.bytes -= frame.len();
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_frames_within_capacity() {
        let mut backlog = Backlog::new(10);
        assert_eq!(backlog.push(Bytes::from_static(&[1; 4])), 0);
        assert_eq!(backlog.push(Bytes::from_static(&[2; 4])), 0);
        assert_eq!(backlog.push(Bytes::from_static(&[3; 4])), 1);
        assert_eq!(backlog.pop().as_deref(), Some(&[2; 4][..]));
        assert_eq!(backlog.pop().as_deref(), Some(&[3; 4][..]));
        assert_eq!(backlog.pop(), None);
        assert_eq!(
            backlog.push(Bytes::from_static(&[4; 12])),
            1,
            "too big to keep"
        );
        assert_eq!(backlog.pop(), None);
    }
}

//! Wake-ups between threads: an `eventfd` that one side signals and the other waits on or drains.
//!
//! Owns the descriptor. Signalling costs one `write` syscall, so it is done per control command or per batch of
//! acknowledgements, never per packet.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{eventfd, EventfdFlags};

/// A counter-mode, non-blocking eventfd.
#[derive(Debug)]
pub struct Notifier {
    fd: OwnedFd,
}

impl Notifier {
    /// Creates the eventfd.
    pub fn new() -> io::Result<Notifier> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Notifier { fd })
    }

    /// Wakes whoever waits on the descriptor.
    pub fn notify(&self) {
        // A full counter (2^64 - 2 pending wake-ups) only returns EAGAIN: the waiter is awake anyway.
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    /// Blocks until notified or `timeout` passes; returns whether a notification is pending (not drained).
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        let mut fds = [rustix::event::PollFd::new(&self.fd, rustix::event::PollFlags::IN)];
        let timeout = rustix::event::Timespec { tv_sec: timeout.as_secs() as _, tv_nsec: timeout.subsec_nanos() as _ };
        matches!(rustix::event::poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
    }

    /// Resets the counter; returns how many notifications were pending.
    pub fn drain(&self) -> u64 {
        let mut buf = [0u8; 8];
        match rustix::io::read(&self.fd, &mut buf) {
            Ok(8) => u64::from_ne_bytes(buf),
            _ => 0,
        }
    }
}

impl AsFd for Notifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_accumulate_until_drained() {
        let n = Notifier::new().unwrap();
        assert_eq!(n.drain(), 0);
        n.notify();
        n.notify();
        assert_eq!(n.drain(), 2);
        assert_eq!(n.drain(), 0);
        assert!(!n.wait(std::time::Duration::from_millis(1)));
        n.notify();
        assert!(n.wait(std::time::Duration::from_secs(5)));
    }
}

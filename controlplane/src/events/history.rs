//! The numbering and the bounded memory of lifecycle events: the pure core of the bus.
//!
//! Owns [`History`]: it assigns each event its sequence number (1, 2, 3, ... without gaps) and id, keeps the
//! newest `events.history` events, and answers what a watcher resuming after a sequence number missed, or why
//! it cannot ([`ResumeError`]). Sans-IO: the time is passed in. Must never grow beyond its capacity nor
//! renumber anything.

use std::collections::VecDeque;
use std::sync::Arc;

use super::event::{Event, EventKind};

/// Why a watcher cannot resume after a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// Some events after `from_seq` are no longer kept.
    #[error(
        "events after from_seq {from_seq} are no longer kept (events.history = {history}): the oldest kept is \
         {oldest}, the newest {newest}; resume from_seq {} or later, or watch without from_seq",
        oldest.saturating_sub(1)
    )]
    Forgotten {
        /// As asked.
        from_seq: u64,
        /// The oldest event kept (the newest + 1 when none is kept).
        oldest: u64,
        /// The newest event (0: none yet).
        newest: u64,
        /// `events.history`.
        history: usize,
    },
    /// `from_seq` is beyond the newest event: the watcher saw events of an earlier run of the node.
    #[error(
        "from_seq {from_seq} is beyond the newest event {newest} (the node restarted and numbers events from 1 \
         again?); watch without from_seq, or from_seq {newest} or less"
    )]
    Ahead {
        /// As asked.
        from_seq: u64,
        /// The newest event (0: none yet).
        newest: u64,
    },
}

/// The numbered events, the newest `capacity` of them kept.
#[derive(Debug)]
pub struct History {
    boot_id: u64,
    newest: u64,
    events: VecDeque<Arc<Event>>,
    capacity: usize,
}

impl History {
    /// An empty history of this run of the node (`boot_id` makes ids unique across runs), keeping `capacity`
    /// events (at least 1).
    pub fn new(boot_id: u64, capacity: usize) -> History {
        let capacity = capacity.max(1);
        History { boot_id, newest: 0, events: VecDeque::with_capacity(capacity), capacity }
    }

    /// Numbers and keeps an event that happened at `unix_ms`, forgetting the oldest one when full.
    pub fn record(&mut self, session_id: String, kind: EventKind, unix_ms: u64) -> Arc<Event> {
        self.newest += 1;
        let seq = self.newest;
        let event = Arc::new(Event { id: format!("{:016x}-{seq}", self.boot_id), seq, unix_ms, session_id, kind });
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(Arc::clone(&event));
        event
    }

    /// The newest sequence number given out (0: none yet).
    pub fn newest_seq(&self) -> u64 {
        self.newest
    }

    /// The kept events after `from_seq`, oldest first: all events after it, or the reason they are not all
    /// kept.
    pub fn after(&self, from_seq: u64) -> Result<impl Iterator<Item = &Arc<Event>>, ResumeError> {
        let kept = self.events.len() as u64;
        let oldest = self.newest + 1 - kept;
        if from_seq > self.newest {
            return Err(ResumeError::Ahead { from_seq, newest: self.newest });
        }
        if from_seq + 1 < oldest {
            return Err(ResumeError::Forgotten { from_seq, oldest, newest: self.newest, history: self.capacity });
        }
        let skip = usize::try_from(from_seq + 1 - oldest).unwrap_or(usize::MAX);
        Ok(self.events.iter().skip(skip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(capacity: usize, events: u64) -> History {
        let mut h = History::new(0xab, capacity);
        for i in 0..events {
            h.record(format!("s{i}"), EventKind::SessionStarted, 1000 + i);
        }
        h
    }

    fn seqs(h: &History, from: u64) -> Result<Vec<u64>, ResumeError> {
        h.after(from).map(|events| events.map(|e| e.seq).collect())
    }

    #[test]
    fn events_are_numbered_from_one_without_gaps_with_unique_ids() {
        let mut h = History::new(0xab, 4);
        let a = h.record("s".into(), EventKind::SessionStarted, 5);
        let b = h.record("s".into(), EventKind::SessionEnded, 6);
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.id, "00000000000000ab-1");
        assert_ne!(a.id, b.id);
        assert_eq!(b.unix_ms, 6);
        assert_eq!(h.newest_seq(), 2);
    }

    #[test]
    fn resuming_gives_exactly_what_came_after() {
        let h = history(8, 5);
        assert_eq!(seqs(&h, 0).unwrap(), [1, 2, 3, 4, 5]);
        assert_eq!(seqs(&h, 3).unwrap(), [4, 5]);
        assert_eq!(seqs(&h, 5).unwrap(), Vec::<u64>::new());
        assert_eq!(seqs(&history(8, 0), 0).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn the_history_is_bounded_and_says_what_it_forgot() {
        let h = history(4, 10);
        assert_eq!(seqs(&h, 6).unwrap(), [7, 8, 9, 10], "the oldest kept is 7");
        let err = seqs(&h, 5).unwrap_err();
        assert_eq!(err, ResumeError::Forgotten { from_seq: 5, oldest: 7, newest: 10, history: 4 });
        let message = err.to_string();
        assert!(message.contains("events.history = 4") && message.contains("from_seq 6"), "{message}");
        assert_eq!(seqs(&h, 0).unwrap_err(), ResumeError::Forgotten { from_seq: 0, oldest: 7, newest: 10, history: 4 });
    }

    #[test]
    fn resuming_beyond_the_newest_event_is_refused() {
        let h = history(4, 3);
        assert_eq!(seqs(&h, 4).unwrap_err(), ResumeError::Ahead { from_seq: 4, newest: 3 });
        assert!(seqs(&history(4, 0), 1).unwrap_err().to_string().contains("restarted"));
    }
}

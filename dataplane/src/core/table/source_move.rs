//! Moving a fixed stream to another source address (`Command::SetSource`) without a gap or a repeat.
//!
//! Owns the move rule of the table (see the module docs of `table`, "Moving a fixed source"): the overlap
//! during which the stream takes packets from its previous source as well as from its new one, the check that
//! keeps each RTP packet of the two copies once, and the end of the overlap, which frees the previous source's
//! key. Must never add a key to `locked` past its reserved room (two keys per stream) and never allocate: it runs
//! per packet while a stream moves.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{SourceState, Table};
use crate::core::command::{CommandError, StreamId};
use crate::core::wire::SeqNo;

/// How long a stream moved by `Command::SetSource` keeps taking packets from its previous source: long enough for
/// what was in flight on the old path (tens of µs behind or ahead of the new one between cluster nodes, a few ms
/// across a WAN) to arrive, short enough that the previous address does not stay open to anyone for long.
pub const SOURCE_MOVE_OVERLAP: Duration = Duration::from_millis(200);

/// Where a fixed stream moved from, while the two sources overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MovedFrom {
    /// Its previous source: `(previous, ssrc)` still finds the stream in `locked`.
    pub(crate) previous: SocketAddr,
    /// When the overlap ends: the move's command time plus [`SOURCE_MOVE_OVERLAP`].
    pub(crate) until: Instant,
    /// The highest extended RTP sequence number taken: before the move, then from either source. `None`: none yet.
    pub(crate) highest_seq: Option<u64>,
}

/// What a packet of a moving stream (found by its source key while it has [`MovedFrom`]) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overlap {
    /// Taken as any packet of the stream: from its new source (or its RTCP source), or the overlap just ended.
    Take,
    /// From its previous source during the overlap (RTCP, or RTP not taken yet): taken, but the socket RTCP to the
    /// publisher leaves from stays the one its new source uses.
    TakeFromPrevious,
    /// RTP no newer than the highest taken: the other source's copy came first. Dropped as `repeated`.
    Repeated,
    /// From its previous source after the overlap, which has just ended: not the stream's, as any other address.
    Ended,
}

impl Table {
    /// Runs `Command::SetSource` at `now`. A fixed stream locked elsewhere moves to `source`, with an overlap when
    /// `overlap` says so (see the module docs of `table`), else at once; a move back to the previous source during an overlap, or a move when `locked` has
    /// no room for a second key, switches at once. A latching stream still waiting gets `source` as its fallback; a
    /// latched one is left to its latching rule. On error nothing changed. Never allocates (capacity reserved).
    pub(crate) fn set_source(
        &mut self,
        now: Instant,
        id: StreamId,
        source: SocketAddr,
        overlap: bool,
    ) -> Result<(), CommandError> {
        let idx = *self.stream_ids.get(&id).ok_or(CommandError::StreamNotFound { id })?;
        let stream = &mut self.streams[idx as usize];
        let ssrc = stream.ssrc;
        match (stream.latch_window, stream.source) {
            (None, SourceState::Locked(current)) if current != source => {
                if self.key_holder((source, ssrc)).is_some() {
                    return Err(CommandError::SsrcInUse { ssrc, source_addr: Some(source) });
                }
                let back = self.streams[idx as usize].moved_from.is_some_and(|moved| moved.previous == source);
                // A second move ends the first one's overlap; another stream moving away from `source` yields it now.
                self.end_move(idx);
                self.yield_key((source, ssrc));
                let until = now.checked_add(SOURCE_MOVE_OVERLAP).filter(|_| overlap && !back);
                let room = self.locked.len() < self.max_locked_keys();
                let own_key = self.locked.get(&(current, ssrc)) == Some(&idx);
                let stream = &mut self.streams[idx as usize];
                stream.moved_from = match until {
                    Some(until) if room && own_key => {
                        Some(MovedFrom { previous: current, until, highest_seq: stream.seq.highest() })
                    }
                    _ => {
                        if own_key {
                            self.locked.remove(&(current, ssrc));
                        }
                        None
                    }
                };
                stream.source = SourceState::Locked(source);
                self.locked.insert((source, ssrc), idx);
            }
            (_, SourceState::Waiting { deadline, .. }) => {
                stream.source = SourceState::Waiting { deadline, fallback: Some(source) };
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether stream `idx` is moving (has an overlap, maybe over but not ended yet): the one check the lookup of a
    /// packet makes for moves.
    pub(crate) fn is_moving(&self, idx: u32) -> bool {
        self.streams[idx as usize].moved_from.is_some()
    }

    /// Checks a packet from `src` (RTP: with sequence number `seq`) of stream `idx`, found by its source key while
    /// it moves: during the overlap RTP is taken once (the first copy of each, from either source; its extended
    /// number becomes the highest taken), RTCP always; at or after its end the overlap ends here (the previous
    /// source's key goes) and a packet from the previous source is no longer the stream's. Never allocates.
    pub(crate) fn take_while_moving(&mut self, now: Instant, idx: u32, src: SocketAddr, seq: Option<SeqNo>) -> Overlap {
        let stream = &mut self.streams[idx as usize];
        let Some(moved) = &mut stream.moved_from else {
            return Overlap::Take;
        };
        let previous = moved.previous;
        if now >= moved.until {
            self.end_move(idx);
            return if src == previous { Overlap::Ended } else { Overlap::Take };
        }
        if let Some(seq) = seq {
            let ext_seq = stream.seq.extended(seq);
            if moved.highest_seq.is_some_and(|highest| ext_seq <= highest) {
                return Overlap::Repeated;
            }
            moved.highest_seq = Some(ext_seq);
        }
        if src == previous {
            Overlap::TakeFromPrevious
        } else {
            Overlap::Take
        }
    }

    /// Ends stream `idx`'s overlap, if it has one: its previous source's key goes.
    pub(super) fn end_move(&mut self, idx: u32) {
        let stream = &mut self.streams[idx as usize];
        let Some(moved) = stream.moved_from.take() else {
            return;
        };
        let key = (moved.previous, stream.ssrc);
        if self.locked.get(&key) == Some(&idx) {
            self.locked.remove(&key);
        }
    }

    /// The stream that holds `key` in `locked` as its source; not one that holds it as the previous source of a move,
    /// which yields it to whoever wants it (see [`Table::yield_key`]).
    pub(super) fn key_holder(&self, key: (SocketAddr, u32)) -> Option<u32> {
        let idx = *self.locked.get(&key)?;
        let moving_from = self.streams[idx as usize].moved_from.is_some_and(|moved| moved.previous == key.0);
        (!moving_from).then_some(idx)
    }

    /// Frees `key` if a moving stream holds it as its previous source, ending that stream's overlap early: a stream
    /// locking to it takes it.
    pub(super) fn yield_key(&mut self, key: (SocketAddr, u32)) {
        if let Some(&idx) = self.locked.get(&key) {
            if self.streams[idx as usize].moved_from.is_some_and(|moved| moved.previous == key.0) {
                self.end_move(idx);
            }
        }
    }

    /// The keys `locked` holds at most without growing: two per stream (its source, and its previous one during a
    /// move's overlap).
    pub(super) fn max_locked_keys(&self) -> usize {
        (self.limits.max_streams as usize).saturating_mul(2)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{addr, limits};
    use super::*;
    use crate::core::command::SourcePolicy;
    use crate::core::interceptor::Chain;

    fn fixed(table: &mut Table, now: Instant, id: u64, ssrc: u32, port: u16) {
        table.add_stream(now, StreamId(id), ssrc, SourcePolicy::Fixed(addr(port)), 90_000, Chain::default).unwrap();
    }

    #[test]
    fn a_move_keeps_the_previous_key_until_the_overlap_ends() {
        let now = Instant::now();
        let mut table = Table::with_hash_seed(limits(), 1);
        fixed(&mut table, now, 1, 42, 1);
        let idx = table.stream_index(StreamId(1)).unwrap();
        table.set_source(now, StreamId(1), addr(2), true).unwrap();
        assert_eq!((table.find_locked(addr(1), 42), table.find_locked(addr(2), 42)), (Some(idx), Some(idx)));
        let moved = table.streams[idx as usize].moved_from.unwrap();
        assert_eq!(moved, MovedFrom { previous: addr(1), until: now + SOURCE_MOVE_OVERLAP, highest_seq: None });
        let just_before = now + SOURCE_MOVE_OVERLAP - Duration::from_nanos(1);
        assert_eq!(table.take_while_moving(just_before, idx, addr(1), None), Overlap::TakeFromPrevious);
        assert_eq!(table.take_while_moving(now + SOURCE_MOVE_OVERLAP, idx, addr(1), None), Overlap::Ended);
        assert_eq!(table.find_locked(addr(1), 42), None);
        assert!(!table.is_moving(idx));
        assert_eq!(table.locked.len(), 1);
    }

    #[test]
    fn removing_or_re_keying_a_moving_stream_leaves_no_key() {
        let now = Instant::now();
        let mut table = Table::with_hash_seed(limits(), 1);
        fixed(&mut table, now, 1, 42, 1);
        table.set_source(now, StreamId(1), addr(2), true).unwrap();
        assert_eq!(table.locked.len(), 2);
        table.remove_stream(StreamId(1)).unwrap();
        assert!(table.locked.is_empty(), "{:?}", table.locked);
        fixed(&mut table, now, 1, 42, 1);
        table.set_source(now, StreamId(1), addr(2), true).unwrap();
        let idx = table.change_stream_ssrc(StreamId(1), 43).unwrap();
        assert_eq!(table.locked.len(), 1);
        assert_eq!(table.find_locked(addr(2), 43), Some(idx));
        assert!(!table.is_moving(idx));
    }

    #[test]
    fn a_second_move_ends_the_first_and_a_move_back_switches_at_once() {
        let now = Instant::now();
        let mut table = Table::with_hash_seed(limits(), 1);
        fixed(&mut table, now, 1, 42, 1);
        let idx = table.stream_index(StreamId(1)).unwrap();
        table.set_source(now, StreamId(1), addr(2), true).unwrap();
        table.set_source(now, StreamId(1), addr(3), true).unwrap();
        let keys = |t: &Table| [1, 2, 3].map(|port| t.find_locked(addr(port), 42).is_some());
        assert_eq!(keys(&table), [false, true, true], "moving from 2 to 3; 1 is gone");
        assert_eq!(table.streams[idx as usize].moved_from.map(|moved| moved.previous), Some(addr(2)));
        table.set_source(now, StreamId(1), addr(2), true).unwrap();
        assert_eq!(keys(&table), [false, true, false], "back to 2: no overlap");
        assert!(!table.is_moving(idx));
        // The same address again changes nothing, and a stream at another address keeps it.
        table.set_source(now, StreamId(1), addr(3), true).unwrap();
        table.set_source(now, StreamId(1), addr(3), true).unwrap();
        assert_eq!(keys(&table), [false, true, true]);
        fixed(&mut table, now, 2, 42, 5);
        let taken = table.set_source(now, StreamId(1), addr(5), true);
        assert!(matches!(taken, Err(CommandError::SsrcInUse { ssrc: 42, .. })), "{taken:?}");
        assert_eq!(keys(&table), [false, true, true], "nothing changed on error");
    }

    #[test]
    fn another_stream_takes_a_previous_source_at_once() {
        let now = Instant::now();
        let mut table = Table::with_hash_seed(limits(), 1);
        fixed(&mut table, now, 1, 42, 1);
        let first = table.stream_index(StreamId(1)).unwrap();
        table.set_source(now, StreamId(1), addr(2), true).unwrap();
        fixed(&mut table, now, 2, 42, 1);
        let second = table.stream_index(StreamId(2)).unwrap();
        assert_eq!(table.find_locked(addr(1), 42), Some(second));
        assert_eq!(table.find_locked(addr(2), 42), Some(first));
        assert!(!table.is_moving(first));
    }

    #[test]
    fn a_move_records_the_highest_sequence_number_taken_and_drops_repeats() {
        let now = Instant::now();
        let mut table = Table::with_hash_seed(limits(), 1);
        fixed(&mut table, now, 1, 42, 1);
        let idx = table.stream_index(StreamId(1)).unwrap();
        let first = table.streams[idx as usize].seq.unwrap(SeqNo(7));
        table.set_source(now, StreamId(1), addr(2), true).unwrap();
        assert_eq!(table.streams[idx as usize].moved_from.unwrap().highest_seq, Some(first));
        assert_eq!(table.take_while_moving(now, idx, addr(2), Some(SeqNo(7))), Overlap::Repeated);
        assert_eq!(table.take_while_moving(now, idx, addr(2), Some(SeqNo(8))), Overlap::Take);
        assert_eq!(table.take_while_moving(now, idx, addr(1), Some(SeqNo(8))), Overlap::Repeated);
        assert_eq!(table.take_while_moving(now, idx, addr(1), Some(SeqNo(9))), Overlap::TakeFromPrevious);
    }
}

//! SSRC aliases: where packets go whose SSRC the kernel steers to this worker while their stream lives on another.
//!
//! A stream takes a new SSRC in place (`Command::ChangeStreamSsrc`) on the worker that holds it, because its
//! subscriptions' numbering lives there: moving them would break every subscriber's sequence. When the kernel
//! steers the new SSRC ([`super::owner_of`]) to another worker, that worker gets an alias naming the stream's
//! worker (`Command::AliasSsrc`), and its forwarder hands the stream's datagrams over instead of dropping them as
//! unknown: RTP with the SSRC, RTCP whose first SSRC it is, and a subscriber's feedback about it (a subscription
//! that does not rewrite its out SSRC receives the publisher's). The cost is one copy through the handover ring per
//! packet of such a stream.
//!
//! Owns [`SsrcAliases`], reserved at construction and bounded by the worker's stream limit (an alias stands for a
//! stream the kernel steers here, so a worker holds at most as many as it could hold streams). An alias only ever
//! exists on the SSRC's owner and names another worker; the forwarder consults it only on the miss path (no stream
//! here has the packet's key), so a packet of a stream that is at home pays nothing. Must never decide routing by
//! itself: the forwarder checks where an alias may be followed (see `Forwarder::on_handover`).

use foldhash::fast::SeedableRandomState;

use super::command::CommandError;
use super::table::{reserved_map, Map};

/// A worker's SSRC aliases: SSRC → the worker holding the stream that has it.
#[derive(Debug)]
pub(crate) struct SsrcAliases {
    aliases: Map<u32, usize>,
    max: u32,
}

impl SsrcAliases {
    /// Room for `max` aliases, reserved now.
    pub(crate) fn new(max: u32, hasher: &SeedableRandomState) -> SsrcAliases {
        SsrcAliases { aliases: reserved_map(max as usize, hasher), max }
    }

    /// Hands datagrams about `ssrc` to worker `owner` from now on (replacing an alias of `ssrc` to another worker).
    pub(crate) fn add(&mut self, ssrc: u32, owner: usize) -> Result<(), CommandError> {
        if let Some(current) = self.aliases.get_mut(&ssrc) {
            *current = owner;
            return Ok(());
        }
        if self.aliases.len() >= self.max as usize {
            return Err(CommandError::LimitReached { limit: "max_streams (ssrc aliases)", value: self.max });
        }
        self.aliases.insert(ssrc, owner);
        Ok(())
    }

    /// Removes the alias of `ssrc`, if there is one.
    pub(crate) fn remove(&mut self, ssrc: u32) {
        self.aliases.remove(&ssrc);
    }

    /// The worker holding the stream with `ssrc`, if aliased here. Costs nothing measurable while there is none.
    pub(crate) fn find(&self, ssrc: u32) -> Option<usize> {
        if self.aliases.is_empty() {
            return None;
        }
        self.aliases.get(&ssrc).copied()
    }

    /// Aliases held.
    pub(crate) fn len(&self) -> usize {
        self.aliases.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_bounded_replaced_and_removed() {
        let mut aliases = SsrcAliases::new(2, &SeedableRandomState::random());
        assert_eq!(aliases.find(7), None);
        aliases.add(7, 1).unwrap();
        aliases.add(9, 1).unwrap();
        let full = aliases.add(11, 1).unwrap_err();
        assert!(matches!(full, CommandError::LimitReached { value: 2, .. }), "{full}");
        assert!(full.to_string().contains("ssrc aliases"), "{full}");
        aliases.add(7, 3).expect("an alias of a held SSRC is replaced, even when full");
        assert_eq!((aliases.find(7), aliases.find(9), aliases.len()), (Some(3), Some(1), 2));
        aliases.remove(7);
        aliases.remove(7);
        assert_eq!((aliases.find(7), aliases.len()), (None, 1));
        aliases.add(11, 0).expect("room again after the removal");
    }
}

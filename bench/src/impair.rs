//! The impairment stage on the way in: which packets a publisher loses, holds back (reorders) or
//! sends twice before they reach the forwarder.
//!
//! Owns [`Impairer`] — one per stream, seeded, so the same seed impairs the same packets on every
//! run — and its [`ImpairCounters`], which count exactly what was done so the sink's accounting can
//! be checked against it. A held packet goes out after `reorder_distance_packets` later packets of
//! its stream or once `reorder_max_delay_ms` passed, whichever comes first; it counts as reordered
//! only if at least one later packet went out before it. The generator ([`crate::gen`]) owns the
//! held bytes; this module only decides.
//!
//! Must never read a clock (times are arguments) or touch a socket.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::scenario_file::Impairment;

/// What happens to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Sent as is.
    Send,
    /// Not sent (lost on the way in).
    Drop,
    /// Sent twice.
    Duplicate,
    /// Held back, sent after later packets.
    Hold,
}

/// What the impairment did in one step, per stream or summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImpairCounters {
    /// Packets the generator produced (each decided once).
    pub packets: u64,
    /// Dropped.
    pub lost: u64,
    /// Sent a second time.
    pub duplicated: u64,
    /// Held back and released after at least one later packet.
    pub reordered: u64,
    /// Held back but released before any later packet went out (not reordered after all).
    pub held_in_order: u64,
}

impl std::ops::AddAssign for ImpairCounters {
    fn add_assign(&mut self, o: ImpairCounters) {
        self.packets += o.packets;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.held_in_order += o.held_in_order;
    }
}

/// The seeded decisions of one stream.
#[derive(Debug, Clone)]
pub struct Impairer {
    spec: Impairment,
    rng: StdRng,
    /// Counters since the last [`Impairer::take_counters`].
    pub counters: ImpairCounters,
}

impl Impairer {
    /// Decisions per `spec`, drawn from `seed`.
    pub fn new(spec: Impairment, seed: u64) -> Impairer {
        Impairer { spec, rng: StdRng::seed_from_u64(seed), counters: ImpairCounters::default() }
    }

    /// Whether any packet can be touched.
    pub fn is_active(&self) -> bool {
        self.spec.is_active()
    }

    /// Later packets after which a held packet is released.
    pub fn reorder_distance_packets(&self) -> u32 {
        self.spec.reorder_distance_packets.max(1)
    }

    /// Longest a held packet waits, ns.
    pub fn reorder_max_delay_ns(&self) -> u64 {
        (self.spec.reorder_max_delay_ms * 1e6) as u64
    }

    /// Decides the next packet's fate and counts it (holds are counted when released).
    pub fn decide(&mut self) -> Action {
        self.counters.packets += 1;
        if !self.spec.is_active() {
            return Action::Send;
        }
        let u: f64 = self.rng.random_range(0.0..100.0);
        let loss = self.spec.loss_percent;
        let dup = loss + self.spec.duplicate_percent;
        let hold = dup + self.spec.reorder_percent;
        if u < loss {
            self.counters.lost += 1;
            Action::Drop
        } else if u < dup {
            self.counters.duplicated += 1;
            Action::Duplicate
        } else if u < hold {
            Action::Hold
        } else {
            Action::Send
        }
    }

    /// Counts a held packet going out; `overtaken` says whether a later packet went out first.
    pub fn released(&mut self, overtaken: bool) {
        if overtaken {
            self.counters.reordered += 1;
        } else {
            self.counters.held_in_order += 1;
        }
    }

    /// The counters so far, restarting them.
    pub fn take_counters(&mut self) -> ImpairCounters {
        std::mem::take(&mut self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(loss: f64, reorder: f64, dup: f64) -> Impairment {
        Impairment {
            loss_percent: loss,
            reorder_percent: reorder,
            duplicate_percent: dup,
            reorder_distance_packets: 3,
            reorder_max_delay_ms: 20.0,
        }
    }

    #[test]
    fn proportions_follow_the_spec_and_are_counted_exactly() {
        let mut imp = Impairer::new(spec(2.0, 1.0, 0.5), 9);
        let mut seen = [0u64; 4];
        for _ in 0..100_000 {
            let i = match imp.decide() {
                Action::Send => 0,
                Action::Drop => 1,
                Action::Duplicate => 2,
                Action::Hold => 3,
            };
            seen[i] += 1;
        }
        let c = imp.counters;
        assert_eq!((c.packets, c.lost, c.duplicated), (100_000, seen[1], seen[2]));
        // Within 5 binomial standard deviations of 2%, 0.5% and 1%.
        assert!((1_930..=2_070).contains(&seen[1]), "{seen:?}");
        assert!((465..=535).contains(&seen[2]), "{seen:?}");
        assert!((950..=1_050).contains(&seen[3]), "{seen:?}");
    }

    #[test]
    fn the_same_seed_impairs_the_same_packets_and_none_touches_nothing() {
        let run = |seed| {
            let mut imp = Impairer::new(spec(5.0, 5.0, 5.0), seed);
            (0..1000).map(|_| imp.decide()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let mut clean = Impairer::new(Impairment::default(), 1);
        assert!(!clean.is_active());
        assert!((0..1000).all(|_| clean.decide() == Action::Send));
        assert_eq!(clean.take_counters().packets, 1000);
        assert_eq!(clean.counters, ImpairCounters::default());
    }

    #[test]
    fn releases_are_counted_by_whether_they_were_overtaken() {
        let mut imp = Impairer::new(spec(0.0, 10.0, 0.0), 1);
        imp.released(true);
        imp.released(false);
        imp.released(true);
        assert_eq!((imp.counters.reordered, imp.counters.held_in_order), (2, 1));
        assert_eq!((imp.reorder_distance_packets(), imp.reorder_max_delay_ns()), (3, 20_000_000));
    }
}

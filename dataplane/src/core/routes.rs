//! Feedback routes: where a subscriber's RTCP goes when its subscription lives on another worker.
//!
//! A subscriber's feedback (receiver reports, NACK, PLI, FIR) names the SSRC it receives: the subscription's
//! out SSRC. Without rewriting that is the publisher's SSRC, owned by the stream's worker, so the fallback
//! hand-over by [`super::owner_of`]`(media SSRC)` finds the subscription. With an out SSRC another worker owns,
//! that worker gets the packet instead; the control plane therefore gives it a route, keyed like the
//! subscriptions' feedback index (subscriber address, out SSRC), naming the worker that holds the subscription.
//! A route only ever exists on the out SSRC's owner and points at another worker, where the subscription's own
//! index matches. Whatever routes and SSRC aliases the workers hold, a packet is handed over at most twice (see
//! `forwarder::MAX_HANDOVERS`), so never in a loop.
//!
//! Owns [`FeedbackRoutes`], bounded by the worker's subscription limit (a route stands for a subscription of
//! another worker, and no worker holds more than that many). When two subscriptions share a key, the first
//! keeps it, as in the feedback index.

use std::net::SocketAddr;

use super::command::{CommandError, SubscriptionId};
use foldhash::fast::SeedableRandomState;

use super::table::{reserved_map, Map};

/// A worker's feedback routes: (subscriber address, out SSRC) → (worker, subscription).
#[derive(Debug)]
pub(crate) struct FeedbackRoutes {
    routes: Map<(SocketAddr, u32), (usize, SubscriptionId)>,
    max: u32,
}

impl FeedbackRoutes {
    /// Room for `max` routes, reserved now.
    pub(crate) fn new(max: u32, hasher: &SeedableRandomState) -> FeedbackRoutes {
        FeedbackRoutes { routes: reserved_map(max as usize, hasher), max }
    }

    /// Routes feedback from `dest` about `out_ssrc` to worker `owner`, for subscription `id`. A key another
    /// subscription holds stays with it (`Ok`, nothing changes).
    pub(crate) fn add(
        &mut self,
        id: SubscriptionId,
        dest: SocketAddr,
        out_ssrc: u32,
        owner: usize,
    ) -> Result<(), CommandError> {
        if self.routes.contains_key(&(dest, out_ssrc)) {
            return Ok(());
        }
        if self.routes.len() >= self.max as usize {
            return Err(CommandError::LimitReached { limit: "max_subscriptions (feedback routes)", value: self.max });
        }
        self.routes.insert((dest, out_ssrc), (owner, id));
        Ok(())
    }

    /// Removes subscription `id`'s route at (`dest`, `out_ssrc`) if it holds it; otherwise nothing changes (the
    /// key's first holder keeps it, as its `add` for `id` changed nothing).
    pub(crate) fn remove(&mut self, id: SubscriptionId, dest: SocketAddr, out_ssrc: u32) {
        if self.routes.get(&(dest, out_ssrc)).is_some_and(|&(_, holder)| holder == id) {
            self.routes.remove(&(dest, out_ssrc));
        }
    }

    /// The worker holding the subscription that receives `out_ssrc` at `src`, if routed.
    pub(crate) fn find(&self, src: SocketAddr, out_ssrc: u32) -> Option<usize> {
        self.routes.get(&(src, out_ssrc)).map(|&(owner, _)| owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_bounded_first_come_and_removed_only_by_their_holder() {
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5002".parse().unwrap();
        let mut routes = FeedbackRoutes::new(2, &SeedableRandomState::random());
        routes.add(SubscriptionId(1), a, 7, 1).unwrap();
        routes.add(SubscriptionId(2), a, 7, 3).unwrap();
        assert_eq!(routes.find(a, 7), Some(1), "the first subscription keeps a shared key");
        assert_eq!(routes.find(a, 8), None);
        routes.add(SubscriptionId(3), b, 7, 1).unwrap();
        let full = routes.add(SubscriptionId(4), b, 9, 1).unwrap_err();
        assert!(matches!(full, CommandError::LimitReached { value: 2, .. }), "{full}");
        routes.remove(SubscriptionId(2), a, 7);
        assert_eq!(routes.find(a, 7), Some(1), "only its holder removes a route");
        routes.remove(SubscriptionId(1), a, 7);
        assert_eq!((routes.find(a, 7), routes.find(b, 7)), (None, Some(1)));
        routes.add(SubscriptionId(4), b, 9, 1).expect("room again after the removal");
    }
}

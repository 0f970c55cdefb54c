//! A small SIP test controller: a back-to-back user agent on loopback that sets up each call's audio through
//! ringfwd's gRPC API, as a signalling controller in front of ringfwd would, so that real SIP user agents
//! (`tests/tests/interop_sip.rs` runs baresip) can call each other with ringfwd relaying their media.
//!
//! - [`message`]: SIP messages, parsed and built (small and hand-written: no SIP crate is kept up).
//! - [`sdp`]: what a user agent's SDP says about its audio, and the SDP re-pointed at ringfwd (the `sdp` crate).
//! - [`calls`]: what it asks of ringfwd per call (endpoints, learning streams, subscriptions, updates, the end).
//! - [`b2bua`]: the SIP dialogs and the thread that serves them.
//!
//! A test controller, not a product: it relays one audio stream per call to one callee it is configured with.

pub mod b2bua;
pub mod calls;
pub mod message;
pub mod sdp;

pub use b2bua::{B2bua, CallEvent, Setup};
pub use calls::{CallRecord, Leg};

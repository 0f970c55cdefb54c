//! The built-in interceptors, one file each, every one a sans-IO state machine with its
//! [`super::Interceptor`] implementation and deterministic tests on virtual time.
//!
//! Must never do I/O, read a clock or allocate per packet: time comes from the context, packets
//! leave through it, memory is reserved when an instance is bound.

pub mod keyframe;
pub mod nack_cache;
pub mod nack_generator;
pub mod payload_filter;
pub mod rate_limit;
pub mod reports;
pub mod stats;
pub mod tap;
pub mod twcc;
pub mod wire_compound;
pub mod wire_feedback;
pub mod wire_reports;

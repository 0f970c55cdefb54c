//! I/O backends: the only code in ringfwd that touches sockets and io_uring, and the only place with `unsafe`.
//! They do I/O only and never import the runtime (the worker loop drives them through [`backend::Backend`]).
//!
//! - [`backend`]: what the worker loop asks of a backend.
//! - [`uring`]: the io_uring backend (default).
//! - [`mmsg`]: the `recvmmsg`/`sendmmsg` backend, fallback for kernels without the io_uring features and the
//!   in-tree baseline, built on [`batch`].
//! - [`socket`], [`steering`]: media sockets in `SO_REUSEPORT` groups and the SSRC steering program.
//! - [`pool`]: the packet pool and its provided-buffer ring.
//! - [`probe`]: what io_uring features this kernel offers, for `ringfwd tune check`.

pub mod backend;
pub mod batch;
pub mod errqueue;
pub mod mmsg;
pub mod pool;
pub mod probe;
pub mod socket;
pub mod steering;
pub mod uring;

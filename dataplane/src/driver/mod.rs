//! I/O drivers: the only code in ringfwd that touches sockets and io_uring, and the only place with `unsafe`.
//!
//! - [`uring`]: the io_uring driver (default).
//! - [`mmsg`]: the `recvmmsg`/`sendmmsg` driver, fallback for kernels without the io_uring features and the
//!   in-tree baseline, built on [`batch`].
//! - [`socket`], [`steering`]: media sockets in `SO_REUSEPORT` groups and the SSRC steering program.
//! - [`pool`]: the packet pool and its provided-buffer ring.
//! - [`probe`]: what io_uring features this kernel offers, for `ringfwd tune check`.

pub mod batch;
pub mod errqueue;
pub mod mmsg;
pub mod pool;
pub mod probe;
pub mod socket;
pub mod steering;
pub mod uring;

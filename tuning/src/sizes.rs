//! Sizes derived from the number of workers and the expected load, unless the config sets them.
//!
//! Owns `[load]` ([`Load`]: expected packets per second on all media sockets, the burst a worker
//! must absorb) and [`Sizes`], the resolved `pool.buffers_per_worker`, `pool.send_slots_per_worker`,
//! `media.recv_buffer_bytes` and `media.send_buffer_bytes` for a given worker count
//! ([`Config::sizes`]). The rule: each worker takes an equal share of the expected packets; it must
//! hold `burst_ms` of its share in flight — so many receive buffers and send slots (rounded up to a
//! power of two, clamped to the accepted ranges), and so many datagrams of socket buffer at
//! [`defaults::SOCKET_BYTES_PER_PACKET`] each. A key set in the config always wins. Must never read
//! the host.

use serde::{Deserialize, Serialize};

use crate::validate::{BUFFERS_PER_WORKER_RANGE, SEND_SLOTS_RANGE, SOCKET_BUFFER_BYTES_RANGE};
use crate::{defaults, Config};

/// The smallest socket buffer derived (a set key may go lower): 1 MiB, the kernel's usual ceiling.
pub const MIN_DERIVED_SOCKET_BUFFER_BYTES: usize = 1 << 20;

/// `[load]`: what the host is expected to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Load {
    /// Packets per second arriving on all media sockets together (publishers' RTP and RTCP).
    pub expected_packets_per_second: u64,
    /// How long a worker must be able to go unscheduled without losing its share of the load, in
    /// milliseconds.
    pub burst_ms: u32,
}

impl Default for Load {
    fn default() -> Load {
        Load { expected_packets_per_second: defaults::EXPECTED_PACKETS_PER_SECOND, burst_ms: defaults::BURST_MS }
    }
}

impl Load {
    /// Packets one of `workers` workers must hold in flight: its share of `burst_ms`.
    pub fn burst_packets_per_worker(&self, workers: usize) -> u64 {
        let per_worker = self.expected_packets_per_second.div_ceil(workers.max(1) as u64);
        (per_worker * u64::from(self.burst_ms)).div_ceil(1000)
    }
}

/// The sizes a worker runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Receive buffers per worker (a power of two).
    pub buffers_per_worker: u32,
    /// Send operations in flight per worker.
    pub send_slots_per_worker: u32,
    /// `SO_RCVBUF` of each worker socket, in bytes.
    pub recv_buffer_bytes: usize,
    /// `SO_SNDBUF` of each worker socket, in bytes.
    pub send_buffer_bytes: usize,
}

impl Config {
    /// The sizes of each of `workers` workers: the configured ones, the others derived from `[load]`.
    pub fn sizes(&self, workers: usize) -> Sizes {
        let burst = self.load.burst_packets_per_worker(workers).max(1).next_power_of_two();
        let clamp_u32 = |value: u64, range: &std::ops::RangeInclusive<u32>| {
            value.clamp(u64::from(*range.start()), u64::from(*range.end())) as u32
        };
        // `burst` and both bounds are powers of two, so the clamped value is one too.
        let buffers = clamp_u32(burst, &BUFFERS_PER_WORKER_RANGE);
        let socket_bytes = (burst as usize)
            .saturating_mul(defaults::SOCKET_BYTES_PER_PACKET)
            .clamp(MIN_DERIVED_SOCKET_BUFFER_BYTES, *SOCKET_BUFFER_BYTES_RANGE.end());
        Sizes {
            buffers_per_worker: self.pool.buffers_per_worker.unwrap_or(buffers),
            send_slots_per_worker: self.pool.send_slots_per_worker.unwrap_or(clamp_u32(burst, &SEND_SLOTS_RANGE)),
            recv_buffer_bytes: self.media.recv_buffer_bytes.unwrap_or(socket_bytes),
            send_buffer_bytes: self.media.send_buffer_bytes.unwrap_or(socket_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_derive_the_tuned_sizes_for_one_worker_and_shrink_with_more() {
        let config = Config::default();
        let one = config.sizes(1);
        assert_eq!(
            one,
            Sizes {
                buffers_per_worker: 4096,
                send_slots_per_worker: 4096,
                recv_buffer_bytes: 8 << 20,
                send_buffer_bytes: 8 << 20
            }
        );
        let four = config.sizes(4);
        assert_eq!((four.buffers_per_worker, four.recv_buffer_bytes), (1024, 2 << 20), "a quarter of the load each");
    }

    #[test]
    fn more_load_means_more_and_set_keys_win() {
        let mut config =
            Config { load: Load { expected_packets_per_second: 2_000_000, burst_ms: 20 }, ..Config::default() };
        let busy = config.sizes(2);
        assert_eq!(busy.buffers_per_worker, 32768, "20 000 packets, clamped to the largest pool");
        assert_eq!(busy.recv_buffer_bytes, 32768 * 2048);
        config.pool.buffers_per_worker = Some(512);
        config.media.send_buffer_bytes = Some(1 << 20);
        let set = config.sizes(2);
        assert_eq!((set.buffers_per_worker, set.send_buffer_bytes), (512, 1 << 20));
        config.load = Load { expected_packets_per_second: 10, burst_ms: 1 };
        let idle = config.sizes(64);
        assert_eq!(idle.send_slots_per_worker, *SEND_SLOTS_RANGE.start(), "clamped up to the smallest");
        assert_eq!(idle.recv_buffer_bytes, MIN_DERIVED_SOCKET_BUFFER_BYTES);
    }
}

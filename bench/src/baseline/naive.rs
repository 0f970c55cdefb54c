//! The naive baseline: `recv_from` one datagram, then one `send_to` per subscriber copy.
//!
//! Owns only its loop: each copy is assembled (rewritten header + payload) in a scratch buffer
//! and sent with its own syscall, as a straightforward user-space forwarder would. Must never
//! block longer than its read timeout between checks of the stop flag.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{print_final_counters, setup, BaselineError, Counters};

/// Longest wait for a datagram before the stop flag is checked again.
const READ_TIMEOUT: Duration = Duration::from_millis(100);

/// Runs the naive forwarder for the config at `config_path` until SIGTERM/SIGINT.
pub fn run(config_path: &Path) -> Result<Counters, BaselineError> {
    let s = setup(config_path)?;
    s.socket.set_read_timeout(Some(READ_TIMEOUT)).map_err(BaselineError::io("SO_RCVTIMEO"))?;
    let mut buf = vec![0u8; s.config.media.max_packet_bytes + 1];
    let mut copy = vec![0u8; buf.len()];
    let mut counters = Counters::default();
    while !s.stop.load(Ordering::Relaxed) {
        let (len, src) = match s.socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue
            }
            Err(source) => return Err(BaselineError::Io { what: "recv_from".into(), source }),
        };
        counters.rx_packets += 1;
        let pkt = &buf[..len];
        let routes = match s.routes.lookup(src, pkt) {
            Ok(routes) => routes,
            Err(reason) => {
                counters.dropped(reason);
                continue;
            }
        };
        for route in routes {
            copy[..12].copy_from_slice(&route.rewrite.rtp_header(pkt));
            copy[12..len].copy_from_slice(&pkt[12..]);
            match s.socket.send_to(&copy[..len], route.dest) {
                Ok(_) => counters.tx_packets += 1,
                Err(_) => counters.tx_errors += 1,
            }
        }
    }
    print_final_counters(&counters);
    Ok(counters)
}

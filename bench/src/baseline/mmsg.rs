//! The mmsg baseline: `recvmmsg` batches of 64, then `sendmmsg` of [rewritten 12-byte header,
//! payload slice of the receive buffer] per copy; no GSO, no payload copy.
//!
//! Owns only its loop and its header slab. Waits in `poll(2)` once a batch comes back short (the
//! `sleep` idle strategy). Must never allocate per packet or block longer than its poll timeout
//! between checks of the stop flag.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::Ordering;

use ringfwd_dataplane::driver::batch::{RecvBatch, SendBatch};

use super::{batches, print_final_counters, setup, wait_readable, BaselineError, Counters, RouteTable};

/// Datagrams per `recvmmsg`.
const RECV_BATCH: usize = 64;
/// Messages per `sendmmsg` (the kernel's `UIO_MAXIOV`).
const SEND_BATCH: usize = 1024;

/// Runs the mmsg forwarder for the config at `config_path` until SIGTERM/SIGINT.
pub fn run(config_path: &Path) -> Result<Counters, BaselineError> {
    let s = setup(config_path)?;
    let fd = s.socket.as_fd();
    let (mut recv, mut send) = batches(&s.config, RECV_BATCH, SEND_BATCH, 2)?;
    let mut headers = vec![[0u8; 12]; SEND_BATCH];
    let mut counters = Counters::default();
    // A batch that came back short emptied the queue: wait in poll before reading again,
    // rather than paying for a recvmmsg that would find nothing.
    let mut drained = true;
    while !s.stop.load(Ordering::Relaxed) {
        if drained && !wait_readable(&s.socket)? {
            continue;
        }
        let n = recv.recv(fd).map_err(BaselineError::io("recvmmsg"))?;
        drained = n < RECV_BATCH;
        counters.rx_packets += n as u64;
        let mut cursor = Cursor::default();
        while cursor.datagram < n {
            cursor = forward_some(&recv, cursor, &s.routes, &mut send, &mut headers, fd, &mut counters)?;
        }
    }
    print_final_counters(&counters);
    Ok(counters)
}

/// Where forwarding of a received batch stands: datagram index and its next route.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    datagram: usize,
    route: usize,
}

/// Sends copies from `from` on, at most one full send batch; returns where it stopped.
fn forward_some(
    recv: &RecvBatch,
    from: Cursor,
    routes: &RouteTable,
    send: &mut SendBatch,
    headers: &mut [[u8; 12]],
    fd: std::os::fd::BorrowedFd<'_>,
    counters: &mut Counters,
) -> Result<Cursor, BaselineError> {
    let mut slots = headers.iter_mut();
    let mut guard = send.begin();
    let mut at = from;
    'datagrams: while at.datagram < recv.len() {
        let d = recv.datagram(at.datagram);
        let list = match routes.lookup(d.src, d.data) {
            Ok(list) if !d.truncated => list,
            Ok(_) => {
                counters.dropped(super::DropReason::Malformed);
                &[]
            }
            Err(reason) => {
                if at.route == 0 {
                    counters.dropped(reason);
                }
                &[]
            }
        };
        while let Some(route) = list.get(at.route) {
            if guard.is_full() {
                break 'datagrams;
            }
            let Some(slot) = slots.next() else {
                break 'datagrams;
            };
            *slot = route.rewrite.rtp_header(d.data);
            let header: &[u8] = slot;
            guard.push(route.dest, &[header, &d.data[12..]], None);
            at.route += 1;
        }
        at = Cursor { datagram: at.datagram + 1, route: 0 };
    }
    if !guard.is_empty() {
        let report = guard.send(fd).map_err(BaselineError::io("sendmmsg"))?;
        counters.tx_packets += report.sent as u64;
        counters.tx_errors += (report.failed + report.would_block) as u64;
    }
    Ok(at)
}

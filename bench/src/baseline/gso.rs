//! The gso baseline: the mmsg loop plus UDP GSO — the strongest simple forwarder an operator could
//! write instead of ringfwd. `recvmmsg` batches of 64; every copy of the batch gets its rewritten
//! 12-byte header in a slab; the copies are grouped per destination (stable: a destination's copies
//! keep their arrival order), and each run of equal-size copies to one destination (up to
//! [`MAX_SEGMENTS`], the last may be shorter) leaves as one message with `UDP_SEGMENT`; all messages
//! of the batch go in one `sendmmsg`. No payload copy.
//!
//! Owns only its loop, its header slab and its copy list. Waits in `poll(2)` once a batch comes
//! back short. Must never allocate per packet, reorder the copies of one destination, or build a
//! GSO message over the kernel's 64 KiB datagram limit.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::Ordering;

use ringfwd_dataplane::driver::batch::{MessageStatus, RecvBatch, SendBatch};

use super::{batches, print_final_counters, setup, wait_readable, BaselineError, Counters, DropReason, RouteTable};

/// Datagrams per `recvmmsg`.
const RECV_BATCH: usize = 64;
/// Most segments in one GSO message (the kernel allows 64 per `UDP_SEGMENT` send on loopback).
pub const MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO message (a UDP datagram's payload limit, with room for headers).
const MAX_GSO_BYTES: usize = 65_000;
/// Copies grouped and sent together (the header slab's size); more copies of one receive batch
/// go in further rounds.
const COPIES_PER_ROUND: usize = 1024;

/// One copy waiting to be sent: where, its position in the slab (= arrival order), which
/// datagram's payload, and its size on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Copy {
    /// Destination (the primary sort key).
    pub dest: SocketAddr,
    /// Index of its header in the slab; the secondary sort key, so a destination's copies stay
    /// in arrival order.
    pub slot: usize,
    /// Index of the received datagram whose payload it carries.
    pub datagram: usize,
    /// Bytes on the wire (header + payload).
    pub len: usize,
}

/// Runs the gso forwarder for the config at `config_path` until SIGTERM/SIGINT.
pub fn run(config_path: &Path) -> Result<Counters, BaselineError> {
    let s = setup(config_path)?;
    let fd = s.socket.as_fd();
    let (mut recv, mut send) = batches(&s.config, RECV_BATCH, COPIES_PER_ROUND, 2 * MAX_SEGMENTS)?;
    let mut headers = vec![[0u8; 12]; COPIES_PER_ROUND];
    let mut copies: Vec<Copy> = Vec::with_capacity(COPIES_PER_ROUND);
    let mut segments = vec![0usize; COPIES_PER_ROUND];
    let mut counters = Counters::default();
    let mut drained = true;
    while !s.stop.load(Ordering::Relaxed) {
        if drained && !wait_readable(&s.socket)? {
            continue;
        }
        let n = recv.recv(fd).map_err(BaselineError::io("recvmmsg"))?;
        drained = n < RECV_BATCH;
        counters.rx_packets += n as u64;
        let mut cursor = (0, 0);
        while cursor.0 < n {
            copies.clear();
            cursor = collect(&recv, cursor, &s.routes, &mut headers, &mut copies, &mut counters);
            copies.sort_unstable();
            send_runs(&recv, &headers, &copies, &mut send, &mut segments, fd, &mut counters)?;
        }
    }
    print_final_counters(&counters);
    Ok(counters)
}

/// Rewrites the headers of the copies from `(datagram, route)` on into the slab until it is full
/// or the batch ends; returns where it stopped.
fn collect(
    recv: &RecvBatch,
    (mut datagram, mut route): (usize, usize),
    routes: &RouteTable,
    headers: &mut [[u8; 12]],
    copies: &mut Vec<Copy>,
    counters: &mut Counters,
) -> (usize, usize) {
    while datagram < recv.len() {
        let d = recv.datagram(datagram);
        let list = match routes.lookup(d.src, d.data) {
            Ok(list) if !d.truncated => list,
            Ok(_) if route == 0 => {
                counters.dropped(DropReason::Malformed);
                &[]
            }
            Err(reason) if route == 0 => {
                counters.dropped(reason);
                &[]
            }
            _ => &[],
        };
        while let Some(r) = list.get(route) {
            let slot = copies.len();
            let Some(header) = headers.get_mut(slot) else {
                return (datagram, route);
            };
            *header = r.rewrite.rtp_header(d.data);
            copies.push(Copy { dest: r.dest, slot, datagram, len: d.data.len() });
            route += 1;
        }
        (datagram, route) = (datagram + 1, 0);
    }
    (datagram, route)
}

/// Length of the GSO run that starts at `copies[0]`: copies to the same destination, all of the
/// first one's size except that the last may be shorter, at most [`MAX_SEGMENTS`] and
/// [`MAX_GSO_BYTES`] in all. `copies` must be sorted by destination.
pub fn run_length(copies: &[Copy]) -> usize {
    let Some(first) = copies.first() else {
        return 0;
    };
    let limit = MAX_SEGMENTS.min(MAX_GSO_BYTES / first.len.max(1)).max(1);
    let mut n = 1;
    while n < limit {
        match copies.get(n) {
            Some(c) if c.dest == first.dest && c.len == first.len => n += 1,
            Some(c) if c.dest == first.dest && c.len < first.len => return n + 1,
            _ => break,
        }
    }
    n
}

/// Sends the sorted copies as one `sendmmsg` of GSO runs and counts what the kernel took.
fn send_runs(
    recv: &RecvBatch,
    headers: &[[u8; 12]],
    copies: &[Copy],
    send: &mut SendBatch,
    segments: &mut [usize],
    fd: BorrowedFd<'_>,
    counters: &mut Counters,
) -> Result<(), BaselineError> {
    let mut guard = send.begin();
    let mut slices: [&[u8]; 2 * MAX_SEGMENTS] = [&[]; 2 * MAX_SEGMENTS];
    let mut at = 0;
    while at < copies.len() {
        let n = run_length(&copies[at..]);
        let run = &copies[at..at + n];
        for (pair, c) in slices.chunks_exact_mut(2).zip(run) {
            pair[0] = &headers[c.slot];
            pair[1] = &recv.datagram(c.datagram).data[12..];
        }
        let segment = (n > 1).then(|| u16::try_from(run[0].len).unwrap_or(u16::MAX));
        segments[guard.len()] = n;
        // Never refused: at most one message per copy and 2 × MAX_SEGMENTS slices per message.
        guard.push(run[0].dest, &slices[..2 * n], segment);
        at += n;
    }
    if guard.is_empty() {
        return Ok(());
    }
    guard.send(fd).map_err(BaselineError::io("sendmmsg"))?;
    for (i, &n) in segments.iter().enumerate().take(send.last_len()) {
        match send.status(i) {
            Some(MessageStatus::Sent) => counters.tx_packets += n as u64,
            _ => counters.tx_errors += n as u64,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(dest: &str, slot: usize, len: usize) -> Copy {
        Copy { dest: dest.parse().unwrap(), slot, datagram: slot, len }
    }

    #[test]
    fn runs_are_one_destination_of_one_size_with_a_shorter_tail() {
        let a = "127.0.0.1:5000";
        let b = "127.0.0.1:5002";
        let copies = [copy(a, 0, 200), copy(a, 1, 200), copy(a, 2, 120), copy(a, 3, 200), copy(b, 4, 200)];
        assert_eq!(run_length(&copies), 3);
        assert_eq!(run_length(&copies[3..]), 1);
        assert_eq!(run_length(&copies[4..]), 1);
        assert_eq!(run_length(&[]), 0);
        let longer = [copy(a, 0, 200), copy(a, 1, 300)];
        assert_eq!(run_length(&longer), 1);
    }

    #[test]
    fn runs_stop_at_the_segment_and_byte_limits() {
        let a = "127.0.0.1:5000";
        let small: Vec<Copy> = (0..100).map(|i| copy(a, i, 200)).collect();
        assert_eq!(run_length(&small), MAX_SEGMENTS);
        let large: Vec<Copy> = (0..100).map(|i| copy(a, i, 1212)).collect();
        assert_eq!(run_length(&large), MAX_GSO_BYTES / 1212);
        assert!(run_length(&large) * 1212 <= MAX_GSO_BYTES);
    }

    #[test]
    fn sorting_groups_destinations_and_keeps_arrival_order_within_one() {
        let (a, b) = ("127.0.0.1:5002", "127.0.0.1:5000");
        let mut copies = [copy(a, 0, 200), copy(b, 1, 200), copy(a, 2, 200), copy(b, 3, 200)];
        copies.sort_unstable();
        let order: Vec<usize> = copies.iter().map(|c| c.slot).collect();
        assert_eq!(order, [1, 3, 0, 2]);
    }
}

//! The sink: one UDP socket that receives every subscription, and feeds the [`Accounting`].
//!
//! Owns the socket (bound once, e.g. `0.0.0.0:PORT`, so that every `127.0.0.X:PORT` subscriber
//! address lands on it), its receive batch, UDP GRO (a coalesced datagram is split back into its
//! segments before accounting) and kernel receive timestamps: a copy's arrival time is when the
//! kernel queued it on the sink socket, so the time it then waited for the bench to read it
//! (the sink lag, kept apart as a health measure) never counts as forwarder latency. Must never
//! block (receives are non-blocking), allocate per datagram, or read more than `max_batches`
//! batches per call.
//!
//! When the scenario asks for loss repair, the sink also sends the generic NACKs the accounting's
//! trackers call for ([`crate::nack`]), from this socket to the forwarder's media address, each
//! with the subscriber's own address as source (`IP_PKTINFO`), the subscription's outgoing SSRC as
//! media SSRC — what a real subscriber would send. A NACK is built per loss event, never per
//! datagram.

use std::io::{self, IoSlice};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn};

use hdrhistogram::Histogram;
use ringfwd_dataplane::driver::batch::{enable_rx_timestamps, enable_udp_gro, RecvBatch, MAX_DATAGRAM_BYTES};
use socket2::{Domain, Socket, Type};

use crate::account::{latency_histogram, Accounting};
use crate::nack::build_nack;
use crate::payload::Epoch;

/// Datagrams per `recvmmsg`.
const RECV_BATCH_DATAGRAMS: usize = 64;
/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max`, then doubles it).
pub const SINK_RECV_BUFFER_BYTES: usize = 16 << 20;

/// What a drain saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Datagrams accounted (GRO segments count one each).
    pub datagrams: usize,
    /// Of those, RTCP: the forwarder's own reports, which keep coming after the last copy.
    pub rtcp: usize,
    /// Datagrams cut off by a too-small buffer (not accounted).
    pub truncated: usize,
}

/// A receiving socket plus the accounting of what it received.
pub struct Sink {
    socket: UdpSocket,
    batch: RecvBatch,
    gro: bool,
    timestamps: bool,
    realtime_offset_ns: u64,
    /// How long datagrams waited in the sink socket before the bench read them, ns.
    pub lag_ns: Histogram<u64>,
    /// Per-flow counters of the current step.
    pub accounting: Accounting,
    nack_route: Option<NackRoute>,
    nack_scratch: Vec<u16>,
    /// NACK packets sent, and sends that failed, since the sink was made.
    pub nack_packets: NackSends,
}

/// Where NACKs go and whom they come from.
#[derive(Debug, Clone)]
pub struct NackRoute {
    /// The forwarder's media address.
    pub media: SocketAddrV4,
    /// Per flow: the subscriber's address (the NACK's source) and its RTCP sender SSRC.
    pub senders: Vec<(Ipv4Addr, u32)>,
}

/// NACK packets the sink sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NackSends {
    /// Sent.
    pub sent: u64,
    /// Refused by the kernel or not encodable.
    pub failed: u64,
}

impl Sink {
    /// Binds the sink socket at `addr` with a large receive buffer.
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
        socket.set_recv_buffer_size(SINK_RECV_BUFFER_BYTES)?;
        socket.bind(&addr.into())?;
        Ok(socket.into())
    }

    /// A sink on `socket`, with UDP GRO and kernel receive timestamps turned on when the kernel
    /// has them.
    pub fn new(socket: UdpSocket, accounting: Accounting) -> io::Result<Sink> {
        let gro = enable_udp_gro(socket.as_fd()).is_ok();
        let timestamps = enable_rx_timestamps(socket.as_fd()).is_ok();
        let buf_bytes = if gro { MAX_DATAGRAM_BYTES } else { 2048 };
        let batch = RecvBatch::new(RECV_BATCH_DATAGRAMS, buf_bytes).map_err(io::Error::other)?;
        let lag_ns = latency_histogram();
        Ok(Sink {
            socket,
            batch,
            gro,
            timestamps,
            realtime_offset_ns: 0,
            lag_ns,
            accounting,
            nack_route: None,
            nack_scratch: Vec::with_capacity(256),
            nack_packets: NackSends::default(),
        })
    }

    /// Sends the NACKs the accounting calls for along `route` from now on (the accounting must
    /// have NACKs enabled, see [`Accounting::enable_nack`]).
    pub fn route_nacks(&mut self, route: NackRoute) {
        self.nack_route = Some(route);
    }

    /// Sends every NACK due at `now_ns`.
    fn send_nacks(&mut self, now_ns: u64) {
        let Some(route) = &self.nack_route else { return };
        let fd = self.socket.as_raw_fd();
        let to = SockaddrIn::from(route.media);
        let sends = &mut self.nack_packets;
        self.accounting.collect_nacks(now_ns, &mut self.nack_scratch, |flow, media_ssrc, seqs| {
            let Some(&(source, sender_ssrc)) = route.senders.get(flow) else { return };
            let Ok(packet) = build_nack(sender_ssrc, media_ssrc, seqs) else {
                sends.failed += 1;
                return;
            };
            let info = nix::libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: nix::libc::in_addr { s_addr: u32::from(source).to_be() },
                ipi_addr: nix::libc::in_addr { s_addr: 0 },
            };
            let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
            match sendmsg(fd, &[IoSlice::new(&packet)], &cmsg, MsgFlags::MSG_DONTWAIT, Some(&to)) {
                Ok(_) => sends.sent += 1,
                Err(_) => sends.failed += 1,
            }
        });
    }

    /// Starts a step: forgets the lag histogram and re-reads the wall clock against `epoch`.
    pub fn begin_step(&mut self, epoch: &Epoch, first_gen_seq: &[u32]) {
        self.realtime_offset_ns = epoch.realtime_offset_ns();
        self.lag_ns.reset();
        self.accounting.begin_step(first_gen_seq);
    }

    /// Whether arrival times come from kernel receive timestamps.
    pub fn uses_kernel_timestamps(&self) -> bool {
        self.timestamps
    }

    /// The socket's local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Whether UDP GRO is on.
    pub fn uses_gro(&self) -> bool {
        self.gro
    }

    /// Receives and accounts what is waiting, up to `max_batches` batches; never blocks.
    pub fn drain(&mut self, epoch: &Epoch, max_batches: usize) -> io::Result<Drained> {
        let mut drained = Drained::default();
        let rtcp_before = self.accounting.rtcp_received();
        for _ in 0..max_batches {
            let n = self.batch.recv(self.socket.as_fd())?;
            if n == 0 {
                break;
            }
            let now_ns = epoch.now_ns();
            for d in self.batch.iter() {
                if d.truncated {
                    drained.truncated += 1;
                    continue;
                }
                // Kernel arrival in epoch time; the bench's own clock when there is none.
                let arrival_ns =
                    d.rx_timestamp_ns.map_or(now_ns, |wall| wall.saturating_sub(self.realtime_offset_ns).min(now_ns));
                self.lag_ns.saturating_record(now_ns - arrival_ns);
                match d.gro_segment_bytes {
                    Some(segment) if segment > 0 && d.data.len() > usize::from(segment) => {
                        for piece in d.data.chunks(usize::from(segment)) {
                            self.accounting.account(piece, arrival_ns);
                            drained.datagrams += 1;
                        }
                    }
                    _ => {
                        self.accounting.account(d.data, arrival_ns);
                        drained.datagrams += 1;
                    }
                }
            }
        }
        drained.rtcp =
            usize::try_from(self.accounting.rtcp_received().saturating_sub(rtcp_before)).unwrap_or(usize::MAX);
        if self.accounting.nacks_enabled() {
            self.send_nacks(epoch.now_ns());
        }
        Ok(drained)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::FlowSpec;
    use crate::payload::{self, BenchHeader, RTP_HEADER_BYTES};
    use ringfwd_dataplane::driver::batch::{udp_gso_supported, SendBatch};

    fn packet(gen_seq: u32) -> [u8; 100] {
        let mut pkt = [0u8; 100];
        pkt[0] = 0x80;
        pkt[1] = 96;
        pkt[2..4].copy_from_slice(&(gen_seq as u16).to_be_bytes());
        pkt[8..12].copy_from_slice(&7u32.to_be_bytes());
        let bench = BenchHeader { send_ns: 0, gen_seq, rtp_timestamp: 0, rtp_seq: gen_seq as u16, marker_pt: 96 };
        payload::write(&mut pkt[RTP_HEADER_BYTES..], &bench);
        pkt
    }

    #[test]
    fn gro_batches_are_split_and_every_packet_accounted() {
        let spec = FlowSpec { out_ssrc: 7, stream: 0, seq_offset: 0, ts_offset: 0, payload_type_map: vec![] };
        let accounting = Accounting::new(vec![spec], 1);
        let mut sink = Sink::new(Sink::bind("127.0.0.1:0".parse().unwrap()).unwrap(), accounting).unwrap();
        // The kernel turns receive timestamping on asynchronously: give it a moment.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let epoch = Epoch::new();
        sink.begin_step(&epoch, &[0]);
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let packets: Vec<[u8; 100]> = (0..8).map(packet).collect();
        let gso = udp_gso_supported(sender.as_fd());
        let mut batch = SendBatch::new(8, 8).unwrap();
        let mut guard = batch.begin();
        let slices: Vec<&[u8]> = packets.iter().map(|p| &p[..]).collect();
        if gso {
            guard.push(sink.local_addr().unwrap(), &slices, Some(100));
        } else {
            for s in &slices {
                guard.push(sink.local_addr().unwrap(), &[s], None);
            }
        }
        guard.send(sender.as_fd()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut got = 0;
        for _ in 0..1000 {
            got += sink.drain(&epoch, 4).unwrap().datagrams;
            if got >= 8 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let totals = sink.accounting.totals(&[8]);
        assert_eq!((got, totals.counts.unique, totals.lost, totals.counts.integrity_failures), (8, 8, 0, 0));
        if sink.uses_kernel_timestamps() {
            // Sent at epoch 0 (in the payload), read 20 ms later: the kernel stamped the arrival
            // well before the read, and the wait shows up as sink lag, not as latency.
            assert!(totals.latency_ns.max() < 15_000_000, "{}", totals.latency_ns.max());
            assert!(sink.lag_ns.min() >= 15_000_000, "{}", sink.lag_ns.min());
        }
    }
}

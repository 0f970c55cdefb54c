//! Loopback tests of the batched datagram I/O (`driver::batch`): round trips over IPv4 and IPv6,
//! truncation, GSO sends, GRO receives, per-message send errors, the receive-queue drop counter
//! and kernel receive timestamps.
//! Only loopback addresses; every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ringfwd_dataplane::driver::batch::{
    enable_rx_queue_overflow, enable_rx_timestamps, enable_udp_gro, udp_gso_supported, MessageStatus, RecvBatch,
    SendBatch,
};

/// Receives until `want` datagrams arrived or two seconds passed; returns (data, src, truncated, gro) copies.
fn collect(batch: &mut RecvBatch, socket: &UdpSocket, want: usize) -> Vec<(Vec<u8>, SocketAddr, bool, Option<u16>)> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        if batch.recv(socket.as_fd()).unwrap() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        out.extend(batch.iter().map(|d| (d.data.to_vec(), d.src, d.truncated, d.gro_segment_bytes)));
    }
    out
}

fn round_trip(local: &str) {
    let receiver = UdpSocket::bind(local).unwrap();
    let senders: Vec<UdpSocket> = (0..4).map(|_| UdpSocket::bind(local).unwrap()).collect();
    let dest = receiver.local_addr().unwrap();
    let headers: Vec<[u8; 4]> = (0..64u32).map(|i| i.to_be_bytes()).collect();
    let payload = vec![0xAB; 100];
    let mut batch = SendBatch::new(16, 2).unwrap();
    for (s, sender) in senders.iter().enumerate() {
        let mut guard = batch.begin();
        for header in &headers[s * 16..(s + 1) * 16] {
            assert!(guard.push(dest, &[header, &payload], None));
        }
        let report = guard.send(sender.as_fd()).unwrap();
        assert_eq!((report.sent, report.failed, report.would_block), (16, 0, 0));
    }
    let mut recv = RecvBatch::new(64, 2048).unwrap();
    let got = collect(&mut recv, &receiver, 64);
    assert_eq!(got.len(), 64);
    for (data, src, truncated, gro) in got {
        assert_eq!(data.len(), 104);
        assert!(data[4..].iter().all(|&b| b == 0xAB));
        let index = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
        assert_eq!(src, senders[index / 16].local_addr().unwrap(), "datagram {index}");
        assert!(!truncated);
        assert_eq!(gro, None);
    }
}

#[test]
fn batch_of_64_round_trips_with_sources_over_ipv4() {
    round_trip("127.0.0.1:0");
}

#[test]
fn batch_of_64_round_trips_with_sources_over_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("skipped: IPv6 loopback ::1 is not available on this host");
        return;
    }
    round_trip("[::1]:0");
}

#[test]
fn one_batch_reaches_several_destinations() {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut batch = SendBatch::new(4, 1).unwrap();
    let mut guard = batch.begin();
    assert!(guard.push(a.local_addr().unwrap(), &[b"to a"], None));
    assert!(guard.push(b.local_addr().unwrap(), &[b"to b"], None));
    assert_eq!(guard.send(sender.as_fd()).unwrap().sent, 2);
    let mut recv = RecvBatch::new(4, 64).unwrap();
    assert_eq!(collect(&mut recv, &a, 1)[0].0, b"to a");
    assert_eq!(collect(&mut recv, &b, 1)[0].0, b"to b");
}

#[test]
fn a_datagram_longer_than_the_buffer_is_flagged_truncated() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(&[7u8; 100], receiver.local_addr().unwrap()).unwrap();
    sender.send_to(&[8u8; 16], receiver.local_addr().unwrap()).unwrap();
    let mut recv = RecvBatch::new(4, 16).unwrap();
    let got = collect(&mut recv, &receiver, 2);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0.len(), got[0].2), (16, true));
    assert_eq!((got[1].0.len(), got[1].2), (16, false));
}

#[test]
fn an_empty_socket_yields_zero_without_blocking() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut recv = RecvBatch::new(8, 1500).unwrap();
    let started = Instant::now();
    assert_eq!(recv.recv(receiver.as_fd()).unwrap(), 0);
    assert!(recv.is_empty());
    assert!(started.elapsed() < Duration::from_millis(100));
}

/// Eight 100-byte segments, each [8-byte header, 92-byte payload], in one GSO message.
fn send_eight_segments(sender: &UdpSocket, dest: SocketAddr) {
    let headers: Vec<[u8; 8]> = (0..8u64).map(|i| i.to_be_bytes()).collect();
    let payload = [0x5Au8; 92];
    let mut slices: Vec<&[u8]> = Vec::new();
    for header in &headers {
        slices.push(header);
        slices.push(&payload);
    }
    let mut batch = SendBatch::new(1, 16).unwrap();
    let mut guard = batch.begin();
    assert!(guard.push(dest, &slices, Some(100)));
    assert_eq!(guard.send(sender.as_fd()).unwrap().sent, 1);
}

#[test]
fn gso_send_of_8_segments_arrives_as_8_datagrams() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    if !udp_gso_supported(sender.as_fd()) {
        eprintln!("skipped: this kernel has no UDP GSO (UDP_SEGMENT)");
        return;
    }
    send_eight_segments(&sender, receiver.local_addr().unwrap());
    let mut recv = RecvBatch::new(16, 2048).unwrap();
    let got = collect(&mut recv, &receiver, 8);
    assert_eq!(got.len(), 8);
    for (i, (data, src, _, gro)) in got.iter().enumerate() {
        assert_eq!(data.len(), 100);
        assert_eq!(u64::from_be_bytes(data[..8].try_into().unwrap()), i as u64);
        assert!(data[8..].iter().all(|&b| b == 0x5A));
        assert_eq!((*src, *gro), (sender.local_addr().unwrap(), None));
    }
}

#[test]
fn gro_receiver_gets_one_coalesced_datagram_with_its_segment_size() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    if !udp_gso_supported(sender.as_fd()) || enable_udp_gro(receiver.as_fd()).is_err() {
        eprintln!("skipped: this kernel lacks UDP GSO or GRO");
        return;
    }
    send_eight_segments(&sender, receiver.local_addr().unwrap());
    let mut recv = RecvBatch::new(4, 65_535).unwrap();
    let got = collect(&mut recv, &receiver, 1);
    assert_eq!(got.len(), 1);
    let (data, _, truncated, gro) = &got[0];
    assert_eq!((data.len(), *truncated, *gro), (800, false, Some(100)));
    for (i, segment) in data.chunks(100).enumerate() {
        assert_eq!(u64::from_be_bytes(segment[..8].try_into().unwrap()), i as u64);
    }
}

#[test]
fn a_refused_message_is_reported_and_the_rest_still_go() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = receiver.local_addr().unwrap();
    let big = vec![0u8; 40_000];
    let mut batch = SendBatch::new(4, 2).unwrap();
    let mut guard = batch.begin();
    assert!(guard.push(dest, &[b"first"], None));
    assert!(guard.push(dest, &[&big, &big], None)); // 80 000 bytes: larger than any UDP datagram
    assert!(guard.push(dest, &[b"third"], None));
    let report = guard.send(sender.as_fd()).unwrap();
    assert_eq!((report.sent, report.failed, report.would_block), (2, 1, 0));
    assert_eq!(batch.status(0), Some(MessageStatus::Sent));
    assert_eq!(batch.status(1), Some(MessageStatus::Failed(libc::EMSGSIZE)));
    assert_eq!(batch.status(2), Some(MessageStatus::Sent));
    assert_eq!(batch.status(3), None);
    let mut recv = RecvBatch::new(4, 64).unwrap();
    let got: Vec<Vec<u8>> = collect(&mut recv, &receiver, 2).into_iter().map(|g| g.0).collect();
    assert_eq!(got, vec![b"first".to_vec(), b"third".to_vec()]);
}

#[test]
fn receive_queue_overflow_counter_is_reported() {
    let receiver = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    receiver.set_recv_buffer_size(4096).unwrap();
    receiver.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let receiver: UdpSocket = receiver.into();
    enable_rx_queue_overflow(receiver.as_fd()).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..200 {
        sender.send_to(&[1u8; 1000], receiver.local_addr().unwrap()).unwrap();
    }
    // Drain what fit, then one more datagram carries the updated counter.
    let mut recv = RecvBatch::new(64, 2048).unwrap();
    let mut dropped = None;
    let deadline = Instant::now() + Duration::from_secs(2);
    while dropped.is_none() && Instant::now() < deadline {
        if recv.recv(receiver.as_fd()).unwrap() == 0 {
            sender.send_to(&[2u8; 10], receiver.local_addr().unwrap()).unwrap();
        }
        dropped = recv.rx_queue_overflow();
    }
    let dropped = dropped.expect("a full receive queue reports its drop counter");
    assert!(dropped > 0 && dropped < 200, "dropped {dropped}");
}

fn realtime_ns() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    u64::try_from(since.as_nanos()).unwrap()
}

#[test]
fn kernel_receive_timestamps_are_reported_when_enabled() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut recv = RecvBatch::new(4, 64).unwrap();
    sender.send_to(b"plain", receiver.local_addr().unwrap()).unwrap();
    assert_eq!(recv.recv(receiver.as_fd()).unwrap(), 1);
    assert_eq!(recv.datagram(0).rx_timestamp_ns, None);

    enable_rx_timestamps(receiver.as_fd()).unwrap();
    // The kernel turns receive timestamping on asynchronously (a deferred static key).
    std::thread::sleep(Duration::from_millis(50));
    let before = realtime_ns();
    sender.send_to(b"stamped", receiver.local_addr().unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(recv.recv(receiver.as_fd()).unwrap(), 1);
    let after = realtime_ns();
    let stamp = recv.datagram(0).rx_timestamp_ns.expect("a timestamp");
    assert!(before <= stamp && stamp + 4_000_000 <= after, "{before} <= {stamp} (+4 ms) <= {after}");
}

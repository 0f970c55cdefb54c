//! The recording tap end to end: a real data plane (real loopback sockets, the configured driver) taps a stream
//! whose ingress spec names the tap, the recorder thread writes its pcap file, and the file read back with
//! `pcap-file` holds exactly what was sent, as IPv4/UDP datagrams from the publisher. And a tap ring far too
//! small for a burst drops and counts, while the worker forwards every packet.
//! Only loopback addresses; every wait is bounded.

mod support;

use support::send_command;

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pcap_file::DataLink;
use ringfwd_dataplane::core::interceptor::spec::{IngressSpec, TapParams};
use ringfwd_dataplane::core::{Command, Rewrite, SourcePolicy, StreamId, SubscriptionId};
use ringfwd_dataplane::runtime::Dataplane;
use ringfwd_tuning::Config;

const SSRC: u32 = 0x7a9_0001;

fn rtp(seq: u16, size: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(7) ^ seq as u8).collect();
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p[8..12].copy_from_slice(&SSRC.to_be_bytes());
    p
}

/// A data plane on 127.0.0.1 recording into `dir` with tap rings of `ring_packets`, a stream from `publisher`
/// whose ingress is the tap alone, and one subscription to `sink`.
fn start(dir: &Path, ring_packets: u32, publisher: &UdpSocket, sink: &UdpSocket) -> Dataplane {
    let mut config = Config::default();
    config.media.addresses = vec!["127.0.0.1:0".parse().unwrap()];
    config.interceptors.tap.ring_packets = ring_packets;
    let dataplane = support::start(&config, dir);
    let ingress = IngressSpec { tap: Some(TapParams { snap_bytes: 1500 }), ..IngressSpec::default() };
    let source = SourcePolicy::Fixed(publisher.local_addr().unwrap());
    send_command(
        &dataplane,
        SSRC,
        1,
        Command::AddStream { id: StreamId(1), ssrc: SSRC, source, clock_rate_hz: 48_000, ingress },
    );
    let subscription = Command::AddSubscription {
        id: SubscriptionId(1),
        stream: StreamId(1),
        dest: sink.local_addr().unwrap(),
        socket: 0,
        rewrite: Rewrite::default(),
        paused: false,
        egress: Default::default(),
        continues: None,
    };
    send_command(&dataplane, SSRC, 2, subscription);
    dataplane
}

/// Receives on `sink` until `want` datagrams came or two seconds passed without one.
fn drain(sink: &UdpSocket, want: usize) -> usize {
    sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while got < want && sink.recv_from(&mut buf).is_ok() {
        got += 1;
    }
    got
}

fn pcap_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|entries| entries.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    files.sort();
    files
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

#[test]
fn a_tapped_stream_is_recorded_as_udp_datagrams_from_the_publisher() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = socket2::SockRef::from(&sink).set_recv_buffer_size(1 << 20);
    let dataplane = start(dir.path(), 1024, &publisher, &sink);
    let media = dataplane.media_addresses()[0];
    let recorder = dataplane.recorder_counters().expect("recording is on");
    let started = unix_now();

    let sent: Vec<Vec<u8>> = (0..200u16).map(|seq| rtp(seq, 60 + usize::from(seq % 7) * 150)).collect();
    for packet in &sent {
        publisher.send_to(packet, media).unwrap();
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(drain(&sink, sent.len()), sent.len(), "the tap never changes forwarding");
    let counters = dataplane.stop();
    let stats = recorder.snapshot();
    assert_eq!((stats.records_written, stats.ring_dropped, stats.write_errors), (200, 0, 0), "{stats:?}");
    assert_eq!(counters[0].rx_packets, 200);

    let files = pcap_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let prefix = format!("ringfwd-{SSRC:08x}-");
    let first_s: u64 = name.strip_prefix(&prefix).and_then(|n| n.strip_suffix(".pcap")).unwrap().parse().unwrap();
    assert!(first_s.abs_diff(started.as_secs()) <= 1, "{name} at {started:?}");

    let mut reader = PcapReader::new(File::open(&files[0]).unwrap()).unwrap();
    assert_eq!(reader.header().datalink, DataLink::RAW);
    let mut previous = Duration::ZERO;
    let mut records = 0;
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        let now = unix_now();
        assert!(packet.timestamp + Duration::from_secs(1) >= started && packet.timestamp <= now, "{packet:?}");
        assert!(packet.timestamp >= previous, "timestamps never decrease");
        previous = packet.timestamp;
        assert_eq!(packet.orig_len as usize, packet.data.len(), "nothing truncated at 1500 bytes");
        let datagram = SlicedPacket::from_ip(&packet.data).expect("an IP datagram");
        let Some(NetSlice::Ipv4(ip)) = datagram.net else { panic!("not IPv4: {:?}", datagram.net) };
        let Some(TransportSlice::Udp(udp)) = datagram.transport else { panic!("not UDP") };
        let from = SocketAddr::from((ip.header().source_addr(), udp.source_port()));
        let to = SocketAddr::from((ip.header().destination_addr(), udp.destination_port()));
        assert_eq!((from, to), (publisher.local_addr().unwrap(), media));
        assert_eq!(udp.payload(), &sent[records][..], "record {records}");
        records += 1;
    }
    assert_eq!(records, 200);
}

#[test]
fn a_full_tap_ring_drops_and_counts_while_the_worker_forwards_everything() {
    const BURST: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let publisher = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = socket2::SockRef::from(&sink).set_recv_buffer_size(4 << 20);
    let _ = socket2::SockRef::from(&publisher).set_send_buffer_size(4 << 20);
    // One slot: the recorder sleeps at least a millisecond whenever it finds the ring empty, so a burst overruns it.
    let dataplane = start(dir.path(), 1, &publisher, &sink);
    let media = dataplane.media_addresses()[0];
    let recorder = dataplane.recorder_counters().expect("recording is on");
    let receiver = std::thread::spawn(move || drain(&sink, BURST));
    let packet = rtp(1, 200);
    let began = Instant::now();
    for seq in 0..BURST as u16 {
        let mut p = packet.clone();
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        publisher.send_to(&p, media).unwrap();
    }
    let received = receiver.join().unwrap();
    let counters = dataplane.stop();
    let stats = recorder.snapshot();
    assert_eq!(received, BURST, "every packet forwarded: {:?}", counters[0]);
    assert!(began.elapsed() < Duration::from_secs(10), "the worker never waited for the recorder");
    assert!(stats.ring_dropped > 0, "a one-slot ring overruns: {stats:?}");
    assert_eq!(stats.records_written + stats.ring_dropped, BURST as u64, "every packet recorded or counted: {stats:?}");
    assert_eq!(stats.write_errors, 0);
}

//! A worker with nothing arriving still wakes by its deadlines (the io_uring backend arms one timeout request on
//! the ring per deadline instead of a timeout per wait): after the publisher stops, the counters of what it sent
//! are published without another datagram, and the subscription's sender report comes at its interval, after the
//! last RTP packet. Real sockets on loopback; every wait is bounded.

mod support;

use support::send_command;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use ringfwd_dataplane::core::interceptor::spec::{EgressSpec, ReportParams};
use ringfwd_dataplane::core::{Command, Rewrite, StreamId, SubscriptionId};

const SSRC: u32 = 0xdead_0001;
const PACKETS: u16 = 20;

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; 200];
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p[8..12].copy_from_slice(&SSRC.to_be_bytes());
    p
}

#[test]
fn an_idle_worker_publishes_its_counters_and_runs_its_timers() {
    let publisher = UdpSocket::bind("127.0.0.1:0").unwrap();
    let subscriber = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dataplane = support::start_plain_with_stream(&publisher, SSRC);
    let media = dataplane.media_addresses()[0];
    let egress = EgressSpec { sender_reports: Some(ReportParams { interval_ms: 100 }), ..Default::default() };
    let subscription = Command::AddSubscription {
        id: SubscriptionId(1),
        stream: StreamId(1),
        dest: subscriber.local_addr().unwrap(),
        socket: 0,
        rewrite: Rewrite::default(),
        paused: false,
        egress,
        continues: None,
    };
    send_command(&dataplane, SSRC, 2, subscription);

    for seq in 0..PACKETS {
        publisher.send_to(&rtp(seq), media).unwrap();
    }
    // Every RTP packet, then (nothing more is sent) a sender report, which only the report timer makes.
    subscriber.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 2048];
    let (mut rtp_packets, mut report_after_rtp) = (0, false);
    while !report_after_rtp {
        let (n, _) = subscriber.recv_from(&mut buf).expect("every packet, then a sender report within 3 s");
        match buf[1] {
            200 if n >= 28 => report_after_rtp = rtp_packets == PACKETS,
            96 => rtp_packets += 1,
            other => panic!("unexpected packet type {other}"),
        }
    }

    // The counters of that traffic and of the report reach the shared counters with no datagram since to wake the
    // worker.
    let worker = &dataplane.workers()[dataplane.owner_of(SSRC)];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let counters = worker.counters.snapshot();
        if counters.forwarded_packets >= u64::from(PACKETS) && counters.interceptor_emitted >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "counters not published by an idle worker: {counters:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    dataplane.stop();
}

//! ICMP errors through a real data plane (io_uring driver, loopback): a subscriber whose port is closed is
//! reported unreachable on the worker's event ring, and no other subscriber loses a packet to the socket
//! error that ICMP leaves pending (the send it fails is sent again). Every wait is bounded.

mod support;

use support::send_command;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use ringfwd_dataplane::core::{Command, Rewrite, StreamId, SubscriptionId};
use ringfwd_dataplane::runtime::WorkerEventKind;

const SSRC: u32 = 0x1c3_0001;

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; 200];
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&SSRC.to_be_bytes());
    p
}

#[test]
fn a_closed_port_is_reported_and_costs_the_other_subscriber_nothing() {
    let publisher = UdpSocket::bind("127.0.0.1:0").unwrap();
    let live = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Room for the whole burst: the test reads only after sending.
    socket2::SockRef::from(&live).set_recv_buffer_size(8 << 20).unwrap();
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // dropped: the port is closed
    let dataplane = support::start_plain_with_stream(&publisher, SSRC);
    let media = dataplane.media_addresses()[0];
    for (seq, (id, dest)) in [(1u64, closed), (2, live.local_addr().unwrap())].into_iter().enumerate() {
        let sub = Command::AddSubscription {
            id: SubscriptionId(id),
            stream: StreamId(1),
            dest,
            socket: 0,
            rewrite: Rewrite::default(),
            paused: false,
            egress: Default::default(),
            continues: None,
        };
        send_command(&dataplane, SSRC, seq as u64 + 2, sub);
    }
    const PACKETS: u16 = 500;
    for seq in 0..PACKETS {
        publisher.send_to(&rtp(seq), media).unwrap();
        if seq % 50 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    live.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 2048];
    let mut received = 0;
    while received < usize::from(PACKETS) && live.recv_from(&mut buf).is_ok() {
        received += 1;
    }
    let worker = &dataplane.workers()[dataplane.owner_of(SSRC)];
    let mut unreachable = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while unreachable.is_none() && Instant::now() < deadline {
        while let Some(event) = worker.events.pop() {
            if let WorkerEventKind::SubscriberUnreachable { subscription, errno } = event.kind {
                unreachable = Some((subscription, errno));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let counters = dataplane.stop();
    let total = |f: fn(&ringfwd_dataplane::core::Counters) -> u64| counters.iter().map(f).sum::<u64>();
    eprintln!("send_retries {}, send_errors {}", total(|c| c.send_retries), total(|c| c.send_errors));
    assert_eq!(received, usize::from(PACKETS), "the live subscriber lost nothing");
    assert_eq!(unreachable, Some((SubscriptionId(1), libc::ECONNREFUSED)), "the closed port was reported");
}

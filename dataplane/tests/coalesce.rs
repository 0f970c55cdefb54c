//! Coalescing across streams (io_uring driver): a subscriber that receives two streams on one address gets a
//! burst of equal-size packets from both in arrival order, in GSO sends that hold packets of both streams —
//! the batch window gathers the burst (packets 100 µs apart) into one iteration, and the send side keys open
//! sends by destination, not by subscription.

mod support;

use std::net::UdpSocket;
use std::time::Duration;

use ringfwd_dataplane::core::{Command, Rewrite, SourcePolicy, StreamId, SubscriptionId};
use ringfwd_tuning::{Config, Driver};
use support::send_command;

const PER_STREAM: u16 = 8;
const ROUNDS: u16 = 5;
const SPACING: Duration = Duration::from_micros(100);

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; 1000];
    p[0] = 0x80;
    p[1] = 96;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

#[test]
fn two_streams_to_one_address_leave_in_arrival_order_in_shared_gso_sends() {
    let mut config = Config::default();
    config.media.addresses = vec!["127.0.0.1:0".parse().unwrap()];
    config.media.driver = Driver::IoUring;
    // The largest window: a burst (about 1.5 ms) arrives well within it even on a loaded CI machine.
    config.idle.batch_window_us = 10_000;
    let dataplane = support::start(&config, &support::untapped_directory());
    let media = dataplane.media_addresses()[0];
    let publisher = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();

    // Two SSRCs owned by the same worker, both subscribed to by the sink's one address.
    let a = 0x1000u32;
    let b = (a + 1..).find(|&s| dataplane.owner_of(s) == dataplane.owner_of(a)).unwrap();
    let source = SourcePolicy::Fixed(publisher.local_addr().unwrap());
    for (k, ssrc) in [a, b].into_iter().enumerate() {
        let id = k as u64 + 1;
        let stream =
            Command::AddStream { id: StreamId(id), ssrc, source, clock_rate_hz: 90_000, ingress: Default::default() };
        send_command(&dataplane, a, 2 * id, stream);
        let subscription = Command::AddSubscription {
            id: SubscriptionId(id),
            stream: StreamId(id),
            dest: sink.local_addr().unwrap(),
            socket: 0,
            rewrite: Rewrite::default(),
            paused: false,
            egress: Default::default(),
            continues: None,
        };
        send_command(&dataplane, a, 2 * id + 1, subscription);
    }

    let mut buf = [0u8; 2048];
    for round in 0..ROUNDS {
        // A, B, A, B, ...: the order the sink must see.
        let sent: Vec<(u32, u16)> =
            (0..PER_STREAM).flat_map(|i| [(a, round * PER_STREAM + i), (b, round * PER_STREAM + i)]).collect();
        for &(ssrc, seq) in &sent {
            publisher.send_to(&rtp(ssrc, seq), media).unwrap();
            // Spaced out: without the window, the worker would handle (and send) each packet alone.
            std::thread::sleep(SPACING);
        }
        let received: Vec<(u32, u16)> = sent
            .iter()
            .map(|_| {
                let (n, _) = sink.recv_from(&mut buf).expect("every copy arrives");
                assert_eq!(n, 1000, "segments keep their size");
                (u32::from_be_bytes(buf[8..12].try_into().unwrap()), u16::from_be_bytes([buf[2], buf[3]]))
            })
            .collect();
        assert_eq!(received, sent, "round {round}: arrival order across both streams");
    }

    let counters = dataplane.stop();
    let total = counters.iter().fold((0, 0, 0), |t, c| (t.0 + c.sends, t.1 + c.gso_sends, t.2 + c.gso_segments));
    let (sends, gso_sends, gso_segments) = total;
    let copies = u64::from(2 * PER_STREAM * ROUNDS);
    assert_eq!(sends - gso_sends + gso_segments, copies, "every copy left once: {counters:?}");
    let min_timeout = io_uring::IoUring::new(2).is_ok_and(|ring| ring.params().is_feature_min_timeout());
    if min_timeout {
        // Each burst's first packet wakes the worker alone; the other 15 arrive within the window. A send of
        // two or more consecutive packets of an alternating burst holds both streams.
        assert!(gso_sends >= u64::from(ROUNDS), "a shared GSO send per burst: {counters:?}");
        assert!(sends <= copies / 2, "{sends} sends for {copies} copies: {counters:?}");
    } else {
        eprintln!("this kernel's io_uring has no minimum-wait timeout: coalescing not asserted");
    }
}

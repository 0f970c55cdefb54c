//! Above capacity: the daemon keeps reading every socket, loses only the excess, and every packet sent is
//! either received by a worker or counted as dropped by the kernel's receive queue. Also: each idle strategy
//! forwards.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use ringfwd_tests::config::one_stream;
use ringfwd_tests::{rtp_packet, Daemon, Peer};

/// Packets each publisher sends as fast as it can (bounded in count; a few seconds at most).
const FLOOD: u16 = 60_000;

#[test]
fn overload_loses_only_the_excess_and_serves_every_socket() {
    let v4 = Peer::bind("127.0.0.1");
    let v6 = Peer::bind("::1");
    let sink4 = Peer::bind("127.0.0.1");
    let sink6 = Peer::bind("::1");
    let config = format!(
        "[media]\naddresses = [\"127.0.0.1:0\", \"[::1]:0\"]\nrecv_buffer_bytes = 262144\n\
         [[sessions]]\nid = \"flood\"\n\
         endpoints = [ {{ id = \"p4\", address = \"{}\" }}, {{ id = \"p6\", address = \"{}\" }},\n\
                       {{ id = \"s4\", address = \"{}\" }}, {{ id = \"s6\", address = \"{}\" }} ]\n\
         streams = [ {{ id = \"a\", endpoint = \"p4\", ssrc = 4 }}, {{ id = \"b\", endpoint = \"p6\", ssrc = 6 }} ]\n\
         subscriptions = [ {{ stream = \"a\", endpoint = \"s4\" }}, {{ stream = \"b\", endpoint = \"s6\" }} ]\n",
        v4.addr(),
        v6.addr(),
        sink4.addr(),
        sink6.addr()
    );
    let daemon = Daemon::start(&config);
    let (m4, m6) = (daemon.media[0], daemon.media[1]);
    let start = Arc::new(Barrier::new(2));
    let flood = |peer: Peer, ssrc: u32, to, start: Arc<Barrier>| {
        std::thread::spawn(move || {
            let packets: Vec<Vec<u8>> = (0..FLOOD).map(|seq| rtp_packet(ssrc, seq, 0, 96, false, &[9; 1000])).collect();
            start.wait();
            for p in &packets {
                peer.send(p, to);
            }
        })
    };
    let a = flood(v4, 4, m4, start.clone());
    let b = flood(v6, 6, m6, start);
    a.join().unwrap();
    b.join().unwrap();
    let got4 = sink4.drain(Duration::from_millis(500)).len();
    let got6 = sink6.drain(Duration::from_millis(500)).len();
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    let sent = 2 * u64::from(FLOOD);
    let received = exit.total("rx_packets");
    let kernel_dropped = exit.total("kernel_rx_dropped");
    assert_eq!(received + kernel_dropped, sent, "every packet is either read or counted as a kernel drop");
    assert_eq!(exit.total("forwarded_packets"), received, "everything read is forwarded");
    assert!(got4 > 0 && got6 > 0, "both sockets keep being served (v4 got {got4}, v6 got {got6})");
    let (low, high) = (got4.min(got6) as f64, got4.max(got6) as f64);
    assert!(low / high > 0.2, "neither socket is starved: v4 {got4}, v6 {got6}");
}

fn forwards_with_idle(strategy: &str) {
    let publisher = Peer::bind("127.0.0.1");
    let sink = Peer::bind("127.0.0.1");
    let idle = format!("[idle]\nstrategy = \"{strategy}\"\nspin_us = 200");
    let config = one_stream(&idle, Some(publisher.addr()), sink.addr(), 5);
    let daemon = Daemon::start(&config);
    for seq in 0..50 {
        publisher.send(&rtp_packet(5, seq, 0, 0, false, &[1; 160]), daemon.media[0]);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(sink.recv(50, Duration::from_secs(3)).len(), 50, "{strategy}");
    assert!(daemon.stop().success);
}

#[test]
fn every_idle_strategy_forwards() {
    for strategy in ["sleep", "spin", "spin_then_sleep"] {
        forwards_with_idle(strategy);
    }
}

#[test]
fn an_exhausted_pool_rearms_without_losing_packets() {
    // 16 ring buffers for a burst of 3,000 packets to 3 subscribers: the buffer ring runs dry (ENOBUFS ends the
    // multishot receive), the datagrams wait in the socket's queue, and the receive is re-armed as buffers return.
    const BURST: u16 = 3_000;
    let publisher = Peer::bind("127.0.0.1");
    let sinks = [Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1"), Peer::bind("127.0.0.1")];
    let config = format!(
        "[media]\naddresses = [\"127.0.0.1:0\"]\n[pool]\nbuffers_per_worker = 16\n\
         [[sessions]]\nid = \"c\"\n\
         endpoints = [ {{ id = \"p\", address = \"{}\" }}, {{ id = \"a\", address = \"{}\" }},\n\
                       {{ id = \"b\", address = \"{}\" }}, {{ id = \"c\", address = \"{}\" }} ]\n\
         streams = [ {{ id = \"v\", endpoint = \"p\", ssrc = 9, kind = \"video\" }} ]\n\
         subscriptions = [ {{ stream = \"v\", endpoint = \"a\" }}, {{ stream = \"v\", endpoint = \"b\" }},\n\
                           {{ stream = \"v\", endpoint = \"c\" }} ]\n",
        publisher.addr(),
        sinks[0].addr(),
        sinks[1].addr(),
        sinks[2].addr()
    );
    let daemon = Daemon::start(&config);
    let receivers: Vec<_> = sinks
        .into_iter()
        .map(|sink| std::thread::spawn(move || sink.recv(usize::from(BURST), Duration::from_secs(10)).len()))
        .collect();
    for seq in 0..BURST {
        publisher.send(&rtp_packet(9, seq, 0, 96, false, &[3; 1100]), daemon.media[0]);
    }
    let received: Vec<usize> = receivers.into_iter().map(|r| r.join().unwrap()).collect();
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    assert!(exit.total("pool_exhausted") > 0, "the pool must have run dry for this test to mean anything");
    assert_eq!(exit.total("kernel_rx_dropped"), 0);
    assert_eq!(exit.total("rx_packets"), u64::from(BURST), "nothing lost while the ring was empty");
    assert_eq!(received, vec![usize::from(BURST); 3], "every subscriber got every packet");
}

//! A flood of zero-length datagrams (the cheapest packet there is) against the io_uring receive path. Alone in its
//! own test binary, so no other load test of this process competes for the cores while it measures loss.
//! Loopback only; bounded in count (52,000 datagrams) and time (about 1 s of sending).

use std::time::Duration;

use ringfwd_tests::config::one_stream;
use ringfwd_tests::{rtp_packet, Daemon, Peer};

#[test]
fn a_flood_of_empty_datagrams_costs_a_legitimate_stream_nothing() {
    for driver in ["io_uring", "mmsg"] {
        empty_flood(driver);
    }
}

fn empty_flood(driver: &str) {
    // 50,000 zero-length datagrams a second (≈ 1 Mbit/s of headers) beside a 2,000 pps stream, for 1 s, with the
    // default batch window: each empty datagram is dropped and counted, and the stream loses nothing. (They used to
    // end the multishot receive, and each re-arm waited out the batch window: the stream lost half its packets.)
    const TICKS: u32 = 2_000;
    const EMPTY_PER_TICK: u32 = 25;
    const LEGIT_PER_TICK: u16 = 1;
    const TICK: Duration = Duration::from_micros(500);
    let publisher = Peer::bind("127.0.0.1");
    let flooder = Peer::bind("127.0.0.1");
    let sink = Peer::bind("127.0.0.1");
    let extra = format!("driver = \"{driver}\"\n[placement]\nworker_cores = [0]");
    let config = one_stream(&extra, Some(publisher.addr()), sink.addr(), 5);
    let daemon = Daemon::start(&config);
    let media = daemon.media[0];
    let legit = u32::from(LEGIT_PER_TICK) * TICKS;
    let receiver = std::thread::spawn(move || sink.recv(legit as usize, Duration::from_secs(15)).len());
    let packets: Vec<Vec<u8>> = (0..legit).map(|seq| rtp_packet(5, seq as u16, 0, 96, false, &[7; 160])).collect();
    let start = std::time::Instant::now();
    let mut next = packets.iter();
    for tick in 0..TICKS {
        // Paced against the clock; a late tick catches up at once, so the rate holds on average.
        if let Some(wait) = (start + TICK * tick).checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
        for _ in 0..EMPTY_PER_TICK {
            flooder.send(&[], media);
        }
        for packet in next.by_ref().take(usize::from(LEGIT_PER_TICK)) {
            publisher.send(packet, media);
        }
    }
    let elapsed = start.elapsed();
    let received = receiver.join().unwrap();
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    let empty = u64::from(EMPTY_PER_TICK * TICKS);
    println!(
        "{driver}: {empty} empty datagrams and {legit} RTP in {elapsed:?}: {received} forwarded; rx {} kernel drops {}, not_rtp {}",
        exit.total("rx_packets"),
        exit.total("kernel_rx_dropped"),
        exit.total("drop_not_rtp")
    );
    assert_eq!(received, legit as usize, "{driver}: the legitimate stream lost {} packets", legit as usize - received);
    assert_eq!(exit.total("kernel_rx_dropped"), 0, "the worker kept up with the flood");
    assert_eq!(exit.total("drop_not_rtp"), empty, "each empty datagram dropped and counted");
}

//! SSRC steering through the kernel: with two workers, every packet of a stream, RTP and RTCP, is received by
//! the worker that owns the stream (SSRC mod workers), none needs a handover, and all are forwarded.

use std::time::Duration;

use ringfwd_tests::{rtcp_sender_report, rtp_packet, Daemon, Peer};

const STREAMS: u32 = 16;
const RTP_PER_STREAM: u16 = 60;
const RTCP_PER_STREAM: u32 = 5;

fn steering_with(driver: &str) {
    let publisher = Peer::bind("127.0.0.1");
    let sink = Peer::bind("127.0.0.1");
    let ssrcs: Vec<u32> = (0..STREAMS).map(|i| 0x1000_0000u32.wrapping_mul(i + 1).wrapping_add(i * 7919 + 3)).collect();
    let mut config = format!(
        "[placement]\nworker_cores = [0, 1]\n[media]\naddresses = [\"127.0.0.1:0\"]\ndriver = \"{driver}\"\n\
         [[sessions]]\nid = \"room\"\n\
         [[sessions.endpoints]]\nid = \"pub\"\naddress = \"{}\"\n\
         [[sessions.endpoints]]\nid = \"sink\"\naddress = \"{}\"\n",
        publisher.addr(),
        sink.addr()
    );
    for (i, ssrc) in ssrcs.iter().enumerate() {
        config += &format!("[[sessions.streams]]\nid = \"s{i}\"\nendpoint = \"pub\"\nssrc = {ssrc}\n");
        config +=
            &format!("[[sessions.subscriptions]]\nstream = \"s{i}\"\nendpoint = \"sink\"\nout_ssrc = {}\n", i + 1);
    }
    let daemon = Daemon::start(&config);
    assert_eq!(daemon.workers, 2);
    let media = daemon.media[0];
    let mut expected_per_worker = [0u64; 2];
    for seq in 0..RTP_PER_STREAM {
        for &ssrc in &ssrcs {
            publisher.send(&rtp_packet(ssrc, seq, u32::from(seq) * 960, 111, false, &[7; 120]), media);
            expected_per_worker[(ssrc % 2) as usize] += 1;
            if u32::from(seq) < RTCP_PER_STREAM {
                publisher.send(&rtcp_sender_report(ssrc, u32::from(seq)), media);
                expected_per_worker[(ssrc % 2) as usize] += 1;
            }
        }
    }
    let total = expected_per_worker[0] + expected_per_worker[1];
    let got = sink.recv(total as usize, Duration::from_secs(5));
    assert_eq!(got.len() as u64, total, "every packet forwarded");
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    assert!(expected_per_worker.iter().all(|&n| n > 0), "the SSRCs must cover both workers");
    for (worker, &expected) in expected_per_worker.iter().enumerate() {
        assert_eq!(exit.worker(worker, "rx_packets"), expected, "{driver}: packets received by worker {worker}");
        assert_eq!(exit.worker(worker, "handover_out"), 0, "{driver}: worker {worker} received a foreign packet");
        assert_eq!(exit.worker(worker, "forwarded_packets"), expected, "{driver}: worker {worker} forwarded");
    }
}

#[test]
fn every_packet_of_a_stream_reaches_its_owner_worker() {
    steering_with("io_uring");
}

#[test]
fn the_mmsg_driver_is_steered_the_same_way() {
    steering_with("mmsg");
}

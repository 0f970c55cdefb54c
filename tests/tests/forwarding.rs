//! End-to-end forwarding through the real daemon: byte-exact RTP and RTCP with per-subscriber rewriting over
//! IPv4 and IPv6, with both drivers; nothing forwarded from unknown SSRCs or wrong sources; latching.

use std::time::Duration;

use ringfwd_tests::config::one_stream;
use ringfwd_tests::{rtcp_sender_report, rtp_packet, Daemon, Peer};

const WAIT: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(300);

/// A subscription's rewrite, as configured and as the test expects it applied.
struct Rewrite {
    out_ssrc: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    pt_map: Option<(u8, u8)>,
}

impl Rewrite {
    fn toml(&self) -> String {
        let mut s = format!("seq_offset = {}\nts_offset = {}\n", self.seq_offset, self.ts_offset);
        if let Some(o) = self.out_ssrc {
            s += &format!("out_ssrc = {o}\n");
        }
        if let Some((a, b)) = self.pt_map {
            s += &format!("payload_type_map = [[{a}, {b}]]\n");
        }
        s
    }

    /// The RTP packet a subscriber must receive: only the fixed header's PT, seq, ts and SSRC change.
    fn rtp(&self, original: &[u8]) -> Vec<u8> {
        let mut p = original.to_vec();
        let pt = p[1] & 0x7f;
        let pt = match self.pt_map {
            Some((from, to)) if from == pt => to,
            _ => pt,
        };
        p[1] = (p[1] & 0x80) | pt;
        let seq = u16::from_be_bytes([p[2], p[3]]).wrapping_add(self.seq_offset);
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]).wrapping_add(self.ts_offset);
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        if let Some(o) = self.out_ssrc {
            p[8..12].copy_from_slice(&o.to_be_bytes());
        }
        p
    }

    /// The sender report + SDES compound a subscriber must receive.
    fn rtcp(&self, ssrc: u32, rtp_time: u32) -> Vec<u8> {
        rtcp_sender_report(self.out_ssrc.unwrap_or(ssrc), rtp_time.wrapping_add(self.ts_offset))
    }
}

fn subscriptions() -> [Rewrite; 3] {
    [
        Rewrite { out_ssrc: None, seq_offset: 0, ts_offset: 0, pt_map: None },
        Rewrite { out_ssrc: Some(0xdead_beef), seq_offset: 1000, ts_offset: 0xffff_ff00, pt_map: Some((96, 111)) },
        Rewrite { out_ssrc: Some(7), seq_offset: 65535, ts_offset: 1, pt_map: Some((97, 98)) },
    ]
}

fn forward_byte_exact(ip: &str, driver: &str) {
    let publisher = Peer::bind(ip);
    let subscribers = [Peer::bind(ip), Peer::bind(ip), Peer::bind(ip)];
    let rewrites = subscriptions();
    let ssrc = 0x1234_5678;
    let mut config = format!(
        "[media]\naddresses = [\"127.0.0.1:0\", \"[::1]:0\"]\ndriver = \"{driver}\"\n\
         [[sessions]]\nid = \"call\"\n\
         [[sessions.endpoints]]\nid = \"pub\"\naddress = \"{}\"\n",
        publisher.addr()
    );
    for (i, s) in subscribers.iter().enumerate() {
        config += &format!("[[sessions.endpoints]]\nid = \"sub{i}\"\naddress = \"{}\"\n", s.addr());
    }
    config += &format!("[[sessions.streams]]\nid = \"video\"\nendpoint = \"pub\"\nssrc = {ssrc}\n");
    for (i, r) in rewrites.iter().enumerate() {
        config += &format!("[[sessions.subscriptions]]\nstream = \"video\"\nendpoint = \"sub{i}\"\n{}", r.toml());
    }
    let daemon = Daemon::start(&config);
    let media = daemon.media_for(publisher.addr());

    // Sequence numbers and timestamps straddle their wrap; equal sizes let the io_uring driver use GSO.
    let sent: Vec<Vec<u8>> = (0..40u16)
        .map(|i| {
            let pt = if i % 2 == 0 { 96 } else { 97 };
            rtp_packet(
                ssrc,
                65516u16.wrapping_add(i),
                0xffff_fff0u32.wrapping_add(u32::from(i) * 3000),
                pt,
                i % 5 == 0,
                &[i as u8; 200],
            )
        })
        .collect();
    for p in &sent {
        publisher.send(p, media);
    }
    let sr_time = 0xffff_fffe;
    publisher.send(&rtcp_sender_report(ssrc, sr_time), media);

    for (s, r) in subscribers.iter().zip(&rewrites) {
        let got = s.recv(sent.len() + 1, WAIT);
        let mut expected: Vec<Vec<u8>> = sent.iter().map(|p| r.rtp(p)).collect();
        expected.push(r.rtcp(ssrc, sr_time));
        assert_eq!(got.len(), expected.len(), "{driver} over {ip}: subscriber {} got {} packets", s.addr(), got.len());
        assert_eq!(got, expected, "{driver} over {ip}: bytes differ for subscriber {}", s.addr());
    }
    let exit = daemon.stop();
    assert!(exit.success, "{exit:?}");
    assert_eq!(exit.total("rx_packets"), 41);
    assert_eq!(exit.total("forwarded_packets"), 3 * 41);
    assert_eq!(exit.total("send_errors"), 0);
}

#[test]
fn rtp_and_rtcp_reach_three_subscribers_byte_exact_over_ipv4() {
    forward_byte_exact("127.0.0.1", "io_uring");
}

#[test]
fn rtp_and_rtcp_reach_three_subscribers_byte_exact_over_ipv6() {
    forward_byte_exact("::1", "io_uring");
}

#[test]
fn the_mmsg_driver_forwards_the_same_bytes() {
    forward_byte_exact("127.0.0.1", "mmsg");
    forward_byte_exact("::1", "mmsg");
}

#[test]
fn unknown_ssrc_and_wrong_source_forward_nothing() {
    let publisher = Peer::bind("127.0.0.1");
    let stranger = Peer::bind("127.0.0.1");
    let subscriber = Peer::bind("127.0.0.1");
    let config = one_stream("", Some(publisher.addr()), subscriber.addr(), 42);
    let daemon = Daemon::start(&config);
    let media = daemon.media[0];
    for seq in 0..20 {
        publisher.send(&rtp_packet(43, seq, 0, 96, false, b"unknown ssrc"), media);
        stranger.send(&rtp_packet(42, seq, 0, 96, false, b"right ssrc, wrong source"), media);
        stranger.send(&rtcp_sender_report(42, 0), media);
    }
    publisher.send(&[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], media);
    publisher.send(&[0x80, 96, 0, 1, 0, 0], media);
    assert!(subscriber.drain(QUIET).is_empty(), "nothing may be forwarded");
    let exit = daemon.stop();
    assert_eq!(exit.total("forwarded_packets"), 0);
    assert_eq!(exit.total("drop_unknown_ssrc"), 20);
    assert_eq!(exit.total("drop_wrong_source"), 40);
    assert_eq!(exit.total("drop_not_rtp"), 1, "STUN");
    assert_eq!(exit.total("drop_malformed"), 1, "short RTP");
    assert_eq!(exit.total("rx_packets"), 62);
}

#[test]
fn latching_locks_to_the_first_source() {
    let first = Peer::bind("127.0.0.1");
    let second = Peer::bind("127.0.0.1");
    let subscriber = Peer::bind("127.0.0.1");
    let daemon = Daemon::start(&one_stream("", None, subscriber.addr(), 77));
    let media = daemon.media[0];
    first.send(&rtp_packet(77, 1, 0, 96, false, b"first"), media);
    let got = subscriber.recv(1, WAIT);
    assert_eq!(got.len(), 1, "the first source is latched and forwarded");
    for seq in 2..12 {
        second.send(&rtp_packet(77, seq, 0, 96, false, b"second"), media);
    }
    first.send(&rtp_packet(77, 12, 0, 96, false, b"first again"), media);
    let got = subscriber.recv(1, WAIT);
    assert_eq!(got.len(), 1);
    assert!(got[0].ends_with(b"first again"), "only the latched source is forwarded");
    assert!(subscriber.drain(QUIET).is_empty(), "nothing from the second source");
    let exit = daemon.stop();
    assert_eq!(exit.total("latched"), 1);
    assert_eq!(exit.total("drop_wrong_source"), 10);
    assert_eq!(exit.total("forwarded_packets"), 2);
}

//! Tests of the generator in virtual time over loopback: packet sizes, header patching, frame
//! bursts with their marker and timestamp, GSO runs and step counters.

use std::net::UdpSocket;
use std::time::Duration;

use rtp_types::RtpPacket;

use super::*;
use crate::payload;

const MS: u64 = 1_000_000;

/// Receives until `want` datagrams came or a second passed.
fn receive(socket: &UdpSocket, want: usize) -> Vec<Vec<u8>> {
    socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while out.len() < want {
        match socket.recv(&mut buf) {
            Ok(n) => out.push(buf[..n].to_vec()),
            Err(_) => break,
        }
    }
    out
}

fn generator(shape: Shape, gso: bool) -> (Generator, UdpSocket) {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stream =
        StreamConfig { ssrc: 0xABCD, payload_type: 96, clock_rate_hz: 90_000, shape, publisher: 0, phase: 0.0 };
    let mut gen = Generator::new(vec![UdpSocket::bind("127.0.0.1:0").unwrap()], &[stream], gso).unwrap();
    gen.start_step(receiver.local_addr().unwrap(), 1.0, 0, 1000 * MS);
    (gen, receiver)
}

#[test]
fn a_frame_goes_out_as_a_burst_with_one_timestamp_and_a_final_marker() {
    let shape = Shape::Frames { frames_per_s: 30.0, frame_bytes: 6250, max_payload_bytes: 1200 };
    for gso in [false, true] {
        let (mut gen, receiver) = generator(shape, gso);
        let epoch = Epoch::new();
        assert_eq!(gen.poll(&epoch, 0).unwrap(), 6, "gso {gso}");
        assert_eq!(gen.poll(&epoch, 1).unwrap(), 0, "nothing more is due");
        assert_eq!(gen.poll(&epoch, 34 * MS).unwrap(), 6);
        let got = receive(&receiver, 12);
        let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1212, 1212, 1212, 1212, 1212, 262].repeat(2), "gso {gso}");
        let rtp: Vec<RtpPacket<'_>> = got.iter().map(|p| RtpPacket::parse(p).unwrap()).collect();
        for (i, p) in rtp.iter().enumerate() {
            assert_eq!((p.ssrc(), p.payload_type()), (0xABCD, 96));
            assert_eq!(p.marker_bit(), i % 6 == 5, "packet {i}");
            assert_eq!(p.sequence_number(), rtp[0].sequence_number().wrapping_add(i as u16));
            assert_eq!(p.timestamp(), rtp[0].timestamp().wrapping_add(3000 * (i / 6) as u32));
            let bench = payload::read(p.payload()).unwrap();
            assert_eq!(bench.gen_seq, i as u32);
            assert_eq!((bench.rtp_seq, bench.rtp_timestamp), (p.sequence_number(), p.timestamp()));
        }
        assert_eq!((gen.step_sent(0), gen.step_sent_total(), gen.step_failed()), (12, 12, 0));
    }
}

#[test]
fn overdue_constant_rate_packets_go_together_and_count() {
    let shape = Shape::Constant { packets_per_s: 1000.0, packet_bytes: 200 };
    let (mut gen, receiver) = generator(shape, true);
    let epoch = Epoch::new();
    // Polled late: the packets due at 0..=10 ms all go now, as one GSO run where supported.
    assert_eq!(gen.poll(&epoch, 10 * MS).unwrap(), 11);
    let got = receive(&receiver, 11);
    assert_eq!(got.len(), 11);
    assert!(got.iter().all(|p| p.len() == 200));
    assert_eq!(gen.next_due_ns(), Some(11 * MS));
    assert!(gen.lag_ns.max() >= 9 * MS, "the first of them was 10 ms late");
    assert_eq!(gen.planned_packets(1.0, 1000 * MS), 1000);
    assert_eq!(gen.planned_packets(2.5, 1000 * MS), 2500);
}

#[test]
fn sequence_numbers_wrap_and_a_step_is_bounded() {
    let shape = Shape::Constant { packets_per_s: 1000.0, packet_bytes: 40 };
    let (mut gen, receiver) = generator(shape, false);
    let epoch = Epoch::new();
    let (mut sent, mut got) = (0, Vec::new());
    let mut now = 0;
    while gen.next_due_ns().is_some() && now <= 2000 * MS {
        let n = gen.poll(&epoch, now).unwrap();
        sent += n;
        got.extend(receive(&receiver, n));
        now += 5 * MS;
    }
    // A one-second step at 1000 pps: exactly 1000 packets, then nothing is due.
    assert_eq!((sent, got.len()), (1000, 1000));
    let seqs: Vec<u16> = got.iter().map(|p| RtpPacket::parse(p).unwrap().sequence_number()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    assert!(seqs.contains(&65_535) && seqs.contains(&0), "starts near the wrap so it is crossed");
    // The next step continues the generator sequence.
    gen.start_step(receiver.local_addr().unwrap(), 1.0, now, 10 * MS);
    assert_eq!(gen.step_first_gen_seqs(), vec![1000]);
}

#[test]
fn bad_stream_configs_are_refused_by_name() {
    let shape = Shape::Frames { frames_per_s: 1.0, frame_bytes: 100_000, max_payload_bytes: 1200 };
    let stream = StreamConfig { ssrc: 1, payload_type: 96, clock_rate_hz: 90_000, shape, publisher: 0, phase: 0.0 };
    let socket = || vec![UdpSocket::bind("127.0.0.1:0").unwrap()];
    let err = Generator::new(socket(), std::slice::from_ref(&stream), false).err().unwrap();
    assert!(matches!(err, GenError::FrameTooLarge { packets: 84, .. }), "{err}");
    let far = StreamConfig { publisher: 3, shape: Shape::Constant { packets_per_s: 1.0, packet_bytes: 100 }, ..stream };
    let err = Generator::new(socket(), &[far], false).err().unwrap();
    assert!(err.to_string().contains("publisher 3"), "{err}");
}

//! Tests of the generator in virtual time over loopback: packet sizes, header patching, frame
//! bursts with their marker and timestamp, GSO runs and step counters.

use std::net::UdpSocket;
use std::time::Duration;

use rtp_types::RtpPacket;

use super::*;
use crate::payload;
use crate::scenario_file::Impairment;

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

/// Stream 0xABCD of publisher 0, PT 96 at 90 kHz, unimpaired.
fn stream(shape: Shape) -> StreamConfig {
    StreamConfig {
        ssrc: 0xABCD,
        payload_type: 96,
        clock_rate_hz: 90_000,
        shape,
        publisher: 0,
        phase: 0.0,
        seed: 1,
        impairment: Impairment::default(),
    }
}

fn generator(shape: Shape, gso: bool) -> (Generator, UdpSocket) {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut gen = Generator::new(vec![UdpSocket::bind("127.0.0.1:0").unwrap()], &[stream(shape)], gso).unwrap();
    gen.start_step(receiver.local_addr().unwrap(), 1.0, 0, 1000 * MS);
    (gen, receiver)
}

#[test]
fn a_frame_goes_out_as_a_burst_with_one_timestamp_and_a_final_marker() {
    let shape = Shape::fixed_frames(30.0, 6250, 1200);
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
    assert_eq!(gen.planned_packets(), 1000);
    gen.start_step(receiver.local_addr().unwrap(), 2.5, 0, 1000 * MS);
    assert_eq!(gen.planned_packets(), 2500);
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
    let stream = stream(Shape::fixed_frames(1.0, 100_000, 1200));
    let socket = || vec![UdpSocket::bind("127.0.0.1:0").unwrap()];
    let err = Generator::new(socket(), std::slice::from_ref(&stream), false).err().unwrap();
    assert!(matches!(err, GenError::FrameTooLarge { packets: 84, .. }), "{err}");
    let far = StreamConfig { publisher: 3, shape: Shape::Constant { packets_per_s: 1.0, packet_bytes: 100 }, ..stream };
    let err = Generator::new(socket(), &[far], false).err().unwrap();
    assert!(err.to_string().contains("publisher 3"), "{err}");
}

/// Polls `gen` at every due time up to `end_ns` (virtual time) and receives everything it sent.
fn drive(gen: &mut Generator, receiver: &UdpSocket, end_ns: u64) -> Vec<Vec<u8>> {
    let epoch = Epoch::new();
    let mut got = Vec::new();
    while let Some(due) = gen.next_due_ns().filter(|&d| d <= end_ns) {
        let n = gen.poll(&epoch, due).unwrap();
        got.extend(receive(receiver, n));
    }
    got
}

/// Groups packets into frames by RTP timestamp, in order: (timestamp, payload bytes, packets).
fn frames(packets: &[Vec<u8>]) -> Vec<(u32, usize, usize)> {
    let mut out: Vec<(u32, usize, usize)> = Vec::new();
    for p in packets {
        let rtp = RtpPacket::parse(p).unwrap();
        match out.last_mut() {
            Some(f) if f.0 == rtp.timestamp() => {
                f.1 += rtp.payload().len();
                f.2 += 1;
            }
            _ => out.push((rtp.timestamp(), rtp.payload().len(), 1)),
        }
    }
    out
}

#[test]
fn video_frames_follow_the_size_model_with_periodic_keyframes() {
    use crate::traffic::FrameSizes;
    let sizes = FrameSizes::Video { delta_bytes: 5000, keyframe_bytes: 30_000, keyframe_interval: 10, jitter: 0.2 };
    let shape = Shape::Frames { frames_per_s: 30.0, sizes, max_payload_bytes: 1200 };
    let (mut gen, receiver) = generator(shape, true);
    let got = drive(&mut gen, &receiver, 1000 * MS);
    let f = frames(&got);
    // One second at 30 fps; every packet at most 1200 bytes of payload; the marker ends each frame.
    assert_eq!(f.len(), 30);
    assert!(got.iter().all(|p| p.len() <= 12 + 1200));
    let markers: Vec<bool> = got.iter().map(|p| RtpPacket::parse(p).unwrap().marker_bit()).collect();
    assert_eq!(markers.iter().filter(|&&m| m).count(), 30);
    for (k, &(_, bytes, packets)) in f.iter().enumerate() {
        assert_eq!(packets, bytes.div_ceil(1200), "frame {k}: split into full packets and a rest");
        if k % 10 == 0 {
            assert!((24_000..=36_000).contains(&bytes), "keyframe {k}: {bytes}");
        } else {
            assert!((4_000..=6_000).contains(&bytes), "delta {k}: {bytes}");
        }
    }
    // Sizes vary from frame to frame.
    assert!(f.windows(2).any(|w| w[0].1 != w[1].1 && w[0].1 < 10_000 && w[1].1 < 10_000));
    assert_eq!(gen.planned_packets(), got.len() as u64);
}

#[test]
fn screen_share_sends_rare_large_bursts_and_small_idle_frames() {
    use crate::traffic::FrameSizes;
    let sizes = FrameSizes::Screen { idle_bytes: 400, burst_bytes: 60_000, burst_probability: 0.1 };
    let shape = Shape::Frames { frames_per_s: 5.0, sizes, max_payload_bytes: 1200 };
    let (mut gen, receiver) = generator(shape, true);
    gen.start_step(receiver.local_addr().unwrap(), 1.0, 0, 20_000 * MS);
    let f = frames(&drive(&mut gen, &receiver, 20_000 * MS));
    assert_eq!(f.len(), 100);
    assert_eq!((f[0].1, f[0].2), (60_000, 50), "the first frame is a burst of 50 packets");
    assert!(f.iter().all(|&(_, b, n)| (b, n) == (400, 1) || (b, n) == (60_000, 50)), "{f:?}");
    let bursts = f.iter().filter(|x| x.2 == 50).count();
    assert!((3..=25).contains(&bursts), "{bursts} bursts in 100 frames at 10%");
}

#[test]
fn impairment_is_seen_exactly_by_the_sink() {
    use crate::account::{Accounting, FlowSpec};
    use crate::sink::Sink;
    let impairment = Impairment {
        loss_percent: 3.0,
        reorder_percent: 2.0,
        reorder_distance_packets: 3,
        reorder_max_delay_ms: 50.0,
        duplicate_percent: 1.0,
    };
    let stream =
        StreamConfig { seed: 5, impairment, ..stream(Shape::Constant { packets_per_s: 1000.0, packet_bytes: 200 }) };
    // The generator sends straight to the sink: what arrives is exactly what the impairment made.
    let spec = FlowSpec { out_ssrc: 0xABCD, stream: 0, seq_offset: 0, ts_offset: 0, payload_type_map: vec![] };
    let mut sink =
        Sink::new(Sink::bind("127.0.0.1:0".parse().unwrap()).unwrap(), Accounting::new(vec![spec], 1)).unwrap();
    let mut gen = Generator::new(vec![UdpSocket::bind("127.0.0.1:0").unwrap()], &[stream], false).unwrap();
    let epoch = Epoch::new();
    gen.start_step(sink.local_addr().unwrap(), 1.0, 0, 2000 * MS);
    sink.begin_step(&epoch, &gen.step_first_gen_seqs());
    while let Some(due) = gen.next_due_ns() {
        gen.poll(&epoch, due).unwrap();
        sink.drain(&epoch, 4).unwrap();
    }
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(2));
        sink.drain(&epoch, 4).unwrap();
    }
    let injected = gen.step_impairment(0);
    assert_eq!(injected.packets, 2000);
    assert!(injected.lost > 20 && injected.duplicated > 5 && injected.reordered > 10, "{injected:?}");
    let t = sink.accounting.totals(&[gen.step_sent(0)]);
    assert_eq!(t.expected, 2000);
    assert_eq!(t.lost, injected.lost, "{injected:?}");
    assert_eq!(t.counts.duplicates, injected.duplicated, "{injected:?}");
    assert_eq!(t.counts.reordered, injected.reordered, "{injected:?}");
    assert_eq!((t.counts.integrity_failures, t.counts.rewrite_errors), (0, 0));
}

//! Tests of the sink accounting with hand-made datagrams: loss, reordering, duplicates,
//! corruption, wrong rewriting, stragglers and latency.

use super::*;
use crate::payload::{BenchHeader, RTP_HEADER_BYTES};

const OUT_SSRC: u32 = 0x5000_0001;
const SEQ_OFFSET: u16 = 1000;
const TS_OFFSET: u32 = 90_000;

fn spec() -> FlowSpec {
    FlowSpec {
        out_ssrc: OUT_SSRC,
        stream: 0,
        seq_offset: SEQ_OFFSET,
        ts_offset: TS_OFFSET,
        payload_type_map: vec![[96, 100]],
    }
}

/// What a correct forwarder sends for generator packet `gen_seq` (sent at `send_ns`).
fn forwarded(gen_seq: u32, send_ns: u64) -> Vec<u8> {
    let sent_seq = 65_530u16.wrapping_add(gen_seq as u16);
    let sent_ts = gen_seq.wrapping_mul(3000);
    let mut pkt = vec![0u8; 100];
    pkt[0] = 0x80;
    pkt[1] = 100 | 0x80; // PT 96 mapped to 100, marker kept
    pkt[2..4].copy_from_slice(&sent_seq.wrapping_add(SEQ_OFFSET).to_be_bytes());
    pkt[4..8].copy_from_slice(&sent_ts.wrapping_add(TS_OFFSET).to_be_bytes());
    pkt[8..12].copy_from_slice(&OUT_SSRC.to_be_bytes());
    let bench = BenchHeader { send_ns, gen_seq, rtp_timestamp: sent_ts, rtp_seq: sent_seq, marker_pt: 96 | 0x80 };
    payload::write(&mut pkt[RTP_HEADER_BYTES..], &bench);
    pkt
}

fn accounting() -> Accounting {
    let mut a = Accounting::new(vec![spec()], 1);
    a.begin_step(&[0]);
    a
}

#[test]
fn clean_delivery_counts_every_packet_once() {
    let mut a = accounting();
    for seq in 0..100 {
        a.account(&forwarded(seq, 1_000), 51_000);
    }
    let t = a.totals(&[100]);
    assert_eq!((t.expected, t.counts.unique, t.lost), (100, 100, 0));
    assert_eq!(
        (t.counts.duplicates, t.counts.reordered, t.counts.integrity_failures, t.counts.rewrite_errors),
        (0, 0, 0, 0)
    );
    assert_eq!(t.latency_ns.len(), 100);
    assert!(t.latency_ns.value_at_quantile(0.5).abs_diff(50_000) <= 500);
}

#[test]
fn gaps_and_missing_tail_are_loss() {
    let mut a = accounting();
    for seq in (0..100).filter(|s| s % 10 != 3) {
        a.account(&forwarded(seq, 0), 0);
    }
    // 10 holes, plus 5 packets sent after the last one that arrived.
    let t = a.totals(&[105]);
    assert_eq!((t.counts.unique, t.lost), (90, 15));
}

#[test]
fn reordering_is_counted_and_not_loss() {
    let mut a = accounting();
    for seq in [0, 1, 3, 2, 4, 7, 5, 6] {
        a.account(&forwarded(seq, 0), 0);
    }
    let flow = a.flow(0).unwrap();
    assert_eq!((flow.counts.unique, flow.counts.reordered, flow.counts.duplicates), (8, 3, 0));
    assert_eq!(a.totals(&[8]).lost, 0);
}

#[test]
fn duplicates_are_counted_once_in_the_window() {
    let mut a = accounting();
    for seq in [0, 1, 1, 2, 0, 2000, 2000] {
        a.account(&forwarded(seq, 0), 0);
    }
    let flow = a.flow(0).unwrap();
    assert_eq!((flow.counts.received, flow.counts.unique, flow.counts.duplicates), (7, 4, 3));
    // Far behind the window: cannot be told apart, counted as a late original.
    a.account(&forwarded(5, 0), 0);
    assert_eq!(a.flow(0).unwrap().counts.reordered, 1);
}

#[test]
fn window_slots_are_reused_as_the_window_moves() {
    let mut a = accounting();
    a.account(&forwarded(10, 0), 0);
    a.account(&forwarded(10 + DUP_WINDOW - 1, 0), 0); // 10 is still inside the window
    a.account(&forwarded(1030, 0), 0); // a slot cleared by the jump: reordered, not a duplicate
    a.account(&forwarded(10, 0), 0); // still remembered: duplicate
    a.account(&forwarded(10 + DUP_WINDOW, 0), 0); // takes over 10's slot: new
    let flow = a.flow(0).unwrap();
    assert_eq!((flow.counts.unique, flow.counts.duplicates, flow.counts.reordered), (4, 1, 1));
}

#[test]
fn corrupt_payloads_are_integrity_failures_and_not_delivered() {
    let mut a = accounting();
    let mut bad_pattern = forwarded(0, 0);
    bad_pattern[60] ^= 0xFF;
    let mut bad_magic = forwarded(1, 0);
    bad_magic[RTP_HEADER_BYTES + 19] = 0;
    let short = forwarded(2, 0)[..RTP_HEADER_BYTES + 8].to_vec();
    for pkt in [bad_pattern, bad_magic, short] {
        a.account(&pkt, 0);
    }
    let t = a.totals(&[3]);
    assert_eq!((t.counts.integrity_failures, t.counts.unique, t.lost), (3, 0, 3));
}

#[test]
fn wrong_rewriting_is_caught_field_by_field() {
    let mut a = accounting();
    let mut wrong_pt = forwarded(0, 0);
    wrong_pt[1] = 96 | 0x80;
    let mut lost_marker = forwarded(1, 0);
    lost_marker[1] &= 0x7f;
    let mut wrong_seq = forwarded(2, 0);
    wrong_seq[3] ^= 1;
    let mut wrong_ts = forwarded(3, 0);
    wrong_ts[7] ^= 1;
    for pkt in [wrong_pt, lost_marker, wrong_seq, wrong_ts, forwarded(4, 0)] {
        a.account(&pkt, 0);
    }
    let t = a.totals(&[5]);
    assert_eq!((t.counts.rewrite_errors, t.counts.unique), (4, 5));
}

#[test]
fn unknown_ssrc_and_non_rtp_are_counted_apart() {
    let mut a = accounting();
    let mut other = forwarded(0, 0);
    other[8..12].copy_from_slice(&7u32.to_be_bytes());
    a.account(&other, 0);
    a.account(b"not rtp", 0);
    a.account(&[0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0);
    let t = a.totals(&[0]);
    assert_eq!((t.unknown_ssrc, t.not_rtp, t.counts.unique), (1, 2, 0));
}

#[test]
fn a_new_step_resets_counters_and_ignores_stragglers() {
    let mut a = accounting();
    for seq in 0..10 {
        a.account(&forwarded(seq, 0), 0);
    }
    a.begin_step(&[10]);
    a.account(&forwarded(9, 0), 0);
    a.account(&forwarded(10, 0), 0);
    let flow = a.flow(0).unwrap();
    assert_eq!((flow.counts.stale, flow.counts.unique, flow.counts.received), (1, 1, 1));
    assert_eq!(flow.latency_ns.len(), 1);
}

#[test]
fn latency_saturates_instead_of_failing() {
    let mut a = accounting();
    a.account(&forwarded(0, 5), 0); // arrival before send: 0
    a.account(&forwarded(1, 0), u64::MAX); // absurdly late: clamped
    let t = a.totals(&[2]);
    assert_eq!(t.latency_ns.len(), 2);
    assert!(t.latency_ns.max() >= MAX_LATENCY_NS / 2);
    assert_eq!(t.counts.late, 1);
}

#[test]
fn late_copies_are_counted_once_and_still_delivered() {
    let mut a = accounting();
    a.account(&forwarded(0, 0), LATE_AFTER_NS); // just in time
    a.account(&forwarded(1, 0), LATE_AFTER_NS + 1);
    a.account(&forwarded(1, 0), LATE_AFTER_NS + 2); // its duplicate is not late again
    let t = a.totals(&[2]);
    assert_eq!((t.counts.unique, t.counts.late, t.counts.duplicates, t.lost), (2, 1, 1, 0));
}

#[test]
fn nacked_gaps_that_arrive_later_are_repairs_and_the_rest_stays_lost() {
    use crate::scenario_file::Nack;
    let mut a = accounting();
    a.enable_nack(Nack {
        delay_ms: 1.0,
        retry_interval_ms: 10.0,
        max_retries: 2,
        max_pending_per_flow: 64,
        last_mile_loss_percent: 0.0,
    });
    assert!(a.nacks_enabled());
    let ms = 1_000_000;
    for seq in (0..20).filter(|s| ![5, 6, 12].contains(s)) {
        a.account(&forwarded(seq, 0), ms);
    }
    let mut asked = Vec::new();
    let mut scratch = Vec::new();
    a.collect_nacks(5 * ms, &mut scratch, |flow, ssrc, seqs| asked.push((flow, ssrc, seqs.to_vec())));
    // The subscriber sees the rewritten sequence numbers: it NACKs those.
    let seq_of = |g: u16| 65_530u16.wrapping_add(g).wrapping_add(SEQ_OFFSET);
    assert_eq!(asked, [(0, OUT_SSRC, vec![seq_of(5), seq_of(6), seq_of(12)])]);
    // 5 and 12 come back after the NACK (a retransmission), 6 never does.
    a.account(&forwarded(5, 0), 6 * ms);
    a.account(&forwarded(12, 0), 6 * ms);
    let t = a.totals(&[20]);
    assert_eq!((t.lost, t.nack.repaired, t.nack.nacked_packets), (1, 2, 3));
    // A new step forgets the trackers.
    a.begin_step(&[20]);
    assert_eq!(a.totals(&[0]).nack, crate::nack::NackCounters::default());
}

#[test]
fn rtcp_from_the_forwarder_is_counted_apart_not_as_an_error() {
    let mut accounting = Accounting::new(Vec::new(), 0);
    // A sender report header (V=2, PT=200) followed by its SSRC and sender info.
    let mut sr = vec![0x80, 200, 0, 6];
    sr.extend_from_slice(&[0; 24]);
    accounting.account(&sr, 1);
    let totals = accounting.totals(&[]);
    assert_eq!((totals.rtcp, totals.not_rtp, totals.unknown_ssrc), (1, 0, 0));
}

const RED_PT: u8 = 120;

/// What a forwarder sends for generator packet `gen_seq` when a RED plugin on the ingress wrapped it (RFC 2198),
/// with `redundant` bytes of the previous packet as one redundant block (none: the primary block only), and the
/// payload type `primary_pt` in the primary block's header.
fn red_wrapped(gen_seq: u32, redundant: Option<&[u8]>, primary_pt: u8) -> Vec<u8> {
    let plain = forwarded(gen_seq, 1_000);
    let mut pkt = plain[..RTP_HEADER_BYTES].to_vec();
    pkt[1] = (plain[1] & 0x80) | RED_PT;
    if let Some(block) = redundant {
        let field = (3000u32 << 10) | block.len() as u32;
        pkt.extend_from_slice(&[0x80 | 96, (field >> 16) as u8, (field >> 8) as u8, field as u8]);
    }
    pkt.push(primary_pt);
    pkt.extend_from_slice(redundant.unwrap_or_default());
    pkt.extend_from_slice(&plain[RTP_HEADER_BYTES..]);
    pkt
}

#[test]
fn red_payloads_are_unwrapped_to_their_primary_block_when_asked() {
    let mut a = accounting();
    a.unwrap_red(Some(RED_PT));
    let previous = forwarded(0, 1_000)[RTP_HEADER_BYTES..].to_vec();
    a.account(&red_wrapped(0, None, 96), 2_000);
    for seq in 1..10 {
        a.account(&red_wrapped(seq, Some(&previous), 96), 2_000);
    }
    let t = a.totals(&[10]);
    assert_eq!((t.counts.unique, t.lost, t.counts.integrity_failures, t.counts.rewrite_errors), (10, 0, 0, 0));
    // A plain packet still counts: only the RED payload type is unwrapped.
    a.account(&forwarded(10, 1_000), 2_000);
    assert_eq!(a.totals(&[11]).counts.unique, 11);
}

#[test]
fn a_red_payload_that_does_not_parse_or_names_another_type_is_caught() {
    let mut a = accounting();
    a.unwrap_red(Some(RED_PT));
    let mut past_the_end = red_wrapped(0, Some(&[7; 40]), 96);
    past_the_end.truncate(RTP_HEADER_BYTES + 4 + 1 + 20);
    a.account(&past_the_end, 2_000);
    a.account(&red_wrapped(1, None, 97), 2_000);
    let t = a.totals(&[2]);
    assert_eq!((t.counts.integrity_failures, t.counts.rewrite_errors), (1, 1));
    // Not asked to unwrap: a RED payload is not a bench payload.
    let mut plain = accounting();
    plain.account(&red_wrapped(0, None, 96), 2_000);
    assert_eq!(plain.totals(&[1]).counts.integrity_failures, 1);
}

#[test]
fn red_primary_skips_every_redundant_block() {
    let payload = [0x80 | 96, 0, 0, 2, 0x80 | 96, 0, 0, 1, 96, 0xaa, 0xbb, 0xcc, 1, 2, 3];
    assert_eq!(red_primary(&payload), Some((&[1u8, 2, 3][..], 96)));
    assert_eq!(red_primary(&[0x80 | 96, 0, 0]), None, "a header cut short");
    assert_eq!(red_primary(&[]), None);
}

//! Keyframe-request throttling: merges the PLIs (RFC 4585 §6.3.1) and FIRs (RFC 5104 §4.3.1) of a
//! stream's subscribers into at most one request per interval to the publisher.
//!
//! Owns [`KeyframeThrottle`] (ingress, kind `KeyframeThrottle`). The first request after a quiet
//! interval goes out at once; requests within `min_interval_ms` of the last one sent are absorbed, but
//! one request stays pending and is sent by the timer when the interval ends, so the last requester is
//! not starved. A pending request is a FIR if any absorbed request was a FIR, else a PLI. A FIR is
//! written with this throttle's own command sequence number, incremented per new request (RFC 5104
//! §4.3.1.2), media SSRC 0 and one entry naming the publisher; a PLI names the publisher as media
//! source; both are sent from the stream's local SSRC. Must never allocate, forward a subscriber's
//! packet itself, or try to detect keyframes in the publisher's media (not possible codec-independently).
//!
//! Verdict: a subscriber compound whose only packets are PLIs/FIRs for this stream is `Consumed` (the
//! throttle speaks for them); anything else in it (an RR, a NACK) makes it `Continue`, and the
//! forwarder then forwards the whole compound, PLI/FIR included. Publisher RTCP is left alone.
//!
//! Reports only the requests it sent (`keyframe_requests_sent`): counting the PLIs/FIRs subscribers sent is
//! the `stats` interceptor's (placed before the throttle, which consumes them), so they are counted once.

use std::time::{Duration, Instant};

use super::wire_compound::{write_feedback_compound, Cname};
use super::wire_feedback::{write_fir, write_pli, Feedback, FeedbackKind};
use crate::core::interceptor::spec::{KeyframeThrottleParams, StreamInfo};
use crate::core::interceptor::{Context, Interceptor, RtcpFrom, Snapshot, Verdict};
use crate::core::packet::RtcpCompound;
use crate::core::wire::Ssrc;

/// Which keyframe request to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Request {
    Pli,
    Fir,
}

/// PLI/FIR throttle of one stream.
#[derive(Debug)]
pub struct KeyframeThrottle {
    publisher: Ssrc,
    local: Ssrc,
    /// ringfwd's CNAME toward the publisher (every request is a compound with it).
    cname: Cname,
    min_interval: Duration,
    last_sent: Option<Instant>,
    pending: Option<Request>,
    fir_seq_nr: u8,
    requests_sent: u64,
}

impl KeyframeThrottle {
    /// A throttle for the stream `info`, sending at most one request per `params.min_interval_ms`.
    pub fn new(params: &KeyframeThrottleParams, info: &StreamInfo) -> KeyframeThrottle {
        KeyframeThrottle {
            publisher: info.ssrc,
            local: info.local_ssrc,
            cname: Cname::ringfwd(info.local_ssrc),
            min_interval: Duration::from_millis(u64::from(params.min_interval_ms)),
            last_sent: None,
            pending: None,
            fir_seq_nr: 0,
            requests_sent: 0,
        }
    }

    /// When the next request may go out (`None`: now).
    fn next_allowed(&self) -> Option<Instant> {
        self.last_sent.map(|last| last + self.min_interval)
    }

    /// Sends the pending request if the interval allows, else makes sure the timer will.
    fn flush(&mut self, ctx: &mut Context<'_>) {
        let Some(request) = self.pending else {
            return;
        };
        let now = ctx.now();
        if let Some(allowed) = self.next_allowed().filter(|allowed| now < *allowed) {
            ctx.schedule(allowed);
            return;
        }
        let (local, publisher, seq_nr, cname) = (self.local, self.publisher, self.fir_seq_nr, &self.cname);
        let sent = ctx.send_rtcp_to_publisher(|slot| {
            write_feedback_compound(slot, local, cname, |out| match request {
                Request::Pli => write_pli(out, local, publisher),
                Request::Fir => write_fir(out, local, publisher, seq_nr),
            })
        });
        if sent {
            if request == Request::Fir {
                self.fir_seq_nr = self.fir_seq_nr.wrapping_add(1);
            }
            self.requests_sent += 1;
            self.last_sent = Some(now);
            self.pending = None;
        } else {
            ctx.schedule(now + self.min_interval); // outbox full: try again later
        }
    }
}

impl Interceptor for KeyframeThrottle {
    fn on_rtcp(&mut self, rtcp: &RtcpCompound<'_>, from: RtcpFrom, ctx: &mut Context<'_>) -> Verdict {
        if from == RtcpFrom::Publisher {
            return Verdict::Continue;
        }
        let bytes = rtcp.bytes();
        let (mut asked, mut other) = (None, false);
        for packet in rtcp.packets() {
            match Feedback::read(bytes, &packet) {
                Some(fb) if fb.kind == FeedbackKind::Pli && fb.media_ssrc == self.publisher => {
                    asked = asked.max(Some(Request::Pli));
                }
                Some(fb) if fb.kind == FeedbackKind::Fir => {
                    if fb.fir_entries().any(|entry| entry.ssrc == self.publisher) {
                        asked = Some(Request::Fir);
                    } else {
                        other = true;
                    }
                }
                _ => other = true,
            }
        }
        let Some(request) = asked else {
            return Verdict::Continue;
        };
        self.pending = self.pending.max(Some(request));
        self.flush(ctx);
        if other {
            Verdict::Continue
        } else {
            Verdict::Consumed
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>) {
        self.flush(ctx);
    }

    fn snapshot(&self, out: &mut Snapshot) {
        out.keyframe_requests_sent += self.requests_sent;
    }
}

#[cfg(test)]
mod tests {
    use rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
    use rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtcp::receiver_report::ReceiverReport;
    use webrtc_util::marshal::Unmarshal;

    use super::super::wire_compound::test_support::after_cname;
    use super::super::wire_feedback::test_support::*;
    use super::*;
    use crate::core::interceptor::Target;

    fn pli(media: Ssrc) -> Vec<u8> {
        compound(vec![Box::new(PictureLossIndication { sender_ssrc: SUBSCRIBER.0, media_ssrc: media.0 })])
    }

    fn fir(target: Ssrc, seq: u8) -> Vec<u8> {
        compound(vec![Box::new(FullIntraRequest {
            sender_ssrc: SUBSCRIBER.0,
            media_ssrc: 0,
            fir: vec![FirEntry { ssrc: target.0, sequence_number: seq }],
        })])
    }

    /// Runs `requests` (ms, flow, compound) over virtual time in 100 ms steps up to `until_ms`; returns
    /// (ms, bytes) of every request sent to the publisher.
    fn run(throttle: &mut KeyframeThrottle, requests: &[(u64, u32, Vec<u8>)], until_ms: u64) -> Vec<(u64, Vec<u8>)> {
        let t0 = Instant::now();
        let mut h = Harness::ingress();
        let mut sent = Vec::new();
        let mut record = |h: &mut Harness, ms: u64| {
            for (target, bytes) in h.take() {
                assert_eq!(target, Target::Publisher { stream: 0 });
                sent.push((ms, bytes));
            }
        };
        for ms in (0..=until_ms).step_by(100) {
            h.advance(throttle, at(t0, ms));
            record(&mut h, ms);
            for (_, flow, bytes) in requests.iter().filter(|(when, _, _)| *when == ms) {
                h.rtcp(throttle, bytes, RtcpFrom::Subscriber { flow: *flow }, at(t0, ms));
                record(&mut h, ms);
            }
        }
        sent
    }

    #[test]
    fn ten_plis_from_five_subscribers_make_three_requests() {
        let t0 = Instant::now();
        let mut throttle = KeyframeThrottle::new(&KeyframeThrottleParams { min_interval_ms: 500 }, &stream_info(t0));
        let requests: Vec<_> = (0..10).map(|i| (100 * i, (i % 5) as u32, pli(PUBLISHER))).collect();
        let sent = run(&mut throttle, &requests, 2000);
        let times: Vec<u64> = sent.iter().map(|(ms, _)| *ms).collect();
        assert_eq!(times, [0, 500, 1000], "first at once, then one per interval, the trailing one by the timer");
        for (_, bytes) in &sent {
            let parsed = PictureLossIndication::unmarshal(&mut after_cname(bytes)).expect("a PLI");
            assert_eq!((parsed.sender_ssrc, parsed.media_ssrc), (LOCAL.0, PUBLISHER.0));
        }
        let s = snapshot(&throttle);
        assert_eq!(s, Snapshot { keyframe_requests_sent: 3, ..Snapshot::default() }, "its requests, nothing else");
    }

    #[test]
    fn fir_wins_and_its_sequence_number_increments() {
        let t0 = Instant::now();
        let mut throttle = KeyframeThrottle::new(&KeyframeThrottleParams { min_interval_ms: 500 }, &stream_info(t0));
        let requests = vec![
            (0, 1, fir(PUBLISHER, 40)),
            (100, 2, pli(PUBLISHER)),
            (200, 3, fir(PUBLISHER, 77)), // upgrades the pending PLI
            (1000, 1, fir(PUBLISHER, 41)),
            (1600, 2, pli(PUBLISHER)),
        ];
        let sent = run(&mut throttle, &requests, 2500);
        let decoded: Vec<(u64, Option<u8>)> = sent
            .iter()
            .map(|(ms, bytes)| match FullIntraRequest::unmarshal(&mut after_cname(bytes)) {
                Ok(fir) => {
                    assert_eq!((fir.sender_ssrc, fir.media_ssrc, fir.fir.len()), (LOCAL.0, 0, 1));
                    assert_eq!(fir.fir[0].ssrc, PUBLISHER.0);
                    (*ms, Some(fir.fir[0].sequence_number))
                }
                Err(_) => {
                    PictureLossIndication::unmarshal(&mut after_cname(bytes)).expect("a PLI otherwise");
                    (*ms, None)
                }
            })
            .collect();
        assert_eq!(decoded, [(0, Some(0)), (500, Some(1)), (1000, Some(2)), (1600, None)]);
        assert_eq!(snapshot(&throttle).keyframe_requests_sent, 4);
    }

    #[test]
    fn verdicts_and_foreign_requests() {
        let t0 = Instant::now();
        let mut throttle = KeyframeThrottle::new(&KeyframeThrottleParams { min_interval_ms: 500 }, &stream_info(t0));
        let mut h = Harness::ingress();
        let sub = RtcpFrom::Subscriber { flow: 1 };
        assert_eq!(h.rtcp(&mut throttle, &pli(Ssrc(5)), sub, t0), Verdict::Continue, "another stream's PLI");
        assert_eq!(h.rtcp(&mut throttle, &fir(Ssrc(5), 1), sub, t0), Verdict::Continue, "another stream's FIR");
        assert_eq!(h.rtcp(&mut throttle, &pli(PUBLISHER), RtcpFrom::Publisher, t0), Verdict::Continue);
        assert!(h.take().is_empty());
        assert_eq!(h.rtcp(&mut throttle, &pli(PUBLISHER), sub, t0), Verdict::Consumed);
        let with_rr = compound(vec![
            Box::new(ReceiverReport { ssrc: SUBSCRIBER.0, ..Default::default() }),
            Box::new(PictureLossIndication { sender_ssrc: SUBSCRIBER.0, media_ssrc: PUBLISHER.0 }),
        ]);
        assert_eq!(h.rtcp(&mut throttle, &with_rr, sub, at(t0, 10)), Verdict::Continue, "the RR goes on");
        assert_eq!(h.take().len(), 1, "only the first PLI was sent so far");
        assert_eq!(h.wake, Some(at(t0, 500)), "the absorbed one waits for the interval");
        assert_eq!(snapshot(&throttle).keyframe_requests_sent, 1);
    }
}

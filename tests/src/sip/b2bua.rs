//! The test controller's SIP side: a back-to-back user agent over UDP on loopback that anchors each call's audio
//! in ringfwd. A caller's INVITE opens a session (its leg added, see [`super::calls`]) and is re-sent as a new
//! INVITE to the one callee it knows, with SDP pointing at ringfwd's media address; the callee's 200 OK adds its
//! leg and the two subscriptions, is ACKed, and the caller gets a 200 OK pointing at ringfwd too. A re-INVITE from
//! either leg is answered here (ringfwd's address does not change) after its endpoint and stream were updated. A
//! BYE is answered at once and sent on to the other leg; when that one answers, the call's final statistics are
//! read and its session deleted. Provisional responses from the callee reach the caller.
//!
//! Not a product: one callee, no authentication, no CANCEL (refused with 501 like every method it does not
//! know), no retransmission timers (loopback loses nothing; the 100 Trying it sends at once keeps a caller from
//! retransmitting its INVITE). Every message it sends or receives is appended to a transcript file. It runs on a
//! thread of its own, stopped and joined when dropped; what happens to calls comes out as [`CallEvent`]s.

use std::fs::File;
use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::calls::{self, CallRecord, Leg};
use super::message::{header_uri, param, uri_host_port, Message};
use super::sdp::{parse_audio, via_ringfwd, AudioOffer};
use crate::api::Api;

/// What happened to a call.
#[derive(Debug)]
pub enum CallEvent {
    /// Both legs answered and ringfwd relays their audio: what each leg's SDP said.
    Established {
        /// The call's session in ringfwd.
        session: String,
        /// The caller's offer.
        caller: AudioOffer,
        /// The callee's answer.
        callee: AudioOffer,
    },
    /// A re-INVITE of `leg` was applied to its endpoint and stream and answered.
    Updated {
        /// The call's session.
        session: String,
        /// Who sent it.
        leg: Leg,
        /// What its SDP said.
        offer: AudioOffer,
    },
    /// A BYE ended the call: the other leg answered it, the final statistics were read, the session deleted.
    Ended {
        /// The call's session (deleted now).
        session: String,
        /// What ringfwd knew of the call at its end.
        record: CallRecord,
    },
    /// Something failed; the controller answered the user agent with an error where it could.
    Failed(String),
}

/// Where the controller finds ringfwd and the callee.
#[derive(Clone, Debug)]
pub struct Setup {
    /// ringfwd's control API.
    pub api: SocketAddr,
    /// An admin token for it.
    pub token: String,
    /// ringfwd's media address, put in every SDP the controller sends.
    pub media: SocketAddr,
    /// The SIP address every INVITE is sent on to.
    pub callee: SocketAddr,
}

/// A running controller; stopped when dropped.
pub struct B2bua {
    address: SocketAddr,
    events: mpsc::Receiver<CallEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl B2bua {
    /// Binds a UDP port on 127.0.0.1, connects to ringfwd's API and starts serving; `transcript` gets every
    /// message sent and received.
    pub fn start(setup: Setup, transcript: &Path) -> B2bua {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the controller's SIP port");
        socket.set_read_timeout(Some(Duration::from_millis(20))).expect("read timeout");
        let address = socket.local_addr().expect("local address");
        let transcript = File::create(transcript).expect("transcript file");
        let (events, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let api = Api::connect(setup.api, Some(&setup.token));
            let mut b2bua =
                Controller { socket, address, setup, api, calls: Vec::new(), events, transcript, next_id: 1 };
            let mut buffer = vec![0u8; 65_535];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((length, from)) = b2bua.socket.recv_from(&mut buffer) {
                    b2bua.received(&buffer[..length], from);
                }
            }
        });
        B2bua { address, events: rx, stop, thread: Some(thread) }
    }

    /// Its SIP address: dial `sip:<callee user>@` this.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The next call event, waiting at most `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<CallEvent> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for B2bua {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One leg's dialog as the controller holds it.
struct Dialog {
    call_id: String,
    local_tag: String,
    remote_tag: String,
    /// Our URI on this leg (From of our requests) and theirs (To).
    local_uri: String,
    remote_uri: String,
    /// Request-URI of our in-dialog requests (the user agent's Contact), and where they go.
    target_uri: String,
    target: SocketAddr,
    next_cseq: u32,
    /// What the user agent's last SDP said, and the version of the SDP we send it.
    offer: AudioOffer,
    sdp_version: u64,
}

/// A call: the caller's INVITE (answered at the end of set-up), both legs, and where it stands.
struct Call {
    session: String,
    number: u64,
    invite: Message,
    invite_from: SocketAddr,
    caller: Dialog,
    callee: Dialog,
    established: bool,
    /// Set once a BYE came from this leg and went on to the other.
    ending: Option<Leg>,
}

impl Call {
    fn dialog(&mut self, leg: Leg) -> &mut Dialog {
        match leg {
            Leg::Caller => &mut self.caller,
            Leg::Callee => &mut self.callee,
        }
    }
}

struct Controller {
    socket: UdpSocket,
    address: SocketAddr,
    setup: Setup,
    api: Api,
    calls: Vec<Call>,
    events: mpsc::Sender<CallEvent>,
    transcript: File,
    next_id: u64,
}

impl Controller {
    fn received(&mut self, datagram: &[u8], from: SocketAddr) {
        let _ = writeln!(self.transcript, "<<< from {from}\n{}", String::from_utf8_lossy(datagram));
        let message = match Message::parse(datagram) {
            Ok(message) => message,
            Err(e) => return self.fail(format!("unreadable SIP from {from}: {e}")),
        };
        let outcome = match message.method() {
            Some("INVITE") => self.invite(message, from),
            Some("ACK") => Ok(()),
            Some("BYE") => self.bye(message, from),
            Some(_) => {
                self.send(&message.response(501, "Not Implemented", None), from);
                Ok(())
            }
            None => self.response(message),
        };
        if let Err(e) = outcome {
            self.fail(e);
        }
    }

    fn fail(&mut self, message: String) {
        let _ = writeln!(self.transcript, "!!! {message}");
        let _ = self.events.send(CallEvent::Failed(message));
    }

    fn send(&mut self, message: &Message, to: SocketAddr) {
        let bytes = message.to_bytes();
        let _ = writeln!(self.transcript, ">>> to {to}\n{}", String::from_utf8_lossy(&bytes));
        if let Err(e) = self.socket.send_to(&bytes, to) {
            let _ = writeln!(self.transcript, "!!! send to {to}: {e}");
        }
    }

    /// A fresh token for tags, branches and Call-IDs.
    fn unique(&mut self) -> String {
        self.next_id += 1;
        format!("{:x}{:04x}", std::process::id(), self.next_id)
    }

    fn find(&self, call_id: &str) -> Option<(usize, Leg)> {
        self.calls.iter().enumerate().find_map(|(i, call)| {
            (call.caller.call_id == call_id)
                .then_some((i, Leg::Caller))
                .or_else(|| (call.callee.call_id == call_id).then_some((i, Leg::Callee)))
        })
    }

    /// A request in `dialog`, with its next CSeq.
    fn request(&mut self, dialog_of: (usize, Leg), method: &str, cseq: Option<u32>) -> (Message, SocketAddr) {
        let branch = format!("z9hG4bK{}", self.unique());
        let contact = format!("<sip:ringfwd-test@{}>", self.address);
        let via = format!("SIP/2.0/UDP {};branch={branch};rport", self.address);
        let dialog = self.calls[dialog_of.0].dialog(dialog_of.1);
        let cseq = cseq.unwrap_or_else(|| {
            dialog.next_cseq += 1;
            dialog.next_cseq
        });
        let to_tag = if dialog.remote_tag.is_empty() { String::new() } else { format!(";tag={}", dialog.remote_tag) };
        let message = Message::request(method, &dialog.target_uri)
            .with("Via", via)
            .with("Max-Forwards", "70")
            .with("From", format!("<{}>;tag={}", dialog.local_uri, dialog.local_tag))
            .with("To", format!("<{}>{to_tag}", dialog.remote_uri))
            .with("Call-ID", dialog.call_id.clone())
            .with("CSeq", format!("{cseq} {method}"))
            .with("Contact", contact);
        (message, dialog.target)
    }

    fn invite(&mut self, invite: Message, from: SocketAddr) -> Result<(), String> {
        if let Some(found) = self.find(invite.call_id()) {
            // In a dialog (a To tag): a re-INVITE; without one: the caller retransmitting its INVITE.
            return match invite.tag("To") {
                Some(_) => self.reinvite(found, invite, from),
                None => Ok(()),
            };
        }
        self.send(&invite.response(100, "Trying", None), from);
        let (description, offer) = match parse_audio(&invite.body) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.send(&invite.response(488, "Not Acceptable Here", None), from);
                return Err(format!("the caller's SDP: {e}"));
            }
        };
        let number = self.next_id;
        let session = format!("sip-call-{}", self.unique());
        let created = self.api.session(&session).and_then(|_| calls::add_leg(&self.api, &session, Leg::Caller, &offer));
        if let Err(status) = created {
            let _ = self.api.delete_session(crate::api::v1::DeleteSessionRequest { session_id: session.clone() });
            self.send(&invite.response(500, "ringfwd refused", None), from);
            return Err(format!("setting up the caller's leg of {session}: {status}"));
        }
        let from_header = invite.header("From").unwrap_or_default();
        let request_uri = invite.request_uri().unwrap_or_default();
        let user = request_uri.strip_prefix("sip:").and_then(|u| u.split_once('@')).map_or("callee", |(u, _)| u);
        let callee_uri = format!("sip:{user}@{}", self.setup.callee);
        let caller_contact = header_uri(invite.header("Contact").unwrap_or_default()).to_string();
        let caller = Dialog {
            call_id: invite.call_id().into(),
            local_tag: self.unique(),
            remote_tag: invite.tag("From").unwrap_or_default().into(),
            local_uri: header_uri(invite.header("To").unwrap_or_default()).into(),
            remote_uri: header_uri(from_header).into(),
            target: uri_host_port(&caller_contact).unwrap_or(from),
            target_uri: caller_contact,
            next_cseq: 0,
            offer: offer.clone(),
            sdp_version: 1,
        };
        let callee = Dialog {
            call_id: format!("{}@ringfwd-test", self.unique()),
            local_tag: self.unique(),
            remote_tag: String::new(),
            local_uri: header_uri(from_header).into(),
            remote_uri: callee_uri.clone(),
            target_uri: callee_uri,
            target: self.setup.callee,
            next_cseq: 0,
            offer,
            sdp_version: 1,
        };
        self.calls.push(Call {
            session,
            number,
            invite,
            invite_from: from,
            caller,
            callee,
            established: false,
            ending: None,
        });
        let index = self.calls.len() - 1;
        let body = via_ringfwd(&description, self.setup.media, number, 1);
        let (request, to) = self.request((index, Leg::Callee), "INVITE", None);
        self.send(&request.with_body("application/sdp", body), to);
        Ok(())
    }

    fn reinvite(&mut self, (index, leg): (usize, Leg), invite: Message, from: SocketAddr) -> Result<(), String> {
        let (description, offer) = match parse_audio(&invite.body) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.send(&invite.response(488, "Not Acceptable Here", None), from);
                return Err(format!("a re-INVITE's SDP: {e}"));
            }
        };
        let (session, number) = (self.calls[index].session.clone(), self.calls[index].number);
        let previous = self.calls[index].dialog(leg).offer.clone();
        if let Err(status) = calls::update_leg(&self.api, &session, leg, &offer, &previous) {
            self.send(&invite.response(500, "ringfwd refused", None), from);
            return Err(format!("re-INVITE of {leg:?} in {session}: {status}"));
        }
        let dialog = self.calls[index].dialog(leg);
        dialog.sdp_version += 1;
        let body = via_ringfwd(&description, self.setup.media, number, dialog.sdp_version);
        dialog.offer = offer.clone();
        let contact = format!("<sip:ringfwd-test@{}>", self.address);
        let ok = invite.response(200, "OK", None).with("Contact", contact).with_body("application/sdp", body);
        self.send(&ok, from);
        let _ = self.events.send(CallEvent::Updated { session, leg, offer });
        Ok(())
    }

    fn bye(&mut self, bye: Message, from: SocketAddr) -> Result<(), String> {
        let Some((index, leg)) = self.find(bye.call_id()) else {
            self.send(&bye.response(481, "Call/Transaction Does Not Exist", None), from);
            return Ok(());
        };
        self.send(&bye.response(200, "OK", None), from);
        if self.calls[index].ending.is_none() {
            self.calls[index].ending = Some(leg);
            let (request, to) = self.request((index, leg.other()), "BYE", None);
            self.send(&request, to);
        }
        Ok(())
    }

    fn response(&mut self, response: Message) -> Result<(), String> {
        let Some((index, leg)) = self.find(response.call_id()) else { return Ok(()) };
        let (code, method) = match (response.code(), response.cseq()) {
            (Some(code), Some((_, method))) => (code, method.to_string()),
            _ => return Err("a response without a status code or CSeq".into()),
        };
        match (method.as_str(), leg) {
            ("INVITE", Leg::Callee) if !self.calls[index].established => self.callee_answered(index, code, &response),
            ("BYE", _) if self.calls[index].ending == Some(leg.other()) && code >= 200 => {
                let call = self.calls.remove(index);
                let record = calls::end_call(&self.api, &call.session, leg.other(), Instant::now())?;
                let _ = self.events.send(CallEvent::Ended { session: call.session, record });
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The callee's response to the INVITE: provisional ones go to the caller; a 200 OK completes the call; a
    /// failure ends it.
    fn callee_answered(&mut self, index: usize, code: u16, response: &Message) -> Result<(), String> {
        let reason = response.reason().unwrap_or_default().to_string();
        let call = &mut self.calls[index];
        let caller_tag = call.caller.local_tag.clone();
        let (invite, invite_from) = (call.invite.clone(), call.invite_from);
        if code < 200 {
            if code > 100 {
                self.send(&invite.response(code, &reason, Some(&caller_tag)), invite_from);
            }
            return Ok(());
        }
        call.callee.remote_tag = response.tag("To").unwrap_or_default().into();
        let cseq = response.cseq().map_or(1, |(n, _)| n);
        if code >= 300 {
            // The ACK of a failure is part of the INVITE transaction: same branch (RFC 3261 §17.1.1.3).
            let branch = param(response.header("Via").unwrap_or_default(), "branch").unwrap_or_default().to_string();
            let (mut ack, to) = self.request((index, Leg::Callee), "ACK", Some(cseq));
            ack.headers[0].1 = format!("SIP/2.0/UDP {};branch={branch};rport", self.address);
            self.send(&ack, to);
            self.send(&invite.response(code, &reason, Some(&caller_tag)), invite_from);
            let call = self.calls.remove(index);
            let _ = self.api.delete_session(crate::api::v1::DeleteSessionRequest { session_id: call.session.clone() });
            return Err(format!("the callee answered {code} {reason}"));
        }
        let contact = header_uri(response.header("Contact").unwrap_or_default()).to_string();
        if let Some(target) = uri_host_port(&contact) {
            (call.callee.target_uri, call.callee.target) = (contact, target);
        }
        let (description, offer) = parse_audio(&response.body).map_err(|e| format!("the callee's SDP: {e}"))?;
        let session = call.session.clone();
        let (ack, to) = self.request((index, Leg::Callee), "ACK", Some(cseq));
        self.send(&ack, to);
        calls::add_leg(&self.api, &session, Leg::Callee, &offer)
            .and_then(|()| calls::connect_legs(&self.api, &session))
            .map_err(|status| format!("setting up the callee's leg of {session}: {status}"))?;
        let call = &mut self.calls[index];
        call.established = true;
        let body = via_ringfwd(&description, self.setup.media, call.number, call.caller.sdp_version);
        call.callee.offer = offer.clone();
        let caller = call.caller.offer.clone();
        let ok = invite
            .response(200, "OK", Some(&caller_tag))
            .with("Contact", format!("<sip:ringfwd-test@{}>", self.address))
            .with_body("application/sdp", body);
        self.send(&ok, invite_from);
        let _ = self.events.send(CallEvent::Established { session, caller, callee: offer });
        Ok(())
    }
}

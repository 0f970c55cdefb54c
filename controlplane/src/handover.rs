//! Upgrade without loss: a new `ringfwd` process takes over from the running one.
//!
//! Owns the handover socket (`handover.sock` in the state directory, mode 0600, answering only this user or root)
//! and its conversation, one JSON message per line, the sockets passed with `SCM_RIGHTS`:
//!
//! 1. the new process connects and says [`Message::Hello`];
//! 2. the running one answers [`Message::Offer`] (its workers, bound addresses and listeners) with its media
//!    sockets (`[worker][address]`), its API listener and its metrics listener attached;
//! 3. the new process starts its data plane on those sockets with every receive held, and says [`Message::Ready`]
//!    (or [`Message::Refused`] with the reason, and exits: the running one goes on as if nothing happened);
//! 4. the running one stops as on SIGTERM — the API stops accepting (new connections wait in the listener's
//!    backlog, which the new process shares), the workers stop reading, finish what they received and flush their
//!    sends, and publish what each subscription last sent — keeps that numbering as exact, closes the state store and
//!    says [`Message::Released`];
//! 5. the new process opens the store, restores everything (each subscription numbered on exactly from where it
//!    stopped), lets its workers read (the packets that arrived meanwhile waited in the sockets' receive buffers),
//!    serves the API on the shared listener, and says [`Message::Done`]; the running one exits.
//!
//! Every step has a deadline ([`STEP_TIMEOUT`]). Until step 4 the running process is unchanged; after it, the new one
//! has everything. This module must never decide what the daemon does at each step (that is `daemon`): it only
//! speaks the protocol.

use std::io::{self, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

/// The handover socket's name in the state directory.
pub const SOCKET_FILE: &str = "handover.sock";

/// Longest wait for each message of the conversation.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Most descriptors one offer carries (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// The handover socket of the state directory `state`.
pub fn socket_path(state: &Path) -> PathBuf {
    state.join(SOCKET_FILE)
}

/// One message of the conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// The new process introduces itself.
    Hello {
        /// Its version.
        version: String,
        /// Its process id.
        pid: u32,
    },
    /// What the running process hands over; its sockets come attached, in this order: `workers × addresses` media
    /// sockets (worker by worker), the API listener, then the metrics listener when there is one.
    Offer {
        /// Its number of workers.
        workers: usize,
        /// Its bound media addresses, then RTCP addresses.
        addresses: Vec<SocketAddr>,
        /// Its API listener's address.
        api: SocketAddr,
        /// Its metrics listener's address, if it serves one.
        metrics: Option<SocketAddr>,
    },
    /// The new process runs on the offered sockets, receives held.
    Ready,
    /// The new process cannot take over, and why; it exits.
    Refused {
        /// Why.
        reason: String,
    },
    /// The running process stopped forwarding, kept its last numbering and closed the state store.
    Released,
    /// The new process forwards and serves the API.
    Done,
}

/// What the new process got.
#[derive(Debug)]
pub struct Offered {
    /// The offer.
    pub workers: usize,
    /// Bound media addresses, then RTCP addresses.
    pub addresses: Vec<SocketAddr>,
    /// `[worker][address]`.
    pub media: Vec<Vec<OwnedFd>>,
    /// The API listener.
    pub api: OwnedFd,
    /// The metrics listener, if any.
    pub metrics: Option<OwnedFd>,
}

/// Why a handover could not proceed.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The socket failed.
    #[error("handover socket {}: {source}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The other side said something unexpected, or refused.
    #[error("handover: {0}")]
    Protocol(String),
}

/// One side's connection.
#[derive(Debug)]
pub struct Conversation {
    stream: UnixStream,
    path: PathBuf,
    /// Bytes read past the last message.
    pending: Vec<u8>,
}

impl Conversation {
    fn new(stream: UnixStream, path: &Path) -> Result<Conversation, HandoverError> {
        let conversation = Conversation { stream, path: path.to_owned(), pending: Vec::new() };
        conversation.stream.set_read_timeout(Some(STEP_TIMEOUT)).map_err(|e| conversation.io(e))?;
        conversation.stream.set_write_timeout(Some(STEP_TIMEOUT)).map_err(|e| conversation.io(e))?;
        Ok(conversation)
    }

    fn io(&self, source: io::Error) -> HandoverError {
        HandoverError::Io { path: self.path.clone(), source }
    }

    /// Sends `message`, with `fds` attached.
    pub fn send(&mut self, message: &Message, fds: &[BorrowedFd<'_>]) -> Result<(), HandoverError> {
        let mut line = serde_json::to_vec(message).map_err(|e| HandoverError::Protocol(e.to_string()))?;
        line.push(b'\n');
        if fds.is_empty() {
            return self.stream.write_all(&line).map_err(|e| self.io(e));
        }
        if fds.len() > MAX_FDS {
            return Err(HandoverError::Protocol(format!("{} sockets to hand over, at most {MAX_FDS}", fds.len())));
        }
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(HandoverError::Protocol("the descriptors do not fit the control buffer".into()));
        }
        let sent = rustix::net::sendmsg(&self.stream, &[IoSlice::new(&line)], &mut control, SendFlags::NOSIGNAL)
            .map_err(|e| self.io(e.into()))?;
        // The descriptors went with the first byte; the rest of the line, if the kernel took only part, follows.
        self.stream.write_all(&line[sent..]).map_err(|e| self.io(e))
    }

    /// The next message, with the descriptors that came with it (at most `max_fds`).
    pub fn receive(&mut self, max_fds: usize) -> Result<(Message, Vec<OwnedFd>), HandoverError> {
        let mut fds = Vec::new();
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(max_fds.clamp(1, MAX_FDS)))];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let message = serde_json::from_slice(&line[..end]).map_err(|e| {
                    HandoverError::Protocol(format!("not a handover message ({e}): {}", String::from_utf8_lossy(&line)))
                })?;
                return Ok((message, fds));
            }
            let mut buf = [0u8; 4096];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = rustix::net::recvmsg(
                &self.stream,
                &mut [IoSliceMut::new(&mut buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )
            .map_err(|e| self.io(e.into()))?;
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            if got.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
                return Err(HandoverError::Protocol("more descriptors came than expected".into()));
            }
            if got.bytes == 0 {
                return Err(HandoverError::Protocol("the other process closed the handover socket".into()));
            }
            self.pending.extend_from_slice(&buf[..got.bytes]);
        }
    }

    /// The next message, which must be `expected` (a `Refused` names its reason).
    pub fn expect(&mut self, expected: &Message) -> Result<(), HandoverError> {
        match self.receive(0)?.0 {
            message if &message == expected => Ok(()),
            Message::Refused { reason } => Err(HandoverError::Protocol(format!("refused: {reason}"))),
            other => Err(HandoverError::Protocol(format!("expected {expected:?}, got {other:?}"))),
        }
    }
}

/// The running process's handover socket at `path` (a stale file there is replaced: the caller holds the state
/// store, so no other daemon serves this state directory).
pub fn listen(path: &Path) -> Result<tokio::net::UnixListener, HandoverError> {
    let io = |source| HandoverError::Io { path: path.to_owned(), source };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    tokio::net::UnixListener::from_std(listener).map_err(io)
}

/// The running process's side of a connection accepted on [`listen`]'s socket: checks the peer (this user or root),
/// reads its hello, and sends `offer` with `fds`; then the caller waits for [`Message::Ready`].
pub fn offer(
    stream: tokio::net::UnixStream,
    path: &Path,
    offer: &Message,
    fds: &[BorrowedFd<'_>],
) -> Result<Conversation, HandoverError> {
    let io = |source| HandoverError::Io { path: path.to_owned(), source };
    let stream = stream.into_std().map_err(io)?;
    stream.set_nonblocking(false).map_err(io)?;
    let peer = rustix::net::sockopt::socket_peercred(&stream).map_err(|e| io(e.into()))?;
    let me = rustix::process::geteuid();
    if peer.uid != me && !peer.uid.is_root() {
        return Err(HandoverError::Protocol(format!("a process of uid {} may not take over", peer.uid.as_raw())));
    }
    let mut conversation = Conversation::new(stream, path)?;
    match conversation.receive(0)?.0 {
        Message::Hello { .. } => {}
        other => return Err(HandoverError::Protocol(format!("expected a hello, got {other:?}"))),
    }
    conversation.send(offer, fds)?;
    Ok(conversation)
}

/// Whether a process listens on the handover socket at `path` (a file left by a crashed one refuses the connection).
/// The connection is closed at once: the running process logs a failed takeover and goes on.
pub fn answers(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

/// The new process's side: connects to the running process at `path`, says hello and takes its offer.
pub fn take(path: &Path) -> Result<(Conversation, Offered), HandoverError> {
    let stream = UnixStream::connect(path).map_err(|source| HandoverError::Io { path: path.to_owned(), source })?;
    let mut conversation = Conversation::new(stream, path)?;
    let hello = Message::Hello { version: env!("CARGO_PKG_VERSION").to_owned(), pid: std::process::id() };
    conversation.send(&hello, &[])?;
    let (message, fds) = conversation.receive(MAX_FDS)?;
    let Message::Offer { workers, addresses, metrics, .. } = message else {
        return Err(HandoverError::Protocol(format!("expected an offer, got {message:?}")));
    };
    let expected = workers * addresses.len() + 1 + usize::from(metrics.is_some());
    if fds.len() != expected {
        return Err(HandoverError::Protocol(format!("{} sockets came with the offer, {expected} expected", fds.len())));
    }
    let mut fds = fds.into_iter();
    let media: Vec<Vec<OwnedFd>> = (0..workers).map(|_| fds.by_ref().take(addresses.len()).collect()).collect();
    let api_fd = fds.next().ok_or_else(|| HandoverError::Protocol("no API listener".into()))?;
    let metrics_fd = fds.next();
    Ok((conversation, Offered { workers, addresses, media, api: api_fd, metrics: metrics_fd }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn an_offer_carries_its_sockets_in_order() {
        let (a, b) = UnixStream::pair().unwrap();
        let path = Path::new("test");
        let mut running = Conversation::new(a, path).unwrap();
        let mut taking = Conversation::new(b, path).unwrap();
        let sockets: Vec<UdpSocket> = (0..3).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
        let addresses: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        let offer = Message::Offer { workers: 1, addresses: addresses[..2].to_vec(), api: addresses[2], metrics: None };
        let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(AsFd::as_fd).collect();
        running.send(&offer, &fds).unwrap();
        running.send(&Message::Released, &[]).unwrap();
        let (got, fds) = taking.receive(MAX_FDS).unwrap();
        assert_eq!(got, offer);
        let local: Vec<SocketAddr> = fds.into_iter().map(|fd| UdpSocket::from(fd).local_addr().unwrap()).collect();
        assert_eq!(local, addresses, "each descriptor is the socket sent, in order");
        taking.expect(&Message::Released).unwrap();
        running.send(&Message::Refused { reason: "no".into() }, &[]).unwrap();
        let refused = taking.expect(&Message::Done).unwrap_err();
        assert!(refused.to_string().contains("refused: no"), "{refused}");
        drop(running);
        assert!(taking.receive(0).unwrap_err().to_string().contains("closed"));
    }
}

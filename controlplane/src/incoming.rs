//! The connections of the control plane's TCP listeners (the gRPC API, the metrics endpoint), bounded: at most
//! `max_connections` served at once (more wait in the kernel's accept queue), each given a time to send its first
//! bytes (the API: the HTTP/2 client preface within `api.handshake_timeout_ms`), and accept errors (out of file
//! descriptors, say) logged a few times and backed off, never retried in a spin.
//!
//! Owns the accept task and the [`Connection`] wrapper that holds a connection's place until it closes. What
//! happens past the first bytes is the server's (the API's HTTP/2 pings, the metrics endpoint's head timeout).
//! Must never read or answer anything of the protocol itself.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The HTTP/2 client preface (RFC 9113 §3.4): an API connection has sent its handshake once it sent this many bytes.
pub const HTTP2_PREFACE_BYTES: usize = 24;

/// How long the accept loop waits after an accept error before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accept errors logged at most (each is counted by the kernel anyway; the log only says it happens).
const ACCEPT_ERRORS_LOGGED: u32 = 10;

/// The bounds of one listener's connections.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// What listens, for the log (`"API"`, `"metrics endpoint"`).
    pub name: &'static str,
    /// Connections served at once.
    pub max_connections: usize,
    /// How many bytes a new connection must send within `handshake_timeout` (see [`HTTP2_PREFACE_BYTES`]).
    pub handshake_bytes: usize,
    /// Time a new connection has to send `handshake_bytes`.
    pub handshake_timeout: Duration,
}

/// The connections of `listener` within `limits`, for `Server::serve_with_incoming`; the accept task ends when the
/// stream is dropped.
pub fn connections(listener: TcpListener, limits: ConnectionLimits) -> ReceiverStream<io::Result<Connection>> {
    let (tx, rx) = mpsc::channel(1);
    let places = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::spawn(async move {
        let mut errors_logged = 0u32;
        loop {
            let place = tokio::select! {
                () = tx.closed() => return,
                place = Arc::clone(&places).acquire_owned() => match place {
                    Ok(place) => place,
                    Err(_) => return,
                },
            };
            let accepted = tokio::select! {
                () = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _)) => {
                    let connection = Connection::new(stream, place, limits);
                    if tx.send(Ok(connection)).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    if errors_logged < ACCEPT_ERRORS_LOGGED {
                        errors_logged += 1;
                        tracing::warn!(%error, listener = limits.name, "accept failed (backing off)");
                    }
                    drop(place);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

/// One accepted connection, holding its place until it is dropped.
pub struct Connection {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
    /// Until the handshake is in: when it must be done, and the bytes still to come.
    handshake: Option<(Pin<Box<Sleep>>, usize)>,
}

impl Connection {
    fn new(stream: TcpStream, place: OwnedSemaphorePermit, limits: ConnectionLimits) -> Connection {
        let _ = stream.set_nodelay(true);
        let deadline = Box::pin(tokio::time::sleep(limits.handshake_timeout));
        Connection { stream, _place: place, handshake: Some((deadline, limits.handshake_bytes)) }
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((deadline, _)) = &mut this.handshake {
            if deadline.as_mut().poll(cx).is_ready() {
                let message = "no handshake within the connection's handshake timeout";
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, message)));
            }
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some((_, missing))) = (&read, &mut this.handshake) {
            *missing = missing.saturating_sub(buf.filled().len() - before);
            if *missing == 0 {
                this.handshake = None;
            }
        }
        read
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    use super::*;

    const HANDSHAKE: Duration = Duration::from_millis(200);

    async fn listen(max_connections: usize) -> (std::net::SocketAddr, ReceiverStream<io::Result<Connection>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let limits = ConnectionLimits {
            name: "test",
            max_connections,
            handshake_bytes: HTTP2_PREFACE_BYTES,
            handshake_timeout: HANDSHAKE,
        };
        (address, connections(listener, limits))
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_handshake_timeout_and_gives_its_place_back() {
        let (address, mut incoming) = listen(1).await;
        let _silent = TcpStream::connect(address).await.expect("connect");
        let mut first = incoming.next().await.expect("accepted").expect("no accept error");
        let mut buf = [0u8; 64];
        let error = first.read(&mut buf).await.expect_err("a silent peer's read ends in an error");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        // The single place is still held until the connection is dropped; then the next one is accepted.
        let mut talker = TcpStream::connect(address).await.expect("connect");
        let waiting = tokio::time::timeout(HANDSHAKE, incoming.next()).await;
        assert!(waiting.is_err(), "accepted beyond api.max_connections");
        drop(first);
        let mut second = incoming.next().await.expect("accepted").expect("no accept error");
        // A peer that sent its preface is not timed out afterwards, however long it then stays quiet.
        talker.write_all(&[b'P'; HTTP2_PREFACE_BYTES]).await.expect("preface");
        let mut preface = [0u8; HTTP2_PREFACE_BYTES];
        second.read_exact(&mut preface).await.expect("the preface is read");
        tokio::time::sleep(HANDSHAKE * 2).await;
        talker.write_all(b"later").await.expect("more");
        let mut later = [0u8; 5];
        second.read_exact(&mut later).await.expect("read past the handshake timeout");
        assert_eq!(&later, b"later");
    }
}

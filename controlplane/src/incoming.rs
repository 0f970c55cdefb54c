//! The connections of the control plane's TCP listeners (the gRPC API, the metrics endpoint), bounded: at most
//! `max_connections` served at once (more wait in the kernel's accept queue), each given a time to send its first
//! bytes (the API: the HTTP/2 client preface within `api.handshake_timeout_ms`), and accept errors (out of file
//! descriptors, say) logged a few times and backed off, never retried in a spin.
//!
//! With TLS (the API's `[api.tls]`), a connection's TLS handshake runs in a task of its own, holding the
//! connection's place, and must finish within the same time as the first bytes after it: one deadline from the
//! accept covers the TLS handshake and the HTTP/2 preface together, so neither a slow TLS peer nor a silent one
//! keeps its place. A handshake that fails or times out closes the connection (logged at debug).
//!
//! Owns the accept task and the [`Connection`] wrapper that holds a connection's place until it closes. What
//! happens past the first bytes is the server's (the API's HTTP/2 pings, the metrics endpoint's head timeout).
//! Must never read or answer anything of the protocol itself (TLS is rustls's, HTTP/2 the server's).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
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

/// The connections of `listener` within `limits`, each past its TLS handshake with `tls` when given, for
/// `Server::serve_with_incoming`; the accept task ends when the stream is dropped.
pub fn connections(
    listener: TcpListener,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
) -> ReceiverStream<io::Result<Connection>> {
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
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let deadline = Instant::now() + limits.handshake_timeout;
                    let Some(tls) = &tls else {
                        let connection = Connection::new(Stream::Plain(stream), place, deadline, limits);
                        if tx.send(Ok(connection)).await.is_err() {
                            return;
                        }
                        continue;
                    };
                    let (tls, tx) = (tls.clone(), tx.clone());
                    tokio::spawn(async move {
                        let handshake = tokio::select! {
                            () = tx.closed() => return,
                            handshake = tokio::time::timeout_at(deadline, tls.accept(stream)) => handshake,
                        };
                        match handshake {
                            Ok(Ok(stream)) => {
                                let stream = Stream::Tls(Box::new(stream));
                                let _ = tx.send(Ok(Connection::new(stream, place, deadline, limits))).await;
                            }
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, listener = limits.name, "TLS handshake failed")
                            }
                            Err(_) => {
                                tracing::debug!(%peer, listener = limits.name, "no TLS handshake within the handshake timeout")
                            }
                        }
                    });
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

/// A connection's byte stream: the TCP stream itself, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }
}

/// One accepted connection, holding its place until it is dropped.
pub struct Connection {
    stream: Stream,
    _place: OwnedSemaphorePermit,
    /// Until the handshake is in: when it must be done, and the bytes still to come.
    handshake: Option<(Pin<Box<Sleep>>, usize)>,
}

impl Connection {
    /// `stream` holding `place`, its first `limits.handshake_bytes` due by `deadline`.
    fn new(stream: Stream, place: OwnedSemaphorePermit, deadline: Instant, limits: ConnectionLimits) -> Connection {
        let deadline = Box::pin(tokio::time::sleep_until(deadline));
        Connection { stream, _place: place, handshake: Some((deadline, limits.handshake_bytes)) }
    }
}

/// `$call` on the stream of `$this` (a `&mut Connection`), plain or TLS, pinned.
macro_rules! on_stream {
    ($this:expr, $s:ident => $call:expr) => {
        match &mut $this.stream {
            Stream::Plain($s) => {
                let $s = Pin::new($s);
                $call
            }
            Stream::Tls($s) => {
                let $s = Pin::new($s.as_mut());
                $call
            }
        }
    };
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
        let read = on_stream!(this, s => s.poll_read(cx, buf));
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
        on_stream!(self.get_mut(), s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self.get_mut(), s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_stream!(self.get_mut(), s => s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        on_stream!(self.get_mut(), s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(tcp) => tcp.is_write_vectored(),
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.tcp().connect_info()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_stream::StreamExt;

    use super::*;

    const HANDSHAKE: Duration = Duration::from_millis(200);

    async fn listen(max_connections: usize) -> (std::net::SocketAddr, ReceiverStream<io::Result<Connection>>) {
        listen_tls(max_connections, None).await
    }

    async fn listen_tls(
        max_connections: usize,
        tls: Option<TlsAcceptor>,
    ) -> (std::net::SocketAddr, ReceiverStream<io::Result<Connection>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let limits = ConnectionLimits {
            name: "test",
            max_connections,
            handshake_bytes: HTTP2_PREFACE_BYTES,
            handshake_timeout: HANDSHAKE,
        };
        (address, connections(listener, limits, tls))
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

    /// A TLS client trusting `ca` (PEM file), offering h2.
    fn tls_client(ca: &std::path::Path) -> tokio_rustls::TlsConnector {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("CA file") {
            roots.add(cert.expect("CA certificate")).expect("CA added");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![crate::tls::ALPN_H2.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    #[tokio::test]
    async fn the_tls_handshake_holds_a_place_and_is_within_the_handshake_timeout() {
        let pki = ringfwd_tests::tls::TestPki::new();
        let server = pki.server();
        let files =
            ringfwd_tuning::ApiTls { cert_file: Some(server.cert), key_file: Some(server.key), client_ca_file: None };
        let acceptor = TlsAcceptor::from(crate::tls::server_config(&files).expect("server config"));
        let (address, mut incoming) = listen_tls(1, Some(acceptor)).await;

        // A peer that never says hello holds the only place until the handshake timeout, then is closed.
        let mut silent = TcpStream::connect(address).await.expect("connect");
        let connector = tls_client(&pki.ca());
        let started = std::time::Instant::now();
        let talker = tokio::spawn(async move {
            let tcp = TcpStream::connect(address).await.expect("connect");
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            connector.connect(name, tcp).await
        });
        let mut second = incoming.next().await.expect("accepted").expect("no accept error");
        assert!(started.elapsed() >= HANDSHAKE, "served beyond api.max_connections while a handshake was pending");
        let mut buf = [0u8; 64];
        assert_eq!(silent.read(&mut buf).await.expect("closed, not reset"), 0, "the silent peer was closed");
        let mut talker = talker.await.expect("task").expect("the TLS handshake completes");
        assert_eq!(talker.get_ref().1.alpn_protocol(), Some(crate::tls::ALPN_H2), "h2 negotiated");

        // Past its TLS handshake, a peer still has to send the HTTP/2 preface by the same deadline.
        let error = second.read(&mut buf).await.expect_err("no preface after the TLS handshake");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(second);
        assert_eq!(talker.read(&mut buf).await.unwrap_or(0), 0, "the server closed the connection");
    }
}

//! ICMP errors for the media sockets: which destination could not be reached.
//!
//! Owns [`enable`] (`IP_RECVERR`/`IPV6_RECVERR` on a media socket, so the kernel queues the ICMP errors of
//! unconnected sends instead of discarding them) and [`drain`] (reads a socket's error queue without
//! blocking and reports each error's original destination and errno). With `RECVERR` on, a pending ICMP
//! error also fails the socket's next send or receive once (the kernel's `sk_err`): the io_uring driver
//! sends such a send again and re-arms such a receive, so no packet is lost to another subscriber's error.
//! Uses nix's safe `recvmsg`; must never block or allocate (the caller owns the buffers).

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};

/// Errors read per call at most (the queue is bounded by the socket's receive buffer anyway).
pub const MAX_ERRORS_PER_DRAIN: usize = 64;

/// Room for one `IP_RECVERR`/`IPV6_RECVERR` control message (a `sock_extended_err` and the offender).
pub const CONTROL_BYTES: usize = 128;

/// The errnos ICMP reports for an unreachable destination.
pub fn is_unreachable(errno: i32) -> bool {
    matches!(errno, libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN | libc::EPROTO)
}

/// Turns on the error queue of a media socket of `address`'s family.
pub fn enable(socket: &impl AsFd, address: SocketAddr) -> std::io::Result<()> {
    let result = if address.is_ipv4() {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)
    } else {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true)
    };
    result.map_err(std::io::Error::from)
}

/// Reads up to [`MAX_ERRORS_PER_DRAIN`] queued errors of `socket`, calling `f(destination, errno)` for
/// each; `payload` and `control` are scratch buffers. Returns how many were read.
pub fn drain(
    socket: &impl AsRawFd,
    payload: &mut [u8],
    control: &mut [u8; CONTROL_BYTES],
    mut f: impl FnMut(SocketAddr, i32),
) -> usize {
    let mut read = 0;
    while read < MAX_ERRORS_PER_DRAIN {
        let mut iov = [IoSliceMut::new(payload)];
        let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
        let Ok(msg) = recvmsg::<SockaddrStorage>(socket.as_raw_fd(), &mut iov, Some(&mut control[..]), flags) else {
            break; // EAGAIN: the queue is empty (or the socket is gone)
        };
        read += 1;
        let destination = msg.address.as_ref().and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6))))
        });
        let Ok(cmsgs) = msg.cmsgs() else {
            continue;
        };
        for cmsg in cmsgs {
            let errno = match cmsg {
                ControlMessageOwned::Ipv4RecvErr(err, _) | ControlMessageOwned::Ipv6RecvErr(err, _) => {
                    err.ee_errno as i32
                }
                _ => continue,
            };
            if let Some(destination) = destination {
                f(destination, errno);
            }
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    #[test]
    fn a_closed_port_is_reported_with_its_address() {
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = gone.local_addr().unwrap();
        drop(gone);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        enable(&socket, socket.local_addr().unwrap()).unwrap();
        let (mut payload, mut control) = ([0u8; 64], [0u8; CONTROL_BYTES]);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.is_empty() && Instant::now() < deadline {
            let _ = socket.send_to(b"hello", dest);
            std::thread::sleep(Duration::from_millis(5));
            drain(&socket, &mut payload, &mut control, |to, errno| seen.push((to, errno)));
        }
        assert_eq!(seen.first(), Some(&(dest, libc::ECONNREFUSED)), "{seen:?}");
        assert!(is_unreachable(libc::ECONNREFUSED) && !is_unreachable(libc::EAGAIN));
        assert_eq!(drain(&socket, &mut payload, &mut control, |_, _| {}), 0, "drained");
    }
}

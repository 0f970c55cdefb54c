//! Media sockets: one `SO_REUSEPORT` group per configured media address, one socket per worker.
//!
//! Owns socket creation and options (non-blocking, buffer sizes, `IPV6_V6ONLY`), the kernel's per-socket drop
//! counter ([`kernel_drops`]), and binding in worker order, so that socket `i` of every group is worker `i`'s and the
//! steering program's return value names the right worker. Port 0 in the config means "pick a free port": the
//! first socket of the group is bound to port 0 and the others join the port the kernel chose.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use socket2::{Domain, Protocol, Socket, Type};

use super::steering;

/// Socket options every media socket gets.
#[derive(Debug, Clone, Copy)]
pub struct SocketOptions {
    /// Requested `SO_RCVBUF` in bytes (forced past `rmem_max` with `SO_RCVBUFFORCE` when permitted).
    pub recv_buffer_bytes: usize,
    /// Requested `SO_SNDBUF` in bytes (forced past `wmem_max` with `SO_SNDBUFFORCE` when permitted).
    pub send_buffer_bytes: usize,
}

/// Why a media socket could not be set up; names the address and the step.
#[derive(Debug, thiserror::Error)]
#[error("media address {address}: {step}: {source}")]
pub struct SocketError {
    /// The configured media address.
    pub address: SocketAddr,
    /// What was being done.
    pub step: &'static str,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

/// The sockets of every media address, grouped per worker: `per_worker[w][a]` is worker `w`'s socket on
/// media address `a`.
#[derive(Debug)]
pub struct MediaSockets {
    /// Sockets per worker, in media-address order.
    pub per_worker: Vec<Vec<OwnedFd>>,
    /// The bound address of each media address (port 0 resolved).
    pub bound: Vec<SocketAddr>,
}

/// Opens, configures and binds one socket per worker on each address, then attaches the steering program.
pub fn open(addresses: &[SocketAddr], workers: usize, opts: SocketOptions) -> Result<MediaSockets, SocketError> {
    let mut per_worker: Vec<Vec<OwnedFd>> = (0..workers).map(|_| Vec::with_capacity(addresses.len())).collect();
    let mut bound = Vec::with_capacity(addresses.len());
    for &address in addresses {
        let err = |step: &'static str| move |source: io::Error| SocketError { address, step, source };
        let mut target = address;
        for slot in per_worker.iter_mut() {
            let socket =
                Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP)).map_err(err("socket"))?;
            configure(&socket, address, opts).map_err(err("socket options"))?;
            socket.bind(&target.into()).map_err(err("bind"))?;
            if target.port() == 0 {
                let local = socket.local_addr().map_err(err("local address"))?;
                target = local.as_socket().ok_or_else(|| err("local address")(io::ErrorKind::Other.into()))?;
            }
            slot.push(OwnedFd::from(socket));
        }
        if workers > 1 {
            let first = &per_worker[0][bound.len()];
            steering::attach(first.as_fd(), workers as u32).map_err(err("attach SSRC steering program"))?;
        }
        bound.push(target);
    }
    Ok(MediaSockets { per_worker, bound })
}

fn configure(socket: &Socket, address: SocketAddr, opts: SocketOptions) -> io::Result<()> {
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    set_buffer(socket, libc::SO_RCVBUFFORCE, opts.recv_buffer_bytes, |s, n| s.set_recv_buffer_size(n))?;
    set_buffer(socket, libc::SO_SNDBUFFORCE, opts.send_buffer_bytes, |s, n| s.set_send_buffer_size(n))?;
    Ok(())
}

/// Datagrams the kernel dropped on this socket since it was created (receive queue full, mostly): the
/// socket's `sk_drops`, read with `SO_MEMINFO`. Unlike the `SO_RXQ_OVFL` control message, which only reports
/// drops on the next datagram delivered, this is exact at any moment, including after the last packet.
pub fn kernel_drops(fd: &impl AsRawFd) -> io::Result<u64> {
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is a live, writable buffer of `len` bytes; the kernel writes at most `len` bytes and
    // stores the length written in `len`; `fd` is a valid open descriptor for the call.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MEMINFO, info.as_mut_ptr().cast(), &mut len)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let index = libc::SK_MEMINFO_DROPS as usize;
    if (len as usize) < (index + 1) * 4 {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "SO_MEMINFO without a drop counter"));
    }
    Ok(u64::from(info[index]))
}

/// Tries the privileged `*FORCE` option first (root / `CAP_NET_ADMIN` may exceed `rmem_max`/`wmem_max`), then
/// the ordinary one, which the kernel silently caps.
fn set_buffer(
    socket: &Socket,
    force_option: libc::c_int,
    bytes: usize,
    plain: impl Fn(&Socket, usize) -> io::Result<()>,
) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes / 2).unwrap_or(libc::c_int::MAX); // the kernel doubles it
    match set_int(socket, libc::SOL_SOCKET, force_option, value) {
        Ok(()) => Ok(()),
        Err(_) => plain(socket, bytes),
    }
}

/// Sets an integer socket option.
pub(crate) fn set_int(fd: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    set_option(fd, level, name, &value)
}

/// Sets a socket option whose value is the plain-data `value` (an integer, a `sock_fprog`, ...).
///
/// The one `setsockopt` of the drivers: every option goes through here.
pub(crate) fn set_option<T>(fd: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised `T` borrowed for the call and its exact size is passed, so the kernel
    // reads only inside it (it copies what it keeps); `fd` is a valid open descriptor for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_resolved_once_and_shared_by_the_group() {
        let opts = SocketOptions { recv_buffer_bytes: 1 << 20, send_buffer_bytes: 1 << 20 };
        let addrs: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()];
        let sockets = open(&addrs, 3, opts).expect("open");
        assert_eq!(sockets.per_worker.len(), 3);
        for (a, bound) in sockets.bound.iter().enumerate() {
            assert_ne!(bound.port(), 0);
            for worker in &sockets.per_worker {
                let s = socket2::SockRef::from(&worker[a]);
                assert_eq!(s.local_addr().unwrap().as_socket().unwrap(), *bound);
            }
        }
    }

    #[test]
    fn kernel_drops_counts_an_overflowing_receive_queue() {
        let opts = SocketOptions { recv_buffer_bytes: 4096, send_buffer_bytes: 1 << 20 };
        let sockets = open(&["127.0.0.1:0".parse().unwrap()], 1, opts).expect("open");
        let socket = &sockets.per_worker[0][0];
        assert_eq!(kernel_drops(socket).unwrap(), 0);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            sender.send_to(&[0u8; 1000], sockets.bound[0]).unwrap();
        }
        assert!(kernel_drops(socket).unwrap() > 100, "nobody reads: most of 200 datagrams overflow a 4 KiB buffer");
    }

    #[test]
    fn a_bad_address_names_itself() {
        let opts = SocketOptions { recv_buffer_bytes: 1 << 20, send_buffer_bytes: 1 << 20 };
        // 192.0.2.1 (TEST-NET-1) is not a local address, so bind fails; nothing is sent anywhere.
        let err = open(&["192.0.2.1:5000".parse().unwrap()], 1, opts).unwrap_err();
        assert!(err.to_string().contains("192.0.2.1:5000"), "{err}");
        assert_eq!(err.step, "bind");
    }
}

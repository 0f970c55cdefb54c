//! Media sockets: one `SO_REUSEPORT` group per configured media address, one socket per worker.
//!
//! Owns socket creation and options (non-blocking, buffer sizes, `IPV6_V6ONLY`), the check that the kernel
//! granted the configured buffer sizes ([`check_granted`]: opening fails, naming the sysctl to raise, rather
//! than running with smaller buffers), the kernel's per-socket drop counter ([`kernel_drops`]), and binding in
//! worker order, so that socket `i` of every group is worker `i`'s and the steering program's return value names
//! the right worker. Port 0 in the config means "pick a free port": the first socket of the group is bound to
//! port 0 and the others join the port the kernel chose. It never lets a socket run with a smaller buffer than
//! the config asked for.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::steering;

/// Socket options every media socket gets.
#[derive(Debug, Clone, Copy)]
pub struct SocketOptions {
    /// Requested `SO_RCVBUF` in bytes (forced past `rmem_max` with `SO_RCVBUFFORCE` when permitted).
    pub recv_buffer_bytes: usize,
    /// Requested `SO_SNDBUF` in bytes (forced past `wmem_max` with `SO_SNDBUFFORCE` when permitted).
    pub send_buffer_bytes: usize,
    /// Queue ICMP errors (`IP_RECVERR`) so unreachable subscribers can be reported (the io_uring driver
    /// reads them and retries the sends they fail).
    pub recv_errors: bool,
    /// How long a port held by another socket is waited for before opening fails ([`RELEASE_GRACE`] in the
    /// daemon): a process that used io_uring and was killed (a crash, `SIGKILL`) leaves its sockets to the kernel,
    /// which releases them shortly after the process is gone, not when it is reaped.
    pub release_grace: Duration,
}

/// The [`SocketOptions::release_grace`] the data plane uses: long enough for the kernel to free a killed
/// process's io_uring instance (it does so in the background, in well under a second), short enough that a port a
/// live process holds is reported at once to an operator starting a second one.
pub const RELEASE_GRACE: Duration = Duration::from_secs(2);

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
        check_free(address, opts.release_grace).map_err(err("bind"))?;
        let mut target = address;
        for slot in per_worker.iter_mut() {
            let socket =
                Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP)).map_err(err("socket"))?;
            configure(&socket, address).map_err(err("socket options"))?;
            if opts.recv_errors {
                super::errqueue::enable(&socket, address).map_err(err("IP_RECVERR"))?;
            }
            set_buffer(&socket, Buffer::Recv, opts.recv_buffer_bytes).map_err(err("receive buffer"))?;
            set_buffer(&socket, Buffer::Send, opts.send_buffer_bytes).map_err(err("send buffer"))?;
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

/// Takes over the sockets another ringfwd process opened for `addresses` (`per_worker[w][a]`, handed over with
/// `SCM_RIGHTS`): each must be a bound UDP socket of its address's family and port (any port for port 0), and one
/// group's sockets share one port. Their options, buffers and the steering program attached to their group come
/// with them (the kernel keeps them per socket and per group); they are set non-blocking again. Answers what
/// [`open`] answers for the same addresses.
pub fn adopt(addresses: &[SocketAddr], per_worker: Vec<Vec<OwnedFd>>) -> Result<MediaSockets, SocketError> {
    let mut bound: Vec<SocketAddr> = Vec::with_capacity(addresses.len());
    for sockets in &per_worker {
        if sockets.len() != addresses.len() {
            let found = io::Error::other(format!(
                "{} sockets per worker handed over, {} addresses configured",
                sockets.len(),
                addresses.len()
            ));
            let address = addresses.first().copied().unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            return Err(SocketError { address, step: "take over", source: found });
        }
        for (a, fd) in sockets.iter().enumerate() {
            let address = addresses[a];
            let err = |step: &'static str| move |source: io::Error| SocketError { address, step, source };
            let socket = socket2::SockRef::from(fd);
            let local = socket.local_addr().map_err(err("local address of a handed-over socket"))?;
            let local = local.as_socket().ok_or_else(|| err("take over")(io::Error::other("not an IP socket")))?;
            let same_port = match bound.get(a) {
                Some(group) => local.port() == group.port(),
                None => address.port() == 0 || local.port() == address.port(),
            };
            if local.ip() != address.ip() || !same_port || socket.r#type().ok() != Some(Type::DGRAM) {
                let why = io::Error::other(format!("the handed-over socket is bound to {local}"));
                return Err(err("take over")(why));
            }
            socket.set_nonblocking(true).map_err(err("socket options"))?;
            if bound.len() == a {
                bound.push(local);
            }
        }
    }
    Ok(MediaSockets { per_worker, bound })
}

/// Fails when another socket holds `address` (a port other than 0) for longer than `grace`: `SO_REUSEPORT` would
/// otherwise let a second ringfwd of the same user join the port's group and silently take part of its packets. A
/// probe socket without `SO_REUSEPORT` binds it and closes at once; a process taking over adopts the sockets instead
/// (see [`adopt`]). Within `grace` the probe is tried again every 10 ms: a killed ringfwd's sockets stay bound until
/// the kernel has torn down its io_uring instance, which happens after the process is gone.
fn check_free(address: SocketAddr, grace: Duration) -> io::Result<()> {
    if address.port() == 0 {
        return Ok(());
    }
    let deadline = Instant::now() + grace;
    loop {
        let probe = Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP))?;
        if address.is_ipv6() {
            probe.set_only_v6(true)?;
        }
        match probe.bind(&address.into()) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(io::Error::new(
                    e.kind(),
                    "the port is in use (another ringfwd? a second one on the same media address would take part \
                     of its packets; to replace a running ringfwd, start the new one with --take-over)",
                ))
            }
            Err(e) => return Err(e),
        }
    }
}

fn configure(socket: &Socket, address: SocketAddr) -> io::Result<()> {
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(())
}

/// One of a socket's two buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    /// The receive buffer (`SO_RCVBUF`), sized by `media.recv_buffer_bytes`.
    Recv,
    /// The send buffer (`SO_SNDBUF`), sized by `media.send_buffer_bytes`.
    Send,
}

impl Buffer {
    /// The config key that sizes this buffer.
    pub fn config_key(self) -> &'static str {
        match self {
            Buffer::Recv => "media.recv_buffer_bytes",
            Buffer::Send => "media.send_buffer_bytes",
        }
    }

    /// The sysctl that caps the ordinary option.
    pub fn sysctl(self) -> &'static str {
        match self {
            Buffer::Recv => "net.core.rmem_max",
            Buffer::Send => "net.core.wmem_max",
        }
    }

    /// The privileged option that may exceed [`Buffer::sysctl`].
    fn force_option(self) -> libc::c_int {
        match self {
            Buffer::Recv => libc::SO_RCVBUFFORCE,
            Buffer::Send => libc::SO_SNDBUFFORCE,
        }
    }

    /// Why the kernel granted less, given whether the `*FORCE` option was accepted.
    fn why_capped(self, forced: bool) -> &'static str {
        match (self, forced) {
            (Buffer::Recv, false) => "SO_RCVBUF is capped by net.core.rmem_max",
            (Buffer::Send, false) => "SO_SNDBUF is capped by net.core.wmem_max",
            (Buffer::Recv, true) => "even with SO_RCVBUFFORCE",
            (Buffer::Send, true) => "even with SO_SNDBUFFORCE",
        }
    }

    /// How privilege would help, when the `*FORCE` option was refused.
    fn privileged_hint(self, forced: bool) -> &'static str {
        match (self, forced) {
            (_, true) => "",
            (Buffer::Recv, false) => {
                ", or run ringfwd as root or with CAP_NET_ADMIN so it can force the size (SO_RCVBUFFORCE)"
            }
            (Buffer::Send, false) => {
                ", or run ringfwd as root or with CAP_NET_ADMIN so it can force the size (SO_SNDBUFFORCE)"
            }
        }
    }
}

/// The kernel granted a smaller socket buffer than the config asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{key} = {requested_bytes} but the kernel granted {granted_bytes} bytes ({why}); raise {sysctl} to at least \
     {requested_bytes} (sysctl -w {sysctl}={requested_bytes}; persist with tuning/deploy/99-ringfwd.conf and \
     tuning/deploy/apply-sysctl.sh){privileged}",
    key = buffer.config_key(),
    sysctl = buffer.sysctl(),
    why = buffer.why_capped(*forced),
    privileged = buffer.privileged_hint(*forced),
)]
pub struct BufferTooSmall {
    /// Which buffer.
    pub buffer: Buffer,
    /// What the config asked for, in bytes.
    pub requested_bytes: usize,
    /// What the kernel reports the socket has, in bytes.
    pub granted_bytes: usize,
    /// Whether the privileged `*FORCE` option was accepted (so `rmem_max`/`wmem_max` did not apply).
    pub forced: bool,
}

/// Decides whether the buffer the kernel granted is big enough: `granted_bytes` (as the kernel reports it, already
/// doubled) must be at least `requested_bytes`. `forced` says whether the `*FORCE` option was accepted.
pub fn check_granted(
    buffer: Buffer,
    requested_bytes: usize,
    granted_bytes: usize,
    forced: bool,
) -> Result<(), BufferTooSmall> {
    if granted_bytes >= requested_bytes {
        Ok(())
    } else {
        Err(BufferTooSmall { buffer, requested_bytes, granted_bytes, forced })
    }
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

/// Sets a buffer to `requested_bytes`: the privileged `*FORCE` option first (root / `CAP_NET_ADMIN` may exceed
/// `rmem_max`/`wmem_max`), else the ordinary one, which the kernel silently caps; then reads the size back and
/// fails with [`BufferTooSmall`] if the kernel granted less. Returns the granted size in bytes.
fn set_buffer(socket: &Socket, buffer: Buffer, requested_bytes: usize) -> io::Result<usize> {
    // The kernel doubles the value (for its bookkeeping overhead) and reports the doubled size, so ask for half.
    let half = requested_bytes.div_ceil(2);
    let value = libc::c_int::try_from(half).unwrap_or(libc::c_int::MAX);
    let forced = set_int(socket, libc::SOL_SOCKET, buffer.force_option(), value).is_ok();
    if !forced {
        match buffer {
            Buffer::Recv => socket.set_recv_buffer_size(half)?,
            Buffer::Send => socket.set_send_buffer_size(half)?,
        }
    }
    let granted_bytes = match buffer {
        Buffer::Recv => socket.recv_buffer_size()?,
        Buffer::Send => socket.send_buffer_size()?,
    };
    check_granted(buffer, requested_bytes, granted_bytes, forced).map_err(io::Error::other)?;
    Ok(granted_bytes)
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
        let opts = SocketOptions {
            recv_buffer_bytes: 1 << 20,
            send_buffer_bytes: 1 << 20,
            recv_errors: false,
            release_grace: Duration::ZERO,
        };
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
    fn a_port_another_group_holds_is_refused_and_its_sockets_can_be_adopted() {
        let opts = SocketOptions {
            recv_buffer_bytes: 1 << 20,
            send_buffer_bytes: 1 << 20,
            recv_errors: false,
            release_grace: Duration::ZERO,
        };
        let first = open(&["127.0.0.1:0".parse().unwrap()], 2, opts).expect("open");
        let taken = first.bound[0];
        // Still held when the grace has run out.
        let waiting = SocketOptions { release_grace: Duration::from_millis(30), ..opts };
        let err = open(&[taken], 2, waiting).expect_err("the port is in use");
        assert_eq!((err.address, err.step), (taken, "bind"));
        assert!(err.to_string().contains("--take-over"), "{err}");
        // A process taking over adopts the same sockets (duplicates, as SCM_RIGHTS would give them).
        let duplicates: Vec<Vec<OwnedFd>> =
            first.per_worker.iter().map(|w| w.iter().map(|fd| fd.try_clone().unwrap()).collect()).collect();
        let adopted = adopt(&[taken], duplicates).expect("adopt");
        assert_eq!(adopted.bound, [taken]);
        let wrong = first.per_worker.iter().map(|w| w.iter().map(|fd| fd.try_clone().unwrap()).collect()).collect();
        let other: SocketAddr = "127.0.0.2:9".parse().unwrap();
        assert_eq!(adopt(&[other], wrong).unwrap_err().step, "take over", "sockets of another address");
    }

    #[test]
    fn kernel_drops_counts_an_overflowing_receive_queue() {
        let opts = SocketOptions {
            recv_buffer_bytes: 4096,
            send_buffer_bytes: 1 << 20,
            recv_errors: false,
            release_grace: Duration::ZERO,
        };
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
    fn a_granted_request_opens_with_at_least_the_requested_size() {
        let opts = SocketOptions {
            recv_buffer_bytes: 3 << 20,
            send_buffer_bytes: (1 << 20) + 1,
            recv_errors: false,
            release_grace: Duration::ZERO,
        };
        let sockets = open(&["127.0.0.1:0".parse().unwrap()], 2, opts).expect("open");
        for worker in &sockets.per_worker {
            let s = socket2::SockRef::from(&worker[0]);
            let recv = s.recv_buffer_size().unwrap();
            let send = s.send_buffer_size().unwrap();
            assert!(recv >= opts.recv_buffer_bytes && recv < 2 * opts.recv_buffer_bytes, "granted {recv}");
            assert!(send >= opts.send_buffer_bytes && send < 2 * opts.send_buffer_bytes, "granted {send}");
        }
    }

    #[test]
    fn set_buffer_reports_the_granted_size() {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        let granted = set_buffer(&socket, Buffer::Recv, 1 << 20).expect("granted");
        assert_eq!(granted, socket.recv_buffer_size().unwrap());
        assert!(granted >= 1 << 20);
    }

    #[test]
    fn enough_is_ok_for_both_buffers() {
        for buffer in [Buffer::Recv, Buffer::Send] {
            assert_eq!(check_granted(buffer, 8 << 20, 8 << 20, false), Ok(()));
            assert_eq!(check_granted(buffer, 8 << 20, 16 << 20, true), Ok(()));
        }
    }

    #[test]
    fn too_small_names_the_key_the_sizes_the_sysctl_and_the_capability() {
        let cases = [
            (Buffer::Recv, "media.recv_buffer_bytes", "net.core.rmem_max", "SO_RCVBUFFORCE"),
            (Buffer::Send, "media.send_buffer_bytes", "net.core.wmem_max", "SO_SNDBUFFORCE"),
        ];
        for (buffer, key, sysctl, force) in cases {
            let err = check_granted(buffer, 8388608, 4194304, false).unwrap_err();
            assert_eq!((err.requested_bytes, err.granted_bytes, err.buffer), (8388608, 4194304, buffer));
            let message = err.to_string();
            for needle in [
                &format!("{key} = 8388608"),
                "granted 4194304 bytes",
                &format!("sysctl -w {sysctl}=8388608"),
                "tuning/deploy/99-ringfwd.conf",
                "CAP_NET_ADMIN",
                force,
            ] {
                assert!(message.contains(needle), "{needle:?} missing from: {message}");
            }
        }
    }

    #[test]
    fn too_small_even_when_forced_does_not_suggest_root() {
        let message = check_granted(Buffer::Send, 1 << 30, 1 << 29, true).unwrap_err().to_string();
        assert!(message.contains("even with SO_SNDBUFFORCE"), "{message}");
        assert!(message.contains("net.core.wmem_max") && !message.contains("CAP_NET_ADMIN"), "{message}");
    }

    #[test]
    fn a_too_small_buffer_fails_open_with_the_media_address_first() {
        let address: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let source = io::Error::other(check_granted(Buffer::Recv, 2, 1, false).unwrap_err());
        let err = SocketError { address, step: "receive buffer", source };
        let message = err.to_string();
        assert!(message.starts_with("media address 127.0.0.1:0: receive buffer: media.recv_buffer_bytes"), "{message}");
    }

    #[test]
    fn a_bad_address_names_itself() {
        let opts = SocketOptions {
            recv_buffer_bytes: 1 << 20,
            send_buffer_bytes: 1 << 20,
            recv_errors: false,
            release_grace: Duration::ZERO,
        };
        // 192.0.2.1 (TEST-NET-1) is not a local address, so bind fails; nothing is sent anywhere.
        let err = open(&["192.0.2.1:5000".parse().unwrap()], 1, opts).unwrap_err();
        assert!(err.to_string().contains("192.0.2.1:5000"), "{err}");
        assert_eq!(err.step, "bind");
    }
}

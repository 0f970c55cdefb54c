//! The receive side of the io_uring driver: the multishot `RecvMsgMulti` template and decoding what the kernel
//! wrote into a provided buffer (source address, control messages, payload).
//!
//! Owns the `msghdr` template (name and control sizes, which fix the layout of every receive buffer), [`decode`]
//! (a received buffer's layout: the kernel's `io_uring_recvmsg_out` header, the source address, the payload) and
//! the byte-level decoding of `sockaddr_in`/`sockaddr_in6`. Decoding is done on bytes, without pointer casts, and
//! never panics on what it reads (the `recvmsg` fuzz target feeds it arbitrary buffers). No control messages are
//! requested: kernel drops are read per socket (`socket::kernel_drops`), not per packet.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::core::DropReason;

/// Bytes reserved for the source address (a `sockaddr_in6` is the largest we accept).
pub const NAME_BYTES: usize = std::mem::size_of::<libc::sockaddr_in6>();
/// Bytes reserved for control messages (none are requested).
pub const CONTROL_BYTES: usize = 0;
/// Bytes of every receive buffer before the payload: the kernel's `io_uring_recvmsg_out` header, name, control.
pub const HEADER_BYTES: usize = 16 + NAME_BYTES + CONTROL_BYTES;

/// The `msghdr` a multishot receive is armed with (only the name and control lengths matter).
pub fn template() -> Box<libc::msghdr> {
    // SAFETY: an all-zero msghdr is a valid value (null pointers, zero lengths).
    let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
    msghdr.msg_namelen = NAME_BYTES as libc::socklen_t;
    msghdr.msg_controllen = CONTROL_BYTES;
    msghdr
}

/// A datagram as a multishot receive left it in a provided buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received<'a> {
    /// Who sent it.
    pub src: SocketAddr,
    /// The datagram, inside the buffer after the header, name and control fields.
    pub payload: &'a [u8],
}

/// Decodes the `buffer` a multishot receive armed with `msghdr` filled (its first `result` bytes): the
/// `io_uring_recvmsg_out` header, the source address and the payload. A buffer too short for the layout or with a
/// source of another family is [`DropReason::Malformed`]; a datagram longer than the buffer, [`DropReason::Oversize`].
pub fn decode<'a>(buffer: &'a [u8], msghdr: &libc::msghdr) -> Result<Received<'a>, DropReason> {
    let out = io_uring::types::RecvMsgOut::parse(buffer, msghdr).map_err(|()| DropReason::Malformed)?;
    if out.is_payload_truncated() {
        return Err(DropReason::Oversize);
    }
    let src = sockaddr(out.name_data()).ok_or(DropReason::Malformed)?;
    // `payload_data` borrows `out`: the same bytes, re-borrowed from `buffer` by their offset.
    let payload = out.payload_data();
    let start = payload.as_ptr() as usize - buffer.as_ptr() as usize;
    let payload = buffer.get(start..start + payload.len()).ok_or(DropReason::Malformed)?;
    Ok(Received { src, payload })
}

/// Decodes a `sockaddr_in` or `sockaddr_in6` from the bytes the kernel wrote.
pub fn sockaddr(name: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*name.first()?, *name.get(1)?]);
    let port = u16::from_be_bytes([*name.get(2)?, *name.get(3)?]);
    match i32::from(family) {
        libc::AF_INET => {
            let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flowinfo = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, flowinfo, scope)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_families_and_rejects_garbage() {
        let v4 = socket2::SockAddr::from("127.0.0.9:5004".parse::<SocketAddr>().unwrap());
        // SAFETY: `as_ptr` points at `len` initialised bytes of the SockAddr's storage.
        let bytes = unsafe { std::slice::from_raw_parts(v4.as_ptr().cast::<u8>(), v4.len() as usize) };
        assert_eq!(sockaddr(bytes), Some("127.0.0.9:5004".parse().unwrap()));
        let v6 = socket2::SockAddr::from("[::1]:40000".parse::<SocketAddr>().unwrap());
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(v6.as_ptr().cast::<u8>(), v6.len() as usize) };
        assert_eq!(sockaddr(bytes), Some("[::1]:40000".parse().unwrap()));
        assert_eq!(sockaddr(&[]), None);
        assert_eq!(sockaddr(&[2, 0, 0]), None);
        assert_eq!(sockaddr(&[99, 0, 1, 2, 3, 4, 5, 6]), None);
    }

    /// A receive buffer as the kernel lays it out: header (name, control, payload lengths, flags), name, payload.
    fn buffer(name: &[u8], payload_len: u32, flags: u32, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        for word in [name.len() as u32, 0, payload_len, flags] {
            buf.extend_from_slice(&word.to_ne_bytes());
        }
        buf.extend_from_slice(name);
        buf.resize(HEADER_BYTES, 0);
        buf.extend_from_slice(payload);
        buf
    }

    #[test]
    fn decode_finds_source_and_payload_and_refuses_the_rest() {
        let v4 = socket2::SockAddr::from("127.0.0.9:5004".parse::<SocketAddr>().unwrap());
        // SAFETY: `as_ptr` points at `len` initialised bytes of the SockAddr's storage.
        let name = unsafe { std::slice::from_raw_parts(v4.as_ptr().cast::<u8>(), v4.len() as usize) };
        let msghdr = template();
        let good = buffer(name, 3, 0, b"abc");
        let received = decode(&good, &msghdr).unwrap();
        assert_eq!((received.src, received.payload), ("127.0.0.9:5004".parse().unwrap(), &b"abc"[..]));
        assert_eq!(decode(&good[..HEADER_BYTES - 1], &msghdr), Err(DropReason::Malformed), "shorter than the layout");
        let truncated = buffer(name, 9000, libc::MSG_TRUNC as u32, b"abc");
        assert_eq!(decode(&truncated, &msghdr), Err(DropReason::Oversize));
        assert_eq!(decode(&buffer(&[0; 16], 3, 0, b"abc"), &msghdr), Err(DropReason::Malformed), "no family");
    }
}

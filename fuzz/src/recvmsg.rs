//! Target `recvmsg`: the kernel's receive-message layout, as the I/O drivers decode it.
//!
//! The input is a provided buffer as a multishot `RecvMsgMulti` leaves it (`io_uring_recvmsg_out` header, source
//! address, payload) for [`recv::decode`]: the payload it finds must lie inside the buffer right after the
//! fixed layout, as long as the header says (or the rest of the buffer), and the source must be the address the
//! name bytes encode. The same bytes are then a control-message buffer for [`batch::parse_control`] (the
//! `recvmmsg` driver's GRO, drop-counter and timestamp messages), which must read only whole messages and never
//! panic, and a name for [`recv::sockaddr`].

use ringfwd_dataplane::driver::batch;
use ringfwd_dataplane::driver::uring::recv;

/// Bytes of the kernel's `io_uring_recvmsg_out` header.
const OUT_HEADER_BYTES: usize = 16;

/// Runs one buffer.
pub fn run(data: &[u8]) {
    let msghdr = recv::template();
    match recv::decode(data, &msghdr) {
        Ok(received) => {
            let start = received.payload.as_ptr() as usize - data.as_ptr() as usize;
            assert_eq!(start, recv::HEADER_BYTES, "the payload follows the header, name and control fields");
            let word = |at: usize| u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            let payload_len = usize::try_from(word(8)).expect("fits");
            assert_eq!(received.payload.len(), payload_len.min(data.len() - start));
            let name_len = usize::try_from(word(0)).expect("fits").min(recv::NAME_BYTES);
            let name = &data[OUT_HEADER_BYTES..OUT_HEADER_BYTES + name_len];
            assert_eq!(recv::sockaddr(name), Some(received.src));
            assert_eq!(word(12) & libc_msg_trunc(), 0, "a truncated datagram is refused");
        }
        Err(reason) => {
            let short = data.len() < recv::HEADER_BYTES;
            assert!(
                short || reason != ringfwd_dataplane::core::DropReason::Malformed || name_is_bad(data),
                "{reason:?}"
            );
        }
    }
    if let Some(src) = recv::sockaddr(data) {
        let family = u16::from_ne_bytes([data[0], data[1]]);
        assert_eq!(src.is_ipv4(), family == 2, "AF_INET is 2 on Linux");
        assert_eq!(src.port(), u16::from_be_bytes([data[2], data[3]]));
    }
    let info = batch::parse_control(data);
    assert!(info.gro_segment_bytes.is_none_or(|s| s > 0));
}

/// `MSG_TRUNC` on Linux.
fn libc_msg_trunc() -> u32 {
    0x20
}

/// The name the header points at does not decode to an address.
fn name_is_bad(data: &[u8]) -> bool {
    let name_len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
    recv::sockaddr(&data[OUT_HEADER_BYTES..OUT_HEADER_BYTES + name_len.min(recv::NAME_BYTES)]).is_none()
}

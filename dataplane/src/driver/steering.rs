//! SSRC steering: the classic BPF program attached to each media port's `SO_REUSEPORT` group.
//!
//! Owns the program text and its attachment. The kernel runs the program on every datagram that reaches the
//! group, with the packet positioned at the UDP payload, and delivers the datagram to the socket whose index in
//! the group the program returns. The program returns [`crate::core::owner_of`]`(ssrc, workers)` — the same
//! function the control plane uses to place a stream's state — so every packet of a stream, RTP and its RTCP,
//! reaches the worker that owns it. It reads the SSRC at bytes 8..12 for RTP and at bytes 4..8 (the sender SSRC
//! of the first packet) for RTCP (RFC 5761: second byte in 192..=223).
//!
//! Rules the program keeps (a cBPF load past the end of the packet aborts the program with 0, i.e. socket 0):
//! it checks the length before every load, and returns an out-of-range index for anything that is not RTP/RTCP
//! v2 or is too short, which makes the kernel fall back to its default hash (the worker that gets such a packet
//! hands it over or drops it, and counts it).
//!
//! The group's size is fixed at start-up (one socket per worker, bound in worker order); the program must be
//! attached again if that ever changes.

use std::io;
use std::os::fd::BorrowedFd;

/// Returned for packets the program does not steer: larger than any group, so the kernel uses its hash.
const FALLBACK: u32 = u32::MAX;

/// One classic BPF instruction, in the kernel's `struct sock_filter` layout.
type Insn = libc::sock_filter;

const fn stmt(code: u32, k: u32) -> Insn {
    Insn { code: code as u16, jt: 0, jf: 0, k }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code: code as u16, jt, jf, k }
}

/// Builds the steering program for a group of `workers` sockets.
///
/// Jump offsets count instructions after the jump itself.
pub fn program(workers: u32) -> Vec<Insn> {
    use libc::{
        BPF_ABS, BPF_ALU, BPF_AND, BPF_B, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_LEN, BPF_MOD,
        BPF_RET, BPF_W,
    };
    const RET_A: u32 = BPF_RET | 0x10; // BPF_A
    let workers = workers.max(1);
    vec![
        /* 0 */ stmt(BPF_LD | BPF_W | BPF_LEN, 0),
        /* 1 */ jump(BPF_JMP | BPF_JGE | BPF_K, 8, 0, 13), // len < 8 -> 15 fallback
        /* 2 */ stmt(BPF_LD | BPF_B | BPF_ABS, 0),
        /* 3 */ stmt(BPF_ALU | BPF_AND | BPF_K, 0xc0),
        /* 4 */
        jump(BPF_JMP | BPF_JEQ | BPF_K, 0x80, 0, 10), // version != 2 -> 15 fallback
        /* 5 */ stmt(BPF_LD | BPF_B | BPF_ABS, 1),
        /* 6 */ jump(BPF_JMP | BPF_JGE | BPF_K, 192, 0, 3), // < 192 -> 10 rtp
        /* 7 */ jump(BPF_JMP | BPF_JGT | BPF_K, 223, 2, 0), // > 223 -> 10 rtp
        /* 8 */ stmt(BPF_LD | BPF_W | BPF_ABS, 4), // rtcp: sender ssrc
        /* 9 */ jump(BPF_JMP | BPF_JA, 3, 0, 0), // -> 13 mod
        /* 10 */ stmt(BPF_LD | BPF_W | BPF_LEN, 0),
        /* 11 */ jump(BPF_JMP | BPF_JGE | BPF_K, 12, 0, 3), // len < 12 -> 15 fallback
        /* 12 */ stmt(BPF_LD | BPF_W | BPF_ABS, 8), // rtp: ssrc
        /* 13 */ stmt(BPF_ALU | BPF_MOD | BPF_K, workers),
        /* 14 */ stmt(RET_A, 0),
        /* 15 */ stmt(BPF_RET | BPF_K, FALLBACK),
    ]
}

/// Attaches the steering program to the reuseport group that `socket` belongs to.
pub fn attach(socket: BorrowedFd<'_>, workers: u32) -> io::Result<()> {
    let insns = program(workers);
    let prog = libc::sock_fprog { len: insns.len() as u16, filter: insns.as_ptr() as *mut Insn };
    // `prog` points at `insns`, alive until this function returns; the kernel copies the program during the call.
    super::socket::set_option(&socket, libc::SOL_SOCKET, libc::SO_ATTACH_REUSEPORT_CBPF, &prog)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small interpreter for exactly the instructions [`program`] uses, so the jump offsets are checked
    /// without a kernel. The kernel-level behaviour is covered by the steering end-to-end test.
    fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = prog[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_LEN => a = pkt.len() as u32,
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_ABS => match pkt.get(i.k as usize) {
                    Some(b) => a = u32::from(*b),
                    None => return 0,
                },
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => match pkt.get(i.k as usize..i.k as usize + 4) {
                    Some(w) => a = u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
                    None => return 0,
                },
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= i.k,
                c if c == libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K => a %= i.k,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                c if c & 0x07 == libc::BPF_JMP => {
                    let taken = match code & 0xf0 {
                        x if x == libc::BPF_JEQ => a == i.k,
                        x if x == libc::BPF_JGE => a >= i.k,
                        x if x == libc::BPF_JGT => a > i.k,
                        other => panic!("unexpected jump {other:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                c if c == libc::BPF_RET | 0x10 => return a,
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    fn rtp(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0, 1, 0, 0, 0, 1];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0; 20]);
        p
    }

    fn rtcp_sr(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 200, 0, 6];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0; 20]);
        p
    }

    #[test]
    fn rtp_and_rtcp_of_one_ssrc_go_to_its_owner() {
        for workers in 1..=8u32 {
            let prog = program(workers);
            for ssrc in [0u32, 1, 7, 0x1234_5678, u32::MAX, 0xdead_beef] {
                let owner = crate::core::owner_of(ssrc, workers as usize) as u32;
                assert_eq!(run(&prog, &rtp(ssrc)), owner, "rtp ssrc {ssrc:#x} workers {workers}");
                assert_eq!(run(&prog, &rtcp_sr(ssrc)), owner, "rtcp ssrc {ssrc:#x} workers {workers}");
            }
        }
    }

    #[test]
    fn short_and_foreign_packets_fall_back_to_the_hash() {
        let prog = program(4);
        assert_eq!(run(&prog, &[]), FALLBACK);
        assert_eq!(run(&prog, &[0x80, 96, 0, 1, 0, 0, 0]), FALLBACK);
        assert_eq!(run(&prog, &[0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0]), FALLBACK, "rtp shorter than 12");
        assert_eq!(run(&prog, &[0x80, 200, 0, 1, 0, 0, 0, 9]), 9 % 4, "8-byte rtcp is steered");
        let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[0; 12]);
        assert_eq!(run(&prog, &stun), FALLBACK);
        assert_eq!(run(&prog, &[0x16; 40]), FALLBACK, "dtls");
    }
}

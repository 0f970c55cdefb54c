//! Which worker owns an SSRC.
//!
//! Owns [`owner_of`], the one placement rule shared by the kernel steering program (driver), the
//! control plane (which worker gets a stream's commands) and the forwarder (handover). Must never
//! change alone: the CBPF program in `driver::steering` computes exactly this function in the kernel.

/// The worker that owns the state of the stream with `ssrc`: `ssrc % workers`.
///
/// The classic BPF program attached to the media port's `SO_REUSEPORT` group (`driver::steering`)
/// computes exactly this, so every packet of a stream (RTP at bytes 8..12, RTCP at bytes 4..8) lands on
/// the owner's socket. `workers` of 0 is treated as 1.
pub fn owner_of(ssrc: u32, workers: usize) -> usize {
    let workers = u32::try_from(workers).unwrap_or(u32::MAX).max(1);
    (ssrc % workers) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_ssrc_modulo_workers() {
        assert_eq!(owner_of(10, 4), 2);
        assert_eq!(owner_of(u32::MAX, 3), (u32::MAX % 3) as usize);
        assert_eq!(owner_of(12345, 1), 0);
        assert_eq!(owner_of(12345, 0), 0);
        for ssrc in 0..64 {
            assert!(owner_of(ssrc, 5) < 5);
        }
    }
}

//! io_uring capability probe for `ringfwd tune check`.
//!
//! Owns [`io_uring_features`]: builds a small throw-away ring with the setup flags the io_uring driver uses
//! (`SINGLE_ISSUER | DEFER_TASKRUN`) and reports which kernel features and opcodes the driver relies on are
//! present. It only reads, through the io-uring crate's safe API; it must never submit an operation or keep
//! the ring.

use io_uring::{opcode, register::Probe, IoUring};

/// Entries of the throw-away probe ring.
const PROBE_RING_ENTRIES: u32 = 8;

/// Builds a ring as the io_uring driver does and lists the features and opcodes it depends on, each as
/// (name, supported). Fails, with the kernel's error, when such a ring cannot be built (io_uring absent,
/// disabled by `kernel.io_uring_disabled` or seccomp, or a kernel older than 6.1 without `DEFER_TASKRUN`).
pub fn io_uring_features() -> Result<Vec<(&'static str, bool)>, String> {
    let ring: IoUring = IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(PROBE_RING_ENTRIES)
        .map_err(|e| format!("cannot build an io_uring with SINGLE_ISSUER|DEFER_TASKRUN: {e}"))?;
    let params = ring.params();
    let mut features = vec![
        ("single_issuer+defer_taskrun", true),
        ("feature_nodrop", params.is_feature_nodrop()),
        ("feature_submit_stable", params.is_feature_submit_stable()),
        ("feature_fast_poll", params.is_feature_fast_poll()),
        ("feature_ext_arg", params.is_feature_ext_arg()),
        ("feature_skip_cqe_on_success", params.is_feature_skip_cqe_on_success()),
        ("feature_recvsend_bundle", params.is_feature_recvsend_bundle()),
    ];
    let mut probe = Probe::new();
    match ring.submitter().register_probe(&mut probe) {
        Ok(()) => features.extend([
            ("op_recvmsg", probe.is_supported(opcode::RecvMsg::CODE)),
            ("op_sendmsg", probe.is_supported(opcode::SendMsg::CODE)),
            ("op_sendmsg_zc", probe.is_supported(opcode::SendMsgZc::CODE)),
            ("op_read", probe.is_supported(opcode::Read::CODE)),
        ]),
        Err(e) => return Err(format!("io_uring opcode probe (IORING_REGISTER_PROBE) failed: {e}")),
    }
    Ok(features)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_the_driver_opcodes_or_says_why_not() {
        match io_uring_features() {
            Ok(features) => {
                for name in ["single_issuer+defer_taskrun", "op_recvmsg", "op_sendmsg", "feature_nodrop"] {
                    assert!(features.iter().any(|(n, _)| *n == name), "{name} missing from {features:?}");
                }
                // A kernel that accepts DEFER_TASKRUN (6.1+) has RecvMsg and SendMsg (5.3+).
                assert!(features.iter().any(|&(n, ok)| n == "op_recvmsg" && ok), "{features:?}");
            }
            Err(message) => {
                eprintln!("io_uring not usable here, checked the error text instead: {message}");
                assert!(message.contains("io_uring"), "{message}");
            }
        }
    }
}

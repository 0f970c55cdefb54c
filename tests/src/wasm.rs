//! The C example plugins (plugins/examples), built to WebAssembly for a test with the project's own script, and
//! small WAT plugins.
//!
//! Owns [`build_c_examples`]: installs clang and lld through `tests/scripts/install-clang.sh` when they are missing
//! (or skips the test, as every interop peer does, see [`crate::interop`]), then runs `plugins/build.sh`; and the
//! WAT modules more than one test loads ([`echo`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds every C example into a fresh directory and answers it, or `None` when the test must return (clang could
/// not be installed and `RINGFWD_REQUIRE_INTEROP` is not `1`).
pub fn build_c_examples() -> Option<tempfile::TempDir> {
    if !crate::interop::install(
        "install-clang.sh",
        &[],
        "the WebAssembly plugin tests build their C examples with clang",
    ) {
        return None;
    }
    let out = tempfile::tempdir().expect("a directory for the modules");
    let script = plugins_dir().join("build.sh");
    let output = Command::new("bash").arg(&script).arg(out.path()).output().expect("run plugins/build.sh");
    assert!(
        output.status.success(),
        "bash {} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(out)
}

/// The repository's `plugins/` directory.
pub fn plugins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("plugins")
}

/// A WAT plugin that injects each packet it is handed back into its stream, unchanged, and answers `verdict` (0
/// continue, 2 consumed: inline, the subscriber then receives each packet once).
pub fn echo(verdict: i32) -> String {
    format!(
        r#"(module
  (import "ringfwd" "inject" (func $inject (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param $len i32) (param i32 i32 i64 i64) (result i32)
    (drop (call $inject (i32.const 1024) (local.get $len)))
    (i32.const {verdict})))"#
    )
}

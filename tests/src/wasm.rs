//! The C example plugins (plugins/examples), built to WebAssembly for a test with the project's own script.
//!
//! Owns [`build_c_examples`]: installs clang and lld through `tests/scripts/install-clang.sh` when they are missing
//! (or skips the test, as every interop peer does, see [`crate::interop`]), then runs `plugins/build.sh`.

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

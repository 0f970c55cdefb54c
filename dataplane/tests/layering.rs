//! The layering the design promises, checked on the sources: the control plane (the daemon and the config's
//! converter) reaches the data plane only through `ringfwd_dataplane::control`; the forwarding core imports
//! neither the backends nor the runtime; the backends never import the runtime; the data plane's own build
//! does not depend on the config crate. Test-only files of the control plane that drive the core directly
//! (`tests*.rs`, `proptests.rs`) are exempt.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf()
}

/// Every `.rs` file under `dir`, with its code lines (comment lines left out).
fn sources(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).expect("a readable source");
                let code = text.lines().filter(|l| !l.trim_start().starts_with("//")).map(str::to_owned).collect();
                found.push((path, code));
            }
        }
    }
    assert!(!found.is_empty(), "no sources under {}", dir.display());
    found
}

/// The `file:line: text` of every code line under `dir` containing one of `forbidden`.
fn offenders(dir: &Path, forbidden: &[&str], exempt: impl Fn(&Path) -> bool) -> Vec<String> {
    let mut hits = Vec::new();
    for (path, lines) in sources(dir) {
        if exempt(&path) {
            continue;
        }
        for (n, line) in lines.iter().enumerate() {
            if forbidden.iter().any(|f| line.contains(f)) {
                hits.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn the_control_plane_imports_the_data_plane_only_through_its_control_module() {
    let internals = ["ringfwd_dataplane::core", "ringfwd_dataplane::runtime", "ringfwd_dataplane::driver"];
    let test_only = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        name.starts_with("tests") || name == "proptests.rs"
    };
    for part in ["controlplane/src", "tuning/src"] {
        let hits = offenders(&workspace().join(part), &internals, test_only);
        assert!(hits.is_empty(), "{part} reaches past ringfwd_dataplane::control:\n{}", hits.join("\n"));
    }
}

#[test]
fn the_core_and_the_backends_never_import_a_higher_layer() {
    let src = workspace().join("dataplane/src");
    let core = offenders(&src.join("core"), &["crate::runtime", "crate::driver", "crate::control"], |_| false);
    assert!(core.is_empty(), "the core imports a higher layer:\n{}", core.join("\n"));
    let backends = offenders(&src.join("driver"), &["crate::runtime", "crate::control"], |_| false);
    assert!(backends.is_empty(), "a backend imports a higher layer:\n{}", backends.join("\n"));
}

#[test]
fn the_data_plane_builds_without_the_config_crate() {
    let manifest = fs::read_to_string(workspace().join("dataplane/Cargo.toml")).expect("dataplane/Cargo.toml");
    let mut section = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if line.starts_with("ringfwd-tuning") {
            assert_eq!(section, "[dev-dependencies]", "ringfwd-tuning is a dependency of the data plane in {section}");
        }
    }
}

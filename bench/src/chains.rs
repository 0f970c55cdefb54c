//! Which chains the ringfwd under test runs: its default interceptors or none, and WebAssembly plugins from a file.
//!
//! Owns [`Chains`] (what `--interceptors` and `--plugins` ask for) and [`PluginsFile`] (the file: `[[plugins]]`
//! entries as the config has them, and the names, with their per-chain options, appended to every stream's ingress
//! and every subscription's egress chain). The plugins are written into ringfwd's config only, never into the
//! baselines' (they have no chains) nor `ringfwd-plain`'s. Must never check a plugin itself: ringfwd does at start,
//! exactly as for any config, and a refusal ends the run with its message.

use std::path::{Path, PathBuf};

use ringfwd_tuning::{ChainName, Config, PluginConfig};
use serde::Deserialize;

/// The chains of the ringfwd under test.
#[derive(Debug, Clone, Default)]
pub struct Chains {
    /// Its default interceptor chains (else none).
    pub defaults: bool,
    /// Plugins added to them.
    pub plugins: Option<PluginsFile>,
}

impl Chains {
    /// The default chains, no plugin.
    pub fn defaults() -> Chains {
        Chains { defaults: true, plugins: None }
    }

    /// The payload type of the RED payloads its plugins make, for the sink to unwrap (the file's `red_pt`).
    pub fn red_pt(&self) -> Option<u8> {
        self.plugins.as_ref().and_then(|file| file.red_pt)
    }

    /// Adds the plugins to `config` (whose chains are already the defaults or none).
    pub fn add_plugins(&self, config: &mut Config) {
        let Some(file) = &self.plugins else { return };
        config.plugins.extend(file.plugins.iter().cloned());
        config.interceptors.ingress.extend(file.ingress.iter().map(|name| ChainName::parse(name)));
        config.interceptors.egress.extend(file.egress.iter().map(|name| ChainName::parse(name)));
    }
}

/// A `--plugins` file:
///
/// ```toml
/// ingress = ["noop:mode=async"]   # appended to every stream's ingress chain
/// egress = []                     # appended to every subscription's egress chain
/// red_pt = 120                    # optional: a plugin wraps packets in RED (RFC 2198) of this payload type
/// [[plugins]]                     # as in ringfwd's config; a relative path is the file's directory's
/// name = "noop"
/// path = "noop.wat"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsFile {
    /// Names (with per-chain options) appended to the ingress chain.
    #[serde(default)]
    pub ingress: Vec<String>,
    /// Names appended to the egress chain.
    #[serde(default)]
    pub egress: Vec<String>,
    /// A plugin on the ingress chain wraps every packet in a RED payload (RFC 2198) of this payload type, with the
    /// publisher's payload type in its blocks: the sink checks the primary block as the bench payload.
    #[serde(default)]
    pub red_pt: Option<u8>,
    /// The plugins to load.
    pub plugins: Vec<PluginConfig>,
}

impl PluginsFile {
    /// Reads `path`; a plugin's relative module path is taken from `path`'s directory.
    pub fn load(path: &Path) -> Result<PluginsFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut file: PluginsFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(pt) = file.red_pt.filter(|&pt| pt > 127) {
            return Err(format!("{}: red_pt = {pt} is not an RTP payload type (0..=127)", path.display()));
        }
        let dir = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let dir = std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for plugin in &mut file.plugins {
            if plugin.path.is_relative() {
                plugin.path = dir.join(&plugin.path);
            }
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugins_file_adds_its_plugins_and_names_with_paths_from_its_directory() {
        let dir = std::env::temp_dir().join(format!("ringfwd-bench-chains-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let path = dir.join("plugins.toml");
        let text = "ingress = [\"noop:mode=async\"]\n[[plugins]]\nname = \"noop\"\npath = \"noop.wat\"\n";
        std::fs::write(&path, text).expect("written");
        let file = PluginsFile::load(&path).expect("read");
        assert_eq!(file.plugins[0].path, dir.join("noop.wat"));
        let mut config = Config::default();
        let before = config.interceptors.ingress.len();
        Chains { defaults: true, plugins: Some(file) }.add_plugins(&mut config);
        assert_eq!(config.plugins.len(), 1);
        assert_eq!(config.interceptors.ingress.len(), before + 1);
        assert_eq!(config.interceptors.ingress.last().map(ChainName::as_str), Some("noop:mode=async"));
        std::fs::write(&path, "ingress = []\nspeed = 3\nplugins = []\n").expect("written");
        assert!(PluginsFile::load(&path).is_err_and(|e| e.contains("speed")), "unknown keys are refused");
        std::fs::write(&path, "red_pt = 128\nplugins = []\n").expect("written");
        assert!(PluginsFile::load(&path).is_err_and(|e| e.contains("red_pt = 128")), "not a payload type");
        std::fs::write(&path, "red_pt = 120\nplugins = []\n").expect("written");
        let file = PluginsFile::load(&path).expect("read");
        assert_eq!(Chains { defaults: true, plugins: Some(file) }.red_pt(), Some(120));
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}

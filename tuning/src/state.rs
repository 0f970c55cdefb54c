//! The `[state]` section: where ringfwd keeps files that outlive the process (the persistent state store and the
//! recording tap's pcap files), whether it persists what the API accepted, and how that directory is found when the
//! config does not name one.
//!
//! Owns [`State`], [`StateEnv`] (the facts of the process the default depends on) and the resolution rules:
//! [`default_state_directory`], [`Config::state_directory`] and [`Config::tap_directory`]. The rules are pure
//! functions of the config and a [`StateEnv`], so they are tested without touching the environment; the one
//! reader of the real process is [`StateEnv::from_process`]. This module must never create a directory (whoever
//! first writes into one creates it) nor check a value (that is [`crate::validate`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::defaults;
use crate::error::ConfigError;
use crate::schema::Config;

/// `[state]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct State {
    /// The state directory, an absolute path. Unset: found at start-up by [`default_state_directory`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<PathBuf>,
    /// Keep what the API accepted (sessions, endpoints, streams, subscriptions, their metadata, and what each
    /// subscriber last received) in `<directory>/state.redb`, written before each API call returns and restored at
    /// start-up before the API opens.
    pub persist: bool,
    /// How often each worker publishes what every subscription last sent and the store keeps it, in milliseconds.
    pub numbering_interval_ms: u32,
}

impl Default for State {
    fn default() -> State {
        State {
            directory: defaults::STATE_DIRECTORY.map(PathBuf::from),
            persist: defaults::STATE_PERSIST,
            numbering_interval_ms: defaults::STATE_NUMBERING_INTERVAL_MS,
        }
    }
}

/// What the default state directory depends on: the process's user and four environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateEnv {
    /// `$STATE_DIRECTORY`, which systemd sets from the unit's `StateDirectory=` (a `:`-separated list when the
    /// unit names several; the first is ringfwd's).
    pub state_directory: Option<OsString>,
    /// Whether the process runs with effective user id 0.
    pub is_root: bool,
    /// `$XDG_STATE_HOME`.
    pub xdg_state_home: Option<OsString>,
    /// `$HOME`.
    pub home: Option<OsString>,
}

impl StateEnv {
    /// This process's user and environment.
    pub fn from_process() -> StateEnv {
        StateEnv {
            state_directory: std::env::var_os("STATE_DIRECTORY"),
            is_root: rustix::process::geteuid().is_root(),
            xdg_state_home: std::env::var_os("XDG_STATE_HOME"),
            home: std::env::var_os("HOME"),
        }
    }
}

/// The state directory when `state.directory` is unset; the first rule that applies wins:
///
/// 1. `$STATE_DIRECTORY` (its first `:`-separated entry): set by systemd from `StateDirectory=ringfwd`, so the
///    packaged unit gets `/var/lib/ringfwd`, created by systemd for the service's user;
/// 2. [`defaults::STATE_DIRECTORY_AS_ROOT`] (`/var/lib/ringfwd`) when running as root;
/// 3. `$XDG_STATE_HOME/ringfwd`;
/// 4. `$HOME/.local/state/ringfwd`.
///
/// A variable that is empty or not an absolute path is skipped, as the XDG base directory specification
/// says. `None` when no rule applies (not root, and none of the variables is usable).
pub fn default_state_directory(env: &StateEnv) -> Option<PathBuf> {
    let absolute = |value: &Option<OsString>| -> Option<PathBuf> {
        let path = PathBuf::from(value.as_ref()?);
        path.is_absolute().then_some(path)
    };
    let systemd = env.state_directory.as_ref().and_then(|list| {
        let first = std::env::split_paths(list).next()?;
        absolute(&Some(first.into_os_string()))
    });
    if let Some(directory) = systemd {
        return Some(directory);
    }
    if env.is_root {
        return Some(PathBuf::from(defaults::STATE_DIRECTORY_AS_ROOT));
    }
    if let Some(xdg) = absolute(&env.xdg_state_home) {
        return Some(xdg.join(defaults::STATE_DIRECTORY_NAME));
    }
    absolute(&env.home).map(|home| home.join(".local/state").join(defaults::STATE_DIRECTORY_NAME))
}

impl Config {
    /// The state directory: `state.directory` when set, else [`default_state_directory`]. An error names
    /// `state.directory` when it is unset and no default applies.
    pub fn state_directory(&self, env: &StateEnv) -> Result<PathBuf, ConfigError> {
        if let Some(directory) = &self.state.directory {
            return Ok(directory.clone());
        }
        default_state_directory(env).ok_or_else(|| {
            ConfigError::invalid(
                "state.directory",
                "(unset)",
                "no default applies: not root, and none of $STATE_DIRECTORY, $XDG_STATE_HOME, $HOME is an \
                 absolute path; set state.directory to an absolute path",
            )
        })
    }

    /// The absolute directory of the recording tap's pcap files: `interceptors.tap.directory` when absolute,
    /// else that path under [`Config::state_directory`] (the default, `pcap`, gives `<state directory>/pcap`).
    pub fn tap_directory(&self, env: &StateEnv) -> Result<PathBuf, ConfigError> {
        let tap: &Path = &self.interceptors.tap.directory;
        if tap.is_absolute() {
            return Ok(tap.to_path_buf());
        }
        Ok(self.state_directory(env)?.join(tap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(state_directory: Option<&str>, is_root: bool, xdg: Option<&str>, home: Option<&str>) -> StateEnv {
        StateEnv {
            state_directory: state_directory.map(OsString::from),
            is_root,
            xdg_state_home: xdg.map(OsString::from),
            home: home.map(OsString::from),
        }
    }

    fn resolved(env: &StateEnv) -> Option<String> {
        default_state_directory(env).map(|p| p.display().to_string())
    }

    #[test]
    fn systemd_state_directory_wins_over_everything() {
        let all = env(Some("/var/lib/ringfwd"), false, Some("/x/state"), Some("/home/op"));
        assert_eq!(resolved(&all).as_deref(), Some("/var/lib/ringfwd"));
        let root = env(Some("/srv/rf"), true, None, None);
        assert_eq!(resolved(&root).as_deref(), Some("/srv/rf"));
        let several = env(Some("/var/lib/ringfwd:/var/lib/other"), false, None, None);
        assert_eq!(resolved(&several).as_deref(), Some("/var/lib/ringfwd"));
    }

    #[test]
    fn root_without_systemd_uses_var_lib() {
        let root = env(None, true, Some("/root/.state"), Some("/root"));
        assert_eq!(resolved(&root).as_deref(), Some("/var/lib/ringfwd"));
    }

    #[test]
    fn a_user_gets_xdg_state_home_then_home() {
        assert_eq!(
            resolved(&env(None, false, Some("/x/state"), Some("/home/op"))).as_deref(),
            Some("/x/state/ringfwd")
        );
        assert_eq!(
            resolved(&env(None, false, None, Some("/home/op"))).as_deref(),
            Some("/home/op/.local/state/ringfwd")
        );
    }

    #[test]
    fn empty_or_relative_variables_are_skipped() {
        let relative = env(Some("state"), false, Some("rel/state"), Some("/home/op"));
        assert_eq!(resolved(&relative).as_deref(), Some("/home/op/.local/state/ringfwd"));
        let empty = env(Some(""), false, Some(""), Some(""));
        assert_eq!(resolved(&empty), None);
        let relative_root = env(Some("state"), true, None, None);
        assert_eq!(resolved(&relative_root).as_deref(), Some("/var/lib/ringfwd"));
    }

    #[test]
    fn no_default_is_an_error_naming_the_key() {
        let err = Config::default().state_directory(&StateEnv::default()).unwrap_err();
        assert_eq!(err.key(), Some("state.directory"));
        assert!(err.to_string().contains("$HOME"), "{err}");
    }

    #[test]
    fn a_configured_directory_needs_no_environment() {
        let config = Config::from_toml_str("[state]\ndirectory = \"/srv/ringfwd\"\n").unwrap();
        assert_eq!(config.state_directory(&StateEnv::default()).unwrap(), Path::new("/srv/ringfwd"));
        assert_eq!(config.tap_directory(&StateEnv::default()).unwrap(), Path::new("/srv/ringfwd/pcap"));
    }

    #[test]
    fn the_tap_directory_defaults_to_pcap_under_the_state_directory() {
        let systemd = env(Some("/var/lib/ringfwd"), false, None, None);
        assert_eq!(Config::default().tap_directory(&systemd).unwrap(), Path::new("/var/lib/ringfwd/pcap"));
        let user = env(None, false, None, Some("/home/op"));
        assert_eq!(Config::default().tap_directory(&user).unwrap(), Path::new("/home/op/.local/state/ringfwd/pcap"));
    }

    #[test]
    fn a_relative_tap_directory_is_under_the_state_directory_and_an_absolute_one_is_kept() {
        let config = Config::from_toml_str("[interceptors.tap]\ndirectory = \"rec/today\"\n").unwrap();
        let user = env(None, false, None, Some("/home/op"));
        assert_eq!(config.tap_directory(&user).unwrap(), Path::new("/home/op/.local/state/ringfwd/rec/today"));
        let config = Config::from_toml_str("[interceptors.tap]\ndirectory = \"/data/pcap\"\n").unwrap();
        assert_eq!(config.tap_directory(&StateEnv::default()).unwrap(), Path::new("/data/pcap"));
    }
}

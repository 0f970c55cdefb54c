//! Where the development token lives: the one rule that the daemon (which writes the token) and `ringfwd ctl`
//! (which reads it) both follow, so that they always agree.
//!
//! Owns [`RuntimeEnv`], [`DevTokenLocation`] and [`dev_token_location`]. The rule, first match wins:
//!
//! 1. `auth.dev_token_file` when the config sets it (an absolute path, checked by [`crate::validate`]);
//! 2. `$RUNTIME_DIRECTORY/dev-token` when that variable is set (systemd's `RuntimeDirectory=`; of a
//!    colon-separated list, the first directory);
//! 3. `$XDG_RUNTIME_DIR/ringfwd/dev-token` when that variable is set (a login session's private directory);
//! 4. `/run/ringfwd/dev-token` when the effective uid is 0;
//! 5. `/tmp/ringfwd-<uid>/dev-token` otherwise.
//!
//! An empty variable counts as unset; a relative one is an error naming the variable. Sans-IO: the environment and
//! the effective uid come in as a [`RuntimeEnv`] ([`RuntimeEnv::from_process`] reads this process's). This module
//! never touches the file system: creating the directory and checking that it is private is the daemon's job.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::api::Auth;
use crate::defaults::{DEV_TOKEN_FILE_NAME, DEV_TOKEN_ROOT_DIR, DEV_TOKEN_TMP_DIR_PREFIX, DEV_TOKEN_XDG_SUBDIR};
use crate::ConfigError;

/// The variable systemd sets to the service's `RuntimeDirectory=` (colon-separated when there are several).
pub const RUNTIME_DIRECTORY_VAR: &str = "RUNTIME_DIRECTORY";
/// The variable a login session sets to the user's private runtime directory (XDG Base Directory spec).
pub const XDG_RUNTIME_DIR_VAR: &str = "XDG_RUNTIME_DIR";

/// What the rule reads from the process: two environment variables and the effective uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEnv {
    /// `$RUNTIME_DIRECTORY`, if set.
    pub runtime_directory: Option<OsString>,
    /// `$XDG_RUNTIME_DIR`, if set.
    pub xdg_runtime_dir: Option<OsString>,
    /// The effective user id.
    pub euid: u32,
}

impl RuntimeEnv {
    /// This process's `RUNTIME_DIRECTORY`, `XDG_RUNTIME_DIR` and effective uid.
    pub fn from_process() -> RuntimeEnv {
        RuntimeEnv {
            runtime_directory: std::env::var_os(RUNTIME_DIRECTORY_VAR),
            xdg_runtime_dir: std::env::var_os(XDG_RUNTIME_DIR_VAR),
            euid: rustix::process::geteuid().as_raw(),
        }
    }
}

/// Which step of the rule chose the location; its `Display` says why, for messages ("... because {source}").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevTokenSource {
    /// `auth.dev_token_file` of the config.
    Configured,
    /// `$RUNTIME_DIRECTORY`.
    RuntimeDirectory,
    /// `$XDG_RUNTIME_DIR`.
    XdgRuntimeDir,
    /// Running as root without either variable.
    Root,
    /// Any other user without either variable.
    TmpPerUser,
}

impl fmt::Display for DevTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DevTokenSource::Configured => "auth.dev_token_file is set in the config",
            DevTokenSource::RuntimeDirectory => "RUNTIME_DIRECTORY is set",
            DevTokenSource::XdgRuntimeDir => "XDG_RUNTIME_DIR is set",
            DevTokenSource::Root => "running as root with neither RUNTIME_DIRECTORY nor XDG_RUNTIME_DIR set",
            DevTokenSource::TmpPerUser => "neither RUNTIME_DIRECTORY nor XDG_RUNTIME_DIR is set",
        })
    }
}

/// Where the development token is, and why there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevTokenLocation {
    /// The token file; its parent is the directory the daemon creates (0700) and checks.
    pub path: PathBuf,
    /// The step of the rule that chose it.
    pub source: DevTokenSource,
}

impl DevTokenLocation {
    /// The directory that holds the token file.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }
}

/// Applies the rule (see the module docs) to `configured` (`auth.dev_token_file`) and `env`.
pub fn dev_token_location(configured: Option<&Path>, env: &RuntimeEnv) -> Result<DevTokenLocation, ConfigError> {
    if let Some(path) = configured {
        return Ok(DevTokenLocation { path: path.to_path_buf(), source: DevTokenSource::Configured });
    }
    let runtime_directory = env.runtime_directory.as_ref().map(first_of_list);
    if let Some(dir) = absolute_dir(RUNTIME_DIRECTORY_VAR, runtime_directory.as_ref())? {
        return Ok(DevTokenLocation { path: dir.join(DEV_TOKEN_FILE_NAME), source: DevTokenSource::RuntimeDirectory });
    }
    if let Some(dir) = absolute_dir(XDG_RUNTIME_DIR_VAR, env.xdg_runtime_dir.as_ref())? {
        let path = dir.join(DEV_TOKEN_XDG_SUBDIR).join(DEV_TOKEN_FILE_NAME);
        return Ok(DevTokenLocation { path, source: DevTokenSource::XdgRuntimeDir });
    }
    if env.euid == 0 {
        let path = Path::new(DEV_TOKEN_ROOT_DIR).join(DEV_TOKEN_FILE_NAME);
        return Ok(DevTokenLocation { path, source: DevTokenSource::Root });
    }
    let path = PathBuf::from(format!("{DEV_TOKEN_TMP_DIR_PREFIX}{}", env.euid)).join(DEV_TOKEN_FILE_NAME);
    Ok(DevTokenLocation { path, source: DevTokenSource::TmpPerUser })
}

impl Auth {
    /// Where the development token of this config is, for this process (its environment and effective uid).
    pub fn dev_token_location(&self) -> Result<DevTokenLocation, ConfigError> {
        dev_token_location(self.dev_token_file.as_deref(), &RuntimeEnv::from_process())
    }
}

/// The first entry of a colon-separated list of directories (systemd joins several `RuntimeDirectory=` so).
fn first_of_list(value: &OsString) -> OsString {
    let first = value.as_bytes().split(|&b| b == b':').next().unwrap_or_default();
    OsStr::from_bytes(first).to_os_string()
}

/// `value` as a directory: `None` when unset or empty, an error naming `variable` when not absolute.
fn absolute_dir(variable: &'static str, value: Option<&OsString>) -> Result<Option<PathBuf>, ConfigError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let dir = PathBuf::from(value);
    if !dir.is_absolute() {
        return Err(ConfigError::Environment {
            variable,
            value: dir.display().to_string(),
            reason: "must be an absolute path (it says where the development token is); unset it or fix it".into(),
        });
    }
    Ok(Some(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(runtime_directory: Option<&str>, xdg_runtime_dir: Option<&str>, euid: u32) -> RuntimeEnv {
        RuntimeEnv {
            runtime_directory: runtime_directory.map(OsString::from),
            xdg_runtime_dir: xdg_runtime_dir.map(OsString::from),
            euid,
        }
    }

    fn path(configured: Option<&str>, env: &RuntimeEnv) -> (String, DevTokenSource) {
        let location = dev_token_location(configured.map(Path::new), env).unwrap();
        (location.path.display().to_string(), location.source)
    }

    #[test]
    fn the_first_step_that_applies_wins() {
        let all = env(Some("/run/ringfwd-svc"), Some("/run/user/1000"), 1000);
        let configured = Some("/srv/ringfwd/token");
        assert_eq!(path(configured, &all), ("/srv/ringfwd/token".into(), DevTokenSource::Configured));
        assert_eq!(path(None, &all), ("/run/ringfwd-svc/dev-token".into(), DevTokenSource::RuntimeDirectory));
        let xdg = env(None, Some("/run/user/1000"), 1000);
        assert_eq!(path(None, &xdg), ("/run/user/1000/ringfwd/dev-token".into(), DevTokenSource::XdgRuntimeDir));
        assert_eq!(path(None, &env(None, None, 0)), ("/run/ringfwd/dev-token".into(), DevTokenSource::Root));
        let user = env(None, None, 1000);
        assert_eq!(path(None, &user), ("/tmp/ringfwd-1000/dev-token".into(), DevTokenSource::TmpPerUser));
    }

    #[test]
    fn root_with_a_session_directory_uses_it() {
        let root = env(None, Some("/run/user/0"), 0);
        assert_eq!(path(None, &root), ("/run/user/0/ringfwd/dev-token".into(), DevTokenSource::XdgRuntimeDir));
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let empty = env(Some(""), Some(""), 1000);
        assert_eq!(path(None, &empty), ("/tmp/ringfwd-1000/dev-token".into(), DevTokenSource::TmpPerUser));
        let empty_first = env(Some(""), Some("/run/user/7"), 7);
        assert_eq!(path(None, &empty_first).0, "/run/user/7/ringfwd/dev-token");
    }

    #[test]
    fn of_several_runtime_directories_the_first_is_taken() {
        let several = env(Some("/run/ringfwd:/run/ringfwd-extra"), None, 998);
        assert_eq!(path(None, &several).0, "/run/ringfwd/dev-token");
    }

    #[test]
    fn a_relative_variable_is_an_error_naming_it() {
        for (bad, variable) in
            [(env(Some("run/x"), None, 1), "RUNTIME_DIRECTORY"), (env(None, Some("."), 1), "XDG_RUNTIME_DIR")]
        {
            let err = dev_token_location(None, &bad).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(variable) && text.contains("absolute"), "{text}");
        }
        // A configured file makes the environment irrelevant.
        let configured = dev_token_location(Some(Path::new("/a/b")), &env(Some("rel"), None, 1)).unwrap();
        assert_eq!(configured.path, Path::new("/a/b"));
    }

    #[test]
    fn the_directory_is_the_parent() {
        let location = dev_token_location(None, &env(None, None, 42)).unwrap();
        assert_eq!(location.dir(), Path::new("/tmp/ringfwd-42"));
    }

    #[test]
    fn from_process_reads_the_effective_uid() {
        assert_eq!(RuntimeEnv::from_process().euid, rustix::process::geteuid().as_raw());
    }
}

//! The directory of the development token: private to the daemon's user, or refused.
//!
//! Owns [`PrivateDir`] (an open handle on a checked directory; the token is written relative to it, so the checked
//! directory is the one written to even if its path is swapped afterwards) and [`DevTokenError`], the error of
//! writing the token. [`PrivateDir::open`] creates the directory 0700 when it is missing (its parent must exist)
//! and refuses one that is a symlink, not a directory, owned by another user than this process's effective uid,
//! or open to its group or others (any of mode 0o077). This module must never read, log or print the token.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use ringfwd_tuning::ConfigError;
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

/// Mode of a directory the daemon creates for the token: owner only.
pub const DEV_TOKEN_DIR_MODE: u32 = 0o700;

/// Why the development token could not be written; every message names the path and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum DevTokenError {
    /// Where the token goes could not be worked out (a bad `RUNTIME_DIRECTORY` or `XDG_RUNTIME_DIR`).
    #[error("where the development token goes: {0}")]
    Location(#[from] ConfigError),
    /// The directory is missing and could not be created.
    #[error("cannot create the development token directory {} (mode 0700): {source}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The directory is a symlink (not followed).
    #[error(
        "the development token directory {} is a symlink: refused, it must be a real directory of this user \
         (someone may have planted the link; remove it, or set auth.dev_token_file)",
        dir.display()
    )]
    DirSymlink {
        /// The directory.
        dir: PathBuf,
    },
    /// The path of the directory is something else than a directory.
    #[error("the development token directory {} is not a directory", dir.display())]
    NotADirectory {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory belongs to another user.
    #[error(
        "the development token directory {} belongs to uid {owner}, not to this process's user (uid {euid}): \
         refused (remove it, or point RUNTIME_DIRECTORY, XDG_RUNTIME_DIR or auth.dev_token_file elsewhere)",
        dir.display()
    )]
    DirOwner {
        /// The directory.
        dir: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// This process's effective uid.
        euid: u32,
    },
    /// The directory's group or others have some access to it.
    #[error(
        "the development token directory {} has mode {mode:04o}: its group or others may enter it; refused, \
         it must be 0700 (chmod 700 {})",
        dir.display(),
        dir.display()
    )]
    DirMode {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A symlink stands where the token file goes.
    #[error(
        "{} is a symlink: refused, the development token file must be a regular file (someone may have planted \
         the link; remove it)",
        path.display()
    )]
    TokenSymlink {
        /// The token file's path.
        path: PathBuf,
    },
    /// Something else than a regular file stands where the token file goes.
    #[error("{} is not a regular file: the development token cannot replace it", path.display())]
    TokenNotAFile {
        /// The token file's path.
        path: PathBuf,
    },
    /// The token to write is empty, too long or has whitespace (a bug of the caller).
    #[error("a token is 1..=4096 bytes without whitespace")]
    BadToken,
    /// A system call on the directory or the file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "writing".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

/// An open, checked private directory.
#[derive(Debug)]
pub struct PrivateDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl PrivateDir {
    /// Opens `dir` (creating it 0700 when missing) without following a symlink, and checks it is a directory
    /// owned by this process's effective uid with no group or other permission bits.
    pub fn open(dir: &Path) -> Result<PrivateDir, DevTokenError> {
        let created = match rustix::fs::mkdir(dir, Mode::from_raw_mode(DEV_TOKEN_DIR_MODE)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => return Err(DevTokenError::CreateDir { dir: dir.to_path_buf(), source: e.into() }),
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| refusal(dir, e))?;
        if created {
            // mkdir's mode passed through the umask; make it exactly 0700.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(DEV_TOKEN_DIR_MODE)).map_err(io_error("chmod 700", dir))?;
        }
        let stat = rustix::fs::fstat(&fd).map_err(io_error("fstat", dir))?;
        let euid = rustix::process::geteuid().as_raw();
        if stat.st_uid != euid {
            return Err(DevTokenError::DirOwner { dir: dir.to_path_buf(), owner: stat.st_uid, euid });
        }
        let mode = stat.st_mode & 0o7777;
        if mode & 0o077 != 0 {
            return Err(DevTokenError::DirMode { dir: dir.to_path_buf(), mode });
        }
        Ok(PrivateDir { fd, path: dir.to_path_buf() })
    }

    /// The open directory, for `*at` calls.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why opening `dir` without following a symlink failed: a symlink, not a directory, or an I/O error.
fn refusal(dir: &Path, error: Errno) -> DevTokenError {
    let is_symlink = rustix::fs::lstat(dir).is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Symlink);
    match error {
        Errno::LOOP => DevTokenError::DirSymlink { dir: dir.to_path_buf() },
        Errno::NOTDIR if is_symlink => DevTokenError::DirSymlink { dir: dir.to_path_buf() },
        Errno::NOTDIR => DevTokenError::NotADirectory { dir: dir.to_path_buf() },
        e => DevTokenError::Io { action: "opening", path: dir.to_path_buf(), source: e.into() },
    }
}

/// Maps an errno to [`DevTokenError::Io`] of `action` on `path`.
pub(super) fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> DevTokenError + 'a {
    move |e| DevTokenError::Io { action, path: path.to_path_buf(), source: e.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn a_missing_directory_is_created_0700() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("ringfwd");
        let opened = PrivateDir::open(&dir).unwrap();
        assert_eq!(opened.path(), dir);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        // Opening it again finds it as it is.
        PrivateDir::open(&dir).unwrap();
    }

    #[test]
    fn a_missing_parent_is_an_error_naming_the_directory() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("no/such");
        let err = PrivateDir::open(&dir).unwrap_err();
        assert!(matches!(err, DevTokenError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains(dir.to_str().unwrap()), "{err}");
    }

    #[test]
    fn a_symlinked_directory_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let real = parent.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::set_permissions(&real, Permissions::from_mode(0o700)).unwrap();
        let link = parent.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = PrivateDir::open(&link).unwrap_err();
        assert!(matches!(err, DevTokenError::DirSymlink { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(link.to_str().unwrap()) && text.contains("symlink"), "{text}");
    }

    #[test]
    fn a_directory_open_to_group_or_others_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("shared");
        fs::create_dir(&dir).unwrap();
        for mode in [0o755, 0o750, 0o701, 0o1777] {
            fs::set_permissions(&dir, Permissions::from_mode(mode)).unwrap();
            let err = PrivateDir::open(&dir).unwrap_err();
            assert!(matches!(err, DevTokenError::DirMode { mode: m, .. } if m == mode), "{mode:o}: {err:?}");
            let text = err.to_string();
            assert!(text.contains(&format!("{mode:04o}")) && text.contains("chmod 700"), "{text}");
        }
        fs::set_permissions(&dir, Permissions::from_mode(0o700)).unwrap();
        PrivateDir::open(&dir).unwrap();
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let file = parent.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = PrivateDir::open(&file).unwrap_err();
        assert!(matches!(err, DevTokenError::NotADirectory { .. }), "{err:?}");
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("theirs");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, Permissions::from_mode(0o700)).unwrap();
        // Only root can give a directory away; elsewhere the check is covered by the owner being this user.
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
            let err = PrivateDir::open(&dir).unwrap_err();
            assert!(matches!(err, DevTokenError::DirOwner { owner: 4242, euid: 0, .. }), "{err:?}");
            assert!(err.to_string().contains("uid 4242"), "{err}");
        } else {
            PrivateDir::open(&dir).unwrap();
        }
    }
}

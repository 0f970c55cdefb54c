//! The development token file: how a daemon running with a generated key hands its token to
//! `ringfwd ctl` on the same host.
//!
//! Owns [`write_dev_token`] (into a private directory, see [`super::private_dir`]; opened with `O_NOFOLLOW`,
//! mode 0600, replaced atomically: a reader sees the old token or the new one, never a part; a symlink or
//! anything but a regular file where the token goes is refused) and [`read_dev_token`] (refuses a symlink, a
//! file of another user and a file others may read: `ringfwd ctl` must never send another file's contents as its
//! token). Where the file is comes from `ringfwd_tuning::dev_token`, the same rule for both. This and
//! [`super::private_dir`] are the only file I/O of [`crate::auth`]; they must never log or print the token.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::private_dir::{io_error, DevTokenError, PrivateDir};
use super::token::MAX_TOKEN_BYTES;

/// Mode of the token file: read and write for its owner only.
pub const DEV_TOKEN_FILE_MODE: u32 = 0o600;

/// Writes `token` and a newline to `path` with mode 0600: the directory is opened (created 0700 when missing)
/// and checked to be private, then the token goes into a new temporary file in it (`O_CREAT | O_EXCL |
/// O_NOFOLLOW`), synced, and renamed over `path`. An existing regular file is replaced; a symlink or anything
/// else at `path` is refused.
pub fn write_dev_token(path: &Path, token: &str) -> Result<(), DevTokenError> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES || token.contains(char::is_whitespace) {
        return Err(DevTokenError::BadToken);
    }
    let name = path.file_name().ok_or_else(|| DevTokenError::TokenNotAFile { path: path.to_path_buf() })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let dir = PrivateDir::open(dir)?;
    match rustix::fs::statat(dir.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => {}
        Err(e) => return Err(io_error("lstat", path)(e)),
        Ok(stat) => match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => {}
            FileType::Symlink => return Err(DevTokenError::TokenSymlink { path: path.to_path_buf() }),
            _ => return Err(DevTokenError::TokenNotAFile { path: path.to_path_buf() }),
        },
    }
    let temp = format!(".{}.{}-{:016x}.tmp", name.to_string_lossy(), std::process::id(), rand::random::<u64>());
    let temp_path = dir.path().join(&temp);
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(DEV_TOKEN_FILE_MODE);
    let fd = rustix::fs::openat(dir.fd(), &temp, flags, mode).map_err(io_error("creating", &temp_path))?;
    let written = (|| {
        // The umask may have taken bits away; the owner must be able to read it.
        rustix::fs::fchmod(&fd, mode).map_err(io_error("chmod 600", &temp_path))?;
        let mut file = File::from(fd);
        let io = |source| DevTokenError::Io { action: "writing", path: temp_path.clone(), source };
        file.write_all(token.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)?;
        rustix::fs::renameat(dir.fd(), &temp, dir.fd(), name).map_err(io_error("renaming over", path))
    })();
    if written.is_err() {
        let _ = rustix::fs::unlinkat(dir.fd(), &temp, AtFlags::empty());
    }
    written?;
    // Makes the rename durable; the token is in place either way.
    let _ = rustix::fs::fsync(dir.fd());
    Ok(())
}

/// Whether a process of user `reader` reads a token file owned by `owner`: its own or root's; and root reads
/// any user's, e.g. `sudo ringfwd ctl` the token of the packaged service (user `ringfwd`, in its 0700
/// `/run/ringfwd`). That gives root nothing it could not read anyway: the file is opened without following a
/// symlink, and a regular file owned by another user holds only what that user could write (a hard link to a
/// root-only file would be owned by root, and the kernel refuses hard links to files one does not own).
pub fn may_read_token_of(owner: u32, reader: u32) -> bool {
    owner == reader || owner == 0 || reader == 0
}

/// Reads the token [`write_dev_token`] wrote. Fails when `path` is a symlink (not followed: in a
/// shared directory another user could point it at any file this user may read), not a regular
/// file, owned by another user than this process's or root's (unless this process is root, see
/// [`may_read_token_of`]), readable or writable by its group or others (the token would have leaked),
/// or when it does not hold one token.
pub fn read_dev_token(path: &Path) -> io::Result<String> {
    let nofollow = OFlags::NOFOLLOW.bits() as i32;
    let file = OpenOptions::new().read(true).custom_flags(nofollow).open(path).map_err(|e| {
        if e.raw_os_error() == Some(Errno::LOOP.raw_os_error()) {
            let message = format!("{} is a symlink: not followed (a token file is a regular file)", path.display());
            io::Error::new(io::ErrorKind::InvalidInput, message)
        } else {
            e
        }
    })?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a regular file", path.display())));
    }
    let me = rustix::process::geteuid().as_raw();
    if !may_read_token_of(metadata.uid(), me) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to user {}, not to this user ({me}) nor root: not read (run ringfwd ctl as the user \
                 the daemon runs as, or pass --token)",
                path.display(),
                metadata.uid()
            ),
        ));
    }
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} has mode {mode:04o}: others may have read the token; expected 0600 \
                 (restart the daemon to write a new one)",
                path.display()
            ),
        ));
    }
    // One byte more than the longest token and its newline tells "too long" apart.
    let limit = MAX_TOKEN_BYTES as u64 + 2;
    let mut text = String::new();
    file.take(limit).read_to_string(&mut text)?;
    let token = text.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES || token.contains(char::is_whitespace) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{} does not hold one token", path.display())));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::fs::{self, Permissions};
    use std::os::unix::fs::PermissionsExt;

    /// A temporary directory of mode 0700, as the token's directory must be.
    pub(crate) fn private_tempdir() -> tempfile::TempDir {
        tempfile::Builder::new().permissions(Permissions::from_mode(0o700)).tempdir().unwrap()
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn written_file_is_0600_and_round_trips() {
        let dir = private_tempdir();
        let path = dir.path().join("token");
        write_dev_token(&path, "aaa.bbb.ccc").unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "aaa.bbb.ccc\n");
        assert_eq!(read_dev_token(&path).unwrap(), "aaa.bbb.ccc");
    }

    #[test]
    fn rewrite_replaces_a_wider_file_and_leaves_no_temporary() {
        let dir = private_tempdir();
        let path = dir.path().join("token");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        write_dev_token(&path, "new.token.x").unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(read_dev_token(&path).unwrap(), "new.token.x");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["token"]);
    }

    #[test]
    fn readable_by_others_is_refused() {
        let dir = private_tempdir();
        let path = dir.path().join("token");
        write_dev_token(&path, "aaa.bbb.ccc").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        let err = read_dev_token(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("0640"), "{err}");
        assert!(!err.to_string().contains("aaa"), "{err}");
    }

    #[test]
    fn bad_content_is_refused() {
        let dir = private_tempdir();
        let path = dir.path().join("token");
        let long = "t".repeat(MAX_TOKEN_BYTES + 1);
        for content in ["", " \n", "two tokens", long.as_str()] {
            fs::write(&path, content).unwrap();
            fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
            let err = read_dev_token(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{content:?}");
        }
    }

    #[test]
    fn missing_file_and_directory_are_errors() {
        let dir = private_tempdir();
        let missing = read_dev_token(&dir.path().join("none")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        fs::set_permissions(dir.path(), Permissions::from_mode(0o700)).unwrap();
        assert!(read_dev_token(dir.path()).is_err());
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let dir = private_tempdir();
        let secret = dir.path().join("secret");
        write_dev_token(&secret, "aaa.bbb.ccc").unwrap();
        let planted = dir.path().join("token");
        std::os::unix::fs::symlink(&secret, &planted).unwrap();
        let err = read_dev_token(&planted).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(!err.to_string().contains("aaa"), "{err}");
    }

    #[test]
    fn a_file_of_another_user_is_refused_unless_root_reads_it() {
        let dir = private_tempdir();
        let path = dir.path().join("token");
        write_dev_token(&path, "aaa.bbb.ccc").unwrap();
        assert!(!may_read_token_of(4242, 1000), "another user's file");
        assert!(may_read_token_of(1000, 1000) && may_read_token_of(0, 1000), "one's own or root's");
        // Only root can give a file away; elsewhere the check is covered by the owner being this user.
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            assert_eq!(read_dev_token(&path).unwrap(), "aaa.bbb.ccc", "root reads the service user's token");
        } else {
            assert_eq!(read_dev_token(&path).unwrap(), "aaa.bbb.ccc");
        }
    }

    #[test]
    fn a_planted_symlink_at_the_token_path_is_refused_and_not_followed() {
        let dir = private_tempdir();
        let target = dir.path().join("target");
        fs::write(&target, "precious").unwrap();
        let path = dir.path().join("token");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = write_dev_token(&path, "aaa.bbb.ccc").unwrap_err();
        assert!(matches!(err, DevTokenError::TokenSymlink { .. }), "{err:?}");
        assert!(err.to_string().contains(path.to_str().unwrap()), "{err}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_symlink(), "the link is left for the operator");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary left: {names:?}");
    }

    #[test]
    fn a_directory_at_the_token_path_is_refused() {
        let dir = private_tempdir();
        let path = dir.path().join("token");
        fs::create_dir(&path).unwrap();
        let err = write_dev_token(&path, "aaa.bbb.ccc").unwrap_err();
        assert!(matches!(err, DevTokenError::TokenNotAFile { .. }), "{err:?}");
    }

    #[test]
    fn a_token_is_never_written_into_a_shared_directory() {
        let dir = private_tempdir();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o1777)).unwrap();
        let path = dir.path().join("token");
        let err = write_dev_token(&path, "aaa.bbb.ccc").unwrap_err();
        assert!(matches!(err, DevTokenError::DirMode { mode: 0o1777, .. }), "{err:?}");
        assert!(!path.exists());
    }

    #[test]
    fn the_directory_is_created_private() {
        let dir = private_tempdir();
        let path = dir.path().join("ringfwd").join("dev-token");
        write_dev_token(&path, "aaa.bbb.ccc").unwrap();
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        assert_eq!(read_dev_token(&path).unwrap(), "aaa.bbb.ccc");
    }

    #[test]
    fn bad_token_is_not_written() {
        let dir = private_tempdir();
        let path = dir.path().join("token");
        for token in ["", "a b", "a\nb"] {
            let err = write_dev_token(&path, token).unwrap_err();
            assert!(matches!(err, DevTokenError::BadToken), "{err:?}");
        }
        assert!(!path.exists());
    }
}

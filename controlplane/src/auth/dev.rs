//! The development token file: how a daemon running with a generated key hands its token to
//! `ringfwd ctl` on the same host.
//!
//! Owns [`write_dev_token`] (mode 0600, replaced atomically: a reader sees the old token or
//! the new one, never a part) and [`read_dev_token`] (refuses a symlink, a file of another user
//! and a file others may read: `ringfwd ctl` must never send another file's contents as its
//! token). This is the only file I/O of [`crate::auth`]; it must never log or print the token.

use std::fs::{OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::token::MAX_TOKEN_BYTES;

/// Mode of the token file: read and write for its owner only.
pub const DEV_TOKEN_FILE_MODE: u32 = 0o600;

/// Writes `token` and a newline to `path` with mode 0600: into a new temporary file in the
/// same directory, synced, then renamed over `path`. An existing file is replaced.
pub fn write_dev_token(path: &Path, token: &str) -> io::Result<()> {
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES || token.contains(char::is_whitespace) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a token is 1..=4096 bytes without whitespace"));
    }
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".ringfwd-token-")
        .permissions(Permissions::from_mode(DEV_TOKEN_FILE_MODE))
        .tempfile_in(dir)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Reads the token [`write_dev_token`] wrote. Fails when `path` is a symlink (not followed: in a
/// shared directory another user could point it at any file this user may read), not a regular
/// file, owned by another user than this process's (or root's), readable or writable by its
/// group or others (the token would have leaked), or when it does not hold one token.
pub fn read_dev_token(path: &Path) -> io::Result<String> {
    let file = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
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
    if metadata.uid() != me && metadata.uid() != 0 {
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
mod tests {
    use super::*;
    use std::fs;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn written_file_is_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_dev_token(&path, "aaa.bbb.ccc").unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap(), "aaa.bbb.ccc\n");
        assert_eq!(read_dev_token(&path).unwrap(), "aaa.bbb.ccc");
    }

    #[test]
    fn rewrite_replaces_a_wider_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
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
        let dir = tempfile::tempdir().unwrap();
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
        let dir = tempfile::tempdir().unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        let missing = read_dev_token(&dir.path().join("none")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        fs::set_permissions(dir.path(), Permissions::from_mode(0o700)).unwrap();
        assert!(read_dev_token(dir.path()).is_err());
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
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
    fn a_file_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_dev_token(&path, "aaa.bbb.ccc").unwrap();
        // Only root can give a file away; elsewhere the check is covered by the owner being this user.
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
            let err = read_dev_token(&path).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
            assert!(err.to_string().contains("4242"), "{err}");
        } else {
            assert_eq!(read_dev_token(&path).unwrap(), "aaa.bbb.ccc");
        }
    }

    #[test]
    fn bad_token_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        for token in ["", "a b", "a\nb"] {
            let err = write_dev_token(&path, token).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert!(!path.exists());
    }
}

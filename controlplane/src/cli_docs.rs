//! Shell completions and man pages, generated from the command line's clap definition (`ringfwd completions`,
//! `ringfwd man`), so they can never drift from what the binary accepts.
//!
//! Owns the rendering ([`completions`], [`man_page`]) and the writing of one page per command into a directory
//! ([`write_man_pages`]), with errors that name the path. It takes the [`clap::Command`] from the caller (the
//! definition lives with `main`) and must never parse arguments nor run anything it documents.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Why a man page or a completion script could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    /// The output directory could not be created.
    #[error("cannot create the man page directory {}: {source}", path.display())]
    CreateDir {
        /// The directory given with `--dir`.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A page could not be written to its file.
    #[error("cannot write the man page {}: {source}", path.display())]
    WritePage {
        /// The page's file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Standard output could not be written (a closed pipe, a full disk).
    #[error("cannot write to standard output: {0}")]
    Stdout(#[source] std::io::Error),
}

/// Writes the completion script of `command` for `shell` to `out`.
pub fn completions(shell: Shell, command: &mut clap::Command, out: &mut dyn Write) -> Result<(), DocsError> {
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, command, name, &mut script);
    emit(&script, out)
}

/// Writes the man page (roff, section 1) of `command` itself to `out`: the page [`write_man_pages`] writes first.
pub fn man_page(command: clap::Command, out: &mut dyn Write) -> Result<(), DocsError> {
    let mut page = Vec::new();
    clap_mangen::Man::new(prepared(command)).render(&mut page).map_err(DocsError::Stdout)?;
    emit(&page, out)
}

/// Writes `bytes` to `out`; a reader that went away (`| head`) is not an error.
fn emit(bytes: &[u8], out: &mut dyn Write) -> Result<(), DocsError> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(DocsError::Stdout(e)),
        _ => Ok(()),
    }
}

/// Writes one man page per command into `dir` (created if missing): `ringfwd.1` for `command`, and for every
/// subcommand that is not hidden, at any depth, `ringfwd-SUB.1`, `ringfwd-SUB-SUBSUB.1`, ... (the `help`
/// subcommand has none). Answers the files written, the top page first.
pub fn write_man_pages(command: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, DocsError> {
    std::fs::create_dir_all(dir).map_err(|source| DocsError::CreateDir { path: dir.to_path_buf(), source })?;
    let mut written = Vec::new();
    write_tree(prepared(command), dir, &mut written)?;
    Ok(written)
}

/// `command` as its pages show it: without the `help` subcommand (every command has `--help`), and built, which
/// names every subcommand after its parents (`ringfwd-ctl-session`), as its page is named.
fn prepared(command: clap::Command) -> clap::Command {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    command
}

fn write_tree(command: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<(), DocsError> {
    let man = clap_mangen::Man::new(command.clone());
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page).map_err(|source| DocsError::WritePage { path: path.clone(), source })?;
    std::fs::write(&path, page).map_err(|source| DocsError::WritePage { path: path.clone(), source })?;
    written.push(path);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_tree(sub.clone(), dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> clap::Command {
        clap::Command::new("demo")
            .about("A demo.")
            .arg(clap::Arg::new("config").long("config").help("The config file."))
            .subcommand(
                clap::Command::new("ctl").about("Drive it.").subcommand(clap::Command::new("node").about("The node.")),
            )
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn completions_name_the_subcommands_and_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::PowerShell] {
            let mut out = Vec::new();
            completions(shell, &mut command(), &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            assert!(script.contains("ctl") && script.contains("config"), "{shell}: {script}");
        }
    }

    #[test]
    fn a_page_per_visible_command_named_after_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_man_pages(command(), &dir.path().join("man1")).unwrap();
        let names: Vec<_> = written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["demo.1", "demo-ctl.1", "demo-ctl-node.1"]);
        let top = std::fs::read_to_string(&written[0]).unwrap();
        assert!(top.contains(".TH demo 1"), "{top}");
        assert!(top.contains("\\-\\-config"), "{top}");
        let mut page = Vec::new();
        man_page(command(), &mut page).unwrap();
        assert_eq!(String::from_utf8(page).unwrap(), top, "the printed page is the written one");
    }

    #[test]
    fn an_unwritable_directory_is_named() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let err = write_man_pages(command(), &file.path().join("man1")).unwrap_err();
        assert!(matches!(err, DocsError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains(&file.path().display().to_string()), "{err}");
    }
}

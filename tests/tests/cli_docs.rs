//! Shell completions and man pages as a packager gets them from the real binary: `ringfwd completions SHELL`
//! prints a script for each supported shell naming the real subcommands and flags, and refuses a shell it does not
//! know by listing those it does; `ringfwd man` prints the roff page of `ringfwd`, and `ringfwd man --dir DIR`
//! writes it and one page per subcommand, or names the directory it cannot create.

use std::path::Path;

use ringfwd_tests::daemon::run_to_exit;

/// `ringfwd <args>` to completion: whether it succeeded, its stdout and its stderr.
fn ringfwd(args: &[&str]) -> (bool, String, String) {
    run_to_exit(args, None)
}

#[test]
fn completions_cover_every_shell_and_name_the_real_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (ok, script, stderr) = ringfwd(&["completions", shell]);
        assert!(ok, "{shell}: {stderr}");
        // Long flags without their dashes: fish writes `-l print-config`.
        for word in ["ctl", "subscription", "print-config", "check-config", "timeout-ms", "completions", "man"] {
            assert!(script.contains(word), "the {shell} script does not mention {word:?}");
        }
        let config_flag = if shell == "fish" { "-l config" } else { "--config" };
        assert!(script.contains(config_flag), "the {shell} script does not offer {config_flag:?}");
        // A flag three subcommands deep (`ctl subscription create --out-ssrc`); clap_complete's fish script stops
        // at two levels (clap-rs/clap#5975).
        if shell != "fish" {
            assert!(script.contains("out-ssrc"), "the {shell} script does not mention --out-ssrc");
        }
    }
    let (ok, script, _) = ringfwd(&["completions", "bash"]);
    assert!(ok && script.contains("complete -F _ringfwd"), "a bash completion function for ringfwd");
    let (ok, stdout, stderr) = ringfwd(&["completions", "tcsh"]);
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("tcsh") && stderr.contains("bash, elvish, fish, powershell, zsh"), "{stderr}");
}

#[test]
fn man_prints_the_page_of_ringfwd_and_writes_one_per_subcommand() {
    let (ok, page, stderr) = ringfwd(&["man"]);
    assert!(ok, "{stderr}");
    assert!(page.contains(".TH ringfwd 1"), "a section-1 roff page: {page}");
    // roff escapes hyphens: \-\-config is --config.
    for word in ["\\-\\-config", "\\-\\-print\\-config", "\\-\\-check\\-config", "ringfwd\\-ctl(1)", "ringfwd\\-man(1)"]
    {
        assert!(page.contains(word), "the page does not mention {word:?}: {page}");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let man1 = dir.path().join("share/man/man1");
    let (ok, stdout, stderr) = ringfwd(&["man", "--dir", man1.to_str().expect("utf-8")]);
    assert!(ok, "{stderr}");
    assert!(stdout.is_empty(), "the pages go to files only: {stdout}");
    let read = |name: &str| std::fs::read_to_string(man1.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(read("ringfwd.1"), page, "the written top page is the printed one");
    let pages = std::fs::read_dir(&man1).expect("the directory").count();
    assert!(stderr.contains(&format!("wrote {pages} man pages to {}", man1.display())), "{stderr}");
    let create = read("ringfwd-ctl-stream-create.1");
    assert!(create.contains("\\-\\-ssrc") && create.contains("\\-\\-endpoint"), "{create}");
    assert!(read("ringfwd-ctl.1").contains("RINGFWD_TOKEN"), "the environment variables ctl reads");
    for name in ["ringfwd-ctl-subscription-switch.1", "ringfwd-tune-check.1", "ringfwd-completions.1", "ringfwd-man.1"]
    {
        assert!(!read(name).is_empty(), "{name}");
    }
    assert!(!man1.join("ringfwd-help.1").exists(), "no page for the help subcommand");

    // A directory that cannot be created is named.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").expect("a file");
    let below_a_file = Path::new(&file).join("man1");
    let (ok, _, stderr) = ringfwd(&["man", "--dir", below_a_file.to_str().expect("utf-8")]);
    assert!(!ok && stderr.contains(below_a_file.to_str().expect("utf-8")), "{stderr}");
}

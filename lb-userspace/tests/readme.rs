//! The commands README.md tells people to type still work, and the generated shell
//! completions and man pages are there. No root.
//!
//! Every line of a ```sh block in README.md that starts with `lbd`, `lbctl`,
//! `cargo xtask` or `scripts/` is checked ("```text" blocks are not):
//! - `lbd`/`lbctl` with `--generate` or `lbd --check-config` only print or read, so
//!   they are run (from the repository root, output redirections dropped) and must
//!   succeed; any other `lbd`/`lbctl` line is run with `--help` appended, which
//!   clap answers with exit 0 only when every argument before it parses;
//! - `cargo xtask ARGS` likewise: `cargo xtask ARGS --help` must exit 0;
//! - `scripts/X ...`: the script must exist and be executable.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const LBD: &str = env!("CARGO_BIN_EXE_lbd");
const LBCTL: &str = env!("CARGO_BIN_EXE_lbctl");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A command found in a ```sh block: its 1-based line and its words, cut at the
/// first redirection, pipe or list operator, without the trailing comment.
#[derive(Debug, PartialEq)]
struct ReadmeCommand {
    line: usize,
    words: Vec<String>,
}

/// Shell-like word splitting: whitespace separates words, single and double quotes
/// group; stops at an unquoted `#` starting a word (a comment).
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None if c == '#' && !in_word => break,
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// The checked commands of the ```sh blocks of `text` (a README).
fn sh_commands(text: &str) -> Vec<ReadmeCommand> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            if in_sh {
                in_sh = false;
            } else {
                in_sh = info.trim() == "sh";
            }
            pending = None;
            continue;
        }
        if !in_sh {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        if let Some(head) = trimmed.strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(trimmed);
        let mut words = Vec::new();
        for w in split_words(&joined) {
            let operator = w.starts_with('>')
                || w.starts_with("2>")
                || w.starts_with('<')
                || ["|", "||", "&&", ";", "&"].contains(&w.as_str());
            if operator {
                break;
            }
            words.push(w);
        }
        let checked = match words.first().map(String::as_str) {
            Some("lbd" | "lbctl") => true,
            Some("cargo") => words.get(1).is_some_and(|w| w == "xtask"),
            Some(w) => w.starts_with("scripts/"),
            None => false,
        };
        if checked {
            out.push(ReadmeCommand { line: start, words });
        }
    }
    out
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(program: &str, args: &[String]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"))
}

/// Checks one README command; `Err` says why it does not work.
fn check(cmd: &ReadmeCommand) -> Result<(), String> {
    let what = format!("README.md:{}: `{}`", cmd.line, cmd.words.join(" "));
    let first = cmd.words[0].as_str();
    let args = &cmd.words[1..];
    match first {
        "lbd" | "lbctl" => {
            let bin = if first == "lbd" { LBD } else { LBCTL };
            let reads_only = args.first().is_some_and(|a| a.starts_with("--generate"))
                || (first == "lbd" && args.first().is_some_and(|a| a == "--check-config"));
            if reads_only {
                let out = run(bin, args);
                if !out.status.success() || out.stdout.is_empty() {
                    return Err(format!("{what}: {}", text(&out)));
                }
            } else {
                let mut with_help = args.to_vec();
                with_help.push("--help".into());
                let out = run(bin, &with_help);
                if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("Usage")
                {
                    return Err(format!("{what} is not accepted by {first}: {}", text(&out)));
                }
            }
        }
        "cargo" => {
            let mut with_help = args.to_vec();
            with_help.push("--help".into());
            let out = run(env!("CARGO"), &with_help);
            if !out.status.success() {
                return Err(format!(
                    "{what}: `cargo {} --help`: {}",
                    with_help.join(" "),
                    text(&out)
                ));
            }
        }
        script => {
            let path = repo_root().join(script);
            let mode = std::fs::metadata(&path)
                .map_err(|e| format!("{what}: {}: {e}", path.display()))?
                .permissions()
                .mode();
            if mode & 0o111 == 0 {
                return Err(format!("{what}: {} is not executable", path.display()));
            }
        }
    }
    Ok(())
}

#[test]
fn extraction_follows_fences_comments_and_redirections() {
    let sample = "```sh\n\
        lbctl list --stats   # like ipvsadm\n\
        lbd --generate man > /tmp/x.1\n\
        install -m 0644 x /etc/y\n\
        cargo xtask demo --keep\n\
        scripts/realserver.sh up 192.0.2.1 && echo done\n\
        lbctl explain \\\n  1.2.3.4:5 6.7.8.9:80/tcp\n\
        ```\n\
        ```text\n\
        lbctl explain SRC:PORT VIP:PORT/PROTO\n\
        ```\n\
        ```\n\
        lbctl list\n\
        ```\n";
    let got: Vec<(usize, String)> = sh_commands(sample)
        .into_iter()
        .map(|c| (c.line, c.words.join(" ")))
        .collect();
    let want: Vec<(usize, String)> = [
        (2, "lbctl list --stats"),
        (3, "lbd --generate man"),
        (5, "cargo xtask demo --keep"),
        (6, "scripts/realserver.sh up 192.0.2.1"),
        (7, "lbctl explain 1.2.3.4:5 6.7.8.9:80/tcp"),
    ]
    .into_iter()
    .map(|(l, s)| (l, s.to_owned()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(split_words("a 'b c' \"d\"e # f"), ["a", "b c", "de"]);
}

#[test]
fn readme_commands_match_the_cli() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let commands = sh_commands(&readme);
    for kind in ["lbd", "lbctl", "cargo"] {
        assert!(
            commands.iter().any(|c| c.words[0] == kind),
            "no `{kind}` command found in README.md's sh blocks: {commands:?}"
        );
    }
    let failures: Vec<String> = commands.iter().filter_map(|c| check(c).err()).collect();
    eprintln!("checked {} README commands", commands.len());
    assert!(
        failures.is_empty(),
        "{} of {} README commands fail:\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n\n")
    );
    // The checker does reject what is wrong.
    for bad in [
        "lbctl lsit",
        "lbctl list --statz",
        "lbd --frobnicate",
        "cargo xtask nonsense",
        "scripts/nonexistent.sh",
        "lbctl --generate completions-tcsh",
    ] {
        let cmd = ReadmeCommand {
            line: 0,
            words: split_words(bad),
        };
        assert!(check(&cmd).is_err(), "`{bad}` passed the check");
    }
}

#[test]
fn completions_and_man_pages_are_generated() {
    for (bin, name) in [(LBD, "lbd"), (LBCTL, "lbctl")] {
        for (what, marker) in [
            ("completions-bash", format!("complete -F _{name}")),
            ("completions-zsh", format!("#compdef {name}")),
            ("completions-fish", format!("complete -c {name}")),
            ("man", format!(".TH {name} 1")),
        ] {
            let out = run(bin, &["--generate".into(), what.into()]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{name} --generate {what}: {}",
                text(&out)
            );
            assert!(
                stdout.contains(&marker),
                "{name} --generate {what}: no {marker:?} in\n{stdout}"
            );
            // The same with `--generate=WHAT`.
            let eq = run(bin, &[format!("--generate={what}")]);
            assert_eq!(eq.stdout, out.stdout, "{name} --generate={what}");
        }
        let out = run(bin, &["--generate".into(), "completions-tcsh".into()]);
        assert!(!out.status.success(), "{name}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("completions-bash"));
        // Hidden: not in --help.
        let help = run(bin, &["--help".into()]);
        assert!(!String::from_utf8_lossy(&help.stdout).contains("--generate"));
    }
    // lbctl's completions know its subcommands and their options.
    let bash = run(LBCTL, &["--generate".into(), "completions-bash".into()]);
    let bash = String::from_utf8_lossy(&bash.stdout);
    for word in ["explain", "detach", "--pin-dir", "--stats", "--socket"] {
        assert!(
            bash.contains(word),
            "{word} missing from lbctl's bash completion"
        );
    }
    let man = run(LBCTL, &["--generate".into(), "man".into()]);
    let man = String::from_utf8_lossy(&man.stdout);
    for word in ["explain", "vrrp", "reload"] {
        assert!(man.contains(word), "{word} missing from lbctl's man page");
    }
}

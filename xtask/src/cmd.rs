//! Small process helpers.
//!
//! Every command that changes something is echoed as `$ <command line>` before it
//! runs, and a failure names the command line and its exit status. Read-only probes
//! (`rustc -vV`, `ldd`, `dpkg-query`, ...) are silent unless `--verbose` is given,
//! so that a no-op bootstrap stays quiet and fast.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Makes probes echo their command lines too (`cargo xtask --verbose ...`).
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// A command line under construction: program, arguments, environment changes and
/// working directory, printable exactly as a person would type it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    env_removes: Vec<OsString>,
    cwd: Option<PathBuf>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            env_removes: Vec::new(),
            cwd: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets a variable for the child; shown as `K=V` in front of the command line.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.envs
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Removes an inherited variable for the child (not shown in the command line).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env_removes.push(key.as_ref().to_owned());
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The command line, shell-quoted, with `K=V` prefixes for added variables.
    pub fn display(&self) -> String {
        let mut line = String::new();
        for (k, v) in &self.envs {
            let _ = write!(line, "{}={} ", k.to_string_lossy(), quote(v));
        }
        line.push_str(&quote(&self.program));
        for arg in &self.args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        line
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for key in &self.env_removes {
            cmd.env_remove(key);
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// Echoes the command, runs it with inherited stdio and fails unless it exits 0.
    pub fn run(&self) -> Result<()> {
        let line = self.display();
        println!("$ {line}");
        let status = self
            .command()
            .status()
            .with_context(|| format!("failed to start `{line}`"))?;
        check_status(&line, status)
    }

    /// Runs the command with its stdout and stderr going to `log` (truncated first,
    /// headed by the command line), showing one progress line instead
    /// ("`label`... done in 41 s"). On failure prints the log's last
    /// [`LOG_TAIL_LINES`] lines and fails naming the command, its status and the log.
    pub fn run_logged(&self, label: &str, log: &Path) -> Result<()> {
        use std::io::Write as _;
        let line = self.display();
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        writeln!(file, "$ {line}").with_context(|| format!("writing {}", log.display()))?;
        let stderr = file
            .try_clone()
            .with_context(|| format!("opening {}", log.display()))?;
        print!("{label}... ");
        let _ = std::io::stdout().flush();
        let start = Instant::now();
        let status = self
            .command()
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(stderr)
            .status()
            .with_context(|| format!("failed to start `{line}`"))?;
        let took = seconds(start.elapsed());
        if status.success() {
            println!("done in {took} (log: {})", log.display());
            return Ok(());
        }
        println!("failed after {took}");
        let text = std::fs::read_to_string(log).unwrap_or_default();
        println!("--- last lines of {} ---", log.display());
        println!("{}", tail(&text, LOG_TAIL_LINES).trim_end());
        println!("---");
        bail!(
            "`{line}` failed: {} (full log: {})",
            describe_status(status),
            log.display()
        )
    }

    /// Echoes the command and replaces this process with it. Only returns on error.
    pub fn exec(&self) -> anyhow::Error {
        use std::os::unix::process::CommandExt as _;
        let line = self.display();
        println!("$ {line}");
        let err = self.command().exec();
        anyhow::Error::new(err).context(format!("failed to exec `{line}`"))
    }

    /// Runs a read-only probe with captured output; `None` if it could not be
    /// started. The exit status is left to the caller.
    pub fn probe_output(&self) -> Option<Output> {
        if verbose() {
            println!("$ {}", self.display());
        }
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .ok()
    }

    /// Runs a read-only probe and returns its stdout if it started and exited 0.
    pub fn probe(&self) -> Option<String> {
        let out = self.probe_output()?;
        if !out.status.success() {
            if verbose() {
                println!(
                    "  ({}: {})",
                    describe_status(out.status),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            return None;
        }
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn check_status(line: &str, status: ExitStatus) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("`{line}` failed: {}", describe_status(status))
    }
}

/// How much of a failed [`Cmd::run_logged`] command's log is printed.
pub const LOG_TAIL_LINES: usize = 40;

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> &str {
    let trimmed = text.trim_end_matches('\n');
    match trimmed.rmatch_indices('\n').nth(n.saturating_sub(1)) {
        Some((i, _)) if n > 0 => &trimmed[i + 1..],
        _ if n == 0 => "",
        _ => trimmed,
    }
}

/// "0.4 s" under ten seconds, else whole seconds ("41 s").
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1} s")
    } else {
        format!("{s:.0} s")
    }
}

/// "exit status 101" or "killed by signal 9".
pub fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => format!("{status}"),
    }
}

/// Quotes a word for a POSIX shell, leaving plain words alone.
pub fn quote(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Finds an executable by name on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_when_needed() {
        let cmd = Cmd::new("dpkg-query")
            .args(["-W", "-f=${Status}", "has space", "it's"])
            .env("DEBIAN_FRONTEND", "noninteractive");
        assert_eq!(
            cmd.display(),
            r"DEBIAN_FRONTEND=noninteractive dpkg-query -W '-f=${Status}' 'has space' 'it'\''s'"
        );
    }

    #[test]
    fn failure_names_command_and_status() {
        let err = Cmd::new("sh").args(["-c", "exit 3"]).run().unwrap_err();
        assert_eq!(err.to_string(), "`sh -c 'exit 3'` failed: exit status 3");
    }

    #[test]
    fn logged_run_keeps_output_in_the_log() {
        let dir = std::env::temp_dir().join(format!("xtask-cmd-test-{}", std::process::id()));
        let log = dir.join("sub/build.log");
        Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .run_logged("testing", &log)
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "$ sh -c 'echo out; echo err >&2'\nout\nerr\n");
        let err = Cmd::new("sh")
            .args(["-c", "seq 100; exit 3"])
            .run_logged("testing", &log)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`sh -c 'seq 100; exit 3'` failed: exit status 3"),
            "{err}"
        );
        assert!(err.contains("build.log"), "{err}");
        assert!(std::fs::read_to_string(&log)
            .unwrap()
            .ends_with("99\n100\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a\nb\nc", 5), "a\nb\nc");
        assert_eq!(tail("a\nb\nc\n", 0), "");
        assert_eq!(tail("", 3), "");
        assert_eq!(seconds(Duration::from_millis(420)), "0.4 s");
        assert_eq!(seconds(Duration::from_millis(41_400)), "41 s");
    }

    #[test]
    fn probe_returns_stdout_only_on_success() {
        assert_eq!(
            Cmd::new("sh").args(["-c", "echo hi"]).probe().as_deref(),
            Some("hi\n")
        );
        assert_eq!(Cmd::new("sh").args(["-c", "exit 1"]).probe(), None);
        assert_eq!(Cmd::new("/nonexistent/xtask-probe").probe(), None);
    }
}

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
    fn probe_returns_stdout_only_on_success() {
        assert_eq!(
            Cmd::new("sh").args(["-c", "echo hi"]).probe().as_deref(),
            Some("hi\n")
        );
        assert_eq!(Cmd::new("sh").args(["-c", "exit 1"]).probe(), None);
        assert_eq!(Cmd::new("/nonexistent/xtask-probe").probe(), None);
    }
}

//! `cargo xtask build` and `cargo xtask run`: host builds (lb-ebpf is built by
//! lb-userspace's build.rs, so it is excluded here) and running the daemon.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;

use crate::bootstrap::{self, Needs};
use crate::cmd::Cmd;
use crate::repo_root;

pub fn build(release: bool) -> Result<()> {
    bootstrap::bootstrap(Needs::default())?;
    let mut cmd = Cmd::new("cargo")
        .args(["build", "--workspace", "--exclude", "lb-ebpf"])
        .current_dir(repo_root()?);
    if release {
        cmd = cmd.arg("--release");
    }
    cmd.run()
}

/// Builds lbd in release mode and replaces this process with it.
pub fn run_lbd(args: Vec<OsString>) -> Result<()> {
    bootstrap::bootstrap(Needs::default())?;
    let root = repo_root()?;
    Cmd::new("cargo")
        .args(["build", "--release", "-p", "lb-userspace"])
        .current_dir(&root)
        .run()?;
    let lbd = target_dir(root).join("release/lbd");
    // Runs in the caller's directory, so relative paths in ARGS mean what they say.
    Err(Cmd::new(&lbd).args(args).exec().context("starting lbd"))
}

/// `$CARGO_TARGET_DIR` (relative to the repository root) or `<root>/target`.
fn target_dir(root: PathBuf) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

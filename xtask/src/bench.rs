//! `cargo xtask bench`: bootstrap, then run the `lb-bench` binary of `lb-tests`
//! in release mode, writing results to `--out` (default `bench-results/`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::bootstrap::{self, Needs};
use crate::cmd::Cmd;
use crate::repo_root;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Short runs, for a smoke test of the bench itself.
    #[arg(long)]
    pub quick: bool,
    /// Results directory (relative paths are taken from the current directory;
    /// default: bench-results/ at the repository root).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Whether package `lb-tests` exists (it lives in `tests/`).
pub fn lb_tests_exists(root: &Path) -> bool {
    std::fs::read_to_string(root.join("tests/Cargo.toml"))
        .is_ok_and(|manifest| manifest.contains("\"lb-tests\""))
}

pub fn run(args: Args) -> Result<()> {
    let root = repo_root()?;
    if !lb_tests_exists(&root) {
        bail!(
            "the bench lives in package `lb-tests` (binary `lb-bench`), which does not exist \
             yet: no {} declaring it",
            root.join("tests/Cargo.toml").display()
        );
    }
    bootstrap::bootstrap(Needs::default())?;
    // The labs need what the tests need (keepalived, xdp-tools) plus the proxies the
    // bench compares against (haproxy, nginx) and the load generator (wrk).
    bootstrap::ensure_test_packages(crate::test::TEST_PACKAGES)?;
    let out = match args.out {
        Some(dir) if dir.is_relative() => std::env::current_dir()
            .context("reading the current directory")?
            .join(dir),
        Some(dir) => dir,
        None => root.join("bench-results"),
    };
    let mut cmd = Cmd::new("cargo")
        .args([
            "run",
            "--release",
            "-p",
            "lb-tests",
            "--bin",
            "lb-bench",
            "--",
        ])
        .current_dir(&root);
    if args.quick {
        cmd = cmd.arg("--quick");
    }
    cmd.arg("--out").arg(&out).run()?;
    println!("xtask: bench results in {}", out.display());
    Ok(())
}

//! Project automation, run as `cargo xtask <command>` (alias in .cargo/config.toml).
//!
//! Depends on nothing in the workspace, so it compiles before the eBPF toolchain
//! exists and can install it. Every command starts with [`bootstrap::bootstrap`].

mod bench;
mod bootstrap;
mod build;
mod cmd;
mod demo;
mod demo_ecmp;
mod fuzz;
mod test;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Build, test and bench the load balancer"
)]
struct Cli {
    /// Also echo the read-only probes (rustc -vV, ldd, dpkg-query, ...).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what is missing: nightly + rust-src, bpf-linker (nightly's LLVM), bpffs.
    Bootstrap,
    /// Build the workspace (lbd embeds the eBPF program).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// fmt, clippy (host and eBPF), then all tests; CI runs this as root.
    Test(test::Args),
    /// Run the lb-bench benchmarks (package lb-tests).
    Bench(bench::Args),
    /// The mutated-frame robustness test at scale (1M frames, fixed seed, time budget).
    Fuzz(fuzz::Args),
    /// The narrated lab: traffic through the VIP, a backend failing, lbd killed -9;
    /// `--ecmp`: three LB nodes behind an ECMP router, the VIP announced over BGP.
    Demo(demo::Args),
    /// Build lbd (release) and run it with ARGS: `cargo xtask run -- ARGS`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::set_verbose(cli.verbose);
    let result = match cli.command {
        Command::Bootstrap => bootstrap::bootstrap(bootstrap::Needs::default()),
        Command::Build { release } => build::build(release),
        Command::Test(args) => test::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Fuzz(args) => fuzz::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Run { args } => build::run_lbd(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn repo_root() -> Result<PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask's manifest directory has no parent")?;
    anyhow::ensure!(
        root.join("Cargo.toml").is_file(),
        "no Cargo.toml at {} (was xtask moved after it was built?)",
        root.display()
    );
    Ok(root.to_path_buf())
}

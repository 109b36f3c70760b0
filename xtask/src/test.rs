//! `cargo xtask test`: bootstrap, test packages, then fmt, clippy (host and
//! eBPF) and `cargo test`, in that order, stopping at the first failure.

use std::ffi::OsString;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::bootstrap::{self, Needs};
use crate::cmd::Cmd;
use crate::repo_root;

/// Debian packages the integration tests need (netns plumbing, packet capture,
/// traffic, the keepalived health-check integration). Add to this list as tests
/// grow new needs.
pub const TEST_PACKAGES: &[&str] = &[
    "iproute2",
    "ethtool",
    "tcpdump",
    "curl",
    "python3",
    "keepalived",
    "bird2", // tests/tests/ecmp_e2e.rs: the BGP speakers of the ECMP lab
    "xdp-tools",
    "openssl",
    "python3-yaml",
    "systemd",
    // The bench's side-by-side comparison (also run, quick, by the test command).
    "haproxy",
    "nginx",
    "libnginx-mod-stream",
    "wrk",
];

/// Variables that would pin the host toolchain in a nested `cargo +nightly`
/// (`cargo xtask` runs under the stable cargo, which exports some of them).
const TOOLCHAIN_PINS: &[&str] = &[
    "RUSTC",
    "RUSTUP_TOOLCHAIN",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip cargo fmt and both clippy runs; only run the tests.
    #[arg(long)]
    pub skip_lint: bool,
    /// Passed to `cargo test` (test name filter, then `-- <harness args>`).
    #[arg(last = true)]
    pub cargo_test_args: Vec<OsString>,
}

pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    bootstrap::bootstrap(Needs {
        lint: !args.skip_lint,
    })?;
    bootstrap::ensure_test_packages(TEST_PACKAGES)?;

    let root = repo_root()?;
    let mut stages: Vec<(&str, Cmd)> = Vec::new();
    if !args.skip_lint {
        stages.push((
            "fmt",
            Cmd::new("cargo").args(["fmt", "--all", "--", "--check"]),
        ));
        stages.push((
            "clippy",
            Cmd::new("cargo").args([
                "clippy",
                "--workspace",
                "--exclude",
                "lb-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ));
        // aya-ebpf-bindings selects its arch through aya-build, which reads
        // AYA_BPF_TARGET_ARCH. Setting CARGO_CFG_BPF_TARGET_ARCH instead would tell
        // aya-build (0.2) that cargo already passed `--cfg bpf_target_arch`, so no
        // cfg gets emitted and the bindings fail to compile; never inherit it.
        let mut ebpf_clippy = Cmd::new("cargo")
            .env("AYA_BPF_TARGET_ARCH", "x86_64")
            .env_remove("CARGO_CFG_BPF_TARGET_ARCH")
            .args(["+nightly", "clippy", "-p", "lb-ebpf"])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            // Own target dir: no fight over the host build's lock and artifacts.
            .arg("--target-dir")
            .arg(root.join("target/ebpf-clippy"))
            .args(["--", "-D", "warnings"]);
        for var in TOOLCHAIN_PINS {
            ebpf_clippy = ebpf_clippy.env_remove(var);
        }
        stages.push(("clippy (eBPF)", ebpf_clippy));
    }
    if !crate::bench::lb_tests_exists(&root) {
        println!("xtask: note: package lb-tests does not exist yet; no root-only tests to run");
    }
    stages.push((
        "tests",
        Cmd::new("cargo")
            .args(["test", "--workspace", "--exclude", "lb-ebpf"])
            .args(&args.cargo_test_args),
    ));

    // The benchmark harness runs in quick mode so it never rots; CI checks that it
    // runs, not its numbers (those come from `cargo xtask bench`).
    if args.cargo_test_args.is_empty() && crate::bench::lb_tests_exists(&root) {
        stages.push((
            "bench harness (quick)",
            Cmd::new("cargo")
                .args([
                    "run",
                    "--release",
                    "-q",
                    "-p",
                    "lb-tests",
                    "--bin",
                    "lb-bench",
                    "--",
                ])
                .args(["--quick", "--out"])
                .arg(root.join("target/bench-quick")),
        ));
    }

    // The README's main command, run non-interactively: it checks every step's outcome
    // and exits non-zero on the first that fails.
    if args.cargo_test_args.is_empty() {
        stages.push(("demo", Cmd::new("cargo").args(["xtask", "demo"])));
        // The active-active scene: ECMP router, three LB nodes with BIRD (~25 s).
        stages.push((
            "demo --ecmp",
            Cmd::new("cargo").args(["xtask", "demo", "--ecmp"]),
        ));
    }

    let names: Vec<&str> = stages.iter().map(|(name, _)| *name).collect();
    for (name, cmd) in stages {
        println!("xtask: {name}");
        cmd.current_dir(&root)
            .run()
            .with_context(|| format!("{name} failed"))?;
    }
    println!(
        "xtask: all checks passed ({}) in {:.1} s",
        names.join(", "),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

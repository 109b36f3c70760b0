//! Toolchain bootstrap: find what a build of this workspace needs and is missing,
//! and install it.
//!
//! The work is split in three so the decisions can be unit-tested:
//! [`detect`] probes the machine (cheap: a couple of `rustc`/`ldd` calls and some
//! file checks, no network), [`plan`] turns the list of [`Missing`] items into
//! [`Step`]s (pure), and [`bootstrap`] either executes the steps (root on Debian,
//! or only unprivileged steps needed) or prints them for a person to run and fails.
//!
//! Checks, in order: rustup, the `nightly` toolchain, nightly's `rust-src`,
//! `bpf-linker` built against nightly's LLVM major, bpffs at `/sys/fs/bpf`; with
//! lints requested also nightly clippy and rustfmt/clippy of the host toolchain.
//!
//! `XTASK_PRETEND_NOT_ROOT=1` makes xtask behave as an unprivileged user, to see
//! the printed instructions without leaving root.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cmd::{self, Cmd};

/// Where bpffs must be mounted (lbd pins its maps there).
pub const BPFFS: &str = "/sys/fs/bpf";

/// Set once `apt-get update` ran in this xtask process.
static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// What the caller is about to do, and so what must be present.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// `cargo fmt` / `cargo clippy` (host) and `cargo +nightly clippy` (eBPF).
    pub lint: bool,
}

/// Something the build needs that the machine lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Rustup,
    NightlyToolchain,
    NightlyRustSrc,
    NightlyClippy,
    /// Components (`rustfmt`, `clippy`) of the host toolchain, named if known.
    HostComponents {
        toolchain: Option<String>,
        components: Vec<String>,
    },
    BpfLinker {
        problem: LinkerProblem,
        /// Nightly rustc's LLVM major; bpf-linker must use the same one.
        llvm_major: u32,
        /// Of `llvm-<major>-dev`, `libpolly-<major>-dev`: those not installed.
        missing_debs: Vec<String>,
    },
    Bpffs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkerProblem {
    NotFound,
    /// Linked against another LLVM major than nightly rustc's.
    LlvmMismatch {
        linker_major: u32,
    },
    /// `ldd` says its libLLVM is "not found".
    LibLlvmMissing,
}

/// One thing to do, with the reason printed as `xtask: <why>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub why: String,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Cannot be automated here; the text says what to do.
    Manual(String),
    /// `rustup <args>`.
    Rustup(Vec<String>),
    /// `apt-get update` (once per run) and `apt-get install -y <pkgs>`.
    AptInstall(Vec<String>),
    /// `LLVM_PREFIX=/usr/lib/llvm-M cargo install bpf-linker ... --features llvm-M`.
    CargoInstallBpfLinker {
        llvm_major: u32,
        force: bool,
    },
    MountBpffs,
    /// Later checks depend on earlier steps: run `cargo xtask bootstrap` again.
    Recheck,
}

impl Action {
    pub fn needs_root(&self) -> bool {
        matches!(self, Action::AptInstall(_) | Action::MountBpffs)
    }

    /// The commands this action runs, in order (none for `Manual`/`Recheck`).
    pub fn commands(&self) -> Vec<Cmd> {
        match self {
            Action::Manual(_) | Action::Recheck => Vec::new(),
            Action::Rustup(args) => vec![Cmd::new("rustup").args(args)],
            Action::AptInstall(pkgs) => vec![apt_update(), apt_install(pkgs)],
            Action::CargoInstallBpfLinker { llvm_major, force } => {
                let mut cmd = Cmd::new("cargo")
                    .env("LLVM_PREFIX", format!("/usr/lib/llvm-{llvm_major}"))
                    .args(["install", "bpf-linker", "--no-default-features"])
                    .args(["--features", &format!("llvm-{llvm_major}")]);
                if *force {
                    cmd = cmd.arg("--force");
                }
                vec![cmd]
            }
            Action::MountBpffs => vec![Cmd::new("mount").args(["-t", "bpf", "bpf", BPFFS])],
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Rustup => write!(f, "rustup"),
            Missing::NightlyToolchain => write!(f, "nightly toolchain"),
            Missing::NightlyRustSrc => write!(f, "nightly rust-src"),
            Missing::NightlyClippy => write!(f, "nightly clippy"),
            Missing::HostComponents { components, .. } => {
                write!(f, "host toolchain {}", components.join(", "))
            }
            Missing::BpfLinker {
                problem,
                llvm_major,
                ..
            } => match problem {
                LinkerProblem::NotFound => write!(f, "bpf-linker"),
                LinkerProblem::LlvmMismatch { linker_major } => write!(
                    f,
                    "bpf-linker for LLVM {llvm_major} (have LLVM {linker_major})"
                ),
                LinkerProblem::LibLlvmMissing => write!(f, "bpf-linker's libLLVM"),
            },
            Missing::Bpffs => write!(f, "bpffs at {BPFFS}"),
        }
    }
}

/// Turns what is missing into what to do, in order. Pure.
pub fn plan(missing: &[Missing]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut recheck = false;
    for item in missing {
        match item {
            Missing::Rustup => {
                steps.push(Step {
                    why: "rustup is not on PATH nor in ~/.cargo/bin; it manages the nightly \
                          toolchain the eBPF program is built with. Install it (as the user \
                          who builds):"
                        .into(),
                    action: Action::Manual(
                        "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | \
                         sh -s -- -y --profile minimal --component rustfmt,clippy"
                            .into(),
                    ),
                });
                recheck = true;
            }
            Missing::NightlyToolchain => {
                steps.push(Step {
                    why: "installing the nightly toolchain: lb-ebpf is built for \
                          bpfel-unknown-none with nightly (-Z build-std=core needs rust-src; \
                          clippy lints it)"
                        .into(),
                    action: Action::Rustup(strings(&[
                        "toolchain",
                        "install",
                        "nightly",
                        "--profile",
                        "minimal",
                        "--component",
                        "rust-src",
                        "--component",
                        "clippy",
                    ])),
                });
                recheck = true;
            }
            Missing::NightlyRustSrc => steps.push(Step {
                why: "adding rust-src to nightly: -Z build-std=core compiles core from source \
                      for the eBPF target"
                    .into(),
                action: Action::Rustup(strings(&[
                    "component",
                    "add",
                    "rust-src",
                    "--toolchain",
                    "nightly",
                ])),
            }),
            Missing::NightlyClippy => steps.push(Step {
                why: "adding clippy to nightly: the eBPF crate is linted with `cargo +nightly \
                      clippy`"
                    .into(),
                action: Action::Rustup(strings(&[
                    "component",
                    "add",
                    "clippy",
                    "--toolchain",
                    "nightly",
                ])),
            }),
            Missing::HostComponents {
                toolchain,
                components,
            } => {
                let mut args = strings(&["component", "add"]);
                args.extend(components.iter().cloned());
                if let Some(tc) = toolchain {
                    args.extend(["--toolchain".to_string(), tc.clone()]);
                }
                steps.push(Step {
                    why: format!(
                        "adding {} to the {} toolchain: `cargo xtask test` runs cargo fmt and \
                         cargo clippy",
                        components.join(", "),
                        toolchain.as_deref().unwrap_or("active")
                    ),
                    action: Action::Rustup(args),
                });
            }
            Missing::BpfLinker {
                problem,
                llvm_major,
                missing_debs,
            } => {
                let m = *llvm_major;
                if !missing_debs.is_empty() {
                    steps.push(Step {
                        why: format!(
                            "installing {}: bpf-linker is built against the system LLVM {m}, \
                             the LLVM of nightly rustc",
                            missing_debs.join(" ")
                        ),
                        action: Action::AptInstall(missing_debs.clone()),
                    });
                }
                let (why, force) = match problem {
                    LinkerProblem::NotFound => (
                        format!(
                            "installing bpf-linker (LLVM {m}): aya-build links the eBPF object \
                             with it"
                        ),
                        false,
                    ),
                    LinkerProblem::LlvmMismatch { linker_major } => (
                        format!(
                            "rebuilding bpf-linker: it uses LLVM {linker_major} but nightly \
                             rustc emits LLVM {m} bitcode"
                        ),
                        true,
                    ),
                    LinkerProblem::LibLlvmMissing => (
                        format!(
                            "rebuilding bpf-linker: its libLLVM is missing; building it for \
                             LLVM {m}"
                        ),
                        true,
                    ),
                };
                steps.push(Step {
                    why,
                    action: Action::CargoInstallBpfLinker {
                        llvm_major: m,
                        force,
                    },
                });
            }
            Missing::Bpffs => steps.push(Step {
                why: format!("mounting bpffs at {BPFFS}: lbd pins its maps there"),
                action: Action::MountBpffs,
            }),
        }
    }
    if recheck {
        steps.push(Step {
            why: "then check again (bpf-linker must match the LLVM of the nightly just \
                  installed):"
                .into(),
            action: Action::Recheck,
        });
    }
    steps
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Who we are running as, and on what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub root: bool,
    pub debian: bool,
}

impl Host {
    pub fn current() -> Self {
        let pretend = std::env::var_os("XTASK_PRETEND_NOT_ROOT").is_some_and(|v| v != "0");
        Self {
            root: !pretend && effective_uid() == Some(0),
            debian: Path::new("/etc/debian_version").exists(),
        }
    }
}

/// Effective uid from `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_effective_uid(&status)
}

fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Why these steps cannot be executed by this process, if they cannot. Pure.
pub fn blocker(steps: &[Step], host: Host) -> Option<String> {
    if steps.iter().any(|s| matches!(s.action, Action::Manual(_))) {
        return Some("rustup is not installed".into());
    }
    if steps.iter().any(|s| s.action.needs_root()) {
        if !host.root {
            return Some("some steps need root and xtask is not running as root".into());
        }
        if !host.debian
            && steps
                .iter()
                .any(|s| matches!(s.action, Action::AptInstall(_)))
        {
            return Some(
                "system packages are needed and this is not Debian (no /etc/debian_version)".into(),
            );
        }
    }
    None
}

/// What a person must run, one entry per line (with `sudo` where root is needed
/// and we are not root). Pure.
pub fn instructions(steps: &[Step], host: Host) -> Vec<String> {
    let mut lines = Vec::new();
    for step in steps {
        lines.push(format!("# {}", step.why));
        match &step.action {
            Action::Manual(text) => lines.push(text.clone()),
            Action::Recheck => lines.push("cargo xtask bootstrap".into()),
            action => {
                if matches!(action, Action::AptInstall(_)) && !host.debian {
                    lines.push(
                        "# (Debian package names: install your distribution's equivalent)".into(),
                    );
                }
                let sudo = if action.needs_root() && !host.root {
                    "sudo "
                } else {
                    ""
                };
                for cmd in action.commands() {
                    lines.push(format!("{sudo}{}", cmd.display()));
                }
            }
        }
    }
    lines
}

/// Ensures everything in the module docs is present, installing what is missing.
pub fn bootstrap(needs: Needs) -> Result<()> {
    let start = Instant::now();
    ensure_cargo_bin_on_path();
    // A step (installing nightly) can reveal more to do (bpf-linker's LLVM), so
    // detect again after each round; stop if a round changed nothing.
    let mut previous: Option<Vec<Missing>> = None;
    for _round in 0..3 {
        let missing = detect(needs)?;
        if missing.is_empty() {
            println!(
                "xtask: toolchain ready ({} ms)",
                start.elapsed().as_millis()
            );
            return Ok(());
        }
        if previous.as_ref() == Some(&missing) {
            bail!(
                "bootstrap made no progress; still missing: {}",
                list(&missing)
            );
        }
        let steps = plan(&missing);
        execute_or_explain(&steps, &format!("missing: {}", list(&missing)))?;
        previous = Some(missing);
    }
    bail!("bootstrap did not converge; run `cargo xtask bootstrap` again")
}

/// Installs the Debian packages among `pkgs` that are not installed (a
/// `dpkg-query` when all are present; `apt-get update` at most once per run).
pub fn ensure_test_packages(pkgs: &[&str]) -> Result<()> {
    let missing = missing_debs(pkgs);
    if missing.is_empty() {
        return Ok(());
    }
    let steps = [Step {
        why: format!(
            "installing {}: the integration tests drive these tools",
            missing.join(" ")
        ),
        action: Action::AptInstall(missing.clone()),
    }];
    execute_or_explain(&steps, &format!("missing packages: {}", missing.join(" ")))
}

/// Runs `steps` if this process can, else prints them and fails with `what`.
fn execute_or_explain(steps: &[Step], what: &str) -> Result<()> {
    let host = Host::current();
    if let Some(reason) = blocker(steps, host) {
        eprintln!("xtask: {what}");
        eprintln!("xtask: {reason}; run these commands, then retry:");
        eprintln!();
        for line in instructions(steps, host) {
            eprintln!("    {line}");
        }
        eprintln!();
        bail!("{what}: run the commands above, then retry");
    }
    for step in steps {
        execute(step)?;
    }
    Ok(())
}

fn execute(step: &Step) -> Result<()> {
    println!("xtask: {}", step.why);
    match &step.action {
        Action::AptInstall(pkgs) => {
            if !APT_UPDATED.load(Ordering::Relaxed) {
                apt_update().run()?;
                APT_UPDATED.store(true, Ordering::Relaxed);
            }
            apt_install(pkgs).run()
        }
        // Building bpf-linker prints hundreds of lines over minutes: a progress line
        // here (the demo's narration stays readable), the output in a log.
        Action::CargoInstallBpfLinker { .. } => {
            let log = crate::repo_root()?.join("target/xtask-bpf-linker.log");
            step.action.commands().iter().try_for_each(|cmd| {
                cmd.run_logged(&format!("$ {} (a few minutes)", cmd.display()), &log)
            })
        }
        action => action.commands().iter().try_for_each(Cmd::run),
    }
}

/// How long every `apt-get` waits for the dpkg lock, in seconds. A fresh cloud VM
/// often runs unattended-upgrades at boot; without a timeout apt-get fails at once
/// when it holds the lock. `DPkg::Lock::Timeout` needs apt >= 1.9.11 (Debian 12 has 2.6).
const APT_LOCK_TIMEOUT_S: u32 = 600;

/// `apt-get` with the dpkg-lock wait: the only way this xtask builds an apt-get.
fn apt_get() -> Cmd {
    Cmd::new("apt-get")
        .arg("-o")
        .arg(format!("DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_S}"))
}

fn apt_update() -> Cmd {
    apt_get().arg("update")
}

fn apt_install(pkgs: &[String]) -> Cmd {
    apt_get()
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y"])
        .args(pkgs)
}

fn list(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Probes the machine. No network, no installs.
pub fn detect(needs: Needs) -> Result<Vec<Missing>> {
    let mut missing = Vec::new();
    match find_tool("rustup") {
        None => missing.push(Missing::Rustup),
        Some(rustup) => {
            // The rustc proxy lives next to rustup; `+nightly` needs the proxy.
            let rustc = Some(rustup.with_file_name("rustc"))
                .filter(|p| cmd::is_executable(p))
                .unwrap_or_else(|| PathBuf::from("rustc"));
            match nightly_sysroot(&rustc) {
                None => missing.push(Missing::NightlyToolchain),
                Some(sysroot) => {
                    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
                        missing.push(Missing::NightlyRustSrc);
                    }
                    if needs.lint && !sysroot.join("bin/cargo-clippy").is_file() {
                        missing.push(Missing::NightlyClippy);
                    }
                    let llvm_major = nightly_llvm_major(&sysroot)?;
                    if let Some(problem) = linker_problem(llvm_major) {
                        missing.push(Missing::BpfLinker {
                            problem,
                            llvm_major,
                            missing_debs: missing_debs(&[
                                &format!("llvm-{llvm_major}-dev"),
                                &format!("libpolly-{llvm_major}-dev"),
                            ]),
                        });
                    }
                }
            }
            if needs.lint {
                if let Some(item) = host_components(&rustc) {
                    missing.push(item);
                }
            }
        }
    }
    if !bpffs_mounted()? {
        missing.push(Missing::Bpffs);
    }
    Ok(missing)
}

/// `$CARGO_HOME/bin`, defaulting to `~/.cargo/bin`.
fn cargo_bin_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Some(PathBuf::from(home).join("bin"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin"))
}

/// A tool on PATH, or in ~/.cargo/bin.
fn find_tool(name: &str) -> Option<PathBuf> {
    cmd::which(name).or_else(|| {
        let path = cargo_bin_dir()?.join(name);
        cmd::is_executable(&path).then_some(path)
    })
}

/// Puts ~/.cargo/bin on PATH for our children if it exists and is not there:
/// rustc finds `bpf-linker` through PATH, `cargo +nightly` needs the rustup proxy.
fn ensure_cargo_bin_on_path() {
    let Some(bin) = cargo_bin_dir().filter(|b| b.is_dir()) else {
        return;
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|p| p == bin) {
        return;
    }
    let mut dirs = vec![bin.clone()];
    dirs.extend(std::env::split_paths(&path));
    if let Ok(joined) = std::env::join_paths(dirs) {
        println!(
            "xtask: adding {} to PATH: rustup's proxies and bpf-linker live there",
            bin.display()
        );
        std::env::set_var("PATH", joined);
    }
}

/// Nightly's sysroot, or `None` if the toolchain is not installed. Never lets
/// rustup install it implicitly (that is a decision for [`plan`]).
fn nightly_sysroot(rustc: &Path) -> Option<PathBuf> {
    let out = Cmd::new(rustc)
        .args(["+nightly", "--print", "sysroot"])
        .env("RUSTUP_AUTO_INSTALL", "0")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .probe()?;
    let sysroot = PathBuf::from(out.trim());
    sysroot.join("bin/rustc").is_file().then_some(sysroot)
}

/// LLVM major of nightly rustc (`rustc -vV` run directly, skipping the proxy).
fn nightly_llvm_major(sysroot: &Path) -> Result<u32> {
    let rustc = sysroot.join("bin/rustc");
    let out = Cmd::new(&rustc)
        .arg("-vV")
        .probe()
        .with_context(|| format!("`{} -vV` failed", rustc.display()))?;
    parse_rustc_llvm_major(&out).with_context(|| {
        format!(
            "no `LLVM version: N.M` line in `{} -vV` output:\n{out}",
            rustc.display()
        )
    })
}

fn parse_rustc_llvm_major(rustc_vv: &str) -> Option<u32> {
    let version = rustc_vv
        .lines()
        .find_map(|l| l.trim().strip_prefix("LLVM version:"))?;
    leading_number(version.trim())
}

fn leading_number(s: &str) -> Option<u32> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// What `ldd bpf-linker` says about libLLVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LddLlvm {
    /// No libLLVM among the dependencies (statically linked): fine.
    None,
    Major(u32),
    NotFound,
}

fn parse_ldd_llvm(ldd: &str) -> LddLlvm {
    for line in ldd.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("libLLVM") else {
            continue;
        };
        if line.contains("=> not found") {
            return LddLlvm::NotFound;
        }
        // `libLLVM.so.22.1`, `libLLVM-19.so`, `libLLVM.so.18`: first number after the name.
        let from_digit = rest.trim_start_matches(|c: char| !c.is_ascii_digit());
        if let Some(major) = leading_number(from_digit) {
            return LddLlvm::Major(major);
        }
    }
    LddLlvm::None
}

fn linker_problem(llvm_major: u32) -> Option<LinkerProblem> {
    let Some(linker) = find_tool("bpf-linker") else {
        return Some(LinkerProblem::NotFound);
    };
    // If ldd itself fails we cannot tell; trust the linker rather than rebuild.
    let ldd = Cmd::new("ldd").arg(&linker).probe()?;
    match parse_ldd_llvm(&ldd) {
        LddLlvm::None => None,
        LddLlvm::Major(m) if m == llvm_major => None,
        LddLlvm::Major(m) => Some(LinkerProblem::LlvmMismatch { linker_major: m }),
        LddLlvm::NotFound => Some(LinkerProblem::LibLlvmMissing),
    }
}

/// rustfmt/clippy of the toolchain that runs the host cargo commands. Looks next
/// to `$CARGO` (set when run via `cargo xtask`), else asks rustc for its sysroot.
fn host_components(rustc: &Path) -> Option<Missing> {
    let bin = match std::env::var_os("CARGO") {
        Some(cargo) => PathBuf::from(cargo).parent()?.to_path_buf(),
        None => {
            let sysroot = Cmd::new(rustc).args(["--print", "sysroot"]).probe()?;
            PathBuf::from(sysroot.trim()).join("bin")
        }
    };
    let components: Vec<String> = [("rustfmt", "cargo-fmt"), ("clippy", "cargo-clippy")]
        .into_iter()
        .filter(|(_, exe)| !bin.join(exe).is_file())
        .map(|(component, _)| component.to_string())
        .collect();
    if components.is_empty() {
        return None;
    }
    Some(Missing::HostComponents {
        toolchain: std::env::var("RUSTUP_TOOLCHAIN").ok(),
        components,
    })
}

/// Of `pkgs`, the Debian packages not in state "install ok installed" (all of
/// them if `dpkg-query` is unavailable).
pub fn missing_debs(pkgs: &[&str]) -> Vec<String> {
    let out = Cmd::new("dpkg-query")
        // Raw string: dpkg-query expands the \t and \n escapes itself.
        .args(["-W", r"-f=${Package}\t${Status}\n"])
        .args(pkgs)
        .probe_output();
    // dpkg-query exits 1 when some package is unknown; its stdout still lists the rest.
    let stdout = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let installed = parse_dpkg_installed(&stdout);
    pkgs.iter()
        .filter(|p| !installed.contains(**p))
        .map(|p| p.to_string())
        .collect()
}

fn parse_dpkg_installed(out: &str) -> BTreeSet<&str> {
    out.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, status)| status.trim() == "install ok installed")
        // Multi-arch packages may print as `name:arch`.
        .map(|(name, _)| name.split(':').next().unwrap_or(name))
        .collect()
}

/// Whether /proc/self/mounts has a `bpf` filesystem at [`BPFFS`].
fn bpffs_mounted() -> Result<bool> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    Ok(parse_bpffs_mounted(&mounts))
}

fn parse_bpffs_mounted(mounts: &str) -> bool {
    mounts.lines().any(|l| {
        let mut fields = l.split_whitespace();
        let (_src, target, fstype) = (fields.next(), fields.next(), fields.next());
        target == Some(BPFFS) && fstype == Some("bpf")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: Host = Host {
        root: true,
        debian: true,
    };
    const USER: Host = Host {
        root: false,
        debian: true,
    };

    fn actions(steps: &[Step]) -> Vec<&Action> {
        steps.iter().map(|s| &s.action).collect()
    }

    #[test]
    fn nothing_missing_nothing_to_do() {
        assert!(plan(&[]).is_empty());
        assert_eq!(blocker(&[], USER), None);
    }

    #[test]
    fn missing_nightly_installs_it_then_rechecks() {
        let steps = plan(&[Missing::NightlyToolchain, Missing::Bpffs]);
        assert_eq!(
            actions(&steps),
            [
                &Action::Rustup(strings(&[
                    "toolchain",
                    "install",
                    "nightly",
                    "--profile",
                    "minimal",
                    "--component",
                    "rust-src",
                    "--component",
                    "clippy"
                ])),
                &Action::MountBpffs,
                &Action::Recheck,
            ]
        );
        assert_eq!(blocker(&steps, ROOT), None);
        assert!(blocker(&steps, USER).is_some());
    }

    #[test]
    fn mismatched_linker_installs_llvm_then_forces_rebuild() {
        let steps = plan(&[Missing::BpfLinker {
            problem: LinkerProblem::LlvmMismatch { linker_major: 21 },
            llvm_major: 22,
            missing_debs: strings(&["llvm-22-dev", "libpolly-22-dev"]),
        }]);
        assert_eq!(
            actions(&steps),
            [
                &Action::AptInstall(strings(&["llvm-22-dev", "libpolly-22-dev"])),
                &Action::CargoInstallBpfLinker {
                    llvm_major: 22,
                    force: true
                },
            ]
        );
        assert!(steps[1].why.contains("LLVM 21"), "{}", steps[1].why);
        let cmds: Vec<String> = steps
            .iter()
            .flat_map(|s| s.action.commands())
            .map(|c| c.display())
            .collect();
        assert_eq!(
            cmds,
            [
                "apt-get -o DPkg::Lock::Timeout=600 update",
                "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y \
                 llvm-22-dev libpolly-22-dev",
                "LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --no-default-features \
                 --features llvm-22 --force",
            ]
        );
    }

    #[test]
    fn missing_linker_with_llvm_present_needs_no_root() {
        let steps = plan(&[Missing::BpfLinker {
            problem: LinkerProblem::NotFound,
            llvm_major: 22,
            missing_debs: vec![],
        }]);
        assert_eq!(
            actions(&steps),
            [&Action::CargoInstallBpfLinker {
                llvm_major: 22,
                force: false
            }]
        );
        assert_eq!(blocker(&steps, USER), None);
    }

    #[test]
    fn rustup_only_steps_run_unprivileged() {
        let steps = plan(&[
            Missing::NightlyRustSrc,
            Missing::NightlyClippy,
            Missing::HostComponents {
                toolchain: Some("stable-x86_64-unknown-linux-gnu".into()),
                components: strings(&["rustfmt"]),
            },
        ]);
        let lines = instructions(&steps, USER);
        let cmds: Vec<&String> = lines.iter().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            cmds,
            [
                "rustup component add rust-src --toolchain nightly",
                "rustup component add clippy --toolchain nightly",
                "rustup component add rustfmt --toolchain stable-x86_64-unknown-linux-gnu",
            ]
        );
        assert_eq!(blocker(&steps, USER), None);
    }

    #[test]
    fn not_root_gets_sudo_commands() {
        let steps = plan(&[
            Missing::BpfLinker {
                problem: LinkerProblem::NotFound,
                llvm_major: 22,
                missing_debs: strings(&["libpolly-22-dev"]),
            },
            Missing::Bpffs,
        ]);
        assert!(blocker(&steps, USER).is_some_and(|r| r.contains("not running as root")));
        let lines = instructions(&steps, USER);
        let cmds: Vec<&String> = lines.iter().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            cmds,
            [
                "sudo apt-get -o DPkg::Lock::Timeout=600 update",
                "sudo DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
                 install -y libpolly-22-dev",
                "LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --no-default-features \
                 --features llvm-22",
                "sudo mount -t bpf bpf /sys/fs/bpf",
            ]
        );
        // As root the same steps are runnable and printed without sudo.
        assert_eq!(blocker(&steps, ROOT), None);
        assert!(instructions(&steps, ROOT)
            .iter()
            .all(|l| !l.starts_with("sudo")));
    }

    #[test]
    fn not_debian_blocks_apt_even_as_root() {
        let host = Host {
            root: true,
            debian: false,
        };
        let apt = plan(&[Missing::BpfLinker {
            problem: LinkerProblem::LibLlvmMissing,
            llvm_major: 22,
            missing_debs: strings(&["llvm-22-dev"]),
        }]);
        assert!(blocker(&apt, host).is_some_and(|r| r.contains("not Debian")));
        assert!(instructions(&apt, host)
            .iter()
            .any(|l| l.contains("Debian package names")));
        // Mounting bpffs needs root, not Debian.
        assert_eq!(blocker(&plan(&[Missing::Bpffs]), host), None);
    }

    #[test]
    fn missing_rustup_is_manual_and_blocks() {
        let steps = plan(&[Missing::Rustup, Missing::Bpffs]);
        assert!(matches!(steps[0].action, Action::Manual(_)));
        assert_eq!(steps.last().map(|s| &s.action), Some(&Action::Recheck));
        assert!(blocker(&steps, ROOT).is_some());
        let lines = instructions(&steps, ROOT);
        assert!(lines.iter().any(|l| l.contains("sh.rustup.rs")));
        assert_eq!(
            lines.last().map(String::as_str),
            Some("cargo xtask bootstrap")
        );
    }

    #[test]
    fn every_apt_get_waits_for_the_dpkg_lock() {
        let cmds = Action::AptInstall(strings(&["iproute2"])).commands();
        assert_eq!(cmds.len(), 2);
        for cmd in cmds {
            let line = cmd.display();
            assert!(
                line.contains("apt-get -o DPkg::Lock::Timeout=600 "),
                "{line}"
            );
        }
    }

    #[test]
    fn parses_rustc_llvm_version() {
        let vv = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nbinary: rustc\n\
                  host: x86_64-unknown-linux-gnu\nrelease: 1.97.0-nightly\nLLVM version: 22.1.4\n";
        assert_eq!(parse_rustc_llvm_major(vv), Some(22));
        assert_eq!(parse_rustc_llvm_major("rustc 1.0\n"), None);
    }

    #[test]
    fn parses_ldd_libllvm() {
        let ldd = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibLLVM.so.22.1 => /usr/lib/llvm-22/lib/libLLVM.so.22.1 (0x00007fd8)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fd8)\n";
        assert_eq!(parse_ldd_llvm(ldd), LddLlvm::Major(22));
        assert_eq!(
            parse_ldd_llvm("\tlibLLVM-19.so => /usr/lib/libLLVM-19.so (0x1)\n"),
            LddLlvm::Major(19)
        );
        assert_eq!(
            parse_ldd_llvm("\tlibLLVM.so.21.1 => not found\n"),
            LddLlvm::NotFound
        );
        assert_eq!(
            parse_ldd_llvm("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n"),
            LddLlvm::None
        );
    }

    #[test]
    fn parses_dpkg_status() {
        let out = "iproute2\tinstall ok installed\ncurl\tdeinstall ok config-files\n\
                   libc6:amd64\tinstall ok installed\n";
        let installed = parse_dpkg_installed(out);
        assert!(installed.contains("iproute2"));
        assert!(installed.contains("libc6"));
        assert!(!installed.contains("curl"));
    }

    #[test]
    fn parses_mounts() {
        let with = "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw,relatime 0 0\n";
        assert!(parse_bpffs_mounted(with));
        assert!(!parse_bpffs_mounted("sysfs /sys sysfs rw 0 0\n"));
        assert!(!parse_bpffs_mounted("tmpfs /sys/fs/bpf tmpfs rw 0 0\n"));
    }

    #[test]
    fn parses_effective_uid() {
        let status = "Name:\txtask\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_effective_uid(status), Some(0));
        assert_eq!(parse_effective_uid("Name:\tx\n"), None);
    }
}

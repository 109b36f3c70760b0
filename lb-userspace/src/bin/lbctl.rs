//! `lbctl`: look at and steer the load balancer, in the spirit of `ipvsadm -Ln --stats`.
//!
//! It talks to lbd over its control socket (JSON lines, see `lb_api::control`).
//! When lbd is not running, `list`, `status`, `conns` and `explain` read the maps lbd
//! left pinned in bpffs instead (forwarding goes on without lbd), with a note on
//! stderr; `health` and `reload` need lbd. `detach` removes what lbd pinned, which
//! takes the XDP program off every interface.
//!
//! Exit status: 0 on success, 1 on any error (message on stderr, prefixed `lbctl: `).

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Parser, Subcommand};
use lb_api::{
    control::{self, ControlError, Request, Response},
    view::{ServiceView, StatusView},
};
use lb_config as config;
use lb_dataplane::{reconcile::monotonic_ns, views, Dataplane};
use lb_userspace::cli;

/// Config file read for the socket and pin directory when `--config` is not given.
const DEFAULT_CONFIG: &str = "/etc/lbd/lbd.toml";

/// How long to wait for lbd's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Inspect and control lbd, the XDP direct-server-return load balancer.
#[derive(Debug, Parser)]
#[command(name = "lbctl", version)]
struct Cli {
    /// lbd's control socket [default: `control_socket` of the config file if it exists
    /// and parses, else /run/lbd/lbd.sock]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the JSON of the response instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// lbd's config file, read for the control socket and the pin directory.
    #[arg(long, global = true, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Services and their backends (like `ipvsadm -Ln`).
    List {
        /// Add packet, byte and new-flow counters.
        #[arg(long)]
        stats: bool,
        /// Sample twice, one second apart, and show per-second rates (pps, Bps, new
        /// flows/s) instead of totals.
        #[arg(long)]
        rate: bool,
    },
    /// Node, config, forwarding, interfaces, last reload and the outcome counters.
    Status,
    /// Connections tracked by the data plane.
    Conns {
        /// Show at most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Where a flow would go, and why.
    ///
    /// Example: `lbctl explain 192.0.2.1:40000 198.51.100.10:80/tcp`, or for IPv6
    /// `lbctl explain [2001:db8::1]:4000 [2001:db8::10]:443/tcp`.
    Explain {
        /// The client, IP:PORT ([IPv6]:PORT).
        #[arg(value_name = "SRC:PORT")]
        src: String,
        /// The VIP, IP:PORT[/tcp|/udp] (protocol defaults to tcp).
        #[arg(value_name = "VIP:PORT/PROTO")]
        dst: String,
        /// Treat the packet as a new connection (TCP SYN).
        #[arg(long)]
        syn: bool,
    },
    /// Health-check state of every backend (needs lbd).
    Health,
    /// Make lbd re-read its config file (needs lbd). On a bad config lbd keeps the old one.
    Reload,
    /// VRRP instances: state, priority, master, transitions, dropped adverts (needs lbd).
    Vrrp,
    /// Flow sync between LB nodes: peers, last seen, entries sent and received, drops,
    /// resyncs (needs lbd).
    Sync,
    /// BGP announcement: the speaker, each VIP (wanted, announced, why) and the
    /// speaker's sessions (needs lbd).
    Bgp,
    /// Withdraw this node's VIPs, keep forwarding what still arrives until nothing has
    /// arrived for 2 s or the timeout, then stop lbd: maintenance without a reset
    /// (needs lbd and [bgp]).
    Drain {
        /// Keep forwarding at most this many seconds [default: `[bgp] drain_timeout`].
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// Convert a keepalived.conf (vrrp_instance, vrrp_script, virtual_server, real_server,
    /// checks, includes) into an lbd config. Every option not carried over is listed on
    /// stderr with its file, line and why; the result passes `lbd --check-config`.
    ImportKeepalived {
        /// The keepalived.conf to convert.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Write the lbd config here instead of stdout, mode 0600 (it may hold
        /// auth_pass): a new file replaces the old one atomically.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Remove everything lbd pinned (XDP links, so the program is detached, and maps).
    /// Refuses while lbd is running: stop it first.
    Detach {
        /// Pin directory [default: `pin_dir` of the config file, else /sys/fs/bpf/lbd]
        #[arg(long, value_name = "DIR")]
        pin_dir: Option<PathBuf>,
    },
}

/// What every command needs: where lbd is, where its pins are, how to print.
struct Ctx {
    socket: PathBuf,
    pin_dir: PathBuf,
    /// The config file, if it was read.
    config: Option<PathBuf>,
    json: bool,
    /// The pinned data plane, opened on first use when lbd is not running.
    pinned: Option<Dataplane>,
}

/// The outcome of trying lbd's socket.
enum Reach {
    /// lbd answered.
    Answer(Response),
    /// Nothing listens on the socket (no such file, or connection refused).
    NotRunning(ControlError),
}

fn not_running(e: &ControlError) -> bool {
    matches!(e, ControlError::Io { source, .. }
        if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused))
}

/// Send `request` to lbd.
async fn reach(socket: &Path, request: &Request) -> Result<Reach> {
    match tokio::time::timeout(ANSWER_TIMEOUT, control::call(socket, request)).await {
        Err(_) => bail!(
            "lbd did not answer on {} within {}s",
            socket.display(),
            ANSWER_TIMEOUT.as_secs()
        ),
        Ok(Ok(response)) => Ok(Reach::Answer(response)),
        Ok(Err(e)) if not_running(&e) => Ok(Reach::NotRunning(e)),
        Ok(Err(ControlError::Io { path, source }))
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            bail!("control socket {path}: {source} (lbctl needs root)")
        }
        Ok(Err(e)) => Err(e.into()),
    }
}

impl Ctx {
    fn new(cli: &Cli) -> Ctx {
        let global = if cli.config.exists() {
            match config::load(&cli.config) {
                Ok(c) => Some(c.global),
                Err(e) => {
                    eprintln!("lbctl: warning: {e}; using default paths");
                    None
                }
            }
        } else {
            None
        };
        let defaults = config::Global::default();
        let config = global.is_some().then(|| cli.config.clone());
        let global = global.unwrap_or(defaults);
        Ctx {
            socket: cli.socket.clone().unwrap_or(global.control_socket),
            pin_dir: global.pin_dir,
            config,
            json: cli.json,
            pinned: None,
        }
    }

    /// Ask lbd; fail when it is not running (`what` names the command for the message).
    async fn ask_lbd(&self, request: Request, what: &str) -> Result<Response> {
        match reach(&self.socket, &request).await? {
            Reach::Answer(response) => Ok(response),
            Reach::NotRunning(e) => bail!("lbd is not running ({e}); `lbctl {what}` needs it"),
        }
    }

    /// Ask lbd, or when it is not running answer from the pinned maps.
    async fn ask(&mut self, request: Request) -> Result<Response> {
        let e = match reach(&self.socket, &request).await? {
            Reach::Answer(response) => return Ok(response),
            Reach::NotRunning(e) => e,
        };
        if self.pinned.is_none() {
            if !self.pin_dir.exists() {
                bail!(
                    "lbd is not running ({e}) and nothing is pinned at {}",
                    self.pin_dir.display()
                );
            }
            let dp = Dataplane::open_pinned(&self.pin_dir).with_context(|| {
                format!("lbd is not running ({e}) and its pinned maps cannot be read")
            })?;
            eprintln!(
                "lbctl: lbd is not running; read from pinned maps at {}",
                self.pin_dir.display()
            );
            self.pinned = Some(dp);
        }
        let dp = self
            .pinned
            .as_ref()
            .ok_or_else(|| anyhow!("pinned maps not open"))?;
        from_maps(dp, &request, &self.pin_dir, self.config.as_deref())
    }

    /// Print `response` as JSON (with `--json`) or through `render`.
    fn print(
        &self,
        response: &Response,
        render: impl FnOnce(&Response) -> Option<String>,
    ) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(response)?);
        }
        if let Response::Error { message } = response {
            bail!("{message}");
        }
        if !self.json {
            match render(response) {
                Some(text) => print!("{text}"),
                None => bail!("unexpected response from lbd: {response:?}"),
            }
        }
        Ok(())
    }
}

/// The answer lbd would give to `request`, computed from the pinned maps.
fn from_maps(
    dp: &Dataplane,
    request: &Request,
    pin_dir: &Path,
    config: Option<&Path>,
) -> Result<Response> {
    Ok(match request {
        Request::List => Response::List {
            services: views::from_maps(dp)?,
        },
        Request::Conns { limit } => Response::Conns {
            conns: views::conns(dp, *limit, monotonic_ns())?,
        },
        Request::Status => Response::Status(StatusView {
            node: "-".into(),
            config: config
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "-".into()),
            forwarding: dp.config()?.forwarding != 0,
            interfaces: pinned_links(pin_dir),
            pin_dir: pin_dir.display().to_string(),
            counters: views::counters(dp)?,
            last_reload: "- (lbd is not running)".into(),
        }),
        Request::Explain {
            src,
            dst,
            protocol,
            syn,
        } => Response::Explain(views::explain_flow(dp, *src, *dst, protocol, *syn)?),
        Request::Health
        | Request::Reload
        | Request::Vrrp
        | Request::Sync
        | Request::Bgp
        | Request::Drain { .. } => {
            bail!("lbd is not running; this needs lbd")
        }
    })
}

/// Interfaces with a pinned XDP link under `pin_dir` (`link_<ifname>`).
fn pinned_links(pin_dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(pin_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("link_")
                .map(|i| (i.to_owned(), "pinned link".to_owned()))
        })
        .collect();
    out.sort();
    out
}

fn services(response: &Response) -> Result<Vec<ServiceView>> {
    match response {
        Response::List { services } => Ok(services.clone()),
        Response::Error { message } => bail!("{message}"),
        other => bail!("unexpected response from lbd: {other:?}"),
    }
}

async fn list(ctx: &mut Ctx, stats: bool, rate: bool) -> Result<()> {
    let first = ctx.ask(Request::List).await?;
    if !rate {
        return ctx.print(&first, |r| match r {
            Response::List { services } => Some(cli::render_list(services, stats)),
            _ => None,
        });
    }
    let before = services(&first)?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = services(&ctx.ask(Request::List).await?)?;
    let secs = t0.elapsed().as_secs_f64();
    if ctx.json {
        let rates = cli::rates(&before, &after, secs);
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "interval_s": secs, "services": rates })
            )?
        );
    } else {
        print!("{}", cli::render_rates(&before, &after, secs));
    }
    Ok(())
}

async fn detach(ctx: &Ctx, pin_dir: Option<PathBuf>) -> Result<()> {
    let pin_dir = pin_dir.unwrap_or_else(|| ctx.pin_dir.clone());
    if let Reach::Answer(_) = reach(&ctx.socket, &Request::Status).await? {
        bail!(
            "lbd is running (it answers on {}): stop it first",
            ctx.socket.display()
        );
    }
    let mut removed = Dataplane::remove_pinned(&pin_dir)
        .with_context(|| format!("removing the pins under {}", pin_dir.display()))?;
    // Links first: removing them is what detaches the program.
    removed.sort_by_key(|p| {
        let link = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("link_"));
        (!link, p.clone())
    });
    let mut lines = Vec::new();
    for path in &removed {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.strip_prefix("link_") {
            Some(ifname) => lines.push(format!(
                "removed {} (XDP detached from {ifname})",
                path.display()
            )),
            None => lines.push(format!("removed {}", path.display())),
        }
    }
    if removed.is_empty() {
        lines.push(format!("nothing pinned at {}", pin_dir.display()));
    }
    let message = lines.join("\n");
    ctx.print(
        &Response::Done {
            message: message.clone(),
        },
        |_| Some(format!("{message}\n")),
    )
}

async fn run(cli: Cli) -> Result<()> {
    let mut ctx = Ctx::new(&cli);
    match cli.command {
        Command::List { stats, rate } => list(&mut ctx, stats, rate).await,
        Command::Status => {
            let r = ctx.ask(Request::Status).await?;
            ctx.print(&r, |r| match r {
                Response::Status(s) => Some(cli::render_status(s)),
                _ => None,
            })
        }
        Command::Conns { limit } => {
            let r = ctx.ask(Request::Conns { limit }).await?;
            ctx.print(&r, |r| match r {
                Response::Conns { conns } => {
                    if limit > 0 && conns.len() >= limit {
                        eprintln!("lbctl: showing the first {limit} connections (see --limit)");
                    }
                    Some(cli::render_conns(conns))
                }
                _ => None,
            })
        }
        Command::Explain { src, dst, syn } => {
            let (src, dst, protocol) = cli::parse_flow(&src, &dst).map_err(|e| anyhow!(e))?;
            let r = ctx
                .ask(Request::Explain {
                    src,
                    dst,
                    protocol,
                    syn,
                })
                .await?;
            ctx.print(&r, |r| match r {
                Response::Explain(e) => Some(cli::render_explain(e)),
                _ => None,
            })
        }
        Command::Health => {
            let r = ctx.ask_lbd(Request::Health, "health").await?;
            ctx.print(&r, |r| match r {
                Response::Health { backends } => Some(cli::render_health(backends)),
                _ => None,
            })
        }
        Command::Reload => {
            let r = ctx.ask_lbd(Request::Reload, "reload").await?;
            ctx.print(&r, |r| match r {
                Response::Done { message } => Some(format!("{message}\n")),
                _ => None,
            })
        }
        Command::ImportKeepalived { file, output } => {
            let imported = lb_config::import::import_file(&file)?;
            for w in &imported.warnings {
                eprintln!("lbctl: not carried over: {w}");
            }
            match output {
                Some(path) => write_private(&path, imported.toml.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?,
                None => print!("{}", imported.toml),
            }
            eprintln!(
                "lbctl: converted {} ({} option(s) not carried over, listed above)",
                file.display(),
                imported.warnings.len()
            );
            Ok(())
        }
        Command::Vrrp => {
            let r = ctx.ask_lbd(Request::Vrrp, "vrrp").await?;
            ctx.print(&r, |r| match r {
                Response::Vrrp { instances } => Some(cli::render_vrrp(instances)),
                _ => None,
            })
        }
        Command::Sync => {
            let r = ctx.ask_lbd(Request::Sync, "sync").await?;
            ctx.print(&r, |r| match r {
                Response::Sync(view) => Some(cli::render_sync(view)),
                _ => None,
            })
        }
        Command::Bgp => {
            let r = ctx.ask_lbd(Request::Bgp, "bgp").await?;
            ctx.print(&r, |r| match r {
                Response::Bgp(view) => Some(cli::render_bgp(view)),
                _ => None,
            })
        }
        Command::Drain { timeout } => {
            let r = ctx
                .ask_lbd(
                    Request::Drain {
                        timeout_secs: timeout,
                    },
                    "drain",
                )
                .await?;
            ctx.print(&r, |r| match r {
                Response::Done { message } => Some(format!("{message}\n")),
                _ => None,
            })
        }
        Command::Detach { pin_dir } => detach(&ctx, pin_dir).await,
    }
}

/// Writes `data` to `path` readable by its owner only (the converted config may
/// hold a VRRP `auth_pass`): into a new file created with mode 0600 beside it, then
/// renamed over `path`, so the file never exists with wider permissions, whatever
/// `path` was before (an existing file keeps neither its mode nor its contents
/// until the new one is complete). A `path` that exists and is not a regular file
/// (`/dev/stdout`, a FIFO) is written in place.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            return f.write_all(data);
        }
    }
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".lbctl-{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if let Some(code) = lb_userspace::cli::generate_docs(<Cli as clap::CommandFactory>::command, 1)
    {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; usage errors exit 1 like any other.
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain down to the errno, and what a permission error means.
            eprintln!(
                "lbctl: {}",
                lb_userspace::report::describe(
                    e.as_ref(),
                    lb_userspace::report::Who::Lbctl,
                    &lb_userspace::report::Privileges::current()
                )
            );
            ExitCode::from(1)
        }
    }
}

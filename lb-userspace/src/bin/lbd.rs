//! lbd, the controller daemon: reads the TOML config, loads and attaches the XDP data
//! plane (pinned, so it survives lbd), health-checks backends, resolves their MACs and
//! keeps the maps in sync. See `lb_userspace::daemon`.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use lb_userspace::report::{describe, Privileges, Who};

/// lbd's last words: the error with its causes, errno and, for a permission or
/// descriptor error, what lbd needs.
fn fail(e: &(dyn std::error::Error + 'static)) -> ExitCode {
    eprintln!("lbd: {}", describe(e, Who::Lbd, &Privileges::current()));
    ExitCode::from(1)
}

/// Raise the soft descriptor limit to the hard one, and say so if even that leaves
/// too little beside the listeners' caps.
fn raise_nofile() {
    let listeners =
        (lb_api::control::MAX_CONNECTIONS + lb_userspace::metrics::MAX_CONNECTIONS) as u64;
    match lb_userspace::limits::raise_nofile() {
        Ok(n) => {
            if n.now != n.was {
                tracing::debug!(
                    was = n.was,
                    now = n.now,
                    hard = n.hard,
                    "raised the open-file limit"
                );
            }
            if !n.enough(listeners) {
                tracing::warn!(
                    limit = n.now,
                    needed = listeners + lb_userspace::limits::RESERVE,
                    "the open-file limit is low: health checks may run out of descriptors (raise LimitNOFILE=)"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// Command line.
#[derive(Parser)]
#[command(
    name = "lbd",
    version,
    about = "XDP direct-server-return load balancer daemon"
)]
struct Args {
    /// Config file.
    #[arg(long, short, default_value = "/etc/lbd/lbd.toml")]
    config: PathBuf,
    /// Validate a config file and exit (0 = valid).
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
    /// Remove the pinned data plane (detaches XDP from every interface) and exit.
    #[arg(long)]
    detach: bool,
}

fn main() -> ExitCode {
    if let Some(code) = lb_userspace::cli::generate_docs(<Args as clap::CommandFactory>::command, 2)
    {
        return code;
    }
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LBD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Some(file) = args.check_config {
        return match lb_userspace::daemon::check_config(&file) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    if args.detach {
        return match lb_userspace::daemon::detach(&args.config) {
            Ok(removed) => {
                for p in removed {
                    println!("removed {}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        };
    }
    raise_nofile();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!(
                "lbd: starting the runtime: {}",
                describe(&e, Who::Lbd, &Privileges::current())
            );
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(lb_userspace::daemon::run(args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

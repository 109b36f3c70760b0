//! lbd, the controller daemon: reads the TOML config, loads and attaches the XDP data
//! plane (pinned, so it survives lbd), health-checks backends, resolves their MACs and
//! keeps the maps in sync. See `lb_userspace::daemon`.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

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
            Err(e) => {
                eprintln!("lbd: {e}");
                ExitCode::from(1)
            }
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
            Err(e) => {
                eprintln!("lbd: {e}");
                ExitCode::from(1)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lbd: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(lb_userspace::daemon::run(args.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lbd: {e}");
            ExitCode::from(1)
        }
    }
}

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
    if let Some(code) = generate_docs() {
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

// --- Hidden `--generate WHAT`: shell completions and the man page, generated from the
// clap definition above and printed to stdout (see README, "Deploying"). WHAT is
// completions-bash | completions-zsh | completions-fish | man. Handled before clap
// parses, so it needs no subcommand and stays out of --help.

/// `Some(exit code)` when the command line is `--generate WHAT`.
fn generate_docs() -> Option<ExitCode> {
    use clap::CommandFactory;
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let what = match args.as_slice() {
        [flag, what] if flag == "--generate" => what.clone(),
        [flag] if flag.starts_with("--generate=") => flag["--generate=".len()..].to_owned(),
        // Anything else after --generate is a usage error below.
        [flag, ..] if flag == "--generate" || flag.starts_with("--generate=") => String::new(),
        _ => return None,
    };
    let mut cmd = Args::command();
    let name = cmd.get_name().to_owned();
    let mut out = std::io::stdout().lock();
    let shell = match what.as_str() {
        "completions-bash" => clap_complete::Shell::Bash,
        "completions-zsh" => clap_complete::Shell::Zsh,
        "completions-fish" => clap_complete::Shell::Fish,
        "man" => {
            return Some(match clap_mangen::Man::new(cmd).render(&mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{name}: writing the man page: {e}");
                    ExitCode::from(1)
                }
            });
        }
        _ => {
            eprintln!(
                "{name}: --generate takes one of completions-bash, completions-zsh, completions-fish, man"
            );
            return Some(ExitCode::from(2));
        }
    };
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    Some(ExitCode::SUCCESS)
}

//! The hidden `--generate WHAT` of lbd and lbctl: shell completions and the man page,
//! generated from the binary's clap definition and printed to stdout (README,
//! "Deploying"). WHAT is completions-bash | completions-zsh | completions-fish | man.
//! Handled before clap parses, so it needs no subcommand and stays out of --help.

use std::process::ExitCode;

/// `Some(exit code)` when the command line is `--generate WHAT`: the output for
/// `command` is written and the program should exit. `usage_exit` is the binary's exit
/// code for usage errors.
pub fn generate_docs(command: impl FnOnce() -> clap::Command, usage_exit: u8) -> Option<ExitCode> {
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
    let mut cmd = command();
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
            eprintln!("{name}: --generate takes one of completions-bash, completions-zsh, completions-fish, man");
            return Some(ExitCode::from(usage_exit));
        }
    };
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    Some(ExitCode::SUCCESS)
}

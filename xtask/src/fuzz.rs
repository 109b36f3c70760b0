//! `cargo xtask fuzz`: the mutated-frame robustness test at scale. The same oracle as
//! the test command's small sample (never XDP_ABORTED, never a forward of a non-VIP or
//! malformed frame, only the MACs changed), over `--frames` frames (default 1M) from a
//! fixed `--seed`, stopping early at `--seconds`.

use anyhow::Result;

use crate::bootstrap::{self, Needs};
use crate::cmd::Cmd;
use crate::repo_root;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Frames to run (random, and mutated and truncated from every fixture).
    #[arg(long, default_value_t = 1_000_000)]
    pub frames: u64,
    /// The random generator's seed (the same seed gives the same frames).
    #[arg(long, default_value_t = 0x1b_5eed)]
    pub seed: u64,
    /// Stop after this many seconds even if not every frame ran.
    #[arg(long, default_value_t = 600)]
    pub seconds: u64,
}

pub fn run(args: Args) -> Result<()> {
    bootstrap::bootstrap(Needs::default())?;
    Cmd::new("cargo")
        .args([
            "test",
            "--release",
            "-p",
            "lb-tests",
            "--test",
            "robustness",
        ])
        .args(["--", "--nocapture", "random_and_mutated_frames"])
        .env("LB_FUZZ_FRAMES", args.frames.to_string())
        .env("LB_FUZZ_SEED", args.seed.to_string())
        .env("LB_FUZZ_SECONDS", args.seconds.to_string())
        .current_dir(repo_root()?)
        .run()
}

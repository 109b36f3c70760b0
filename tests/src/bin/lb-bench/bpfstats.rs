//! The LB's own CPU time as the kernel accounts it: which XDP program an interface
//! runs, and that program's bpf_stats (run count and run time, counted while
//! `aya::sys::enable_stats` is held).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use lb_tests::netns::sh;

/// Id and name of the XDP program attached to `dev` in namespace `ns`, if any.
pub fn attached_program(ns: &str, dev: &str) -> Result<Option<(u32, String)>> {
    let out = sh(&format!("ip -n {ns} -j -d link show dev {dev}"));
    let json: serde_json::Value = serde_json::from_str(&out).context("parse `ip -j link`")?;
    let xdp = &json[0]["xdp"];
    // One program: xdp.prog; several modes at once: xdp.attached[].prog.
    let prog = if xdp["prog"].is_object() {
        &xdp["prog"]
    } else {
        &xdp["attached"][0]["prog"]
    };
    Ok(prog["id"].as_u64().map(|id| {
        (
            id as u32,
            prog["name"].as_str().unwrap_or_default().to_string(),
        )
    }))
}

/// (run count, total run time) of the loaded program with this id.
pub fn program_stats(id: u32) -> Result<(u64, Duration)> {
    for info in aya::programs::loaded_programs() {
        let info = info.context("list loaded BPF programs")?;
        if info.id() == id {
            return Ok((info.run_count(), info.run_time()));
        }
    }
    bail!("BPF program {id} is not loaded")
}

//! Builds the XDP program (`lb-ebpf`, for bpfel-unknown-none with the nightly toolchain)
//! and leaves the object in OUT_DIR, where `dataplane` embeds it: `cargo build` yields
//! an lbd with its data plane inside. `cargo xtask build` installs the toolchain first.
fn main() -> anyhow::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../lb-ebpf");
    let package = aya_build::Package {
        name: "lb-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}

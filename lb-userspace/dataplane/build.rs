//! Builds the XDP objects (`lb-ebpf`'s binaries, for bpfel-unknown-none with the nightly
//! toolchain) into OUT_DIR: `lb`, the balancer, which the crate always embeds (`cargo
//! build` yields an lbd with its data plane inside), and `lb-bench`, the bench
//! programs, embedded only with the `testing` feature. `cargo xtask build` installs the
//! toolchain first.
fn main() -> anyhow::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../lb-ebpf");
    let package = aya_build::Package {
        name: "lb-ebpf",
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::default())
}

//! What the two XDP objects of this package share: bounds-checked packet access
//! ([`access`]). The objects are its binaries, built for `bpfel-unknown-none` by
//! lb-dataplane's build script: `lb` (src/main.rs), the balancer lbd ships, and
//! `lb-bench` (src/bench.rs), the bench's baseline, generator and sink, which never
//! ship. On the host this library is what lb-dataplane's build-dependency compiles,
//! so it is rebuilt when the programs change.
#![no_std]

pub mod access;

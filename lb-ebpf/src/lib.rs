//! Host-side stub of the XDP crate. The program itself is the `lb` binary, built for
//! `bpfel-unknown-none` by lb-userspace's build script; this library exists so that
//! lb-userspace can declare a build-dependency and be rebuilt when the program changes.
#![no_std]

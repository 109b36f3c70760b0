//! Shared by the XDP program (`lb-ebpf`, `no_std`) and the controller (`lb-userspace`).
//!
//! Everything both sides must agree on bit for bit lives here, so it is written once:
//! - [`maps`]: the `#[repr(C)]` layouts of every map key and value, and counter indices;
//! - [`hash`]: the flow hash that picks a Maglev slot;
//! - [`select`]: the backend decision itself (clean slot, dirty slot, connection table),
//!   generic over map access so the XDP program and `lbctl explain` run the same code;
//! - [`maglev`] (with the `std` feature): the Maglev table builder;
//! - [`bench`]: the benchmark traffic generator's frame layout.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]

pub mod bench;
pub mod hash;
#[cfg(feature = "std")]
pub mod maglev;
pub mod maps;
pub mod select;

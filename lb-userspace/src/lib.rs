//! The controller side of the load balancer: everything `lbd` and `lbctl` are made of.
//!
//! - [`dataplane`]: load the embedded XDP program, attach it, read and write its maps
//!   through typed methods (no map names or Pod types leak out).
//! - [`explain`]: where a flow would go and why, computed by the same selection code
//!   the XDP program runs.
//! - [`daemon`]: lbd's event loop (owns the data plane; reacts to health, neighbours,
//!   lbctl, signals).
//! - [`config`]: the TOML config: parsing, validation with file/line/field errors.
//! - [`import`]: keepalived.conf -> lbd TOML (`lbctl import-keepalived`), with a
//!   file:line warning for everything not carried over.
//! - [`health`]: backend health checks (TCP, HTTP, HTTPS, exec) and rise/fall.
//! - [`neigh`]: backend MAC resolution and neighbour-change following over rtnetlink.
//! - [`views`]: what lbctl shows, read from the maps.
//! - [`control`]: the lbctl <-> lbd protocol (JSON lines on a Unix socket).
//! - [`cli`]: lbctl's text views (ipvsadm-like tables) and argument parsing, all pure.
//! - [`metrics`]: the Prometheus endpoint (`GET /metrics`), fed by lbd's main loop.
//! - [`sync`]: the reconciler: desired state -> ordered, minimal data-plane writes.
//! - [`vrrp`]: VRRP as keepalived speaks it (v2/v3, IPv4/IPv6): wire codec and the
//!   per-instance state machine, pure code on a caller-supplied clock.

pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod explain;
pub mod health;
pub mod import;
pub mod metrics;
pub mod neigh;
pub mod sync;
pub mod views;
pub mod vrrp;

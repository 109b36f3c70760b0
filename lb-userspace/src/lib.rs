//! lbd and lbctl, above the libraries they are made of:
//!
//! - [`node`]: lbd's behaviour as a state machine (events in, effects out; no I/O);
//! - [`daemon`]: lbd's async shell: it does the node's I/O and feeds it events;
//! - [`metrics`]: the Prometheus endpoint, rendered from the published snapshot;
//! - [`cli`]: lbctl's text views (ipvsadm-like tables) and argument parsing, all pure.
//!
//! The libraries, each one concern, compiled below this crate:
//! `lb_api` (control protocol and views), `lb_config` (TOML config and keepalived
//! import), `lb_dataplane` (the XDP program's maps, reconciler, explain), `lb_health`
//! (probes), `lb_netlink` (neighbours, links, VIPs), `lb_vrrp` (VRRP).

pub mod cli;
pub mod daemon;
pub mod metrics;
pub mod node;

//! lbd and lbctl, above the libraries they are made of:
//!
//! - [`node`]: lbd's behaviour as a state machine (events in, effects out; no I/O);
//! - [`daemon`]: lbd's async shell: it does the node's I/O and feeds it events;
//! - [`observe`]: the control socket's read requests and the metrics' data, answered
//!   from the published snapshot and a read-only map handle, never by the loop;
//! - [`metrics`]: the Prometheus endpoint, rendered from the published snapshot;
//! - [`cli`]: lbctl's text views (ipvsadm-like tables) and argument parsing, all pure;
//! - [`limits`]: lbd's file-descriptor budget; [`report`]: errors with their errno and
//!   what a permission error means (lbd's and lbctl's last words).
//!
//! The libraries, each one concern, compiled below this crate:
//! `lb_api` (control protocol and views), `lb_config` (TOML config and keepalived
//! import), `lb_dataplane` (the XDP program's maps, reconciler, explain), `lb_health`
//! (probes), `lb_netlink` (neighbours, links, VIPs), `lb_vrrp` (VRRP).

pub mod bpffs;
pub mod cli;
pub mod daemon;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod observe;
pub mod report;

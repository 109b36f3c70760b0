//! What the node publishes after every change, for observers (the control socket's
//! read requests, the metrics endpoint). Observers read the latest snapshot from a
//! `tokio::sync::watch` channel plus counters from their own read-only map handles; they
//! never send anything through the loop that owns the data plane.

use std::{path::PathBuf, sync::Arc};

use lb_api::view::VrrpView;
use lb_config::Config;

/// Live per-instance VRRP status: updated by the instance's task, read by observers.
pub type VrrpStatusHandle = Arc<std::sync::Mutex<crate::daemon::vrrp::Status>>;

/// One VRRP instance as observers see it.
#[derive(Clone)]
pub struct VrrpSource {
    /// The instance's config (name, interface, VRID, VIPs, base priority).
    pub config: lb_config::VrrpConfig,
    /// Its live status.
    pub status: VrrpStatusHandle,
    /// Current tracking result, in words (`service web: 0/3 healthy: -60`, ...).
    pub tracking: Vec<String>,
}

/// An immutable picture of the node, published after each applied change.
#[derive(Clone)]
pub struct Snapshot {
    /// `[global] node_name`.
    pub node: String,
    /// The config file lbd runs from.
    pub config_path: PathBuf,
    /// The running config (names, weights, services as configured).
    pub config: Arc<Config>,
    /// Attached interfaces and their mode ("driver", "skb", "adopted").
    pub interfaces: Vec<(String, String)>,
    /// The last reload's result, in words.
    pub last_reload: String,
    /// Health-check state of every checked backend (live handles of the monitor).
    pub health: lb_health::Statuses,
    /// VRRP instances.
    pub vrrp: Vec<VrrpSource>,
    /// The flow sync's live status, if `[sync]` is configured.
    pub sync: Option<crate::daemon::sync::SyncStatus>,
    /// The BGP announcer's live status, if `[bgp]` is configured.
    pub bgp: Option<crate::daemon::bgp::BgpStatus>,
}

impl Snapshot {
    /// What observers see before the first publish: the node's config, nothing else.
    pub fn empty(node: &super::Node) -> Self {
        Snapshot {
            node: node.config().global.node_name.clone(),
            config_path: node.config_path().to_path_buf(),
            config: node.config().clone(),
            interfaces: Vec::new(),
            last_reload: node.last_reload().to_string(),
            health: Default::default(),
            vrrp: Vec::new(),
            sync: None,
            bgp: None,
        }
    }

    /// The flow sync as `lbctl sync` and metrics show it.
    pub fn sync_view(&self) -> lb_api::view::SyncView {
        match &self.sync {
            Some(s) => s.lock().map(|v| v.clone()).unwrap_or_default(),
            None => lb_api::view::SyncView::default(),
        }
    }

    /// The BGP announcer as `lbctl bgp` shows it (not enabled without `[bgp]`).
    pub fn bgp_view(&self) -> lb_api::view::BgpView {
        match &self.bgp {
            Some(s) => s.lock().map(|v| v.clone()).unwrap_or_default(),
            None => lb_api::view::BgpView::default(),
        }
    }

    /// The VRRP instances as `lbctl vrrp` and metrics show them.
    pub fn vrrp_views(&self) -> Vec<VrrpView> {
        self.vrrp.iter().map(VrrpSource::view).collect()
    }
}

impl VrrpSource {
    /// This instance as `lbctl vrrp` shows it.
    pub fn view(&self) -> VrrpView {
        let st = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        let c = &self.config;
        VrrpView {
            name: c.name.clone(),
            interface: c.interface.clone(),
            vrid: c.vrid,
            version: c.version.number(),
            state: st.state,
            priority: st.priority,
            base_priority: c.priority,
            master: st.master,
            source: st.source,
            vips: c
                .virtual_addresses
                .iter()
                .map(|(a, p)| format!("{a}/{p}"))
                .collect(),
            transitions: st.transitions,
            adverts_received: st.counters.adverts_received,
            adverts_sent: st.counters.adverts_sent,
            dropped: st
                .counters
                .drops()
                .map(|(r, n)| (r.name().to_string(), n))
                .collect(),
            tracking: self.tracking.clone(),
            last_error: st.last_error,
        }
    }
}

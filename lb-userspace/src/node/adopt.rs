//! Adoption after a restart: what a pinned data plane already does (each backend's
//! state and MAC in its pinned entry) becomes the new node's starting health and links,
//! so the first apply writes nothing and no flow moves. Pure: the shell reads the
//! pinned backends and the reconciler's index assignment and passes them in.

use std::net::IpAddr;

use lb_common::maps::{words_addr, Backend, ServiceKey, BACKEND_DOWN, IFINDEX_LOCAL};
use lb_config::Config;
use lb_dataplane::reconcile::Link;

use super::{translate::service_key, Start};

/// The starting health and links for `config`, from the pinned `backends` table;
/// `index_of` is the adopted reconciler's index of a service's backend. Entries whose
/// index is unknown or whose address differs (the config changed while lbd was down)
/// are left out: those backends start as a fresh lbd would.
pub fn from_pinned(
    config: &Config,
    index_of: impl Fn(&ServiceKey, IpAddr) -> Option<u16>,
    backends: &[Backend],
) -> Start {
    let mut start = Start::default();
    for svc in &config.services {
        let key = service_key(svc);
        for b in &svc.backends {
            let Some(entry) = index_of(&key, b.address).and_then(|i| backends.get(i as usize))
            else {
                continue;
            };
            if words_addr(&entry.addr) != b.address {
                continue;
            }
            start
                .health
                .insert((svc.name.clone(), b.address), entry.state != BACKEND_DOWN);
            if entry.mac != [0; 6] || entry.ifindex == IFINDEX_LOCAL {
                start.links.insert(
                    b.address,
                    Link {
                        mac: entry.mac,
                        ifindex: entry.ifindex,
                        src_mac: entry.src_mac,
                    },
                );
            }
        }
    }
    start
}

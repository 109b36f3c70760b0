//! "Where would this flow go?" The answer comes from `lb_common::select::choose`, the
//! same routine the XDP program runs, fed from snapshots of the live maps and never
//! writing them, so `lbctl explain` and the data plane cannot disagree.

use std::collections::HashMap;

use lb_common::{
    maps::{Backend, BigChunk, BigChunkKey, ConnKey, ConnValue, ServiceKey},
    select::{choose, service_keys, slot_hash, Choice, FlowState, Recorded},
};

use crate::{DataplaneError, DataplaneRead};

/// The explanation of one flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Explanation {
    /// No service matches: the packet is passed to the kernel.
    NotAService,
    /// Forwarding is off on this node: passed to the kernel.
    ForwardingOff {
        /// The matching service.
        service: ServiceKey,
    },
    /// The service has no usable backend: dropped.
    NoBackend {
        /// The matching service.
        service: ServiceKey,
    },
    /// Forwarded.
    Forward {
        /// The matching service.
        service: ServiceKey,
        /// Selection details (backend index, slot, reason).
        choice: Choice,
        /// The chosen backend.
        backend: Backend,
    },
}

/// Read-only [`FlowState`] over map snapshots.
struct Snapshot {
    backends: Vec<Backend>,
    conns: HashMap<ConnKey, ConnValue>,
    /// The service's big-table chunks, by key (none for an inline table).
    big: HashMap<BigChunkKey, Box<BigChunk>>,
}

impl FlowState for Snapshot {
    fn backend(&self, index: u16) -> Option<&Backend> {
        self.backends.get(index as usize)
    }
    fn conn(&self, key: &ConnKey) -> Option<ConnValue> {
        self.conns.get(key).copied()
    }
    fn remember(&self, _key: &ConnKey, _value: &ConnValue, _absent: bool) -> Recorded {
        Recorded::Yes
    }
    fn touch(&self, _key: &ConnKey, _now_ns: u64, _fin: bool) {}
    fn now_ns(&self) -> u64 {
        0
    }
    fn big_chunk(&self, key: &BigChunkKey) -> Option<&BigChunk> {
        self.big.get(key).map(|c| &**c)
    }
}

/// Explain the inbound flow `flow` (a TCP SYN when `syn`) against the data plane's
/// maps (the live ones, or [`crate::memory`] in tests).
pub fn explain(
    dp: &(impl DataplaneRead + ?Sized),
    flow: &ConnKey,
    syn: bool,
) -> Result<Explanation, DataplaneError> {
    let (exact, whole_vip) = service_keys(flow);
    let (key, table) = match dp.service(&exact)? {
        Some(t) => (exact, t),
        None => match dp.service(&whole_vip)? {
            Some(t) => (whole_vip, t),
            None => return Ok(Explanation::NotAService),
        },
    };
    let config = dp.config()?;
    if config.forwarding == 0 {
        return Ok(Explanation::ForwardingOff { service: key });
    }
    let conns = match dp.conn(flow)? {
        Some(v) => HashMap::from([(*flow, v)]),
        None => HashMap::new(),
    };
    // The table in the data plane's layout (a big one in chunks), so `choose` reads
    // it exactly as the program does.
    let (value, chunks) = table.to_maps(1).ok_or(DataplaneError::Table(
        lb_common::maglev::MaglevError::TableTooLarge(table.len()),
    ))?;
    let big = chunks
        .into_iter()
        .enumerate()
        .map(|(chunk, c)| {
            let at = BigChunkKey {
                id: value.id,
                gen: value.big_gen as u16,
                chunk: chunk as u16,
            };
            (at, c)
        })
        .collect();
    let state = Snapshot {
        backends: dp.backends()?,
        conns,
        big,
    };
    let hash = slot_hash(config.hash_seed, value.flags, flow);
    Ok(match choose(&state, &value, hash, flow, syn, false) {
        Some((choice, _)) => {
            let backend = state.backends[choice.backend as usize];
            Explanation::Forward {
                service: key,
                choice,
                backend,
            }
        }
        None => Explanation::NoBackend { service: key },
    })
}

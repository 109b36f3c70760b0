//! An in-memory data plane ([`MemoryDataplane`]): the maps as plain collections, every
//! write recorded in order. The reconciler, explain and the views run against it in
//! root-free tests exactly as they run against the live maps.

use std::{cell::RefCell, collections::HashMap};

use lb_common::maps::{
    outcome, Backend, ConnKey, ConnValue, DataplaneConfig, FlowGuard, FragKey, ServiceKey,
    TrafficStats,
};

use crate::{
    ops::{DataplaneOps, DataplaneRead},
    DataplaneError, Table,
};

/// One write, as [`MemoryDataplane`] records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// A backend slot written: (index, state).
    Backend(u16, u32),
    /// A service table installed or replaced.
    Service(ServiceKey),
    /// A service removed.
    RemoveService(ServiceKey),
    /// A tracked connection forgotten.
    RemoveConn,
}

/// The data plane's maps in memory.
#[derive(Default)]
pub struct MemoryDataplane {
    /// The backend array.
    pub backends: Vec<Backend>,
    /// Services (and their tables, big or inline).
    pub services: HashMap<ServiceKey, Table>,
    /// The connection table.
    pub conns: HashMap<ConnKey, ConnValue>,
    /// Fragment routes.
    pub routes: HashMap<FragKey, ServiceKey>,
    /// Forwarding switch and hash seed.
    pub config: DataplaneConfig,
    /// The data plane's clock.
    pub now_ns: u64,
    /// Traffic per backend index.
    pub backend_traffic: HashMap<u16, TrafficStats>,
    /// Outcome and event counters.
    pub global: [u64; outcome::COUNT as usize],
    /// The flood guard's counters.
    pub guard: FlowGuard,
    /// When false (the default), traffic flows: every read of a service's counters finds
    /// one more packet, so the reconciler treats each installed table as used. When
    /// true the counters stay put (a node at startup, a VRRP backup).
    pub idle: bool,
    service_traffic: RefCell<HashMap<u32, TrafficStats>>,
    log: Vec<Write>,
}

impl MemoryDataplane {
    /// Empty maps with `backends` backend slots.
    pub fn new(backends: usize) -> Self {
        MemoryDataplane {
            backends: vec![Backend::default(); backends],
            ..Default::default()
        }
    }

    /// The writes since the last call, in order.
    pub fn take_log(&mut self) -> Vec<Write> {
        std::mem::take(&mut self.log)
    }

    /// Set service `id`'s traffic counters.
    pub fn set_service_traffic(&mut self, id: u32, stats: TrafficStats) {
        self.service_traffic.get_mut().insert(id, stats);
    }
}

impl DataplaneRead for MemoryDataplane {
    fn backends(&self) -> Result<Vec<Backend>, DataplaneError> {
        Ok(self.backends.clone())
    }
    fn service_keys(&self) -> Result<Vec<ServiceKey>, DataplaneError> {
        Ok(self.services.keys().copied().collect())
    }
    fn service(&self, key: &ServiceKey) -> Result<Option<Table>, DataplaneError> {
        Ok(self.services.get(key).cloned())
    }
    fn frag_routes(&self) -> Result<HashMap<FragKey, ServiceKey>, DataplaneError> {
        Ok(self.routes.clone())
    }
    fn conn(&self, key: &ConnKey) -> Result<Option<ConnValue>, DataplaneError> {
        Ok(self.conns.get(key).copied())
    }
    fn conns(&self) -> Result<HashMap<ConnKey, ConnValue>, DataplaneError> {
        Ok(self.conns.clone())
    }
    fn config(&self) -> Result<DataplaneConfig, DataplaneError> {
        Ok(self.config)
    }
    fn service_stats(&self, id: u32) -> Result<TrafficStats, DataplaneError> {
        let mut traffic = self.service_traffic.borrow_mut();
        let stats = traffic.entry(id).or_default();
        if !self.idle {
            stats.packets += 1;
        }
        Ok(*stats)
    }
    fn backend_stats(&self, index: u16) -> Result<TrafficStats, DataplaneError> {
        Ok(self
            .backend_traffic
            .get(&index)
            .copied()
            .unwrap_or_default())
    }
    fn global_stats(&self) -> Result<[u64; outcome::COUNT as usize], DataplaneError> {
        Ok(self.global)
    }
    fn flow_guard(&self) -> Result<FlowGuard, DataplaneError> {
        Ok(self.guard)
    }
    fn now_ns(&self) -> u64 {
        self.now_ns
    }
}

impl DataplaneOps for MemoryDataplane {
    fn set_backend(&mut self, index: u16, backend: &Backend) -> Result<(), DataplaneError> {
        let slot = self
            .backends
            .get_mut(index as usize)
            .ok_or_else(|| DataplaneError::Missing(format!("backend slot {index}")))?;
        *slot = *backend;
        self.log.push(Write::Backend(index, backend.state));
        Ok(())
    }
    fn set_service(&mut self, key: &ServiceKey, table: &Table) -> Result<(), DataplaneError> {
        // What the live maps would refuse.
        if table.entries.len() > lb_common::maps::MAX_BIG_TABLE_SIZE {
            return Err(DataplaneError::Table(
                lb_common::maglev::MaglevError::TableTooLarge(table.len()),
            ));
        }
        self.services.insert(*key, table.clone());
        self.log.push(Write::Service(*key));
        Ok(())
    }
    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DataplaneError> {
        self.services.remove(key);
        self.log.push(Write::RemoveService(*key));
        Ok(())
    }
    fn set_frag_route(
        &mut self,
        key: &FragKey,
        service: &ServiceKey,
    ) -> Result<(), DataplaneError> {
        self.routes.insert(*key, *service);
        Ok(())
    }
    fn remove_frag_route(&mut self, key: &FragKey) -> Result<(), DataplaneError> {
        self.routes.remove(key);
        Ok(())
    }
    fn remove_conn(&mut self, key: &ConnKey) -> Result<(), DataplaneError> {
        self.conns.remove(key);
        self.log.push(Write::RemoveConn);
        Ok(())
    }
    fn set_conn(&mut self, key: &ConnKey, value: &ConnValue) -> Result<(), DataplaneError> {
        self.conns.insert(*key, *value);
        Ok(())
    }
    fn set_config(&mut self, config: &DataplaneConfig) -> Result<(), DataplaneError> {
        self.config = *config;
        Ok(())
    }
}

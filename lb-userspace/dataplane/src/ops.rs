//! The data plane as the rest of the crate sees it: [`DataplaneRead`] (what explain, the
//! views and the reconciler read) and [`DataplaneOps`] (the writes the reconciler makes).
//! [`Dataplane`] implements both over the live maps; [`crate::memory`] implements them in
//! memory, so the reconciler, explain and the views are tested without root.

use std::collections::HashMap;

use lb_common::maps::{
    outcome, Backend, ConnKey, ConnValue, DataplaneConfig, FlowGuard, FragKey, ServiceKey,
    TrafficStats,
};

use crate::{Dataplane, DataplaneError, Table};

/// Reads of the data plane's maps and clock.
pub trait DataplaneRead {
    /// Every backend slot (unused ones are zero: state down).
    fn backends(&self) -> Result<Vec<Backend>, DataplaneError>;
    /// Keys of installed services and fragment routes.
    fn service_keys(&self) -> Result<Vec<ServiceKey>, DataplaneError>;
    /// One installed service with its table (inline or big).
    fn service(&self, key: &ServiceKey) -> Result<Option<Table>, DataplaneError>;
    /// Every fragment route.
    fn frag_routes(&self) -> Result<HashMap<FragKey, ServiceKey>, DataplaneError>;
    /// The tracked connection for `key`.
    fn conn(&self, key: &ConnKey) -> Result<Option<ConnValue>, DataplaneError>;
    /// Every tracked connection.
    fn conns(&self) -> Result<HashMap<ConnKey, ConnValue>, DataplaneError>;
    /// Forwarding switch and hash seed.
    fn config(&self) -> Result<DataplaneConfig, DataplaneError>;
    /// Traffic of service `id`, summed over CPUs.
    fn service_stats(&self, id: u32) -> Result<TrafficStats, DataplaneError>;
    /// Traffic of backend `index`, summed over CPUs.
    fn backend_stats(&self, index: u16) -> Result<TrafficStats, DataplaneError>;
    /// Outcome and event counters summed over CPUs, indexed by `outcome::*`.
    fn global_stats(&self) -> Result<[u64; outcome::COUNT as usize], DataplaneError>;
    /// The flood guard's and the event ring's counters, summed over CPUs (the window
    /// fields are zero).
    fn flow_guard(&self) -> Result<FlowGuard, DataplaneError>;
    /// The data plane's clock (CLOCK_MONOTONIC, which `bpf_ktime_get_coarse_ns` reads
    /// at tick resolution) in nanoseconds.
    fn now_ns(&self) -> u64;
}

/// The writes the reconciler makes, on top of the reads.
pub trait DataplaneOps: DataplaneRead {
    /// Write a backend slot.
    fn set_backend(&mut self, index: u16, backend: &Backend) -> Result<(), DataplaneError>;
    /// Install or atomically replace a service.
    fn set_service(&mut self, key: &ServiceKey, table: &Table) -> Result<(), DataplaneError>;
    /// Remove a service (missing is not an error).
    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DataplaneError>;
    /// Route fragments of (VIP, protocol) to a service.
    fn set_frag_route(&mut self, key: &FragKey, service: &ServiceKey)
        -> Result<(), DataplaneError>;
    /// Remove a fragment route (missing is not an error).
    fn remove_frag_route(&mut self, key: &FragKey) -> Result<(), DataplaneError>;
    /// Forget a tracked connection (missing is not an error).
    fn remove_conn(&mut self, key: &ConnKey) -> Result<(), DataplaneError>;
    /// Record a connection (one a peer LB node synced).
    fn set_conn(&mut self, key: &ConnKey, value: &ConnValue) -> Result<(), DataplaneError>;
    /// Replace the forwarding switch and hash seed.
    fn set_config(&mut self, config: &DataplaneConfig) -> Result<(), DataplaneError>;
}

/// Reads through a reference or a lock guard (observers hold the data plane in a
/// mutex), so `views::from_maps(&guard)` works as it does on the value.
macro_rules! forward_read {
    ($($ty:ty),*) => {$(
        impl<T: DataplaneRead + ?Sized> DataplaneRead for $ty {
            fn backends(&self) -> Result<Vec<Backend>, DataplaneError> {
                (**self).backends()
            }
            fn service_keys(&self) -> Result<Vec<ServiceKey>, DataplaneError> {
                (**self).service_keys()
            }
            fn service(&self, key: &ServiceKey) -> Result<Option<Table>, DataplaneError> {
                (**self).service(key)
            }
            fn frag_routes(&self) -> Result<HashMap<FragKey, ServiceKey>, DataplaneError> {
                (**self).frag_routes()
            }
            fn conn(&self, key: &ConnKey) -> Result<Option<ConnValue>, DataplaneError> {
                (**self).conn(key)
            }
            fn conns(&self) -> Result<HashMap<ConnKey, ConnValue>, DataplaneError> {
                (**self).conns()
            }
            fn config(&self) -> Result<DataplaneConfig, DataplaneError> {
                (**self).config()
            }
            fn service_stats(&self, id: u32) -> Result<TrafficStats, DataplaneError> {
                (**self).service_stats(id)
            }
            fn backend_stats(&self, index: u16) -> Result<TrafficStats, DataplaneError> {
                (**self).backend_stats(index)
            }
            fn global_stats(&self) -> Result<[u64; outcome::COUNT as usize], DataplaneError> {
                (**self).global_stats()
            }
            fn flow_guard(&self) -> Result<FlowGuard, DataplaneError> {
                (**self).flow_guard()
            }
            fn now_ns(&self) -> u64 {
                (**self).now_ns()
            }
        }
    )*};
}

forward_read!(&T, std::sync::MutexGuard<'_, T>);

impl DataplaneRead for Dataplane {
    fn backends(&self) -> Result<Vec<Backend>, DataplaneError> {
        Dataplane::backends(self)
    }
    fn service_keys(&self) -> Result<Vec<ServiceKey>, DataplaneError> {
        Dataplane::service_keys(self)
    }
    fn service(&self, key: &ServiceKey) -> Result<Option<Table>, DataplaneError> {
        Dataplane::service(self, key)
    }
    fn frag_routes(&self) -> Result<HashMap<FragKey, ServiceKey>, DataplaneError> {
        Dataplane::frag_routes(self)
    }
    fn conn(&self, key: &ConnKey) -> Result<Option<ConnValue>, DataplaneError> {
        Dataplane::conn(self, key)
    }
    fn conns(&self) -> Result<HashMap<ConnKey, ConnValue>, DataplaneError> {
        Dataplane::conns(self)
    }
    fn config(&self) -> Result<DataplaneConfig, DataplaneError> {
        Dataplane::config(self)
    }
    fn service_stats(&self, id: u32) -> Result<TrafficStats, DataplaneError> {
        Dataplane::service_stats(self, id)
    }
    fn backend_stats(&self, index: u16) -> Result<TrafficStats, DataplaneError> {
        Dataplane::backend_stats(self, index)
    }
    fn global_stats(&self) -> Result<[u64; outcome::COUNT as usize], DataplaneError> {
        Dataplane::global_stats(self)
    }
    fn flow_guard(&self) -> Result<FlowGuard, DataplaneError> {
        Dataplane::flow_guard(self)
    }
    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }
}

impl DataplaneOps for Dataplane {
    fn set_backend(&mut self, index: u16, backend: &Backend) -> Result<(), DataplaneError> {
        Dataplane::set_backend(self, index, backend)
    }
    fn set_service(&mut self, key: &ServiceKey, table: &Table) -> Result<(), DataplaneError> {
        Dataplane::set_service(self, key, table)
    }
    fn remove_service(&mut self, key: &ServiceKey) -> Result<(), DataplaneError> {
        Dataplane::remove_service(self, key)
    }
    fn set_frag_route(
        &mut self,
        key: &FragKey,
        service: &ServiceKey,
    ) -> Result<(), DataplaneError> {
        Dataplane::set_frag_route(self, key, service)
    }
    fn remove_frag_route(&mut self, key: &FragKey) -> Result<(), DataplaneError> {
        Dataplane::remove_frag_route(self, key)
    }
    fn remove_conn(&mut self, key: &ConnKey) -> Result<(), DataplaneError> {
        Dataplane::remove_conn(self, key)
    }
    fn set_conn(&mut self, key: &ConnKey, value: &ConnValue) -> Result<(), DataplaneError> {
        Dataplane::set_conn(self, key, value)
    }
    fn set_config(&mut self, config: &DataplaneConfig) -> Result<(), DataplaneError> {
        Dataplane::set_config(self, config)
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the data plane reads
/// (`bpf_ktime_get_coarse_ns`, the same clock at tick resolution).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

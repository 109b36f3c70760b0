//! Backend health checks: TCP connect, HTTP/HTTPS GET and external scripts,
//! with keepalived-style rise/fall thresholds.
//!
//! Split by concern so each part is testable on its own:
//! - [`state`]: pure rise/fall counting ([`RiseFall`]) over probe [`Outcome`]s;
//! - [`probe`](mod@probe): one probe of one backend (all the I/O);
//! - [`monitor`]: one task per backend, bounded concurrency, [`HealthEvent`]s
//!   on every transition, snapshots for `lbctl health`.
//!
//! The daemon translates its configuration into [`CheckSpec`]s and feeds the
//! events into the data plane; this module knows nothing about either.

pub mod monitor;
pub mod probe;
pub mod state;

pub use monitor::{
    BackendKey, BoxFuture, CheckSpec, HealthEvent, HealthMonitor, HealthStatus, Prober, Statuses,
    MIN_INTERVAL,
};
pub use probe::{probe, Probe, TlsMode};
pub use state::{Outcome, RiseFall, Transition};

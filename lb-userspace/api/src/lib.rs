//! The contract between lbd and its observers (lbctl, metrics, tests): the control
//! protocol ([`control`]: JSON lines on a Unix socket) and every view it carries
//! ([`view`]). No data-plane or daemon code: both sides depend on this crate, never on
//! each other.

pub mod control;
pub mod fmt;
pub mod listen;
pub mod mode;
pub mod view;

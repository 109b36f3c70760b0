//! placeholder
pub mod snapshot;
pub mod track;

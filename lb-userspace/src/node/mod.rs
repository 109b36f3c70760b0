//! placeholder
pub mod track;

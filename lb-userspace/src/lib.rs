//! The controller side of the load balancer: the typed data-plane API that `lbd`
//! and `lbctl` use, and the flow explanation shared with tests.
//!
//! - [`dataplane`]: load the embedded XDP program, attach it, read and write its maps
//!   through typed methods (no map names or Pod types leak out).
//! - [`explain`]: where a flow would go and why, computed by the same selection code
//!   the XDP program runs.

pub mod dataplane;
pub mod explain;

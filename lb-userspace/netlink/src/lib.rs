//! lbd's rtnetlink edge: backend MAC resolution and neighbour/link following
//! ([`neigh`]) and VIP addresses on interfaces ([`addr`]), over one connection setup.

pub mod addr;
pub mod neigh;

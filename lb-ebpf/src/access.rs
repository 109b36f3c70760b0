//! Bounds-checked packet access, shared by the balancer (`lb`) and the bench programs
//! (`lb-bench`): every read or write of packet bytes starts from [`ptr_at`], which
//! checks the bytes against `data_end` first, as the verifier requires.

use aya_ebpf::programs::XdpContext;
use core::{mem, ptr};

/// A pointer to a `T` at `offset`, if the packet holds all of it.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Read a `T` at `offset` from `base`, a pointer [`ptr_at`] returned for a range that
/// holds it.
///
/// # Safety
/// `offset + size_of::<T>()` bytes from `base` must be within the range checked.
#[inline(always)]
pub unsafe fn field<T: Copy>(base: *const u8, offset: usize) -> T {
    // SAFETY: in bounds per the caller; a natural-width load (one load, as C XDP
    // programs do; the verifier and the JITs allow unaligned packet access).
    unsafe { ptr::read(base.add(offset) as *const T) }
}

/// Write a `T` at `offset` from `base`.
///
/// # Safety
/// `offset + size_of::<T>()` bytes from `base` must be within the range checked.
#[inline(always)]
pub unsafe fn put<T: Copy>(base: *mut u8, offset: usize, value: T) {
    // SAFETY: per the caller.
    unsafe { ptr::write(base.add(offset) as *mut T, value) }
}

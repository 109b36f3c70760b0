//! The one syscall aya 0.14 does not offer: `BPF_MAP_LOOKUP_ELEM` into a caller-owned
//! buffer. A Maglev table value is 256 KiB; aya's typed `get` returns values by value,
//! which would put it on a (2 MiB tokio / test) thread stack more than once.

use std::{io, os::fd::AsRawFd, os::fd::BorrowedFd};

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;

/// The `BPF_MAP_*_ELEM` member of `union bpf_attr` (stable kernel ABI).
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// Look `key` up in the map `fd`, writing the value into `value`. `Ok(false)` if absent.
///
/// # Safety
/// `K` and `V` must be the map's exact key and value types (sizes match the map's).
pub(super) unsafe fn lookup_into<K, V>(
    fd: BorrowedFd<'_>,
    key: &K,
    value: &mut V,
) -> io::Result<bool> {
    let attr = MapElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        _pad: 0,
        key: key as *const K as u64,
        value: value as *mut V as u64,
        flags: 0,
    };
    // SAFETY: attr points at a valid, fully initialised bpf_attr prefix; the kernel
    // writes exactly value_size bytes, which the caller guarantees is size_of::<V>().
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_ELEM,
            &attr as *const MapElemAttr,
            std::mem::size_of::<MapElemAttr>(),
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOENT) {
        Ok(false)
    } else {
        Err(err)
    }
}

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

/// `SIOCETHTOOL` commands and the one legacy flag used here (linux/ethtool.h).
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_SFLAGS: u32 = 0x26;
const ETH_FLAG_RXVLAN: u32 = 1 << 8;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with `ifr_data`.
#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// `struct ifreq` with `ifr_hwaddr` (a `sockaddr`).
#[repr(C)]
struct IfreqHwaddr {
    name: [libc::c_char; libc::IFNAMSIZ],
    family: libc::sa_family_t,
    data: [u8; 14],
    _pad: [u8; 8],
}

/// A datagram socket in the calling thread's network namespace (interface ioctls are
/// answered for the socket's namespace; sysfs would show the mount's).
fn ioctl_socket() -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// An interface name as `ifr_name`.
fn ifr_name(interface: &str) -> io::Result<[libc::c_char; libc::IFNAMSIZ]> {
    if interface.len() >= libc::IFNAMSIZ || interface.contains('\0') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut name = [0; libc::IFNAMSIZ];
    for (dst, src) in name.iter_mut().zip(interface.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(name)
}

/// `interface`'s MAC address (`SIOCGIFHWADDR`, in the calling thread's namespace).
pub(super) fn mac_address(interface: &str) -> io::Result<[u8; 6]> {
    let fd = ioctl_socket()?;
    let mut req = IfreqHwaddr {
        name: ifr_name(interface)?,
        family: 0,
        data: [0; 14],
        _pad: [0; 8],
    };
    // SAFETY: req is a valid ifreq the kernel fills.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SIOCGIFHWADDR,
            &mut req as *mut IfreqHwaddr,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&req.data[..6]);
    Ok(mac)
}

/// Turn 802.1Q rx VLAN offload off on `interface` (in the calling thread's network
/// namespace), so tags stay in the frame where XDP sees them. `Ok(true)` if it was on.
pub(super) fn rx_vlan_offload_off(interface: &str) -> io::Result<bool> {
    let fd = ioctl_socket()?;
    let mut value = EthtoolValue {
        cmd: ETHTOOL_GFLAGS,
        data: 0,
    };
    let mut req = IfreqData {
        name: ifr_name(interface)?,
        data: &mut value,
        _pad: [0; 16],
    };
    let ioctl = |req: &mut IfreqData| {
        // SAFETY: req is a valid ifreq whose data points at a live ethtool_value.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, req as *mut IfreqData) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    ioctl(&mut req)?;
    if value.data & ETH_FLAG_RXVLAN == 0 {
        return Ok(false);
    }
    value = EthtoolValue {
        cmd: ETHTOOL_SFLAGS,
        data: value.data & !ETH_FLAG_RXVLAN,
    };
    req.data = &mut value;
    ioctl(&mut req)?;
    Ok(true)
}

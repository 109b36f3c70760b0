//! Attaching the program to an interface: driver (native) mode, skb (generic) mode, or
//! auto, which tries driver mode and falls back to skb mode with a logged reason.

use std::path::Path;

use aya::programs::{
    links::{FdLink, PinnedLink},
    xdp::{XdpLink, XdpLinkId},
    Xdp, XdpMode,
};

use super::DataplaneError;

pub use lb_api::mode::{AttachedMode, XdpMode as AttachMode};

pub(super) fn attach(
    prog: &mut Xdp,
    interface: &str,
    mode: AttachMode,
) -> Result<(XdpLinkId, AttachedMode), DataplaneError> {
    let fail = |mode, source| DataplaneError::Attach {
        interface: interface.into(),
        mode,
        source,
    };
    match mode {
        AttachMode::Driver => prog
            .attach(interface, XdpMode::Driver)
            .map(|l| (l, AttachedMode::Driver))
            .map_err(|e| fail(mode, e)),
        AttachMode::Skb => prog
            .attach(interface, XdpMode::Skb)
            .map(|l| (l, AttachedMode::Skb))
            .map_err(|e| fail(mode, e)),
        AttachMode::Auto => match prog.attach(interface, XdpMode::Driver) {
            Ok(link) => {
                tracing::info!(interface, "XDP attached in driver mode");
                Ok((link, AttachedMode::Driver))
            }
            Err(driver_error) => {
                tracing::warn!(
                    interface,
                    reason = %driver_error,
                    "driver-mode XDP attach failed; falling back to skb (generic) mode"
                );
                prog.attach(interface, XdpMode::Skb)
                    .map(|l| (l, AttachedMode::Skb))
                    .map_err(|e| fail(mode, e))
            }
        },
    }
}

/// Attach through a pinned link at `path`: adopt (replace the program in) an existing
/// one, else attach and pin a new one.
pub(super) fn attach_pinned(
    prog: &mut Xdp,
    interface: &str,
    mode: AttachMode,
    path: &Path,
) -> Result<AttachedMode, DataplaneError> {
    let fail = |source| DataplaneError::Attach {
        interface: interface.into(),
        mode,
        source,
    };
    let link_err = |message: String| DataplaneError::Link {
        interface: interface.into(),
        path: path.to_path_buf(),
        message,
    };
    if path.exists() {
        match PinnedLink::from_pin(path) {
            Ok(pinned) => {
                let link =
                    XdpLink::try_from(FdLink::from(pinned)).map_err(|e| link_err(e.to_string()))?;
                prog.attach_to_link(link).map_err(fail)?;
                tracing::info!(interface, pin = %path.display(), "adopted the pinned XDP link; program replaced atomically");
                return Ok(AttachedMode::Adopted);
            }
            Err(e) => {
                tracing::warn!(interface, pin = %path.display(), error = %e, "stale link pin; attaching afresh");
                let _ = std::fs::remove_file(path);
            }
        }
    }
    let (id, got) = attach(prog, interface, mode)?;
    let link = prog.take_link(id).map_err(fail)?;
    let fd_link = FdLink::try_from(link).map_err(|e| link_err(e.to_string()))?;
    fd_link
        .pin(path)
        .map_err(|e| link_err(format!("pinning: {e}")))?;
    Ok(got)
}

/// `interface`'s index and MAC address, in the calling thread's network namespace.
pub(super) fn interface_mac(interface: &str) -> Result<(u32, [u8; 6]), DataplaneError> {
    let fail = |message: String| DataplaneError::Interface {
        interface: interface.to_string(),
        message,
    };
    let name = std::ffi::CString::new(interface).map_err(|e| fail(e.to_string()))?;
    // SAFETY: a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(fail(format!(
            "no such interface ({})",
            std::io::Error::last_os_error()
        )));
    }
    let mac = super::sys::mac_address(interface)
        .map_err(|e| fail(format!("reading its MAC address: {e}")))?;
    Ok((ifindex, mac))
}

//! Attaching the program to an interface: driver (native) mode, skb (generic) mode, or
//! auto, which tries driver mode and falls back to skb mode with a logged reason.

use aya::programs::{xdp::XdpLinkId, Xdp, XdpMode};

use super::DataplaneError;

/// The attach mode an operator asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Native XDP in the driver; fail if the driver cannot.
    Driver,
    /// Generic XDP in the kernel stack (works everywhere, slower).
    Skb,
    /// Driver mode, else skb mode (logged).
    Auto,
}

/// The mode the program actually runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    /// Native XDP.
    Driver,
    /// Generic XDP.
    Skb,
}

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

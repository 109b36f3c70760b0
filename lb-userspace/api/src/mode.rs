//! The XDP attach vocabulary, one type each for config, the data plane and the views:
//! the mode an operator asks for ([`XdpMode`], `interface.xdp_mode` in the config) and
//! the mode the program runs in ([`AttachedMode`], shown by `lbctl status`).

use serde::{Deserialize, Serialize};

/// How the XDP program is to be attached (`interface.xdp_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// Native (driver) mode; fails if the driver lacks XDP support.
    Driver,
    /// Generic (skb) mode: works everywhere, slower.
    Skb,
    /// Driver mode when available, else skb (logged).
    Auto,
}

/// The mode the program actually runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachedMode {
    /// Native XDP.
    Driver,
    /// Generic XDP.
    Skb,
    /// A link pinned by a previous lbd, with the program replaced in place (its mode
    /// is whatever it was attached with).
    Adopted,
}

impl AttachedMode {
    /// Its name on the wire and in logs: "driver", "skb" or "adopted".
    pub fn name(self) -> &'static str {
        match self {
            AttachedMode::Driver => "driver",
            AttachedMode::Skb => "skb",
            AttachedMode::Adopted => "adopted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names() {
        for m in [
            AttachedMode::Driver,
            AttachedMode::Skb,
            AttachedMode::Adopted,
        ] {
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.name())
            );
        }
        assert_eq!(serde_json::to_string(&XdpMode::Auto).unwrap(), "\"auto\"");
    }
}

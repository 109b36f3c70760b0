//! Why a received datagram was refused ([`Reject`]), with the names the view and the
//! metrics count them under.

/// The reason a datagram was refused. Nothing of a refused datagram is ever installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    /// Shorter than a header and a tag.
    Truncated,
    /// Longer than [`crate::wire::MAX_DATAGRAM`].
    Oversized,
    /// Does not start with [`crate::wire::MAGIC`].
    BadMagic,
    /// A protocol version we do not speak.
    UnknownVersion,
    /// A message kind we do not know.
    UnknownKind,
    /// The authentication tag does not match (wrong key, forgery, corruption).
    BadTag,
    /// Authenticated, but its payload does not decode.
    Malformed,
    /// From an earlier epoch of a node whose later epoch we know (a replay, or a
    /// restarted node's stale packet).
    OldEpoch,
    /// A sequence number already received.
    Replay,
    /// A sequence number older than the replay window (cannot tell if already seen).
    StaleSequence,
    /// Addressed to another node (a datagram of another peer's unicast stream).
    NotForUs,
    /// A resync request from a new address while the table of direct streams is full.
    TooManyStreams,
}

impl Reject {
    /// Every reason, in a stable order.
    pub const ALL: [Reject; 12] = [
        Reject::Truncated,
        Reject::Oversized,
        Reject::BadMagic,
        Reject::UnknownVersion,
        Reject::UnknownKind,
        Reject::BadTag,
        Reject::Malformed,
        Reject::OldEpoch,
        Reject::Replay,
        Reject::StaleSequence,
        Reject::NotForUs,
        Reject::TooManyStreams,
    ];

    /// The name it is counted under ("bad_tag", "replay", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::Oversized => "oversized",
            Reject::BadMagic => "bad_magic",
            Reject::UnknownVersion => "unknown_version",
            Reject::UnknownKind => "unknown_kind",
            Reject::BadTag => "bad_tag",
            Reject::Malformed => "malformed",
            Reject::OldEpoch => "old_epoch",
            Reject::Replay => "replay",
            Reject::StaleSequence => "stale_sequence",
            Reject::NotForUs => "not_for_us",
            Reject::TooManyStreams => "too_many_streams",
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

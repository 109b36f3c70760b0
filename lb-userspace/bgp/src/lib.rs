//! Driving a BGP speaker the operator runs; lbd writes no BGP itself.
//!
//! - [`bird`]: BIRD 2, the tested default: the routes file lbd owns, and BIRD's
//!   control-socket protocol (`configure`, `show protocols`);
//! - [`command`]: any other speaker (FRR's vtysh, GoBGP's gobgp) through commands;
//! - [`speaker`]: one [`Speaker`](speaker::Speaker) over both: make the speaker hold
//!   exactly a set of VIPs, and read its sessions.
//!
//! Which VIPs to announce is the node core's decision (`lbd`'s `node::announce`);
//! this crate only carries it out and reports what went wrong.

pub mod bird;
pub mod command;
pub mod speaker;

use std::time::Duration;

/// How long one request to the speaker may take (connect, command, reply).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request to the speaker failed. Every failure is retried by the caller.
#[derive(Debug, thiserror::Error)]
pub enum BgpError {
    /// The control socket could not be reached (BIRD down, socket missing).
    #[error("speaker unreachable at {socket}: {source}")]
    Unreachable {
        /// The socket.
        socket: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The speaker answered with an error.
    #[error("speaker refused {request:?}: {message}")]
    Refused {
        /// What was asked.
        request: String,
        /// Its answer.
        message: String,
    },
    /// The speaker's answer was not in its protocol.
    #[error("speaker answered {request:?} with something unreadable: {message}")]
    Protocol {
        /// What was asked.
        request: String,
        /// What was wrong.
        message: String,
    },
    /// No answer within [`REQUEST_TIMEOUT`].
    #[error("speaker did not answer {request:?} within {:?}", REQUEST_TIMEOUT)]
    Timeout {
        /// What was asked.
        request: String,
    },
    /// Writing the routes file failed.
    #[error("writing {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command could not be run or failed.
    #[error("{command}: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and output, or why it did not run.
        message: String,
    },
}

/// A BGP session as the speaker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The speaker's name for it.
    pub name: String,
    /// Its state ("up", "start", "down", ...).
    pub state: String,
    /// Details ("Established", "Active", an error).
    pub info: String,
}

//! `lbctl import-keepalived`: converts a keepalived.conf (keepalived 2.2.7 syntax)
//! into an lbd TOML configuration, reporting everything it could not carry over.
//!
//! What is converted, with keepalived's own defaults and corrections applied so the
//! result behaves the way keepalived ran the file:
//! - `global_defs`: `router_id` -> `[global] node_name`; `vrrp_version`,
//!   `vrrp_garp_master_delay` / `_repeat` become per-instance defaults.
//! - `vrrp_instance` -> `[[vrrp]]` (interface, VRID, priority, version, advert
//!   interval, preemption, `auth_type PASS` password, unicast source and peers,
//!   virtual addresses, `track_script` entries from their `vrrp_script`, notify
//!   scripts, gratuitous ARP timing). `state` is only a start hint (lbd elects).
//!   `mcast_src_ip` is the advert source as `unicast_src_ip` is (lbd's
//!   `unicast_source` is used for multicast adverts too).
//! - `virtual_server IP PORT` -> `[[service]]` named `vs-IP-PORT`, its
//!   `real_server`s -> backends, and the first real server's checker -> the
//!   service's health check (TCP_CHECK -> tcp, HTTP_GET -> http, SSL_GET -> https
//!   without certificate verification, MISC_CHECK -> exec), with keepalived's
//!   timing: interval = `delay_loop` (default 60s), timeout = `connect_timeout`
//!   (default 5s), fall = 1 + `retry`, backends start up unless `alpha`.
//!   Schedulers: `sh` and `mh` hash the client address in IPVS, so they become
//!   `source-hash` (`maglev` with the `sh-port` / `mh-port` flag); every other
//!   scheduler becomes `maglev`, with a warning.
//! - `[[interface]]`: the instances' interfaces (or `eth0`, with a warning).
//!
//! Every option, value or block that is not carried over as written is a
//! [`Warning`] (`FILE:LINE: OPTION: REASON`), also listed in the TOML's header.
//! The TOML always passes [`crate::parse`]: values lbd would refuse are
//! corrected or left out, and reported. [`import_str`] does no I/O;
//! [`import_file`] reads the file and the files its `include`s match.

mod convert;
mod emit;
mod glob;
mod lex;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::ConfigError;

/// The result of a conversion: lbd's TOML and what was not carried over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// A complete lbd configuration (it passes [`crate::parse`]).
    pub toml: String,
    /// Every keepalived option not carried over as written, in file order.
    pub warnings: Vec<Warning>,
}

/// One keepalived option, value or block that was not carried over as written.
///
/// Displays as `FILE:LINE: OPTION: REASON`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The keepalived file it was written in (the given path, or an include's match).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// The keepalived keyword (e.g. `persistence_timeout`, `lvs_sched`).
    pub option: String,
    /// What happened to it and why.
    pub reason: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.option,
            self.reason
        )
    }
}

/// Why a conversion failed (the text itself never fails it: see [`Warning`]).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file given to [`import_file`] cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An `include` leads back to a file that is being read.
    #[error(
        "{}:{line}: include {pattern}: include loop: {}",
        file.display(),
        chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" -> ")
    )]
    IncludeLoop {
        /// The file with the `include` that closes the loop.
        file: PathBuf,
        /// Its line.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// The files being read, outermost first, ending with the one included again.
        chain: Vec<PathBuf>,
    },
    /// The converted configuration does not pass lbd's validation: a converter bug
    /// (the converter corrects or leaves out every value lbd refuses).
    #[error("the converted configuration does not pass lbd's validation (a converter bug, please report it): {error}")]
    Invalid {
        /// The TOML produced.
        toml: String,
        /// What lbd's validation says.
        error: ConfigError,
    },
}

/// Collects warnings, deduplicated, and sorts them in file order.
#[derive(Debug, Default)]
struct Warnings {
    list: Vec<Warning>,
    /// Files in the order they were first seen (the sort key's first part).
    files: Vec<PathBuf>,
}

impl Warnings {
    /// Records a warning about the statement at `loc`.
    fn push(&mut self, loc: &lex::Loc, option: impl Into<String>, reason: impl Into<String>) {
        let w = Warning {
            file: loc.file.to_path_buf(),
            line: loc.line,
            option: option.into(),
            reason: reason.into(),
        };
        if !self.files.contains(&w.file) {
            self.files.push(w.file.clone());
        }
        if !self.list.contains(&w) {
            self.list.push(w);
        }
    }

    /// Notes a file being read, so its warnings sort where it was included.
    fn file_seen(&mut self, file: &Path) {
        if !self.files.iter().any(|f| f == file) {
            self.files.push(file.to_owned());
        }
    }

    /// The warnings by file (in reading order), then line; stable otherwise.
    fn finish(mut self) -> Vec<Warning> {
        let files = self.files;
        self.list.sort_by_key(|w| {
            (
                files
                    .iter()
                    .position(|f| *f == w.file)
                    .unwrap_or(usize::MAX),
                w.line,
            )
        });
        self.list
    }
}

/// Reads included files from the file system.
struct FsSource;

impl lex::Source for FsSource {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn glob(&self, pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
        glob::expand(pattern)
    }

    fn identity(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
    }
}

/// Converts the keepalived configuration in the file `path`, following its
/// `include`s (glob patterns, relative to the including file's directory).
pub fn import_file(path: &Path) -> Result<Imported, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    run(&text, path, Some(&FsSource))
}

/// Converts keepalived configuration text; `file` names it in warnings and the
/// header. Pure: `include`s are not followed (each one is reported).
pub fn import_str(text: &str, file: &Path) -> Result<Imported, ImportError> {
    run(text, file, None)
}

fn run(text: &str, file: &Path, source: Option<&dyn lex::Source>) -> Result<Imported, ImportError> {
    let mut warnings = Warnings::default();
    warnings.file_seen(file);
    let tree = {
        let mut reader = lex::Reader::new(source, &mut warnings);
        reader.read_text(file, text)?;
        reader.into_tree()
    };
    let model = convert::convert(&tree, file, &mut warnings);
    let warnings = warnings.finish();
    let toml = emit::emit(&model, file, &warnings);
    let out_name = file.with_extension("lbd.toml");
    if let Err(error) = crate::parse(&toml, &out_name) {
        return Err(ImportError::Invalid { toml, error });
    }
    Ok(Imported { toml, warnings })
}

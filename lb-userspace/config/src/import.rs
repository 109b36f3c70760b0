//! `lbctl import-keepalived`: converts a keepalived.conf (keepalived 2.2.7 syntax)
//! into an lbd TOML configuration, reporting everything it could not carry over.
//!
//! What is converted, with keepalived's own defaults and corrections applied so the
//! result behaves the way keepalived ran the file:
//! - `global_defs`: `router_id` -> `[global] node_name`; `vrrp_version`,
//!   `vrrp_garp_master_delay` / `_repeat` become per-instance defaults;
//!   `lvs_timeouts tcp N tcpfin N udp N` (any subset, any order) -> `[global]
//!   timeout_tcp` / `timeout_tcpfin` / `timeout_udp` (0, IPVS's "unchanged", keeps
//!   lbd's default, which is IPVS's); `lvs_sync_daemon IF [[inst] INSTANCE] [port
//!   N] [group IP] ...` -> `[sync]` with `instance`, `port`, `group` and
//!   `key_file = "/etc/lbd/sync.key"` (lbd authenticates sync: a warning says how
//!   to create the key; `id`, `maxlen`, `ttl` and the interface are reported).
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
//! The TOML always passes lbd's validation: values lbd would refuse are
//! corrected or left out, and reported. The one exception is the sync key: a
//! converted `[sync]` names `key_file = "/etc/lbd/sync.key"`, which the operator
//! creates afterwards, so the importer validates its output without reading key
//! files, and [`crate::parse`] (`lbd --check-config`) accepts it once the key
//! exists. [`import_str`] does no I/O; [`import_file`] reads the file and the
//! files its `include`s match.
//!
//! Hostile or broken input fails with an [`ImportError`] naming the file, the line
//! and the reason, never by exhausting the stack, memory or time: only regular
//! files are read (no FIFO, no device), each and all of them within a size bound,
//! and the nesting of blocks and includes, the expansion of `$NAME` definitions,
//! the include globs' work, the number of tokens and of files are bounded (see
//! [`limits`]). A control character outside a comment is refused (it is not
//! keepalived.conf text), and so are more `virtual_server`s or distinct
//! `real_server` addresses than lbd holds. Conversion is linear in the input.

#[cfg(test)]
mod bounds_tests;
mod convert;
mod emit;
mod glob;
mod lex;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::ConfigError;

/// The result of a conversion: lbd's TOML and what was not carried over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// A complete lbd configuration (it passes [`crate::parse`], once the key file
    /// of a converted `[sync]` exists).
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

/// Why a conversion failed (the text's meaning never fails it: see [`Warning`];
/// only unreadable input, text that is not keepalived.conf text, an include loop,
/// or input beyond the importer's bounds does).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file given to [`import_file`] cannot be read: missing, not a regular
    /// file, too large, not UTF-8 (then with its line).
    #[error("{}{}: cannot read: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Read {
        /// The file.
        path: PathBuf,
        /// The line of the problem, when it is in the text (invalid UTF-8).
        line: Option<usize>,
        /// Why.
        reason: String,
    },
    /// The input cannot be converted: a control character in the text, or more of
    /// something than the importer (or lbd) allows, see [`limits`].
    #[error("{}{}: {reason}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Input {
        /// The file.
        file: PathBuf,
        /// The line, when one is to blame.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
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

impl ImportError {
    /// An [`ImportError::Input`] about the statement at `loc`.
    fn input(loc: &lex::Loc, reason: impl Into<String>) -> Self {
        ImportError::Input {
            file: loc.file.to_path_buf(),
            line: Some(loc.line),
            reason: reason.into(),
        }
    }
}

/// The importer's bounds: whatever the input, reading and converting it takes
/// memory and time proportional to these, and past one of them the conversion
/// fails with an [`ImportError`] naming the file, the line and the bound.
pub mod limits {
    /// Bytes of one file (the given one, each included one).
    pub const MAX_FILE_BYTES: u64 = crate::read::MAX_FILE_BYTES;
    /// Bytes read in all, over every file and include.
    pub const MAX_TOTAL_BYTES: u64 = 64 << 20;
    /// Files read in all (the given one and every include, a file included twice
    /// counting twice).
    pub const MAX_FILES: usize = 1000;
    /// `include` statements followed in all.
    pub const MAX_INCLUDE_STATEMENTS: usize = 10_000;
    /// Includes within includes.
    pub const MAX_INCLUDE_DEPTH: usize = 16;
    /// Directory entries an `include` glob may examine, over all includes.
    pub const MAX_GLOB_ENTRIES: usize = 100_000;
    /// Files one `include` pattern may match.
    pub const MAX_GLOB_MATCHES: usize = MAX_FILES;
    /// Brace alternatives (`{a,b}`) one `include` pattern may expand to.
    pub const MAX_GLOB_ALTERNATIVES: usize = 1024;
    /// Bytes of an `include` pattern (keepalived reads lines of 1024 bytes).
    pub const MAX_PATTERN_BYTES: usize = 4096;
    /// `{ ... }` blocks within blocks (keepalived's deepest is 4: virtual_server,
    /// real_server, HTTP_GET, url; unclosed blocks nest what follows them).
    pub const MAX_BLOCK_DEPTH: usize = 256;
    /// Bytes of a line once `$NAME` definitions are substituted.
    pub const MAX_LINE_BYTES: usize = 64 << 10;
    /// Bytes produced by `$NAME` substitution in all.
    pub const MAX_SUBSTITUTED_BYTES: usize = 64 << 20;
    /// Words and braces in all.
    pub const MAX_TOKENS: usize = 2_000_000;
    /// Warnings listed (the rest are counted in a last one).
    pub const MAX_WARNINGS: usize = 100_000;
    /// `virtual_server`s converted: lbd's `max_services` bound.
    pub const MAX_SERVICES: usize = crate::limits::MAX_SERVICES as usize;
    /// Distinct real_server addresses: lbd's `max_backends` bound.
    pub const MAX_BACKENDS: usize = crate::limits::MAX_BACKENDS as usize;
}

/// Collects warnings, deduplicated (in linear time), and sorts them in file order.
#[derive(Debug, Default)]
struct Warnings {
    list: Vec<Warning>,
    /// Hash of a warning -> its indices in `list` (for deduplication).
    index: HashMap<u64, Vec<usize>>,
    /// Warnings past [`limits::MAX_WARNINGS`], not listed.
    dropped: usize,
    /// Files in the order they were first seen (the sort key's first part).
    files: Vec<PathBuf>,
    /// Position of each file in `files`.
    file_pos: HashMap<PathBuf, usize>,
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
        self.file_seen(&w.file);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        w.file.hash(&mut h);
        w.line.hash(&mut h);
        w.option.hash(&mut h);
        w.reason.hash(&mut h);
        let same = self.index.entry(h.finish()).or_default();
        if same.iter().any(|&i| self.list[i] == w) {
            return;
        }
        if self.list.len() >= limits::MAX_WARNINGS {
            self.dropped += 1;
            return;
        }
        same.push(self.list.len());
        self.list.push(w);
    }

    /// Notes a file being read, so its warnings sort where it was included.
    fn file_seen(&mut self, file: &Path) {
        if !self.file_pos.contains_key(file) {
            self.file_pos.insert(file.to_owned(), self.files.len());
            self.files.push(file.to_owned());
        }
    }

    /// The warnings by file (in reading order), then line; stable otherwise.
    fn finish(mut self) -> Vec<Warning> {
        let pos = self.file_pos;
        self.list
            .sort_by_key(|w| (pos.get(&w.file).copied().unwrap_or(usize::MAX), w.line));
        if self.dropped > 0 {
            if let Some(first) = self.files.first() {
                self.list.push(Warning {
                    file: first.clone(),
                    line: 1,
                    option: "warnings".to_owned(),
                    reason: format!(
                        "{} more warning(s) not listed (at most {} are)",
                        self.dropped,
                        limits::MAX_WARNINGS
                    ),
                });
            }
        }
        self.list
    }
}

/// Reads included files from the file system.
struct FsSource;

impl lex::Source for FsSource {
    fn read(&self, path: &Path, max_bytes: u64) -> Result<String, crate::read::ReadFailure> {
        crate::read::read_text(path, max_bytes)
    }

    fn glob(
        &self,
        pattern: &Path,
        budget: &mut glob::Budget,
    ) -> Result<Vec<PathBuf>, glob::GlobError> {
        glob::expand(pattern, budget)
    }

    fn identity(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
    }
}

/// Converts the keepalived configuration in the file `path`, following its
/// `include`s (glob patterns, relative to the including file's directory).
/// Only regular files are read, within [`limits`].
pub fn import_file(path: &Path) -> Result<Imported, ImportError> {
    let text =
        crate::read::read_text(path, limits::MAX_FILE_BYTES).map_err(|e| ImportError::Read {
            path: path.to_owned(),
            line: e.line,
            reason: e.reason,
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
        reader.read_top(file, text)?;
        reader.into_tree()?
    };
    let model = convert::convert(&tree, file, &mut warnings)?;
    let warnings = warnings.finish();
    let toml = emit::emit(&model, file, &warnings);
    let out_name = file.with_extension("lbd.toml");
    // The key file a converted [sync] names is created by the operator afterwards:
    // everything but reading it is checked.
    if let Err(error) = crate::parse_with(&toml, &out_name, crate::KeyFiles::NotRead) {
        return Err(ImportError::Invalid { toml, error });
    }
    Ok(Imported { toml, warnings })
}

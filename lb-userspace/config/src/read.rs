//! Reading a configuration file without trusting what the path names.
//!
//! `lbd --check-config /dev/zero`, a FIFO given as `--config`, or a reload whose
//! path was replaced by a FIFO must fail at once with a reason, not read until
//! memory runs out or block forever. So a file is opened with `O_NONBLOCK` (opening
//! a FIFO does not wait for a writer), checked with `fstat` on the open descriptor
//! (no race with a rename), refused unless it is a regular file, refused when it is
//! larger than the cap, and read through a `take(cap + 1)` (a file that grows while
//! it is read is still bounded). Text that is not UTF-8 is refused with the line
//! and column of the first bad byte.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest configuration file read (lbd's TOML, a keepalived.conf, each of its
/// includes): 16 MiB, far above any real configuration.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Why a file was not read: the line (when the problem is in the text) and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadFailure {
    /// What kind of problem it is.
    pub kind: FailureKind,
    /// 1-based line of the problem, when it is in the text (invalid UTF-8).
    pub line: Option<usize>,
    /// What is wrong, e.g. `a FIFO, not a regular file: ...`.
    pub reason: String,
}

/// The kinds of [`ReadFailure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Opening, inspecting or reading failed (missing, permission, I/O error).
    Io,
    /// Not a regular file (a FIFO, a device, a directory, a socket).
    NotRegular,
    /// Larger than the cap.
    TooLarge,
    /// Not UTF-8 text (`line` says where).
    NotUtf8,
}

impl ReadFailure {
    fn new(kind: FailureKind, reason: impl Into<String>) -> Self {
        ReadFailure {
            kind,
            line: None,
            reason: reason.into(),
        }
    }
}

/// What kind of file a non-regular file is, for the message.
fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// `n` bytes for a message (`16 MiB`, `3.0 GiB`, `512 bytes`).
pub(crate) fn bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if n >= GIB {
        format!("{:.1} GiB", n as f64 / GIB as f64)
    } else if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}

/// Opens `path` without blocking on a FIFO and checks, on the open descriptor, that
/// it is a regular file of at most `max_bytes`.
fn open_regular(path: &Path, max_bytes: u64) -> Result<(File, u64), ReadFailure> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| ReadFailure::new(FailureKind::Io, format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| ReadFailure::new(FailureKind::Io, format!("cannot stat: {e}")))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(ReadFailure::new(
            FailureKind::NotRegular,
            format!(
            "{}, not a regular file: only regular files are read (a FIFO or a device may never end or block)",
            kind(ft)
        ),
        ));
    }
    if meta.len() > max_bytes {
        return Err(ReadFailure::new(
            FailureKind::TooLarge,
            format!(
                "the file is {} ({} bytes), larger than the {} limit",
                bytes(meta.len()),
                meta.len(),
                bytes(max_bytes)
            ),
        ));
    }
    Ok((file, meta.len()))
}

/// Reads the regular file `path` (at most `max_bytes`) as bytes: what
/// [`read_text`] does without the UTF-8 check (for a key file, which may be binary).
pub fn read_bytes(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadFailure> {
    let (file, len) = open_regular(path, max_bytes)?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| ReadFailure::new(FailureKind::Io, format!("cannot read: {e}")))?;
    if buf.len() as u64 > max_bytes {
        return Err(ReadFailure::new(
            FailureKind::TooLarge,
            format!(
                "the file grew past the {} limit while it was read",
                bytes(max_bytes)
            ),
        ));
    }
    Ok(buf)
}

/// Reads the regular file `path` (at most `max_bytes`) as UTF-8 text.
pub fn read_text(path: &Path, max_bytes: u64) -> Result<String, ReadFailure> {
    let buf = read_bytes(path, max_bytes)?;
    String::from_utf8(buf).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let (line, column) = line_column(bytes, valid);
        ReadFailure {
            kind: FailureKind::NotUtf8,
            line: Some(line),
            reason: format!(
                "not UTF-8 text: byte 0x{:02x} at column {column} does not start a valid UTF-8 character",
                bytes[valid]
            ),
        }
    })
}

/// 1-based line and column (in bytes) of byte offset `offset` in `bytes`.
pub(crate) fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1);
    (line, before.len() - start + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_only_and_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = dir.path().join("ok.toml");
        std::fs::write(&ok, "a = 1\n").expect("write");
        assert_eq!(read_text(&ok, 100).expect("reads"), "a = 1\n");

        // Larger than the cap: refused from fstat, nothing read.
        let big = dir.path().join("big");
        let f = File::create(&big).expect("create");
        f.set_len(3 << 30).expect("sparse 3 GiB");
        let err = read_text(&big, MAX_FILE_BYTES).expect_err("too large");
        assert!(err.reason.contains("3.0 GiB"), "{err:?}");
        assert!(err.reason.contains("16 MiB limit"), "{err:?}");

        // A character device that never ends.
        let err = read_text(Path::new("/dev/zero"), MAX_FILE_BYTES).expect_err("device");
        assert!(err.reason.contains("a character device"), "{err:?}");
        assert_eq!(err.line, None);

        // A directory.
        let err = read_text(dir.path(), MAX_FILE_BYTES).expect_err("dir");
        assert!(err.reason.contains("a directory"), "{err:?}");

        // A FIFO with no writer: the open does not block, the file is refused.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("cstr");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_text(&fifo, MAX_FILE_BYTES).expect_err("fifo");
        assert!(err.reason.contains("a FIFO"), "{err:?}");

        let err = read_text(&dir.path().join("missing"), 10).expect_err("missing");
        assert!(err.reason.starts_with("cannot open: "), "{err:?}");

        // Bytes: no UTF-8 check, same bounds.
        let bin = dir.path().join("bin");
        std::fs::write(&bin, b"\xff\x00k\n").expect("write");
        assert_eq!(read_bytes(&bin, 4).expect("reads"), b"\xff\x00k\n");
        let err = read_bytes(&bin, 3).expect_err("too large");
        assert_eq!(err.kind, FailureKind::TooLarge);
        let err = read_bytes(&fifo, 100).expect_err("fifo");
        assert_eq!(err.kind, FailureKind::NotRegular);
    }

    #[test]
    fn invalid_utf8_has_a_line_and_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, b"a = 1\nb = \"x\xffy\"\n").expect("write");
        let err = read_text(&bad, 100).expect_err("not utf-8");
        assert_eq!(err.line, Some(2));
        assert!(err.reason.contains("0xff at column 7"), "{err:?}");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(16 << 20), "16 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(bytes(100), "100 bytes");
        assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_column(b"ab", 0), (1, 1));
    }
}

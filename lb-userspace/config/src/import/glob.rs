//! The glob(3) subset keepalived's `include` relies on (`GLOB_MARK | GLOB_BRACE`):
//! `*`, `?`, `[...]` (with `!`/`^` negation, ranges, `\` escapes) within one path
//! component, and `{a,b}` alternatives (nested). A leading `.` in a file name is
//! only matched by a pattern that starts with `.`, as glob(3) does.
//!
//! [`matches`] and [`expand_braces`] are pure; [`expand`] lists directories.
//!
//! Why hand-written and not a crate: keepalived expands `include` with glibc's
//! `glob(pattern, GLOB_MARK | GLOB_BRACE)` and skips the directories (the names
//! GLOB_MARK ends in `/`). Checked against glibc 2.36 (Debian 12), none of the
//! maintained crates gives those semantics:
//! - `glob` 0.3: no `{a,b}` at all; no `\` escape (`a\*` does not match `a*`,
//!   an existing case); no `[^...]` negation (glibc takes `^` like `!`); `a[b`
//!   (unclosed class, a literal for glibc) and `a**b` (same as `a*b` for glibc)
//!   are pattern errors; `**/` matches any depth where glibc matches one level.
//! - `globset` 0.4: a matcher only (the directory walk, per-alternative sorting
//!   and the directory skip stay here either way); `*` matches a leading `.` with
//!   no option to stop it (`*.conf` would pull in `.hidden.conf`, an existing
//!   case); `a[b` is an error; `**` is recursive.
//! - `wax` (from its documentation): `**` is a tree wildcard (any depth), and its
//!   syntax is its own, stricter one, not glob(3)'s.
//!
//! Adapting one would mean a pre-pass to rewrite patterns plus this walk: more
//! code than the matcher it would replace. Order: glibc sorts each brace
//! alternative's matches by strcoll(3), i.e. byte order in the C (and C.UTF-8)
//! locale a daemon runs in, which is `PathBuf`'s `Ord`. One known difference from
//! glibc is kept on purpose, as the existing `braces` case pins it: a brace group
//! without a comma (`single{one}`) is literal here (as in sh), while glibc
//! expands it to `singleone`.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::limits::{MAX_GLOB_ALTERNATIVES, MAX_GLOB_ENTRIES, MAX_GLOB_MATCHES, MAX_PATTERN_BYTES};

/// The work the `include` globs of one import may still do (every pattern draws
/// from it, so `include /*/*/*` or many includes cannot walk the whole disk).
#[derive(Debug)]
pub(super) struct Budget {
    /// Directory entries that may still be examined.
    pub entries: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            entries: MAX_GLOB_ENTRIES,
        }
    }
}

/// Why a pattern was not expanded.
#[derive(Debug)]
pub(super) enum GlobError {
    /// Listing a directory failed (keepalived skips such an include).
    Io(io::Error),
    /// The pattern needs more work than the bounds allow (the import fails).
    Limit(String),
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobError::Io(e) => write!(f, "{e}"),
            GlobError::Limit(why) => f.write_str(why),
        }
    }
}

impl From<io::Error> for GlobError {
    fn from(e: io::Error) -> Self {
        GlobError::Io(e)
    }
}

/// The regular files matching `pattern`, sorted per brace alternative (glob(3)
/// sorts each pattern's matches; brace alternatives come in written order).
/// Directories are left out, as keepalived skips them. Bounded: at most
/// [`MAX_GLOB_ALTERNATIVES`] brace alternatives, [`MAX_GLOB_MATCHES`] files, and
/// the directory entries left in `budget`.
pub(super) fn expand(pattern: &Path, budget: &mut Budget) -> Result<Vec<PathBuf>, GlobError> {
    let text = pattern.to_string_lossy();
    if text.len() > MAX_PATTERN_BYTES {
        return Err(GlobError::Limit(format!(
            "the pattern is {} bytes, more than {MAX_PATTERN_BYTES}",
            text.len()
        )));
    }
    let alternatives = expand_braces(&text, MAX_GLOB_ALTERNATIVES).ok_or_else(|| {
        GlobError::Limit(format!(
            "the pattern has more than {MAX_GLOB_ALTERNATIVES} brace alternatives"
        ))
    })?;
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for alternative in alternatives {
        let mut found = expand_one(Path::new(&alternative), budget)?;
        found.sort();
        for f in found {
            if seen.insert(f.clone()) {
                out.push(f);
                if out.len() > MAX_GLOB_MATCHES {
                    return Err(GlobError::Limit(format!(
                        "the pattern matches more than {MAX_GLOB_MATCHES} files"
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// Whether `s` has glob metacharacters.
fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// One brace-free pattern; every directory entry examined is taken from `budget`.
fn expand_one(pattern: &Path, budget: &mut Budget) -> Result<Vec<PathBuf>, GlobError> {
    let mut candidates: Vec<PathBuf> = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = match component {
            Component::Normal(p) => p.to_string_lossy().into_owned(),
            other => {
                for c in &mut candidates {
                    c.push(other.as_os_str());
                }
                continue;
            }
        };
        if !is_pattern(&part) {
            for c in &mut candidates {
                c.push(&part);
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &candidates {
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let entries = match std::fs::read_dir(listing) {
                Ok(e) => e,
                // Not a directory or gone: no match below it (glob(3) skips it).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => continue,
                Err(e) => return Err(e.into()),
            };
            for entry in entries {
                if budget.entries == 0 {
                    return Err(GlobError::Limit(format!(
                        "the include patterns examine more than {MAX_GLOB_ENTRIES} directory entries"
                    )));
                }
                budget.entries -= 1;
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if matches(&part, &name) {
                    next.push(dir.join(name.as_ref()));
                }
            }
        }
        candidates = next;
    }
    Ok(candidates.into_iter().filter(|p| p.is_file()).collect())
}

/// Expands `{a,b}` alternatives (nested, in written order); a brace without a
/// matching close or without a comma is literal. `None` when there are more than
/// `max` alternatives (found without producing them all: the work is bounded by
/// `max` times the pattern's length).
pub(super) fn expand_braces(pattern: &str, max: usize) -> Option<Vec<String>> {
    let mut out = Vec::new();
    // Each call with a group has at least two children, so a pattern with `max`
    // alternatives makes fewer than 2 * max + 1 calls.
    let mut calls = 2 * max + 1;
    braces_into(pattern, max, &mut calls, &mut out).then_some(out)
}

/// [`expand_braces`] into `out`; false when a bound was hit.
fn braces_into(pattern: &str, max: usize, calls: &mut usize, out: &mut Vec<String>) -> bool {
    if *calls == 0 {
        return false;
    }
    *calls -= 1;
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '{' => {
                if let Some((end, commas)) = brace_group(&chars, i) {
                    if !commas.is_empty() {
                        let prefix: String = chars[..i].iter().collect();
                        let suffix: String = chars[end + 1..].iter().collect();
                        let mut bounds = vec![i];
                        bounds.extend(&commas);
                        bounds.push(end);
                        for w in bounds.windows(2) {
                            let alt: String = chars[w[0] + 1..w[1]].iter().collect();
                            if !braces_into(&format!("{prefix}{alt}{suffix}"), max, calls, out) {
                                return false;
                            }
                        }
                        return true;
                    }
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    if out.len() == max {
        return false;
    }
    out.push(pattern.to_owned());
    true
}

/// The matching `}` of the `{` at `open` and the top-level commas inside.
fn brace_group(chars: &[char], open: usize) -> Option<(usize, Vec<usize>)> {
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some((i, commas));
                }
            }
            ',' if depth == 1 => commas.push(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether the file name `name` matches the one-component pattern `pat`.
pub(super) fn matches(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    if n.first() == Some(&'.') && p.first() != Some(&'.') {
        return false;
    }
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0usize, 0usize);
    // Backtracking point for the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match class(p, pi, n[ni]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                // An unclosed `[` is a literal character.
                None => (n[ni] == '[').then_some(pi + 1),
            },
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == n[ni]).then_some(pi + 2),
            Some(&c) => (c == n[ni]).then_some(pi + 1),
            None => None,
        };
        match step {
            Some(next) => {
                pi = next;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the bracket expression starting at `p[open] == '['`:
/// `(matched, index after ']')`, or `None` when there is no closing `]`.
fn class(p: &[char], open: usize, c: char) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let lo = if lo == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            lo
        };
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = p[i + 2];
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 3;
        } else {
            if lo == c {
                matched = true;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("*.conf", "a.conf"));
        assert!(!matches("*.conf", "a.conf.bak"));
        assert!(!matches("*.conf", ".hidden.conf"));
        assert!(matches(".*.conf", ".hidden.conf"));
        assert!(matches("vs-?.conf", "vs-1.conf"));
        assert!(matches("vs-[0-9].conf", "vs-7.conf"));
        assert!(!matches("vs-[!0-9].conf", "vs-7.conf"));
        assert!(matches("vs-[!0-9].conf", "vs-x.conf"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(matches(r"a\*", "a*"));
        assert!(!matches(r"a\*", "ab"));
        assert!(matches("[]]x", "]x"));
        assert!(matches("*", "anything"));
    }

    #[test]
    fn braces() {
        let b = |p: &str| expand_braces(p, 100).expect("within the bound");
        assert_eq!(b("a{b,c}d"), ["abd", "acd"]);
        assert_eq!(b("{x,y{1,2}}"), ["x", "y1", "y2"]);
        assert_eq!(b("no{brace"), ["no{brace"]);
        assert_eq!(b("single{one}"), ["single{one}"]);
        assert_eq!(expand_braces("{a,b}{c,d}", 4).map(|v| v.len()), Some(4));
        assert_eq!(expand_braces("{a,b}{c,d}", 3), None);
    }

    /// glibc glob(3) cases where the `glob`/`globset` crates differ (see the top).
    #[test]
    fn glibc_cases_the_crates_get_wrong() {
        assert!(matches("vs-[^0-9].conf", "vs-x.conf"));
        assert!(!matches("vs-[^0-9].conf", "vs-7.conf"));
        assert!(matches("a**b", "aXb"));
        assert!(matches("a[b", "a[b"));
        assert!(!matches("a[b", "ab"));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("sub/deep")).expect("mkdir");
        for name in ["top.conf", "sub/s.conf", "sub/deep/t.conf"] {
            std::fs::write(dir.path().join(name), "").expect("write");
        }
        // `**` is one level, as `*` (glibc has no recursive `**`).
        let got = expand(&dir.path().join("**/*.conf"), &mut Budget::default()).expect("expand");
        assert_eq!(got, [dir.path().join("sub/s.conf")]);
    }

    #[test]
    fn expands_in_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["b.conf", "a.conf", "c.txt"] {
            std::fs::write(dir.path().join(name), "").expect("write");
        }
        std::fs::create_dir(dir.path().join("d.conf")).expect("mkdir");
        let got = expand(&dir.path().join("*.conf"), &mut Budget::default()).expect("expand");
        assert_eq!(got, [dir.path().join("a.conf"), dir.path().join("b.conf")]);
        let got =
            expand(&dir.path().join("{c.txt,a.conf}"), &mut Budget::default()).expect("expand");
        assert_eq!(got, [dir.path().join("c.txt"), dir.path().join("a.conf")]);
        assert!(
            expand(&dir.path().join("nothing/*.conf"), &mut Budget::default())
                .expect("expand")
                .is_empty()
        );
    }
}

//! keepalived.conf text -> a tree of statements, read the way keepalived 2.2.7's
//! parser (`lib/parser.c`) reads it.
//!
//! - A comment starts at any `#` or `!` outside double quotes (`\#` and `\!` are
//!   literal characters) and runs to the end of the line; so `auth_pass secret!` is
//!   the password `secret`, exactly as keepalived reads it.
//! - A double-quoted string is one word; `{` and `}` outside quotes are tokens of
//!   their own wherever they are, so `unicast_peer { 10.0.0.2 }` on one line is a
//!   block.
//! - `include PATTERN` on a line of its own is replaced by the files the glob
//!   matches (relative to the directory of the including file, brace expansion
//!   included), anywhere, even inside a block; an include loop is an error.
//! - `$NAME=value` definitions and `$NAME` / `${NAME}` substitutions are applied
//!   (single-line definitions only); `@id` / `@^id` conditional lines and `~SEQ`
//!   lines cannot be evaluated here and are reported.
//!
//! Everything that is skipped is reported as a [`super::Warning`]. Reading fails
//! only on a control character outside a comment (not keepalived.conf text), an
//! include loop, or input past one of the bounds in [`super::limits`] (nesting,
//! substitution, includes, bytes, tokens): each error names the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::glob::{Budget, GlobError};
use super::limits::{
    MAX_BLOCK_DEPTH, MAX_FILES, MAX_FILE_BYTES, MAX_INCLUDE_DEPTH, MAX_INCLUDE_STATEMENTS,
    MAX_LINE_BYTES, MAX_SUBSTITUTED_BYTES, MAX_TOKENS, MAX_TOTAL_BYTES,
};
use super::{ImportError, Warnings};
use crate::read::{FailureKind, ReadFailure};

/// Where a statement was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Loc {
    /// The file, as it was named (the top-level path, or an include's match).
    pub file: Rc<Path>,
    /// 1-based line.
    pub line: usize,
}

/// One word of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Word {
    /// The text, without the quotes when it was quoted.
    pub text: String,
    /// Whether it was written in double quotes.
    pub quoted: bool,
}

/// A statement: its words, and its `{ ... }` block when one follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Node {
    /// At least one word; the first is the keyword.
    pub words: Vec<Word>,
    /// Where the keyword was written.
    pub loc: Loc,
    /// The statements of the block that follows, if any.
    pub children: Option<Vec<Node>>,
}

impl Node {
    /// The keyword (first word).
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", |w| w.text.as_str())
    }

    /// The words after the keyword.
    pub fn args(&self) -> &[Word] {
        self.words.get(1..).unwrap_or(&[])
    }

    /// The `i`-th argument's text (0 = the first word after the keyword).
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args().get(i).map(|w| w.text.as_str())
    }

    /// The statement as written, words joined by one space (quoted words quoted).
    pub fn text(&self) -> String {
        join_words(&self.words)
    }
}

/// Words joined by spaces, quoted words in quotes.
pub(super) fn join_words(words: &[Word]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if w.quoted {
            out.push('"');
            out.push_str(&w.text);
            out.push('"');
        } else {
            out.push_str(&w.text);
        }
    }
    out
}

/// Where the files named by `include` come from.
pub(super) trait Source {
    /// The text of a regular file of at most `max_bytes`.
    fn read(&self, path: &Path, max_bytes: u64) -> Result<String, ReadFailure>;
    /// The regular files a glob pattern matches, in keepalived's order, within
    /// `budget`.
    fn glob(&self, pattern: &Path, budget: &mut Budget) -> Result<Vec<PathBuf>, GlobError>;
    /// A path identifying the file whatever it was called (for loop detection).
    fn identity(&self, path: &Path) -> PathBuf;
}

/// One token of the flat stream the tree is built from.
#[derive(Debug)]
enum Tok {
    /// Consecutive words of one line (between braces / line ends).
    Words(Vec<Word>, Loc),
    /// `{`.
    Open(Loc),
    /// `}`.
    Close(Loc),
}

/// Reads files into a token stream, following includes.
pub(super) struct Reader<'a> {
    source: Option<&'a dyn Source>,
    defs: BTreeMap<String, String>,
    toks: Vec<Tok>,
    /// Identities of the files being read (the include chain), outermost first.
    chain: Vec<PathBuf>,
    /// Names of the same files, for the loop error.
    chain_names: Vec<PathBuf>,
    warnings: &'a mut Warnings,
    /// Files read so far (the top-level one included).
    files: usize,
    /// Bytes read so far.
    bytes: u64,
    /// `include` statements followed so far.
    includes: usize,
    /// Bytes produced by substitution so far.
    substituted: usize,
    /// Words and braces so far.
    tokens: usize,
    /// What the include globs may still examine.
    glob_budget: Budget,
}

impl<'a> Reader<'a> {
    /// A reader; `source` is `None` when includes must not be followed.
    pub fn new(source: Option<&'a dyn Source>, warnings: &'a mut Warnings) -> Self {
        Reader {
            source,
            defs: BTreeMap::new(),
            toks: Vec::new(),
            chain: Vec::new(),
            chain_names: Vec::new(),
            warnings,
            files: 0,
            bytes: 0,
            includes: 0,
            substituted: 0,
            tokens: 0,
            glob_budget: Budget::default(),
        }
    }

    /// Reads `text` as the top-level file `path`.
    pub fn read_top(&mut self, path: &Path, text: &str) -> Result<(), ImportError> {
        self.count_file(path, None, text.len())?;
        self.read_text(path, text)
    }

    /// Counts a file of `len` bytes against [`MAX_FILES`] and the byte bounds;
    /// `loc` is the `include` that reads it.
    fn count_file(
        &mut self,
        path: &Path,
        loc: Option<&Loc>,
        len: usize,
    ) -> Result<(), ImportError> {
        let fail = |reason: String| match loc {
            Some(loc) => ImportError::input(loc, reason),
            None => ImportError::Input {
                file: path.to_owned(),
                line: None,
                reason,
            },
        };
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(fail(format!(
                "include {}: more than {MAX_FILES} files read (the same file included again counts again): refused",
                path.display()
            )));
        }
        let len = len as u64;
        if len > MAX_FILE_BYTES {
            return Err(fail(format!(
                "{}: {} bytes, more than the {} limit of one file",
                path.display(),
                len,
                crate::read::bytes(MAX_FILE_BYTES)
            )));
        }
        self.bytes += len;
        if self.bytes > MAX_TOTAL_BYTES {
            return Err(fail(format!(
                "include {}: more than {} read in all files: refused",
                path.display(),
                crate::read::bytes(MAX_TOTAL_BYTES)
            )));
        }
        Ok(())
    }

    /// Reads `text` as the file `path` (the top-level file or an include).
    pub fn read_text(&mut self, path: &Path, text: &str) -> Result<(), ImportError> {
        let identity = match self.source {
            Some(s) => s.identity(path),
            None => path.to_owned(),
        };
        self.warnings.file_seen(path);
        self.chain.push(identity);
        self.chain_names.push(path.to_owned());
        let result = self.read_lines(path, text);
        self.chain.pop();
        self.chain_names.pop();
        result
    }

    fn read_lines(&mut self, path: &Path, text: &str) -> Result<(), ImportError> {
        let file: Rc<Path> = Rc::from(path);
        let mut lines = text.lines().enumerate();
        while let Some((index, raw)) = lines.next() {
            let loc = Loc {
                file: file.clone(),
                line: index + 1,
            };
            let (mut buf, unterminated) = decomment(raw);
            if unterminated {
                self.warnings.push(
                    &loc,
                    buf.split_whitespace().next().unwrap_or("\""),
                    "unterminated quote: the quoted string runs to the end of the line (keepalived reports this line)",
                );
            }
            if buf.is_empty() {
                continue;
            }
            if let Some((column, c)) = control_character(&buf) {
                return Err(ImportError::input(
                    &loc,
                    format!(
                        "control character U+{:04X} (column {column} after comments and leading blanks are removed): not keepalived.conf text; remove it",
                        u32::from(c)
                    ),
                ));
            }
            if buf.starts_with('$') {
                if let Some((name, value)) = definition(&buf) {
                    if value.ends_with('\\') {
                        // A multi-line definition: its continuation lines go with it.
                        let mut last = loc.line;
                        let mut cont = true;
                        while cont {
                            match lines.next() {
                                Some((i, l)) => {
                                    last = i + 1;
                                    cont = decomment(l).0.ends_with('\\');
                                }
                                None => cont = false,
                            }
                        }
                        self.warnings.push(
                            &loc,
                            format!("${name}"),
                            format!("multi-line definitions (lines {}-{last}) are not supported: not defined, so ${name} is not substituted", loc.line),
                        );
                    } else {
                        self.defs.insert(name, value);
                    }
                    continue;
                }
            }
            if buf.starts_with('@') {
                let id = buf.split_whitespace().next().unwrap_or("@");
                self.warnings.push(
                    &loc,
                    id,
                    "lines for a given keepalived config id (@id / @^id) cannot be evaluated here: line skipped",
                );
                continue;
            }
            if buf.starts_with("~SEQ") {
                self.warnings.push(
                    &loc,
                    "~SEQ",
                    "~SEQ loops are not supported: line skipped (expand the loop by hand)",
                );
                continue;
            }
            if !self.defs.is_empty() && buf.contains('$') {
                let budget = MAX_SUBSTITUTED_BYTES - self.substituted;
                match substitute(&buf, &self.defs, budget) {
                    Ok((text, produced)) => {
                        self.substituted += produced;
                        buf = text;
                    }
                    Err(why) => return Err(ImportError::input(&loc, why)),
                }
            }
            if let Some(pattern) = include_pattern(&buf) {
                self.include(pattern, &loc)?;
                continue;
            }
            self.push_items(tokenize(&buf), &loc)?;
        }
        Ok(())
    }

    fn push_items(&mut self, items: Vec<Item>, loc: &Loc) -> Result<(), ImportError> {
        self.tokens += items.len();
        if self.tokens > MAX_TOKENS {
            return Err(ImportError::input(
                loc,
                format!("more than {MAX_TOKENS} words and braces in all: refused"),
            ));
        }
        let mut words: Vec<Word> = Vec::new();
        for item in items {
            match item {
                Item::Word(w) => words.push(w),
                Item::Open | Item::Close => {
                    if !words.is_empty() {
                        self.toks
                            .push(Tok::Words(std::mem::take(&mut words), loc.clone()));
                    }
                    self.toks.push(if matches!(item, Item::Open) {
                        Tok::Open(loc.clone())
                    } else {
                        Tok::Close(loc.clone())
                    });
                }
            }
        }
        if !words.is_empty() {
            self.toks.push(Tok::Words(words, loc.clone()));
        }
        Ok(())
    }

    fn include(&mut self, pattern: &str, loc: &Loc) -> Result<(), ImportError> {
        let Some(source) = self.source else {
            self.warnings.push(
                loc,
                "include",
                format!("{pattern}: not followed (import_str reads no files; use import_file): its contents are not converted"),
            );
            return Ok(());
        };
        self.includes += 1;
        if self.includes > MAX_INCLUDE_STATEMENTS {
            return Err(ImportError::input(
                loc,
                format!("include {pattern}: more than {MAX_INCLUDE_STATEMENTS} include statements followed: refused"),
            ));
        }
        if self.chain.len() >= MAX_INCLUDE_DEPTH {
            return Err(ImportError::input(
                loc,
                format!("include {pattern}: includes nested more than {MAX_INCLUDE_DEPTH} deep: refused"),
            ));
        }
        let base = loc.file.parent().unwrap_or_else(|| Path::new(""));
        let full = base.join(pattern);
        let matches = match source.glob(&full, &mut self.glob_budget) {
            Ok(m) => m,
            Err(GlobError::Limit(why)) => {
                return Err(ImportError::input(
                    loc,
                    format!("include {}: {why}: refused", full.display()),
                ));
            }
            Err(e) => {
                self.warnings.push(
                    loc,
                    "include",
                    format!(
                        "{}: cannot be expanded ({e}): skipped, as keepalived does",
                        full.display()
                    ),
                );
                return Ok(());
            }
        };
        if matches.is_empty() {
            self.warnings.push(
                loc,
                "include",
                format!(
                    "{}: no file matches: nothing included (keepalived skips it too)",
                    full.display()
                ),
            );
            return Ok(());
        }
        for path in matches {
            let identity = source.identity(&path);
            if self.chain.contains(&identity) {
                let mut chain = self.chain_names.clone();
                chain.push(path.clone());
                return Err(ImportError::IncludeLoop {
                    file: loc.file.to_path_buf(),
                    line: loc.line,
                    pattern: pattern.to_owned(),
                    chain,
                });
            }
            match source.read(&path, MAX_FILE_BYTES) {
                Ok(text) => {
                    self.count_file(&path, Some(loc), text.len())?;
                    self.read_text(&path, &text)?;
                }
                // Text keepalived would read (too large, not UTF-8): not skipped.
                Err(
                    e @ ReadFailure {
                        kind: FailureKind::TooLarge | FailureKind::NotUtf8,
                        ..
                    },
                ) => {
                    return Err(ImportError::Read {
                        path: path.clone(),
                        line: e.line,
                        reason: e.reason,
                    });
                }
                Err(e) => self.warnings.push(
                    loc,
                    "include",
                    format!(
                        "{}: cannot be read ({}): skipped, as keepalived does",
                        path.display(),
                        e.reason
                    ),
                ),
            }
        }
        Ok(())
    }

    /// The statements read so far, as a tree; unbalanced braces are reported.
    /// Blocks nested more than [`MAX_BLOCK_DEPTH`] deep are an error (the tree is
    /// built, converted and dropped recursively).
    pub fn into_tree(self) -> Result<Vec<Node>, ImportError> {
        let Reader { toks, warnings, .. } = self;
        let mut iter = toks.into_iter().peekable();
        block(&mut iter, None, 0, warnings)
    }
}

/// Builds the statements of one block; `open` is where the block's `{` was
/// (`None` at the top level), `depth` how many blocks enclose it.
fn block(
    toks: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>,
    open: Option<&Node>,
    depth: usize,
    warnings: &mut Warnings,
) -> Result<Vec<Node>, ImportError> {
    let too_deep = |loc: &Loc| {
        ImportError::input(
            loc,
            format!("blocks nested more than {MAX_BLOCK_DEPTH} deep (keepalived's deepest is 4): refused"),
        )
    };
    let mut out = Vec::new();
    while let Some(tok) = toks.next() {
        match tok {
            Tok::Words(words, loc) => {
                let mut node = Node {
                    words,
                    loc,
                    children: None,
                };
                if let Some(Tok::Open(loc)) = toks.peek() {
                    if depth >= MAX_BLOCK_DEPTH {
                        return Err(too_deep(loc));
                    }
                    toks.next();
                    let children = block(toks, Some(&node), depth + 1, warnings)?;
                    node.children = Some(children);
                }
                out.push(node);
            }
            Tok::Open(loc) => {
                if depth >= MAX_BLOCK_DEPTH {
                    return Err(too_deep(&loc));
                }
                // A block with no keyword before it: keepalived ignores the brace
                // and reads the contents at this level; they mean nothing there.
                let anon = Node {
                    words: vec![Word {
                        text: "{".to_owned(),
                        quoted: false,
                    }],
                    loc: loc.clone(),
                    children: None,
                };
                let inner = block(toks, Some(&anon), depth + 1, warnings)?;
                warnings.push(
                    &loc,
                    "{",
                    format!(
                        "a block without a keyword before it: its {} statement(s) are not converted",
                        inner.len()
                    ),
                );
            }
            Tok::Close(loc) => {
                if open.is_some() {
                    return Ok(out);
                }
                warnings.push(&loc, "}", "extra '}' (no block to close): ignored");
            }
        }
    }
    if let Some(node) = open {
        warnings.push(
            &node.loc,
            node.keyword(),
            "its block is not closed: missing '}' at the end of the file (read to the end as keepalived does)",
        );
    }
    Ok(out)
}

/// The pattern of an `include PATTERN` line (one word, possibly quoted; braces
/// are part of the pattern, for `{a,b}` alternatives).
fn include_pattern(buf: &str) -> Option<&str> {
    let rest = buf.strip_prefix("include")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let rest = rest.trim();
    let pattern = match rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner,
        None => rest,
    };
    (!pattern.is_empty() && !pattern.contains(char::is_whitespace)).then_some(pattern)
}

/// A token of one line.
#[derive(Debug)]
enum Item {
    Word(Word),
    Open,
    Close,
}

/// keepalived's `decomment()`: removes a comment (from an unquoted `#` or `!`),
/// the escaping of `\#` / `\!` outside quotes, and surrounding blanks. Also says
/// whether a quote was left open.
fn decomment(raw: &str) -> (String, bool) {
    let mut out = String::with_capacity(raw.len());
    let mut quote = false;
    let mut chars = raw.trim_start().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.peek().copied() {
                Some(n @ ('#' | '!')) if !quote => {
                    out.push(n);
                    chars.next();
                }
                Some(n) => {
                    out.push(c);
                    out.push(n);
                    chars.next();
                }
                None => out.push(c),
            },
            '#' | '!' if !quote => break,
            _ => out.push(c),
        }
    }
    let trimmed = out.trim_end().to_owned();
    (trimmed, quote)
}

/// `$NAME=value` (blanks allowed around `=`): the name and the value.
fn definition(buf: &str) -> Option<(String, String)> {
    let rest = buf.strip_prefix('$')?;
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, after) = rest.split_at(name_len);
    let value = after.trim_start_matches([' ', '\t']).strip_prefix('=')?;
    Some((
        name.to_owned(),
        value.trim_start_matches([' ', '\t']).to_owned(),
    ))
}

/// The first control character of a decommented line that is not a blank (tab,
/// vertical tab, form feed and CR are blanks to keepalived): its 1-based column
/// (in characters) and the character.
fn control_character(buf: &str) -> Option<(usize, char)> {
    buf.chars()
        .enumerate()
        .find(|&(_, c)| c.is_control() && !c.is_whitespace())
        .map(|(i, c)| (i + 1, c))
}

/// Replaces `$NAME` and `${NAME}` of defined names (repeatedly, as definitions may
/// use definitions; at most 16 rounds). An undefined name is left as written, as
/// keepalived leaves it. Returns the line and the bytes the rounds produced, or why
/// not: a result longer than [`MAX_LINE_BYTES`], or more than `budget` bytes
/// produced (what is left of [`MAX_SUBSTITUTED_BYTES`]); so a definition that
/// doubles itself costs at most the bounds, never memory or time beyond them.
fn substitute(
    buf: &str,
    defs: &BTreeMap<String, String>,
    budget: usize,
) -> Result<(String, usize), String> {
    let mut cur = buf.to_owned();
    let mut produced = 0usize;
    for _ in 0..16 {
        let mut out = String::with_capacity(cur.len());
        let mut changed = false;
        let mut rest = cur.as_str();
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let (braced, body) = match after.strip_prefix('{') {
                Some(b) => (true, b),
                None => (false, after),
            };
            let name_len = body
                .char_indices()
                .find(|&(i, c)| {
                    !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
                })
                .map_or(body.len(), |(i, _)| i);
            let name = &body[..name_len];
            let tail = &body[name_len..];
            let end_ok = if braced {
                tail.starts_with('}')
            } else {
                tail.is_empty() || tail.starts_with([' ', '\t', ',', ')'])
            };
            match defs.get(name) {
                Some(value) if name_len > 0 && end_ok => {
                    if out.len() + value.len() > MAX_LINE_BYTES {
                        return Err(format!(
                            "substituting ${name} makes the line longer than {MAX_LINE_BYTES} bytes (a definition that uses itself?): refused"
                        ));
                    }
                    out.push_str(value);
                    rest = if braced { &tail[1..] } else { tail };
                    changed = true;
                }
                _ => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        if out.len() > MAX_LINE_BYTES {
            return Err(format!(
                "substituting definitions makes the line longer than {MAX_LINE_BYTES} bytes: refused"
            ));
        }
        if !changed {
            break;
        }
        produced += out.len();
        if produced > budget {
            return Err(format!(
                "substituting definitions produced more than {MAX_SUBSTITUTED_BYTES} bytes in all (chained definitions?): refused"
            ));
        }
        cur = out;
    }
    Ok((cur, produced))
}

/// Splits a decommented line into words and braces.
fn tokenize(buf: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut chars = buf.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut text = String::new();
            for n in chars.by_ref() {
                if n == '"' {
                    break;
                }
                text.push(n);
            }
            items.push(Item::Word(Word { text, quoted: true }));
        } else if c == '{' {
            chars.next();
            items.push(Item::Open);
        } else if c == '}' {
            chars.next();
            items.push(Item::Close);
        } else {
            let mut text = String::new();
            while let Some(&n) = chars.peek() {
                if n.is_whitespace() || n == '"' || n == '{' || n == '}' {
                    break;
                }
                text.push(n);
                chars.next();
            }
            items.push(Item::Word(Word {
                text,
                quoted: false,
            }));
        }
    }
    items
}

/// Splits a command the way keepalived splits a `script` / `misc_path` / `notify`
/// value: when it is one quoted string, into words on blanks, honouring single and
/// double quotes and backslash escapes inside; otherwise word by word.
pub(super) fn command_words(words: &[Word]) -> Vec<String> {
    if let [only] = words {
        if only.quoted || only.text.contains(char::is_whitespace) {
            return shell_split(&only.text);
        }
    }
    words.iter().map(|w| w.text.clone()).collect()
}

/// Shell-like splitting (quotes and backslashes), as keepalived's
/// `alloc_strvec_quoted_escaped`.
fn shell_split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Word(w) => w.text.clone(),
                Item::Open => "{".into(),
                Item::Close => "}".into(),
            })
            .collect()
    }

    #[test]
    fn comments_as_keepalived_reads_them() {
        assert_eq!(
            decomment("  auth_pass secret # note"),
            ("auth_pass secret".into(), false)
        );
        assert_eq!(
            decomment("auth_pass YourStrongPass123!"),
            ("auth_pass YourStrongPass123".into(), false)
        );
        assert_eq!(
            decomment(r"auth_pass pa\#ss"),
            ("auth_pass pa#ss".into(), false)
        );
        assert_eq!(
            decomment(r#"script "/bin/x # y" # c"#),
            (r#"script "/bin/x # y""#.into(), false)
        );
        assert_eq!(decomment("! Configuration File"), (String::new(), false));
        // A quote inside a comment does not open a string.
        assert_eq!(
            decomment(r#"state MASTER # "a"#),
            ("state MASTER".into(), false)
        );
        assert_eq!(
            decomment(r#"script "/bin/x"#),
            (r#"script "/bin/x"#.into(), true)
        );
    }

    #[test]
    fn braces_are_tokens_anywhere() {
        assert_eq!(
            words(&tokenize("unicast_peer {10.0.0.11 10.0.0.12}")),
            ["unicast_peer", "{", "10.0.0.11", "10.0.0.12", "}"]
        );
        assert_eq!(
            words(&tokenize(r#"script "/a b {c}" x"#)),
            ["script", "/a b {c}", "x"]
        );
    }

    #[test]
    fn include_lines() {
        assert_eq!(
            include_pattern("include /etc/ka/*.conf"),
            Some("/etc/ka/*.conf")
        );
        assert_eq!(
            include_pattern("include \"{a,b}.conf\""),
            Some("{a,b}.conf")
        );
        assert_eq!(include_pattern("include {a,b}.conf"), Some("{a,b}.conf"));
        assert_eq!(include_pattern("include a b"), None);
        assert_eq!(include_pattern("includes x"), None);
    }

    #[test]
    fn definitions_and_substitution() {
        let mut defs = BTreeMap::new();
        defs.insert("VIP".to_owned(), "10.0.0.1".to_owned());
        defs.insert("NET".to_owned(), "${VIP}/24".to_owned());
        let sub = |line: &str| substitute(line, &defs, usize::MAX).expect("bounded").0;
        assert_eq!(sub("$NET dev eth0"), "10.0.0.1/24 dev eth0");
        assert_eq!(sub("x$VIPx $UNDEF"), "x$VIPx $UNDEF");
        assert_eq!(
            definition("$VIP = 10.0.0.1"),
            Some(("VIP".into(), "10.0.0.1".into()))
        );
        assert_eq!(definition("$1=2"), None);
    }

    #[test]
    fn commands_split_like_keepalived() {
        let q = |t: &str| Word {
            text: t.into(),
            quoted: true,
        };
        let u = |t: &str| Word {
            text: t.into(),
            quoted: false,
        };
        assert_eq!(
            command_words(&[q("/bin/chk 'a b' c")]),
            ["/bin/chk", "a b", "c"]
        );
        assert_eq!(command_words(&[u("/bin/chk"), u("x")]), ["/bin/chk", "x"]);
        assert_eq!(command_words(&[q("/bin/chk")]), ["/bin/chk"]);
    }
}

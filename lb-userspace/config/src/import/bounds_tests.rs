//! The importer's bounds (`super::limits`): hostile or broken input fails with an
//! error naming the file, the line and the bound, instead of overflowing the
//! stack, allocating without end, hanging, or blaming "a converter bug". Each test
//! asserts on the result (an error, or a complete conversion), not on time.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use super::limits::*;
use super::*;

/// Runs `f` on a thread; fails the test if it does not finish within `secs` (a
/// regression to a hang must fail, not stall the test run).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn");
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not finish within {secs}s (hung?)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the checked code panicked (above)"),
    }
}

/// The `Input` error of converting `text` as `keepalived.conf`: (line, reason).
#[track_caller]
fn input_error(text: &str) -> (Option<usize>, String) {
    match import_str(text, Path::new("keepalived.conf")) {
        Err(ImportError::Input { file, line, reason }) => {
            assert_eq!(file, Path::new("keepalived.conf"));
            (line, reason)
        }
        Err(other) => panic!("expected an input error, got {other}"),
        Ok(_) => panic!("expected an input error, got a conversion"),
    }
}

/// A FIFO at `path` (no writer).
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("cstr");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // 20,000 nested blocks on one line (the old recursive tree builder aborted).
    let text = format!("{}\n{}\n", "a {".repeat(20_000), "}".repeat(20_000));
    let (line, reason) = within(60, move || input_error(&text));
    assert_eq!(line, Some(1));
    assert!(
        reason.contains(&format!("nested more than {MAX_BLOCK_DEPTH} deep")),
        "{reason}"
    );
    // Unclosed blocks nest too.
    let text = "vrrp_instance VI {\n".repeat(MAX_BLOCK_DEPTH + 1);
    let (line, _) = input_error(&text);
    assert_eq!(line, Some(MAX_BLOCK_DEPTH + 1));
    // At the bound it still converts.
    let text = format!(
        "{}\n{}\n",
        "a {".repeat(MAX_BLOCK_DEPTH),
        "}".repeat(MAX_BLOCK_DEPTH)
    );
    import_str(&text, Path::new("k.conf")).expect("converts");
}

#[test]
fn self_doubling_definition_is_bounded() {
    // `$A=$A $A`: each substitution round doubles the line (16 rounds: 2^16 x).
    let (line, reason) = input_error("$A=$A $A\nrouter_id $A\n");
    assert_eq!(line, Some(2));
    assert!(
        reason.contains(&format!("longer than {MAX_LINE_BYTES} bytes")),
        "{reason}"
    );
}

#[test]
fn chained_definitions_are_bounded() {
    // $D0 = 8 bytes, $Dk = $D(k-1) $D(k-1): $D15 would be 2^15 * 9 bytes.
    let mut text = String::from("$D0=xxxxxxxx\n");
    for k in 1..16 {
        text.push_str(&format!("$D{k}=$D{} $D{}\n", k - 1, k - 1));
    }
    text.push_str("router_id $D15\n");
    let (line, reason) = input_error(&text);
    assert_eq!(line, Some(17));
    assert!(reason.contains("longer than"), "{reason}");

    // Lines within the line bound, but many of them: the total is bounded.
    let mut text = format!("$B={}\n", "y".repeat(60_000));
    for _ in 0..2_000 {
        text.push_str("router_id $B\n");
    }
    let (line, reason) = within(60, move || input_error(&text));
    assert!(line.is_some_and(|l| l > 1), "{line:?}");
    assert!(
        reason.contains(&format!(
            "more than {} in all",
            crate::read::bytes(MAX_SUBSTITUTED_BYTES as u64)
        )) || reason.contains(&format!("more than {MAX_SUBSTITUTED_BYTES} bytes in all")),
        "{reason}"
    );
}

#[test]
fn too_many_tokens_is_an_error() {
    let text = "a ".repeat(MAX_TOKENS + 1);
    let (line, reason) = within(120, move || input_error(&text));
    assert_eq!(line, Some(1));
    assert!(
        reason.contains(&format!("more than {MAX_TOKENS} words")),
        "{reason}"
    );
}

#[test]
fn control_characters_are_a_clear_error() {
    let (line, reason) = input_error("global_defs {\n router_id a\u{1}b\n}\n");
    assert_eq!(line, Some(2));
    assert!(reason.contains("control character U+0001"), "{reason}");
    let (line, reason) = input_error("vrrp_instance VI\u{7f} {\n}\n");
    assert_eq!(line, Some(1));
    assert!(reason.contains("U+007F"), "{reason}");
    // In a comment, or a blank one (tab, form feed, CR): keepalived reads past it.
    let got = import_str(
        "# note \u{1}\u{2}\nglobal_defs {\x0c router_id\tlb1\r\n}\n",
        Path::new("k.conf"),
    )
    .expect("converts");
    let cfg = crate::parse(&got.toml, Path::new("out.toml")).expect("valid");
    assert_eq!(cfg.global.node_name, "lb1");
    // A blank control character inside a quoted value reaches the TOML escaped.
    let got = import_str(
        "vrrp_instance \"V\x0bI\" {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 }\n}\n",
        Path::new("k.conf"),
    )
    .expect("converts");
    let cfg = crate::parse(&got.toml, Path::new("out.toml")).expect("valid");
    assert_eq!(cfg.vrrp[0].name, "V\x0bI");
}

#[test]
fn twenty_thousand_virtual_servers_convert() {
    let mut text = String::new();
    for k in 0..20_000u32 {
        let (a, b) = (k / 250, k % 250 + 1);
        text.push_str(&format!(
            "virtual_server 10.1.{a}.{b} 80 {{\n lb_algo rr\n lb_kind DR\n real_server 10.2.{a}.{b} 80 {{\n  TCP_CHECK {{ connect_timeout 3 }}\n }}\n}}\n"
        ));
    }
    let got = within(600, move || import_str(&text, Path::new("k.conf"))).expect("converts");
    let cfg = crate::parse(&got.toml, Path::new("out.toml")).expect("valid");
    assert_eq!(cfg.services.len(), 20_000);
    assert_eq!(cfg.global.max_services, 20_000);
    assert_eq!(cfg.global.max_backends, 20_000);
    // One lb_algo warning per virtual_server, none lost to deduplication.
    let rr = got
        .warnings
        .iter()
        .filter(|w| w.option == "lb_algo")
        .count();
    assert_eq!(rr, 20_000);
}

#[test]
fn more_real_servers_than_lbd_holds_is_a_clear_error() {
    let mut text = String::from("virtual_server 10.0.0.1 80 {\n lb_kind DR\n");
    for k in 0..70_000u32 {
        text.push_str(&format!(
            " real_server 10.{}.{}.{} 80 {{ }}\n",
            100 + k / 65_536,
            (k / 256) % 256,
            k % 256
        ));
    }
    text.push_str("}\n");
    let (line, reason) = within(600, move || input_error(&text));
    // The first real_server past the bound (one per line from line 3).
    assert_eq!(line, Some(3 + MAX_BACKENDS));
    assert!(
        reason.contains(&format!(
            "more than {MAX_BACKENDS} distinct real_server addresses"
        )),
        "{reason}"
    );
}

#[test]
fn warnings_are_capped() {
    let text = "unknown_keyword\n".repeat(MAX_WARNINGS + 10);
    let got = within(600, move || import_str(&text, Path::new("k.conf"))).expect("converts");
    // MAX_WARNINGS listed, then the count of the rest (10 lines and the
    // interface guess).
    assert_eq!(got.warnings.len(), MAX_WARNINGS + 1);
    let last = got.warnings.last().expect("a summary");
    assert_eq!(last.option, "warnings");
    assert!(last.reason.starts_with("11 more warning(s)"), "{last}");
}

// ----- files -----

#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A 3 GiB (sparse) file is refused from its size, not read.
    let big = dir.path().join("big.conf");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(3 << 30))
        .expect("sparse file");
    let err = import_file(&big).expect_err("too large");
    assert!(matches!(err, ImportError::Read { line: None, .. }), "{err}");
    assert!(
        err.to_string().contains("larger than the 16 MiB limit"),
        "{err}"
    );

    let err = within(30, || import_file(Path::new("/dev/zero"))).expect_err("device");
    assert!(err.to_string().contains("a character device"), "{err}");

    let fifo = dir.path().join("fifo.conf");
    mkfifo(&fifo);
    let f = fifo.clone();
    let err = within(30, move || import_file(&f)).expect_err("fifo");
    assert!(
        err.to_string().contains("a FIFO, not a regular file"),
        "{err}"
    );

    // Not UTF-8: the line of the bad byte.
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, b"global_defs {\n router_id \xff\n}\n").expect("write");
    let err = import_file(&bad).expect_err("not utf-8");
    assert!(
        matches!(err, ImportError::Read { line: Some(2), .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("{}:2: cannot read: not UTF-8", bad.display())),
        "{err}"
    );

    // An include of a FIFO (glob skips it: not a regular file) does not hang.
    std::fs::write(dir.path().join("main.conf"), "include fifo.conf\n").expect("write");
    let main = dir.path().join("main.conf");
    let got = within(30, move || import_file(&main)).expect("converts");
    assert!(got.warnings.iter().any(|w| w.option == "include"));
}

/// `levels` files, each including the next `fan` times (fan^levels reads).
fn fan_out(root: &Path, levels: usize, fan: usize) -> PathBuf {
    for k in 0..levels {
        std::fs::write(
            root.join(format!("f{k}.conf")),
            format!("include f{}.conf\n", k + 1).repeat(fan),
        )
        .expect("write");
    }
    std::fs::write(
        root.join(format!("f{levels}.conf")),
        "global_defs { router_id x }\n",
    )
    .expect("write");
    root.join("f0.conf")
}

#[test]
fn include_fan_out_is_bounded() {
    // 24 levels of 2: 2^24 reads unbounded; refused by the include depth.
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fan_out(dir.path(), 24, 2);
    let err = within(120, move || import_file(&top)).expect_err("bounded");
    assert!(
        err.to_string().contains(&format!(
            "includes nested more than {MAX_INCLUDE_DEPTH} deep"
        )),
        "{err}"
    );

    // 10 levels of 4 (within the depth): 4^10 reads; refused by the file count.
    let dir = tempfile::tempdir().expect("tempdir");
    let top = fan_out(dir.path(), 10, 4);
    let err = within(120, move || import_file(&top)).expect_err("bounded");
    match &err {
        ImportError::Input {
            line: Some(_),
            reason,
            ..
        } => assert!(
            reason.contains(&format!("more than {MAX_FILES} files read")),
            "{err}"
        ),
        other => panic!("expected an input error, got {other}"),
    }
}

#[test]
fn include_depth_statements_and_bytes_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // A chain of distinct files, deeper than the bound.
    for k in 0..=MAX_INCLUDE_DEPTH {
        std::fs::write(
            root.join(format!("d{k}.conf")),
            format!("include d{}.conf\n", k + 1),
        )
        .expect("write");
    }
    let err = import_file(&root.join("d0.conf")).expect_err("too deep");
    assert!(
        err.to_string()
            .contains(&format!("nested more than {MAX_INCLUDE_DEPTH} deep")),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "{}:1: ",
            root.join(format!("d{}.conf", MAX_INCLUDE_DEPTH - 1))
                .display()
        )),
        "{err}"
    );

    // Include statements (even ones matching nothing) are counted.
    std::fs::write(
        root.join("many.conf"),
        "include nothing-here.conf\n".repeat(MAX_INCLUDE_STATEMENTS + 1),
    )
    .expect("write");
    let err = import_file(&root.join("many.conf")).expect_err("too many includes");
    assert!(
        err.to_string().starts_with(&format!(
            "{}:{}: ",
            root.join("many.conf").display(),
            MAX_INCLUDE_STATEMENTS + 1
        )),
        "{err}"
    );

    // Bytes in all: five 15 MiB files are more than 64 MiB. Each is one comment
    // line ("#" and NULs: sparse, so it takes no disk space).
    let mut main = String::new();
    for k in 0..5 {
        let path = root.join(format!("big{k}.inc"));
        std::fs::write(&path, "#").expect("write");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(15 << 20))
            .expect("extend");
        main.push_str(&format!("include big{k}.inc\n"));
    }
    std::fs::write(root.join("bytes.conf"), main).expect("write");
    let err = import_file(&root.join("bytes.conf")).expect_err("too many bytes");
    assert!(
        err.to_string().starts_with(&format!(
            "{}:5: include {}: more than 64 MiB read",
            root.join("bytes.conf").display(),
            root.join("big4.inc").display()
        )),
        "{err}"
    );
}

#[test]
fn include_globs_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // More matches than files may be read.
    std::fs::create_dir(root.join("d")).expect("mkdir");
    for k in 0..=MAX_GLOB_MATCHES {
        std::fs::write(root.join(format!("d/{k}.conf")), "").expect("write");
    }
    std::fs::write(root.join("glob.conf"), "\n\ninclude d/*.conf\n").expect("write");
    let err = import_file(&root.join("glob.conf")).expect_err("too many matches");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:3: include ", root.join("glob.conf").display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("matches more than {MAX_GLOB_MATCHES} files")),
        "{text}"
    );

    // Brace alternatives multiply: 2^11 > the bound, found without expanding them.
    std::fs::write(
        root.join("braces.conf"),
        format!("include {}x\n", "{a,b}".repeat(11)),
    )
    .expect("write");
    let err = import_file(&root.join("braces.conf")).expect_err("too many alternatives");
    assert!(
        err.to_string().contains(&format!(
            "more than {MAX_GLOB_ALTERNATIVES} brace alternatives"
        )),
        "{err}"
    );

    // Directory entries examined: every pattern draws from one budget.
    for k in 0..3 {
        let sub = root.join(format!("w/{k}"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        for n in 0..100 {
            std::fs::File::create(sub.join(n.to_string())).expect("create");
        }
    }
    let mut budget = glob::Budget { entries: 250 };
    let got = glob::expand(&root.join("w/0/*"), &mut budget).expect("within");
    assert_eq!((got.len(), budget.entries), (100, 150));
    // w/* (3 entries) then 3 x 100: more than the 150 left.
    match glob::expand(&root.join("w/*/*.none"), &mut budget) {
        Err(glob::GlobError::Limit(why)) => assert!(
            why.contains(&format!("more than {MAX_GLOB_ENTRIES} directory entries")),
            "{why}"
        ),
        other => panic!("expected the entry bound, got {other:?}"),
    }
    assert_eq!(budget.entries, 0);
}

/// `include /*/*/*` walks the whole file system at depth 3: bounded, it ends
/// (with an error on any real system) instead of hanging.
#[test]
fn include_of_the_whole_file_system_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main: PathBuf = dir.path().join("main.conf");
    std::fs::write(&main, "include /*/*/*\n").expect("write");
    let result = within(300, move || import_file(&main));
    if let Err(e) = result {
        assert!(
            matches!(e, ImportError::Input { .. } | ImportError::Read { .. }),
            "{e}"
        );
    }
}

#[test]
fn status_code_ranges_are_taken_once_in_written_order() {
    let mut s = convert::StatusCodes::new();
    s.add(404, 404);
    s.add(200, 204);
    s.add(100, 599);
    s.add(200, 599);
    assert_eq!(s.list.len(), 500);
    assert_eq!(&s.list[..7], &[404, 200, 201, 202, 203, 204, 100]);
    assert_eq!(s.list[106], 205);
    let mut sorted = s.list.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 500);
    // Many overlapping ranges in one url block convert (each adds nothing new).
    let ranges = "100-599 ".repeat(100_000);
    let text = format!(
        "virtual_server 10.0.0.1 80 {{\n real_server 10.0.0.2 80 {{\n  HTTP_GET {{\n   url {{\n    path /\n    status_code 200 {ranges}\n   }}\n  }}\n }}\n}}\n"
    );
    let got = within(120, move || import_str(&text, Path::new("k.conf"))).expect("converts");
    let cfg = crate::parse(&got.toml, Path::new("out.toml")).expect("valid");
    match &cfg.services[0].health.kind {
        crate::CheckKind::Http { expect_status, .. } => {
            assert_eq!(expect_status.len(), 500);
            assert_eq!(expect_status[..2], [200, 100]);
        }
        other => panic!("{other:?}"),
    }
}

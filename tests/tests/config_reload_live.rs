//! A reload whose config path has become a FIFO, against a real lbd in the lab (as
//! root, in network namespaces): the reload is refused at once with the file and
//! the reason, lbd keeps answering lbctl meanwhile and keeps its running config,
//! and a regular file at the path reloads again.

use std::time::{Duration, Instant};

use lb_api::control::{Request, Response};
use lb_tests::lab::Lab;

/// Makes `path` a FIFO (no writer will ever open it).
fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("cstr");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn reload_from_a_fifo_is_refused_and_lbd_keeps_answering() {
    let mut lab = Lab::up("rfifo");
    lab.write_config(&Lab::web_service([Some(1), Some(1), Some(1)]));
    lab.start_lbd();
    let config = lab.config_path();
    let saved = std::fs::read_to_string(&config).expect("config");
    std::fs::remove_file(&config).expect("rm config");
    mkfifo(&config);

    let start = Instant::now();
    match lab.ask(Request::Reload) {
        Some(Response::Error { message }) => {
            assert!(
                message.contains(&format!(
                    "{}: cannot read the configuration: a FIFO, not a regular file",
                    config.display()
                )),
                "{message}"
            );
        }
        other => panic!("reload from a FIFO: expected a refusal, got {other:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the refusal took {:?}",
        start.elapsed()
    );
    // lbd still answers (its loop is not stuck on the FIFO), with the old config.
    for _ in 0..3 {
        match lab.ask(Request::List) {
            Some(Response::List { services }) => assert_eq!(services.len(), 1),
            other => panic!("list after the refused reload: {other:?}"),
        }
    }
    let out = lab.lbctl(&["status"]);
    assert!(
        out.status.success(),
        "lbctl status: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A regular file again: the reload works.
    std::fs::remove_file(&config).expect("rm fifo");
    std::fs::write(&config, saved).expect("restore config");
    match lab.ask(Request::Reload) {
        Some(Response::Done { .. }) => {}
        other => panic!("reload of the restored file: {other:?}"),
    }
}

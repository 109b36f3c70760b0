//! `lbctl import-keepalived` on the seeds' keepalived.conf files: each converts, lists
//! what it could not carry over on stderr, and the result passes `lbd --check-config`.
//! No root.

use std::{path::PathBuf, process::Command};

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/keepalived"
    ))
}

#[test]
fn every_seed_config_converts_to_a_valid_lbd_config() {
    let dir = std::env::temp_dir().join(format!("lbctl-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("conf") {
            continue;
        }
        seen += 1;
        let out = dir.join(format!(
            "{}.toml",
            path.file_stem().unwrap().to_string_lossy()
        ));
        let run = Command::new(env!("CARGO_BIN_EXE_lbctl"))
            .args(["--config", "/nonexistent.toml", "import-keepalived"])
            .arg(&path)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{}: {stderr}", path.display());
        assert!(stderr.contains("converted"), "{stderr}");
        let toml = std::fs::read_to_string(&out).unwrap();
        assert!(
            toml.contains("[[vrrp]]") || toml.contains("[[service]]"),
            "{toml}"
        );
        let check = Command::new(env!("CARGO_BIN_EXE_lbd"))
            .arg("--check-config")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{} converted to an invalid config: {}\n{toml}",
            path.display(),
            String::from_utf8_lossy(&check.stderr)
        );
    }
    assert!(seen >= 4, "the seed fixtures are there ({seen})");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seed000_keeps_its_virtual_server_and_says_what_it_dropped() {
    let run = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .args(["--config", "/nonexistent.toml", "import-keepalived"])
        .arg(fixtures().join("seed000_master.conf"))
        .output()
        .unwrap();
    assert!(run.status.success());
    let toml = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        toml.contains("192.168.100.40") && toml.contains("6443"),
        "{toml}"
    );
    assert!(stderr.contains("not carried over:"), "{stderr}");
    assert!(
        stderr.contains("seed000_master.conf:"),
        "warnings name the file and line: {stderr}"
    );
}

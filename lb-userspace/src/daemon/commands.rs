//! lbd's one-shot commands, run instead of the daemon: `--check-config` and `--detach`.

use std::path::{Path, PathBuf};

use lb_config as config;
use lb_dataplane::Dataplane;

use super::{io_error, DaemonError};

/// `lbd --check-config`: validate and summarise.
pub fn check_config(path: &Path) -> Result<String, config::ConfigError> {
    let c = config::load(path)?;
    let backends: usize = c.services.iter().map(|s| s.backends.len()).sum();
    Ok(format!(
        "{}: ok ({} services, {} backends, {} interfaces)",
        path.display(),
        c.services.len(),
        backends,
        c.interfaces.len()
    ))
}

/// `lbd --detach`: remove the pinned links (detaching XDP) and maps.
pub fn detach(config_path: &Path) -> Result<Vec<PathBuf>, DaemonError> {
    let c = config::load(config_path)?;
    Dataplane::remove_pinned(&c.global.pin_dir).map_err(io_error(format!(
        "removing pins in {}",
        c.global.pin_dir.display()
    )))
}

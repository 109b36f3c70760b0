//! Pure translation from the operator's config (plus what lbd has learned: health,
//! MACs) into the reconciler's input and the health monitor's checks. No I/O, so the
//! rules (who is usable, which probe a service gets) are unit-tested directly.

use std::{collections::HashMap, net::IpAddr, net::SocketAddr, time::Duration};

use lb_common::maps::{addr_words, ServiceKey, SVC_F_SOURCE_HASH};

use lb_config::{CheckKind, Config, Scheduler, Service};
use lb_dataplane::reconcile::{BackendInput, Desired, Link, ServiceInput, Timeouts};
use lb_health::{BackendKey, CheckSpec, Probe, TlsMode};

/// The data-plane key of a configured service.
pub fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey {
        vip: addr_words(svc.vip),
        port: svc.port,
        proto: svc.protocol.number(),
        _pad: 0,
    }
}

/// Cluster-wide Maglev seed, derived from the hash seed so one setting governs both.
pub fn maglev_seed(hash_seed: u32) -> u64 {
    (hash_seed as u64) << 32 | 0x6d67_6c76
}

/// The probe a service's backends get, or `None` for `kind = "none"` (always healthy).
pub fn probe(svc: &Service) -> Option<Probe> {
    Some(match &svc.health.kind {
        CheckKind::None => return None,
        CheckKind::Tcp => Probe::Tcp,
        CheckKind::Http {
            path,
            expect_status,
            host,
        } => Probe::Http {
            path: path.clone(),
            expect_status: expect_status.clone(),
            host: host.clone(),
        },
        CheckKind::Https {
            path,
            expect_status,
            host,
            tls_verify,
            ca_file,
        } => Probe::Https {
            path: path.clone(),
            expect_status: expect_status.clone(),
            host: host.clone(),
            tls: match (tls_verify, ca_file) {
                (false, _) => TlsMode::Insecure,
                (true, Some(ca)) => TlsMode::VerifyWithCa(ca.clone()),
                (true, None) => TlsMode::VerifySystemRoots,
            },
        },
        CheckKind::Exec { script } => Probe::Exec {
            script: script.clone(),
        },
    })
}

/// Health checks for every backend with a probe. `initial` overrides a backend's start
/// state (adoption after a restart keeps what the data plane already does).
pub fn checks(
    config: &Config,
    initial: &HashMap<BackendKey, bool>,
) -> Vec<(BackendKey, CheckSpec)> {
    let mut out = Vec::new();
    for svc in &config.services {
        let Some(probe) = probe(svc) else { continue };
        let port = svc.health.port.unwrap_or(svc.port);
        for b in &svc.backends {
            let key: BackendKey = (svc.name.clone(), b.address);
            let start_up = initial.get(&key).copied().unwrap_or(svc.health.start_up);
            out.push((
                key,
                CheckSpec {
                    probe: probe.clone(),
                    target: SocketAddr::new(b.address, port),
                    interval: svc.health.interval,
                    timeout: svc.health.timeout,
                    rise: svc.health.rise,
                    fall: svc.health.fall,
                    start_up,
                },
            ));
        }
    }
    out
}

/// Whether a backend counts as healthy: its last known state, else its service's start
/// state; always for services without checks.
pub fn healthy(svc: &Service, address: IpAddr, health: &HashMap<BackendKey, bool>) -> bool {
    if matches!(svc.health.kind, CheckKind::None) {
        return true;
    }
    health
        .get(&(svc.name.clone(), address))
        .copied()
        .unwrap_or(svc.health.start_up)
}

/// What the data plane should hold.
pub fn desired(
    config: &Config,
    health: &HashMap<BackendKey, bool>,
    links: &HashMap<IpAddr, Link>,
    forwarding: bool,
) -> Desired {
    Desired {
        services: config
            .services
            .iter()
            .map(|svc| ServiceInput {
                name: svc.name.clone(),
                key: service_key(svc),
                flags: match svc.scheduler {
                    Scheduler::Maglev => 0,
                    Scheduler::SourceHash => SVC_F_SOURCE_HASH,
                },
                backends: svc
                    .backends
                    .iter()
                    .map(|b| BackendInput {
                        address: b.address,
                        weight: b.weight,
                        healthy: healthy(svc, b.address, health),
                        link: links.get(&b.address).copied(),
                    })
                    .collect(),
            })
            .collect(),
        table_size: config.global.maglev_table_size,
        maglev_seed: maglev_seed(config.global.hash_seed),
        hash_seed: config.global.hash_seed,
        forwarding,
        insert_limit: insert_limit(&config.global, 1),
        keep_moved: false,
    }
}

/// The per-protocol timeouts (`[global] timeout_*`, `settle_after`).
pub fn timeouts(global: &lb_config::Global) -> Timeouts {
    Timeouts {
        settle_tcp: global.settle_after,
        tcp: global.timeout_tcp,
        tcpfin: global.timeout_tcpfin,
        udp: global.timeout_udp,
    }
}

/// How long a freshly started node's table changes are it coming up, not changes
/// flows could have seen: until every backend has been checked `rise` times (the
/// slowest service's `interval x (rise + 1)` plus a timeout), at least 2 s and at
/// most 2 minutes.
pub fn startup_grace(config: &Config) -> Duration {
    config
        .services
        .iter()
        .map(check_round)
        .max()
        .unwrap_or_default()
        .clamp(Duration::from_secs(2), Duration::from_secs(120))
}

/// One check round of a service: every backend checked `rise` times, plus a timeout.
pub fn check_round(s: &lb_config::Service) -> Duration {
    s.health.interval * (s.health.rise + 1) + s.health.timeout
}

/// The flood guard's budget: new connection-table entries per CPU per second
/// (`conn_insert_limit`). Automatic: an eighth of the table per second over all `cpus`
/// (at least 32 per CPU), so a flood replaces at most that, while every real flow's
/// entry, referenced by its own packets, stays.
pub fn insert_limit(global: &lb_config::Global, cpus: u32) -> u32 {
    global
        .conn_insert_limit
        .unwrap_or((global.conn_table_size / 8 / cpus.max(1)).max(32))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use lb_config as config;

    const CONFIG: &str = r#"
[[interface]]
name = "eth0"

[[service]]
name = "api"
vip = "192.168.100.40"
port = 6443
[service.health]
kind = "https"
path = "/healthz"
start = "down"
[[service.backend]]
address = "192.168.100.41"
[[service.backend]]
address = "192.168.100.42"
weight = 0

[[service]]
name = "dns"
vip = "192.168.100.40"
port = 53
protocol = "udp"
scheduler = "source-hash"
[service.health]
kind = "none"
[[service.backend]]
address = "192.168.100.43"
"#;

    fn config() -> Config {
        config::parse(CONFIG, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn health_defaults_follow_start_state_and_none_is_always_up() {
        let c = config();
        let d = desired(&c, &HashMap::new(), &HashMap::new(), true);
        assert!(!d.services[0].backends[0].healthy, "start = down");
        assert!(d.services[1].backends[0].healthy, "kind = none");
        assert_eq!(d.services[1].flags, SVC_F_SOURCE_HASH);
        assert_eq!(d.services[0].backends[1].weight, 0);
        let up = HashMap::from([(("api".to_string(), "192.168.100.41".parse().unwrap()), true)]);
        assert!(desired(&c, &up, &HashMap::new(), true).services[0].backends[0].healthy);
    }

    #[test]
    fn checks_skip_none_and_honour_adopted_state() {
        let c = config();
        let key: BackendKey = ("api".into(), "192.168.100.41".parse().unwrap());
        let checks = checks(&c, &HashMap::from([(key.clone(), true)]));
        assert_eq!(checks.len(), 2, "two api backends, dns has no check");
        let (k, spec) = &checks[0];
        assert_eq!(k, &key);
        assert!(spec.start_up, "adopted as up");
        assert!(!checks[1].1.start_up);
        assert_eq!(spec.target, "192.168.100.41:6443".parse().unwrap());
        assert!(matches!(
            spec.probe,
            Probe::Https {
                tls: TlsMode::Insecure,
                ..
            }
        ));
    }

    #[test]
    fn maglev_seed_is_a_function_of_the_hash_seed() {
        assert_eq!(maglev_seed(7), maglev_seed(7));
        assert_ne!(maglev_seed(7), maglev_seed(8));
    }
}

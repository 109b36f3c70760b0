//! The BGP announcer's I/O (`[bgp]`): a task that makes the speaker hold the VIPs the
//! node core decided (`node::announce`), retries every failure, polls the speaker's
//! sessions, and keeps the status `lbctl bgp` and the metrics read. Forwarding never
//! waits on it: a dead or refusing speaker is logged, counted and retried.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lb_api::view::{BgpSessionView, BgpView, BgpVipView};
use lb_bgp::speaker::Speaker;
use lb_config::Config;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::node::announce::VipDecision;

/// Live status, written by the task, read by observers.
pub type BgpStatus = Arc<Mutex<BgpView>>;

/// How often the speaker's sessions are read (also the liveness check).
const POLL: Duration = Duration::from_secs(2);
/// How soon a failed request is tried again.
const RETRY: Duration = Duration::from_secs(1);
/// How often a command speaker is told everything again (GoBGP forgets its routes
/// when it restarts; FRR's `network` survives, and re-adding is harmless).
const REASSERT: Duration = Duration::from_secs(30);

/// The decisions to carry out, numbered so the shell can wait for one to be applied.
type Want = (u64, Vec<VipDecision>);

/// The running task's handle.
pub struct Handle {
    /// What observers read.
    pub status: BgpStatus,
    want: watch::Sender<Want>,
    applied: watch::Receiver<u64>,
}

impl Handle {
    /// Hand the node's latest decisions to the task.
    pub fn set(&self, decisions: Vec<VipDecision>) {
        self.want.send_modify(|(generation, want)| {
            *generation += 1;
            *want = decisions;
        });
    }

    /// Show whether the node drains (the node core's state, published with it).
    pub fn set_draining(&self, draining: bool) {
        lock(&self.status).draining = draining;
    }

    /// The generation of the last decisions handed to the task.
    pub fn generation(&self) -> u64 {
        self.want.borrow().0
    }

    /// Whether the speaker holds what decisions `generation` (or later) wanted.
    pub fn applied(&self, generation: u64) -> bool {
        *self.applied.borrow() >= generation
    }

    /// Withdraw every VIP and wait (at most `timeout`) until the speaker was told.
    pub async fn withdraw_all(&mut self, reason: &str, timeout: Duration) -> bool {
        let decisions: Vec<VipDecision> = self
            .want
            .borrow()
            .1
            .iter()
            .map(|d| VipDecision {
                vip: d.vip,
                announce: false,
                reason: reason.to_owned(),
            })
            .collect();
        self.set(decisions);
        let target = self.want.borrow().0;
        tokio::time::timeout(timeout, self.applied.wait_for(|g| *g >= target))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Withdraw every VIP before lbd exits: through the task, within a budget that grows
/// with the VIPs (a command speaker runs one command each); if the task does not
/// confirm (a slow poll, a hung command), straight to the speaker. Logs what may
/// still be announced.
pub async fn withdraw_at_exit(handle: &mut Handle, config: &Config) {
    let Some(bgp) = &config.bgp else { return };
    let all = crate::node::announce::candidates(config, bgp);
    let budget = Duration::from_secs(3).max(Duration::from_millis(500) * all.len() as u32);
    if handle.withdraw_all("stopping: lbd exits", budget).await {
        tracing::info!("BGP: every VIP withdrawn");
        return;
    }
    let mut direct = Speaker::new(bgp.speaker.clone());
    match tokio::time::timeout(budget, direct.apply(&BTreeSet::new(), &all)).await {
        Ok(Ok(())) => {
            tracing::info!("BGP: every VIP withdrawn (directly, the task did not answer)")
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, vips = ?all, "BGP: the withdrawal failed; the speaker may still announce these VIPs")
        }
        Err(_) => {
            tracing::error!(vips = ?all, "BGP: no withdrawal within {budget:?}; the speaker may still announce these VIPs")
        }
    }
}

/// Start the announcer when `[bgp]` is configured. BIRD's routes file is emptied
/// first, before anything else can fail: a BIRD that (re)starts with lbd must not
/// announce what a previous lbd left in it.
pub fn spawn(config: &Config) -> Option<Handle> {
    let bgp = config.bgp.as_ref()?;
    if let lb_config::Speaker::Bird { routes_file, .. } = &bgp.speaker {
        let empty = lb_bgp::bird::routes_file(&BTreeSet::new());
        if let Err(e) = lb_bgp::bird::write_file(routes_file, &empty) {
            tracing::warn!(error = %e, "could not empty the BIRD routes file at start; retrying with the first announcement");
        }
    }
    let all = crate::node::announce::candidates(config, bgp);
    let speaker = Speaker::new(bgp.speaker.clone());
    let status: BgpStatus = Arc::new(Mutex::new(BgpView {
        enabled: true,
        speaker: speaker.describe(),
        ..BgpView::default()
    }));
    let (want_tx, want_rx) = watch::channel((0, Vec::new()));
    let (applied_tx, applied_rx) = watch::channel(0);
    tokio::spawn(run(speaker, all, want_rx, applied_tx, status.clone()));
    Some(Handle {
        status,
        want: want_tx,
        applied: applied_rx,
    })
}

/// Make the speaker hold what the node last decided, whatever fails; poll its
/// sessions. `all`: every VIP the config may announce (a command speaker's first apply
/// withdraws those not wanted, in case a previous lbd left them announced).
async fn run(
    mut speaker: Speaker,
    mut all: BTreeSet<IpAddr>,
    mut want_rx: watch::Receiver<Want>,
    applied_tx: watch::Sender<u64>,
    status: BgpStatus,
) {
    // The last wanted set that was applied (what `changes` counts against).
    let mut last_want: Option<BTreeSet<IpAddr>> = None;
    let mut in_sync = false;
    let mut reachable: Option<bool> = None;
    let mut last_error: Option<String> = None;
    let mut next_poll = Instant::now();
    let mut next_reassert = Instant::now() + REASSERT;
    loop {
        let wake = if in_sync {
            next_poll
        } else {
            next_poll.min(Instant::now() + RETRY)
        };
        tokio::select! {
            changed = want_rx.changed() => {
                if changed.is_err() {
                    return; // lbd is exiting
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
        let (generation, decisions) = want_rx.borrow_and_update().clone();
        let want: BTreeSet<IpAddr> = decisions
            .iter()
            .filter(|d| d.announce)
            .map(|d| d.vip)
            .collect();
        all.extend(decisions.iter().map(|d| d.vip));
        if speaker.needs_reassert() && Instant::now() >= next_reassert {
            speaker.forget();
            in_sync = false;
            next_reassert = Instant::now() + REASSERT;
        }
        // Nothing is applied before the node's first decision (generation 1).
        if generation > 0 && (!in_sync || speaker.held() != want) {
            match speaker.apply(&want, &all).await {
                Ok(()) => {
                    if last_error.take().is_some() {
                        tracing::info!(speaker = %speaker.describe(), "BGP speaker accepts requests again");
                    }
                    let before = last_want.replace(want.clone()).unwrap_or_default();
                    lock(&status).changes += before.symmetric_difference(&want).count() as u64;
                    in_sync = true;
                }
                Err(e) => {
                    let message = e.to_string();
                    if last_error.as_deref() != Some(&message) {
                        tracing::warn!(error = %message, "BGP speaker request failed; forwarding is unaffected; retrying every {RETRY:?}");
                    }
                    last_error = Some(message);
                    in_sync = false;
                    lock(&status).errors += 1;
                }
            }
        }
        // The speaker holds what this generation wants (also when nothing had to
        // change): a waiting `withdraw_all` may go on.
        if in_sync {
            applied_tx.send_replace(generation);
        }
        let mut sessions = None;
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + POLL;
            // A new decision cuts a slow poll short: withdrawals do not wait on it.
            let result = tokio::select! {
                r = speaker.sessions() => r,
                _ = want_rx.changed() => continue,
            };
            let up = result.is_ok();
            if reachable != Some(up) {
                match &result {
                    Ok(_) => tracing::info!(speaker = %speaker.describe(), "BGP speaker reachable"),
                    Err(e) => {
                        tracing::warn!(error = %e, "BGP speaker unreachable; forwarding is unaffected")
                    }
                }
                // A speaker that came back is told again (BIRD re-read the file at
                // its start; a command speaker may have lost everything).
                if reachable == Some(false) && up {
                    speaker.forget();
                    in_sync = false;
                }
                reachable = Some(up);
            }
            match result {
                Ok(list) => sessions = Some(list),
                Err(e) => {
                    lock(&status).errors += 1;
                    if last_error.is_none() {
                        last_error = Some(e.to_string());
                    }
                    sessions = Some(Vec::new());
                }
            }
        }
        let held = speaker.held();
        let mut s = lock(&status);
        s.speaker_ok = in_sync && reachable != Some(false);
        s.last_error = last_error.clone();
        s.vips = decisions
            .iter()
            .map(|d| BgpVipView {
                vip: d.vip,
                wanted: d.announce,
                announced: held.contains(&d.vip),
                reason: d.reason.clone(),
            })
            .collect();
        if let Some(list) = sessions {
            s.sessions = list
                .into_iter()
                .map(|x| BgpSessionView {
                    name: x.name,
                    state: x.state,
                    info: x.info,
                })
                .collect();
        }
    }
}

fn lock(status: &BgpStatus) -> std::sync::MutexGuard<'_, BgpView> {
    status.lock().unwrap_or_else(|p| p.into_inner())
}

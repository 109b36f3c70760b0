//! SyncCore nodes wired together on a simulated network and clock: delivery exactly
//! once, loss and resync, restarts and replays, every kind of refused datagram, the
//! send and queue budgets, multicast loopback, dirty-slot sets.

mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use harness::{addr, dirty, entry, entry6, group, header, key_of, settings, Net, KEY};
use lb_sync::auth::Key;
use lb_sync::wire::{self, Header, Kind, Payload};
use lb_sync::{FlowEntry, Reject, Settings, SyncCore, SyncEffect, SyncError};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn installs(effects: &[SyncEffect]) -> usize {
    effects
        .iter()
        .filter(|e| {
            matches!(
                e,
                SyncEffect::Install(_)
                    | SyncEffect::InstallDirty(_)
                    | SyncEffect::InstallSettled(_)
            )
        })
        .count()
}

fn counts(entries: &[FlowEntry]) -> BTreeMap<harness::FlowKey, usize> {
    let mut m = BTreeMap::new();
    for e in entries {
        *m.entry(key_of(e)).or_default() += 1;
    }
    m
}

#[test]
fn entries_arrive_exactly_once_despite_duplication_and_reordering() {
    let mut net = Net::new(2, false);
    net.faults.dup = 0.3;
    net.faults.reorder = true;
    let pushed: Vec<FlowEntry> = (0..3000).map(entry).chain((0..200).map(entry6)).collect();
    for chunk in pushed.chunks(100) {
        net.nodes[0].push(chunk.to_vec());
        net.step(10 * MS);
    }
    net.run(2 * SEC);
    let b = &net.nodes[1];
    let got = counts(&b.installed);
    assert_eq!(got.len(), pushed.len());
    assert!(got.values().all(|&n| n == 1), "an entry installed twice");
    for e in &pushed {
        assert_eq!(b.table.get(&key_of(e)), Some(e));
    }
    // Duplicates were refused as replays, and no resync was needed.
    assert!(b.core.rejected(Reject::Replay) > 0);
    assert_eq!(net.sent(1, Kind::ResyncRequest), 0);
    let view = b.core.view(net.now);
    assert_eq!(view.entries_received, pushed.len() as u64);
    assert_eq!(view.peers.len(), 1);
    assert_eq!(view.peers[0].node_id, 1);
    assert_eq!(view.peers[0].state, "alive");
    let a = net.nodes[0].core.view(net.now);
    assert_eq!(a.entries_sent, pushed.len() as u64);
    assert_eq!(a.queue, 0);
}

#[test]
fn three_nodes_over_a_multicast_group_ignore_their_own_datagrams() {
    let mut net = Net::new(3, true);
    for i in 0..3u32 {
        net.nodes[i as usize].push((i * 1000..i * 1000 + 300).map(entry).collect());
    }
    net.run(2 * SEC);
    for i in 0..3usize {
        let node = &net.nodes[i];
        assert_eq!(node.table.len(), 900, "node {i}");
        // Only the other two nodes' entries were installed, each once.
        assert_eq!(node.installed.len(), 600);
        let own: BTreeSet<_> = (i as u32 * 1000..i as u32 * 1000 + 300)
            .map(|n| key_of(&entry(n)))
            .collect();
        assert!(node.installed.iter().all(|e| !own.contains(&key_of(e))));
        let view = node.core.view(net.now);
        assert!(view.looped_back > 0);
        assert_eq!(view.rejected.values().sum::<u64>(), 0);
        assert_eq!(view.peers.len(), 2);
        // One group address: one datagram per batch.
        assert!(view.datagrams_sent < 20);
    }
}

#[test]
fn lost_datagrams_lead_to_a_resync_request_and_a_full_dump() {
    let mut net = Net::new(2, false);
    // Lose A's second Entries datagram to B.
    let mut seen = 0;
    net.drop_filter = Some(Box::new(move |p| {
        if header(&p.bytes).is_some_and(|h| h.kind == Kind::Entries && p.to == addr(1)) {
            seen += 1;
            return seen == 2;
        }
        false
    }));
    net.nodes[0].push((0..500).map(entry).collect());
    net.step(10 * MS);
    let b = &net.nodes[1];
    assert_eq!(b.installed.len(), 500 - wire::ENTRIES_PER_DATAGRAM_V4);
    assert_eq!(
        net.sent(1, Kind::ResyncRequest),
        0,
        "reordering grace first"
    );
    net.run(SEC);
    assert_eq!(net.sent(1, Kind::ResyncRequest), 1);
    assert_eq!(net.nodes[0].dump_wanted, vec![Some(addr(1))]);
    assert_eq!(net.sent(0, Kind::ResyncDone), 1);
    let b = &net.nodes[1];
    assert_eq!(b.table, net.nodes[0].table);
    let a = net.nodes[0].core.view(net.now);
    assert_eq!(a.resyncs_served, 1);
    assert_eq!(a.peers[0].resyncs_served, 1);
    let bv = b.core.view(net.now);
    assert_eq!(bv.resyncs_requested, 1);
    assert_eq!(bv.peers[0].resyncs_requested, 1);
    // Nothing more once complete.
    net.run(10 * SEC);
    assert_eq!(net.sent(1, Kind::ResyncRequest), 1);
}

#[test]
fn a_lost_tail_is_noticed_through_the_hello() {
    let mut net = Net::new(2, false);
    net.run(100 * MS);
    // Lose A's only Entries datagram: nothing follows it but hellos.
    net.drop_filter = Some(Box::new(|p| {
        header(&p.bytes).is_some_and(|h| h.kind == Kind::Entries && h.flags & wire::FLAG_DUMP == 0)
    }));
    net.nodes[0].push((0..10).map(entry).collect());
    net.step(10 * MS);
    assert!(net.nodes[1].installed.is_empty());
    net.run(2 * SEC);
    assert_eq!(net.sent(1, Kind::ResyncRequest), 1);
    assert_eq!(net.nodes[1].table.len(), 10);
}

#[test]
fn resync_requests_go_out_at_most_every_two_seconds() {
    let mut net = Net::new(2, false);
    // B never hears anything but hellos and requests from A: every data datagram is lost.
    net.drop_filter = Some(Box::new(|p| {
        header(&p.bytes).is_some_and(|h| matches!(h.kind, Kind::Entries | Kind::ResyncDone))
    }));
    for round in 0..100u32 {
        net.nodes[0].push((round * 10..round * 10 + 10).map(entry).collect());
        net.run(100 * MS);
    }
    // 10 s of continuous loss.
    let requests: Vec<_> = net
        .log
        .iter()
        .filter(|(_, p)| p.from == addr(1))
        .filter(|(_, p)| header(&p.bytes).is_some_and(|h| h.kind == Kind::ResyncRequest))
        .map(|(t, _)| *t)
        .collect();
    assert!(requests.len() >= 3, "{}", requests.len());
    assert!(requests.len() <= 6, "{}", requests.len());
    for w in requests.windows(2) {
        assert!(w[1] - w[0] >= 2 * SEC);
    }
}

#[test]
fn a_restarted_peer_is_accepted_and_its_old_epoch_replays_are_refused() {
    let mut net = Net::new(2, false);
    let mut old = Vec::new();
    net.nodes[0].push((0..100).map(entry).collect());
    net.step(10 * MS);
    old.extend(
        net.log
            .iter()
            .filter(|(_, p)| p.from == addr(0) && p.to == addr(1))
            .map(|(_, p)| p.bytes.clone()),
    );
    assert!(!old.is_empty());
    net.run(SEC);
    // A restarts: new epoch, empty table; it asks B for everything.
    net.restart(0, settings(0, 2, false), 5000);
    net.run(SEC);
    assert_eq!(net.nodes[0].table.len(), 100, "A got its flows back from B");
    assert_eq!(net.nodes[1].dump_wanted, vec![Some(addr(0))]);
    let before = net.nodes[1].installed.len();
    net.nodes[0].push((1000..1010).map(entry).collect());
    net.run(100 * MS);
    assert_eq!(net.nodes[1].installed.len(), before + 10);
    let view = net.nodes[1].core.view(net.now);
    assert_eq!(view.peers[0].epoch, 5000);
    assert_eq!(view.peers[0].restarts, 1);
    // The old epoch's datagrams, replayed: refused, nothing installed.
    let now = net.now;
    for d in &old {
        let effects = net.nodes[1].core.receive(addr(0), d, now);
        assert_eq!(installs(&effects), 0);
    }
    assert_eq!(
        net.nodes[1].core.rejected(Reject::OldEpoch),
        old.len() as u64
    );
}

/// A datagram from A to B (not delivered), and B.
fn one_datagram() -> (Vec<u8>, SyncCore, std::time::Instant) {
    let mut net = Net::new(2, false);
    net.nodes[0].push(vec![entry(1), entry(2)]);
    let now = net.now;
    let effects = net.nodes[0].core.tick(now);
    let datagram = effects
        .into_iter()
        .find_map(|e| match e {
            SyncEffect::Send { to, datagram }
                if to == addr(1) && header(&datagram).unwrap().kind == Kind::Entries =>
            {
                Some(datagram)
            }
            _ => None,
        })
        .unwrap();
    let b = net.nodes.remove(1).core;
    (datagram, b, now)
}

#[test]
fn forged_broken_and_replayed_datagrams_are_refused_counted_and_never_installed() {
    let (good, mut b, now) = one_datagram();
    let from = addr(0);
    let key = Key::new(KEY).unwrap();
    let (h, _) = wire::open(&key, &good).unwrap();

    let mut cases: Vec<(&str, Vec<u8>, Reject)> = Vec::new();
    // Same message under another key.
    let other = Key::new(b"another-sixteen-byte-key").unwrap();
    let (_, body) = wire::open(&key, &good).unwrap();
    cases.push((
        "wrong key",
        wire::seal(&other, &h, body).unwrap(),
        Reject::BadTag,
    ));
    // A payload bit flipped (the tag no longer matches).
    let mut forged = good.clone();
    forged[wire::HEADER_LEN + 5] ^= 0x40;
    cases.push(("forged payload", forged, Reject::BadTag));
    // A header field changed (another node id).
    let mut forged = good.clone();
    forged[10] ^= 1;
    cases.push(("forged header", forged, Reject::BadTag));
    // The tag itself changed.
    let mut forged = good.clone();
    *forged.last_mut().unwrap() ^= 1;
    cases.push(("forged tag", forged, Reject::BadTag));
    cases.push(("truncated", good[..20].to_vec(), Reject::Truncated));
    cases.push(("cut short", good[..good.len() - 3].to_vec(), Reject::BadTag));
    cases.push(("empty", Vec::new(), Reject::Truncated));
    let mut big = good.clone();
    big.resize(wire::MAX_DATAGRAM + 1, 0);
    cases.push(("oversized", big, Reject::Oversized));
    let mut v2 = good.clone();
    v2[4] = 2;
    cases.push(("unknown version", v2, Reject::UnknownVersion));
    let mut magic = good.clone();
    magic[0] = b'X';
    cases.push(("bad magic", magic, Reject::BadMagic));
    let mut kind = good.clone();
    kind[5] = 77;
    cases.push(("unknown kind", kind, Reject::UnknownKind));
    // Correctly signed, but the payload lies about its count.
    let mut body = Payload::Entries(vec![entry(9)]).encode();
    body[1] = 2;
    let h2 = Header { seq: 100, ..h };
    cases.push((
        "malformed",
        wire::seal(&key, &h2, &body).unwrap(),
        Reject::Malformed,
    ));
    // Correctly signed, unknown flag bit.
    let mut flags = wire::seal(
        &key,
        &Header { seq: 101, ..h },
        &Payload::Hello { last_seq: 0 }.encode(),
    )
    .unwrap();
    flags[6] = 0x80;
    let tag = key.tag(&flags[..flags.len() - 16]);
    let n = flags.len();
    flags[n - 16..].copy_from_slice(&tag);
    cases.push(("unknown flags", flags, Reject::Malformed));

    for (name, bytes, reason) in &cases {
        let before = b.rejected(*reason);
        let effects = b.receive(from, bytes, now);
        assert_eq!(installs(&effects), 0, "{name}");
        assert!(effects.is_empty(), "{name}: {effects:?}");
        assert_eq!(b.rejected(*reason), before + 1, "{name}");
    }
    assert!(
        b.view(now).peers.iter().all(|p| p.state == "unknown"),
        "no session from refused datagrams"
    );

    // The genuine one is installed once; its replay is refused.
    let effects = b.receive(from, &good, now);
    assert_eq!(installs(&effects), 1);
    let effects = b.receive(from, &good, now);
    assert_eq!(installs(&effects), 0);
    assert_eq!(b.rejected(Reject::Replay), 1);
    let view = b.view(now);
    assert_eq!(view.entries_received, 2);
    assert_eq!(view.rejected["bad_tag"], 5);
    assert_eq!(view.rejected["replay"], 1);
    assert_eq!(view.rejected["malformed"], 2);
}

#[test]
fn stale_sequence_numbers_beyond_the_window_are_refused() {
    let mut net = Net::new(2, false);
    // Capture A's first datagram to B, deliver everything else.
    let mut first = None;
    net.drop_filter = Some(Box::new(move |p| {
        if first.is_none() && p.to == addr(1) {
            first = Some(p.bytes.clone());
            return true;
        }
        false
    }));
    net.nodes[0].push((0..61 * 3).map(entry).collect());
    net.step(10 * MS);
    let captured = net.log[0].1.bytes.clone();
    // 100 more datagrams.
    for i in 0..100u32 {
        net.nodes[0].push(vec![entry(10_000 + i)]);
        net.step(10 * MS);
    }
    let now = net.now;
    let before = net.nodes[1].installed.len();
    let effects = net.nodes[1].core.receive(addr(0), &captured, now);
    assert_eq!(installs(&effects), 0);
    assert_eq!(net.nodes[1].installed.len(), before);
    assert_eq!(net.nodes[1].core.rejected(Reject::StaleSequence), 1);
}

#[test]
fn the_send_budget_holds_on_a_simulated_clock() {
    let rate = 500u32;
    let mut net = Net::with(3, |i| {
        let mut s = settings(i, 3, false);
        s.max_messages_per_sec = rate;
        s.max_queue = 1_000_000;
        s
    });
    net.nodes[1].up = false;
    net.nodes[2].up = false;
    net.nodes[0].push((0..200_000).map(entry).collect());
    let start = net.now;
    net.run(10 * SEC);
    let times: Vec<_> = net
        .log
        .iter()
        .filter(|(_, p)| p.from == addr(0))
        .map(|(t, _)| *t - start)
        .collect();
    let capacity = (rate / 100 + 2) as usize;
    // Any one-second window: at most a second's worth plus the burst.
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < *t + SEC).count();
        assert!(
            in_window <= rate as usize + capacity,
            "{in_window} at {t:?}"
        );
    }
    // And the budget is used: about rate * 10 s.
    assert!(times.len() <= rate as usize * 10 + capacity);
    assert!(
        times.len() >= rate as usize * 10 - rate as usize / 10,
        "{}",
        times.len()
    );
    // Two unicast peers: every batch costs two datagrams.
    let view = net.nodes[0].core.view(net.now);
    assert_eq!(view.datagrams_sent, times.len() as u64);
    assert!(view.queue > 0);
}

#[test]
fn a_full_dump_larger_than_the_budget_goes_out_over_several_ticks() {
    let mut net = Net::with(2, |i| {
        let mut s = settings(i, 2, false);
        s.max_messages_per_sec = 100;
        s
    });
    net.nodes[1].table = (0..10_000).map(|i| (key_of(&entry(i)), entry(i))).collect();
    net.nodes[1].dirty = vec![dirty(1000)];
    // A starts and asks B for everything: 164 + 7 datagrams at 100/s.
    net.start_all();
    net.run(500 * MS);
    assert!(net.nodes[0].table.len() < 10_000);
    net.run(2 * SEC);
    assert_eq!(net.nodes[0].table, net.nodes[1].table);
    assert_eq!(net.nodes[0].installed_dirty, vec![dirty(1000)]);
    // No second dump was asked for.
    assert_eq!(net.sent(0, Kind::ResyncRequest), 1);
    net.run(10 * SEC);
    assert_eq!(net.sent(0, Kind::ResyncRequest), 1);
    assert_eq!(net.nodes[1].core.view(net.now).resyncs_served, 1);
}

#[test]
fn queue_overflow_is_counted_and_a_full_resync_follows_once_drained() {
    let mut net = Net::with(2, |i| {
        let mut s = settings(i, 2, false);
        s.max_queue = 100;
        s
    });
    net.nodes[0].auto_dump = false;
    // 100 flows, then a refresh of each before anything was sent: 100 too many.
    net.nodes[0].push((0..100).map(entry).collect());
    let refreshed: Vec<_> = (0..100)
        .map(|i| FlowEntry {
            idle_ms: 777_777,
            ..entry(i)
        })
        .collect();
    net.nodes[0].push(refreshed.clone());
    assert_eq!(net.nodes[0].core.queued(), 100);
    let view = net.nodes[0].core.view(net.now);
    assert_eq!(view.entries_dropped, 100);
    assert_eq!(view.queue, 100);
    net.step(10 * MS);
    // Drained in this tick (2 datagrams); the offer comes at the next.
    assert!(net.nodes[0].dump_wanted.is_empty());
    net.step(10 * MS);
    assert_eq!(net.nodes[0].dump_wanted, vec![None]);
    assert!(net.nodes[1].table.values().all(|e| e.idle_ms != 777_777));
    // The shell answers with everything: B ends up with the refreshed entries.
    let all: Vec<_> = net.nodes[0].table.values().copied().collect();
    net.nodes[0].core.push_full(None, all, vec![]);
    net.run(100 * MS);
    assert_eq!(net.nodes[1].table, net.nodes[0].table);
    assert!(net.nodes[1].table.values().all(|e| e.idle_ms == 777_777));
    net.run(SEC);
    assert_eq!(net.nodes[0].dump_wanted, vec![None], "offered once");
    assert_eq!(net.nodes[0].core.view(net.now).entries_dropped, 100);
}

#[test]
fn a_dump_that_does_not_fit_is_truncated_counted_and_offered_again() {
    let to: SocketAddr = addr(1);
    let t = std::time::Instant::now();
    let mut s = settings(0, 2, false);
    s.max_queue = 1000;
    let mut a = SyncCore::new(s, 1, t).unwrap();
    a.push((0..600).map(entry));
    a.push_full(Some(to), (0..800).map(entry).collect(), vec![]);
    assert_eq!(a.queued(), 1000);
    assert_eq!(a.view(t).entries_dropped, 400);
    let mut offered = Vec::new();
    let mut now = t;
    for _ in 0..300 {
        now += 10 * MS;
        for e in a.tick(now) {
            if let SyncEffect::DumpWanted { to } = e {
                offered.push(to);
            }
        }
    }
    assert_eq!(offered, vec![Some(to)]);
    // Larger than the whole queue: sent truncated, not offered again.
    a.push_full(Some(to), (0..1500).map(entry).collect(), vec![]);
    assert_eq!(a.dumps_truncated(), 1);
    assert_eq!(a.view(now).entries_dropped, 900);
    for _ in 0..300 {
        now += 10 * MS;
        assert!(!a
            .tick(now)
            .iter()
            .any(|e| matches!(e, SyncEffect::DumpWanted { .. })));
    }
    assert_eq!(a.queued(), 0);
}

#[test]
fn our_own_node_id_is_ignored() {
    let t = std::time::Instant::now();
    let mut a = SyncCore::new(settings(0, 2, true), 1, t).unwrap();
    a.push((0..10).map(entry));
    let effects = a.tick(t);
    let sends: Vec<_> = effects
        .into_iter()
        .filter_map(|e| match e {
            SyncEffect::Send { datagram, .. } => Some(datagram),
            _ => None,
        })
        .collect();
    assert!(sends.len() >= 2, "hello and entries");
    // Looped back, and from another process with the same id (a newer epoch).
    let mut twin = SyncCore::new(settings(0, 2, true), 2, t).unwrap();
    twin.push((0..10).map(entry));
    let twin_sends: Vec<_> = twin
        .tick(t)
        .into_iter()
        .filter_map(|e| match e {
            SyncEffect::Send { datagram, .. } => Some(datagram),
            _ => None,
        })
        .collect();
    for d in sends.iter().chain(&twin_sends) {
        assert!(a.receive(group(), d, t).is_empty());
    }
    let view = a.view(t);
    assert_eq!(view.looped_back, (sends.len() + twin_sends.len()) as u64);
    assert!(view.peers.is_empty());
    assert_eq!(view.entries_received, 0);
}

#[test]
fn dirty_slots_round_trip_split_over_datagrams() {
    let mut net = Net::new(2, false);
    net.faults.reorder = true;
    let big = dirty(2000);
    let small = dirty(3);
    let v6 = lb_sync::DirtySlots {
        vip: "2001:db8:1::10".parse().unwrap(),
        port: 6443,
        proto: 6,
        table_len: 251,
        slots: (0..200)
            .map(|i| (i, "2001:db8:2::1".parse().unwrap()))
            .collect(),
    };
    let empty = lb_sync::DirtySlots {
        slots: vec![],
        ..small.clone()
    };
    let sets = vec![big.clone(), small.clone(), v6.clone(), empty.clone()];
    net.nodes[0]
        .core
        .push_full(Some(addr(1)), vec![entry(1)], sets.clone());
    // Paced: a hundredth of a second's budget at a time.
    net.run(SEC);
    let dirty_datagrams = net.sent(0, Kind::Dirty);
    assert_eq!(
        dirty_datagrams,
        2000usize.div_ceil(wire::SLOTS_PER_DATAGRAM_V4) + 1 + 4 + 1
    );
    let mut got = net.nodes[1].installed_dirty.clone();
    assert_eq!(got.len(), 4);
    got.sort_by_key(|d| (d.table_len, d.slots.len()));
    let mut want = sets;
    want.sort_by_key(|d| (d.table_len, d.slots.len()));
    assert_eq!(got, want);
    assert_eq!(net.nodes[1].table.len(), 1);
}

#[test]
fn a_lost_dirty_part_is_recovered_by_a_resync() {
    let mut net = Net::new(2, false);
    net.nodes[0].dirty = vec![dirty(1000)];
    let mut n = 0;
    net.drop_filter = Some(Box::new(move |p| {
        if header(&p.bytes).is_some_and(|h| h.kind == Kind::Dirty) {
            n += 1;
            return n == 3;
        }
        false
    }));
    net.nodes[0]
        .core
        .push_full(Some(addr(1)), vec![], vec![dirty(1000)]);
    net.step(10 * MS);
    assert!(
        net.nodes[1].installed_dirty.is_empty(),
        "incomplete set held back"
    );
    net.run(SEC);
    assert_eq!(net.nodes[1].installed_dirty, vec![dirty(1000)]);
}

#[test]
fn start_asks_every_peer_and_a_new_node_gets_the_tables_once() {
    let mut net = Net::new(3, true);
    for i in 1..3 {
        let node = &mut net.nodes[i];
        node.table = (0..500u32)
            .map(|n| entry(i as u32 * 10_000 + n))
            .map(|e| (key_of(&e), e))
            .collect();
        node.dirty = vec![dirty(300)];
    }
    net.run(SEC);
    net.restart(0, settings(0, 3, true), 9999);
    net.run(3 * SEC);
    assert_eq!(net.nodes[0].table.len(), 1000);
    assert_eq!(net.nodes[0].installed_dirty.len(), 2);
    for i in 1..3 {
        assert_eq!(net.nodes[i].dump_wanted.len(), 1, "node {i}");
    }
    net.run(10 * SEC);
    for i in 1..3 {
        assert_eq!(net.nodes[i].dump_wanted.len(), 1, "no second dump from {i}");
    }
}

#[test]
fn a_restarted_node_is_caught_up_once_every_live_peer_has_sent_its_state() {
    let mut net = Net::new(3, true);
    for i in 1..3 {
        net.nodes[i].table = (0..3000u32)
            .map(|n| entry(i as u32 * 10_000 + n))
            .map(|e| (key_of(&e), e))
            .collect();
    }
    net.run(SEC);
    net.restart(0, settings(0, 3, true), 9999);
    assert!(
        !net.nodes[0].core.caught_up(net.now),
        "nothing received yet"
    );
    let mut waited = Duration::ZERO;
    while !net.nodes[0].core.caught_up(net.now) && waited < 10 * SEC {
        net.run(SEC / 20);
        waited += SEC / 20;
    }
    assert!(net.nodes[0].core.caught_up(net.now));
    assert_eq!(
        net.nodes[0].table.len(),
        6000,
        "caught up means both peers' entries are in"
    );
}

#[test]
fn a_resync_with_lost_parts_is_not_caught_up_and_is_asked_for_again() {
    let mut net = Net::new(3, true);
    for i in 1..3 {
        net.nodes[i].table = (0..3000u32)
            .map(|n| entry(i as u32 * 10_000 + n))
            .map(|e| (key_of(&e), e))
            .collect();
    }
    net.run(SEC);
    // Lose a run of node 1's first dump to the restarted node, but not its end.
    let mut dump = 0;
    net.drop_filter = Some(Box::new(move |p| {
        if p.from == addr(1)
            && p.to == addr(0)
            && header(&p.bytes).is_some_and(|h| h.kind == Kind::Entries)
        {
            dump += 1;
            return (10..20).contains(&dump);
        }
        false
    }));
    net.restart(0, settings(0, 3, true), 9999);
    let mut saw_end = false;
    for _ in 0..40 {
        net.run(SEC / 20);
        saw_end |= net.sent(1, Kind::ResyncDone) > 0;
        if saw_end && net.nodes[0].table.len() < 6000 {
            assert!(
                !net.nodes[0].core.caught_up(net.now),
                "the dump's end arrived but parts of it did not"
            );
        }
    }
    assert!(saw_end);
    // Asked again, and complete the second time.
    net.run(5 * SEC);
    assert!(net.nodes[0].core.caught_up(net.now));
    assert_eq!(net.nodes[0].table.len(), 6000);
    assert!(
        net.nodes[1].dump_wanted.len() >= 2,
        "a second dump was asked for"
    );
}

#[test]
fn a_resyncs_end_replayed_after_the_requester_restarted_does_not_complete_it() {
    let mut net = Net::new(2, false);
    net.nodes[1].table = (0..100u32)
        .map(|n| entry(10_000 + n))
        .map(|e| (key_of(&e), e))
        .collect();
    net.run(SEC);
    net.restart(0, settings(0, 2, false), 5000);
    net.run(2 * SEC);
    assert!(net.nodes[0].core.caught_up(net.now));
    // Capture everything node 1 sent node 0 in that session: hellos, the dump, its end.
    let captured: Vec<Vec<u8>> = net
        .log
        .iter()
        .filter(|(_, p)| p.from == addr(1) && p.to == addr(0))
        .map(|(_, p)| p.bytes.clone())
        .collect();
    assert!(captured
        .iter()
        .any(|b| header(b).is_some_and(|h| h.kind == Kind::ResyncDone)));
    // Node 0 restarts while node 1 is silent; an attacker replays the capture.
    net.nodes[1].up = false;
    net.restart(0, settings(0, 2, false), 6000);
    let now = net.now;
    for b in &captured {
        net.nodes[0].core.receive(addr(1), b, now);
    }
    assert!(
        !net.nodes[0].core.caught_up(now),
        "a replayed end of an old session's resync is not this session's"
    );
}

#[test]
fn a_node_alone_is_caught_up_after_the_dead_peer_time() {
    let t = std::time::Instant::now();
    let mut s = settings(0, 1, false);
    s.peers = vec!["10.9.9.9:7946".parse().unwrap()];
    let mut core = SyncCore::new(s.clone(), 1, t).unwrap();
    assert!(!core.caught_up(t), "not started");
    core.start(t);
    assert!(!core.caught_up(t + s.peer_dead_after / 2));
    assert!(core.caught_up(t + s.peer_dead_after));
}

#[test]
fn peers_go_dead_after_silence_and_unknown_ones_are_listed() {
    let t = std::time::Instant::now();
    let mut s = settings(0, 3, false);
    s.peers.push("10.9.9.9:7946".parse().unwrap());
    let mut net = Net::with(3, |i| {
        if i == 0 {
            s.clone()
        } else {
            settings(i, 3, false)
        }
    });
    net.now = t;
    net.run(2 * SEC);
    let view = net.nodes[0].core.view(net.now);
    let states: BTreeMap<_, _> = view
        .peers
        .iter()
        .map(|p| (p.address, p.state.clone()))
        .collect();
    assert_eq!(states[&addr(1)], "alive");
    assert_eq!(states[&addr(2)], "alive");
    assert_eq!(states[&"10.9.9.9:7946".parse().unwrap()], "unknown");
    net.nodes[2].up = false;
    net.run(4 * SEC);
    let view = net.nodes[0].core.view(net.now);
    let c = view.peers.iter().find(|p| p.address == addr(2)).unwrap();
    assert_eq!(c.state, "dead");
    assert!(c.last_seen_secs.unwrap() >= 3);
    assert_eq!(c.node_id, 3);
    // It comes back: alive again.
    net.nodes[2].up = true;
    net.run(2 * SEC);
    let view = net.nodes[0].core.view(net.now);
    let c = view.peers.iter().find(|p| p.address == addr(2)).unwrap();
    assert_eq!(c.state, "alive");
    // The view survives JSON.
    let json = serde_json::to_string(&view).unwrap();
    let back: lb_api::view::SyncView = serde_json::from_str(&json).unwrap();
    assert_eq!(back, view);
}

#[test]
fn a_lossy_corrupting_network_installs_nothing_false_and_converges() {
    let mut net = Net::new(3, false);
    net.faults = harness::Faults {
        loss: 0.05,
        dup: 0.05,
        corrupt: 0.05,
        reorder: true,
    };
    net.seed(42);
    let mut pushed = BTreeSet::new();
    for round in 0..200u32 {
        let i = (round % 3) as usize;
        let batch: Vec<_> = (round * 50..round * 50 + 50).map(entry).collect();
        pushed.extend(batch.iter().copied());
        net.nodes[i].push(batch);
        net.step(20 * MS);
    }
    for node in &net.nodes {
        assert!(
            node.installed.iter().all(|e| pushed.contains(e)),
            "garbage installed"
        );
        assert!(node.core.rejected(Reject::BadTag) > 0);
    }
    // Faults stop: the resync machinery converges every table.
    net.faults = harness::Faults::default();
    net.run(15 * SEC);
    for (i, node) in net.nodes.iter().enumerate() {
        assert_eq!(node.table.len(), pushed.len(), "node {i}");
    }
}

#[test]
fn bad_settings_are_refused() {
    let t = std::time::Instant::now();
    let s = Settings::new(1, b"short".to_vec(), vec![]);
    assert_eq!(
        SyncCore::new(s, 1, t).unwrap_err(),
        SyncError::KeyTooShort { len: 5 }
    );
    let mut s = settings(0, 2, false);
    s.max_messages_per_sec = 0;
    assert_eq!(SyncCore::new(s, 1, t).unwrap_err(), SyncError::ZeroRate);
    let mut s = settings(0, 2, false);
    s.max_queue = 0;
    assert_eq!(SyncCore::new(s, 1, t).unwrap_err(), SyncError::ZeroQueue);
    let mut s = settings(0, 2, false);
    s.hello_every = Duration::ZERO;
    assert_eq!(
        SyncCore::new(s, 1, t).unwrap_err(),
        SyncError::ZeroHelloInterval
    );
    let s = Settings::new(1, KEY, vec![]);
    assert_eq!(s.max_messages_per_sec, 2000);
    assert_eq!(s.max_queue, 65536);
    assert_eq!(s.hello_every, SEC);
    assert_eq!(s.peer_dead_after, 3 * SEC);
}

#[test]
fn a_datagram_for_another_node_is_refused() {
    let mut net = Net::new(3, false);
    net.run(SEC);
    // A to B, replayed to C (unicast streams have their own sequence numbers).
    net.drop_filter = Some(Box::new(|p| p.to == addr(1)));
    net.nodes[0].push(vec![entry(1)]);
    net.step(10 * MS);
    let to_b = net
        .log
        .iter()
        .rev()
        .find(|(_, p)| p.to == addr(1) && header(&p.bytes).unwrap().kind == Kind::Entries)
        .map(|(_, p)| p.bytes.clone())
        .unwrap();
    assert_eq!(header(&to_b).unwrap().dest_node, 2);
    let now = net.now;
    let c = &mut net.nodes[2].core;
    let effects = c.receive(addr(0), &to_b, now);
    assert_eq!(installs(&effects), 0);
    assert_eq!(c.rejected(Reject::NotForUs), 1);
    assert_eq!(c.view(now).rejected["not_for_us"], 1);
}

#[test]
fn settled_slots_reach_every_peer_before_queued_entries() {
    let mut net = Net::new(3, true);
    net.faults.reorder = true;
    net.nodes[0].push((0..200).map(entry).collect());
    net.nodes[0].core.push_settled(dirty(500));
    net.nodes[0].core.push_settled(dirty(2));
    net.step(10 * MS);
    for i in 1..3 {
        let node = &net.nodes[i];
        let mut got = node.installed_settled.clone();
        got.sort_by_key(|d| d.slots.len());
        assert_eq!(got, vec![dirty(2), dirty(500)], "node {i}");
        assert!(node.installed_dirty.is_empty());
        assert_eq!(node.table.len(), 200);
    }
    // Settled datagrams went out first.
    let kinds: Vec<Kind> = net
        .log
        .iter()
        .filter(|(_, p)| p.from == addr(0))
        .filter_map(|(_, p)| header(&p.bytes).map(|h| h.kind))
        .filter(|k| *k != Kind::Hello)
        .collect();
    let first_entries = kinds.iter().position(|k| *k == Kind::Entries).unwrap();
    assert!(kinds[..first_entries].iter().all(|k| *k == Kind::Settled));
    assert_eq!(
        first_entries,
        500usize.div_ceil(wire::SLOTS_PER_DATAGRAM_V4) + 1
    );
}

#[test]
fn a_settled_set_that_does_not_fit_is_dropped_and_a_resync_offered() {
    let t = std::time::Instant::now();
    let mut s = settings(0, 2, false);
    s.max_queue = 100;
    let mut a = SyncCore::new(s, 1, t).unwrap();
    a.push_settled(dirty(101));
    assert_eq!(a.queued(), 0);
    assert_eq!(a.view(t).entries_dropped, 101);
    let effects = a.tick(t);
    assert!(effects.contains(&SyncEffect::DumpWanted { to: None }));
}

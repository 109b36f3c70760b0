//! The Maglev lookup-table builder (Eisenbud et al., "Maglev: A Fast and Reliable
//! Software Network Load Balancer", NSDI '16, section 3.4).
//!
//! A service's table has `M` slots (`M` prime); a flow goes to the backend in slot
//! `hash % M`. Every backend walks its own pseudo-random permutation of the slots
//! (`offset + j * skip mod M`, both from a hash of the backend's identity) and the
//! backends take turns claiming their next still-free preferred slot until the table is
//! full. This gives:
//!
//! - **Agreement without coordination.** The table is a pure function of the *set* of
//!   backends (identity, index, weight), `M` and the seed: the order the backends are
//!   listed in does not matter, and nothing depends on the machine, the process or the
//!   table that was there before. Two LB nodes with the same configuration therefore
//!   build bit-identical tables, so when traffic fails over from one node to the other
//!   (VRRP, ECMP change), established flows hash to the same backend and survive.
//! - **Balance.** With equal weights every backend gets `floor(M/N)` or `ceil(M/N)`
//!   slots; with weights, each backend's share is within one slot of `M * w / sum(w)`.
//! - **Near-minimal disruption.** Removing one of `N` backends moves little more than
//!   the `M/N` slots it owned, adding one little more than `M/(N+1)`, as long as `M` is
//!   far above `N`: on average 1.01x at `M/N = 10000`, 1.2x at 1300, 1.3x at 200, 1.9x
//!   at 100 (few backends), and 6.8x for `M = 65537, N = 1000` (Maglev favours balance
//!   over minimal disruption, section 3.4 of the paper). With many backends what counts
//!   is `M/N²`, not `M/N`: a removal moves about 1.15x the ideal at `M/N² = 65`, 1.6x at
//!   7, 2.8x at 1.4, 3.6-4.2x at 0.7, 6x at 0.27 and 6.6-8x below 0.1 (measured at 100
//!   to 4000 backends and `M` from 65537 to 655373: `M/N = 131` at 1000 backends still
//!   moves 6.6x). So [`table_size`]'s `auto` aims at `M >= N²`.
//!
//! Moved slots are not free for flows already running: [`merge`] combines the table in
//! the data plane with a new one and marks moved slots *dirty* (see
//! [`TableEntry`]), so the data plane consults its connection table for them until the
//! controller [`settle`]s the table.
//!
//! Weighted population: each backend first gets a quota of slots (its proportional
//! share `M * w / sum(w)`, rounded by largest remainder, ties to the lower identity),
//! then turns are taken in order of "virtual time": a backend of weight `w` takes its
//! `k`-th turn at time `k / w`, ties going to the lower identity, until its quota is
//! full. With equal weights that is exactly the classic round-robin population of the
//! paper. Every turn fills exactly one slot, so population ends after exactly `M` turns.

use std::cmp::{Ordering, Reverse};
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt;

use crate::hash::bytes_hash64;
use crate::maps::{TableEntry, MAX_BIG_TABLE_SIZE, NO_BACKEND};

/// XORed into the table seed to seed a backend's offset hash. Part of the cross-node
/// contract: changing it changes every table.
const OFFSET_SALT: u64 = 0x6d61_676c_6576_6f66; // "maglevof"
/// XORed into the table seed to seed a backend's skip hash (differs from
/// [`OFFSET_SALT`], so the two seeds always differ).
const SKIP_SALT: u64 = 0x6d61_676c_6576_736b; // "maglevsk"

/// One backend as the table builder sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MaglevBackend {
    /// Stable identity bytes (for example the backend's address as a string). Decides
    /// the backend's slot preferences, so it must be the same on every LB node and
    /// across restarts; it must be unique within one table.
    pub id: Vec<u8>,
    /// The value stored in the slots this backend gets (its index in the data plane's
    /// backend array). Must be unique within one table and not [`NO_BACKEND`]. Giving
    /// the same `id` the same `index` on every node is the caller's job.
    pub index: u16,
    /// Relative share of slots. 0 = no slots (exactly as if the backend were absent).
    pub weight: u32,
}

/// Why [`build`] refused its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaglevError {
    /// The table size is 0.
    ZeroTableSize,
    /// The table size exceeds [`MAX_BIG_TABLE_SIZE`].
    TableTooLarge(u32),
    /// The table size is not prime (so a backend's walk would not visit every slot).
    TableSizeNotPrime(u32),
    /// More backends than distinct indices (`NO_BACKEND` or more).
    TooManyBackends(usize),
    /// A backend uses [`NO_BACKEND`] as its index. Carries the backend's id.
    ReservedIndex(Vec<u8>),
    /// Two backends share an id. Carries the id.
    DuplicateId(Vec<u8>),
    /// Two backends share an index. Carries the index.
    DuplicateIndex(u16),
}

impl fmt::Display for MaglevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaglevError::ZeroTableSize => f.write_str("Maglev table size is 0"),
            MaglevError::TableTooLarge(m) => {
                write!(
                    f,
                    "Maglev table size {m} exceeds the maximum {MAX_BIG_TABLE_SIZE}"
                )
            }
            MaglevError::TableSizeNotPrime(m) => write!(f, "Maglev table size {m} is not prime"),
            MaglevError::TooManyBackends(n) => {
                write!(
                    f,
                    "{n} backends in one Maglev table; at most {} allowed",
                    NO_BACKEND - 1
                )
            }
            MaglevError::ReservedIndex(id) => write!(
                f,
                "backend {} uses the reserved index {NO_BACKEND}",
                String::from_utf8_lossy(id)
            ),
            MaglevError::DuplicateId(id) => {
                write!(
                    f,
                    "backend id {} appears more than once",
                    String::from_utf8_lossy(id)
                )
            }
            MaglevError::DuplicateIndex(i) => {
                write!(f, "backend index {i} is used by more than one backend")
            }
        }
    }
}

impl std::error::Error for MaglevError {}

/// True when `n` is prime (trial division: instant for table sizes, correct for any `u32`).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return false;
    }
    let n = n as u64;
    let mut d: u64 = 5;
    while d * d <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

/// The table sizes `maglev_table_size = "auto"` chooses from, ascending: primes, the
/// first the data plane's inline table size, the last the paper's large table.
/// (The three larger ones live in the data plane's big-table map, in 64 KiB chunks:
/// 0.5, 1 and 2.6 MiB.)
pub const TABLE_SIZES: [u32; 4] = [65537, 131071, 262139, MAX_BIG_TABLE_SIZE as u32];

/// The configured table size meaning "auto" ([`table_size`] chooses per service).
pub const AUTO_TABLE_SIZE: u32 = 0;

/// The table size of a service with `backends` configured backends: `configured`, or
/// with [`AUTO_TABLE_SIZE`] the smallest of [`TABLE_SIZES`] of at least `N²` slots
/// (where a removal moves about 3x the ideal `M/N` slots or less; see the module
/// documentation), capped at the largest. So up to 256 backends keep the default
/// 65537; 257-362 get 131071, 363-511 get 262139, more get 655373. The paper's
/// `M >= 100 N` is not enough with many backends: at 1000, 131071 slots move as many
/// as 65537 (6.6x the ideal), 655373 move 4.2x; at 4000 no size below 16M helps.
///
/// Count the backends the operator configured, not the healthy ones: a size that
/// followed health would resize the table (and move most flows' slots) on failures.
pub fn table_size(configured: u32, backends: usize) -> u32 {
    if configured != AUTO_TABLE_SIZE {
        return configured;
    }
    let want = backends as u64 * backends as u64;
    TABLE_SIZES
        .iter()
        .copied()
        .find(|&m| m as u64 >= want)
        .unwrap_or(MAX_BIG_TABLE_SIZE as u32)
}

/// A backend during population: its walk through the slots and its share.
struct Walker {
    /// Next slot in this backend's permutation.
    pos: u32,
    /// Step of the permutation, `1..M`.
    skip: u32,
    /// Value written into claimed slots.
    index: u16,
    /// Slots this backend gets.
    quota: u32,
    /// `skip^-1 mod M`, once needed ([`Walker::claim_late`]).
    inverse: Option<u64>,
}

impl Walker {
    /// Claim the first still-free slot of this backend's permutation. The permutation
    /// visits every slot (M prime, 0 < skip < M), so this finds one while the table is
    /// not full.
    #[inline]
    fn claim(&mut self, fill: &mut Fill) {
        let m = fill.table.len() as u32;
        if fill.left <= fill.late_at {
            return self.claim_late(fill, m);
        }
        fill.left -= 1;
        loop {
            let slot = self.pos as usize;
            self.pos += self.skip;
            if self.pos >= m {
                self.pos -= m;
            }
            let (word, bit) = (slot / 64, 1u64 << (slot % 64));
            if fill.taken[word] & bit == 0 {
                fill.taken[word] |= bit;
                fill.table[slot] = self.index;
                return;
            }
        }
    }

    /// [`Walker::claim`] once few slots are free: rather than walking about `M / F`
    /// probes to the first of `F` free slots, compute for each free slot `x` how many
    /// steps away it is on this walk (`(x - pos) / skip mod M`) and take the nearest.
    /// The same slot, found in `F` multiplications.
    fn claim_late(&mut self, fill: &mut Fill, m: u32) {
        if fill.free.is_empty() {
            fill.free = (0..m)
                .filter(|&x| fill.taken[x as usize / 64] & (1 << (x % 64)) == 0)
                .collect();
        }
        let inverse = *self
            .inverse
            .get_or_insert_with(|| inverse_mod(self.skip, m));
        let (m64, pos) = (m as u64, self.pos);
        let mut nearest = (u64::MAX, 0);
        for (k, &x) in fill.free.iter().enumerate() {
            let ahead = if x >= pos { x - pos } else { x + m - pos };
            let steps = ahead as u64 * inverse % m64;
            if steps < nearest.0 {
                nearest = (steps, k);
            }
        }
        let slot = fill.free.swap_remove(nearest.1);
        fill.table[slot as usize] = self.index;
        fill.left -= 1;
        self.pos = if slot + self.skip >= m {
            slot + self.skip - m
        } else {
            slot + self.skip
        };
    }
}

/// `a^-1 mod m` for a prime `m` and `0 < a < m` (Fermat: `a^(m-2)`).
fn inverse_mod(a: u32, m: u32) -> u64 {
    let m = m as u64;
    let (mut base, mut exp, mut out) = (a as u64 % m, m - 2, 1u64);
    while exp > 0 {
        if exp & 1 == 1 {
            out = out * base % m;
        }
        base = base * base % m;
        exp >>= 1;
    }
    out
}

/// The table being populated, with a bitmap of its taken slots. A walk probes about
/// `M ln M` slots in all, at random: the bitmap (82 KB at M = 655373) stays in the
/// CPU's cache where the table (1.3 MB) would not. Half of those probes are spent on
/// the last few hundred free slots; from `late_at` free slots on, claims look the
/// nearest free slot up instead ([`Walker::claim_late`]).
struct Fill {
    table: Vec<u16>,
    taken: Vec<u64>,
    /// Slots still free.
    left: u32,
    /// `left` at and below which claims go by the free list (`sqrt(M / 4)`: where a
    /// pass over the list costs about what the walk's probes would).
    late_at: u32,
    /// The free slots, once `left <= late_at` (unordered).
    free: Vec<u32>,
}

impl Fill {
    fn new(m: u32) -> Self {
        Fill {
            table: vec![NO_BACKEND; m as usize],
            taken: vec![0; (m as usize).div_ceil(64)],
            left: m,
            late_at: ((m / 4) as f64).sqrt() as u32,
            free: Vec::new(),
        }
    }
}

/// The active backends in id order with their quotas and walks.
///
/// Quotas: `floor(M * w / W)`, then the remaining slots (fewer than N) one each to the
/// largest remainders `M * w mod W`, ties to the lower id. They sum to exactly M.
fn make_walkers(active: &[&MaglevBackend], m: u32, seed: u64) -> Vec<Walker> {
    // M * w < 2^49 and W < 2^48: no overflow.
    let total: u64 = active.iter().map(|b| b.weight as u64).sum();
    let mut quotas: Vec<u32> = Vec::with_capacity(active.len());
    let mut remainders: Vec<(u64, usize)> = Vec::with_capacity(active.len());
    for (i, b) in active.iter().enumerate() {
        let share = m as u64 * b.weight as u64;
        quotas.push((share / total) as u32);
        remainders.push((share % total, i));
    }
    let assigned: u64 = quotas.iter().map(|&q| q as u64).sum();
    let left = (m as u64 - assigned) as usize;
    // Largest remainder first; equal remainders keep id order (the sort is stable).
    remainders.sort_by_key(|&(rem, _)| Reverse(rem));
    for &(_, i) in &remainders[..left] {
        quotas[i] += 1;
    }

    let offset_seed = seed ^ OFFSET_SALT;
    let skip_seed = seed ^ SKIP_SALT;
    active
        .iter()
        .zip(quotas)
        .map(|(b, quota)| Walker {
            pos: (bytes_hash64(offset_seed, &b.id) % m as u64) as u32,
            // M == 2 leaves a single possible step, 1; M - 1 >= 1 for every prime.
            skip: (bytes_hash64(skip_seed, &b.id) % (m as u64 - 1)) as u32 + 1,
            index: b.index,
            quota,
            inverse: None,
        })
        .collect()
}

/// The backends of one weight, which take their turns together: in round `k` (virtual
/// time `k / weight`) each member whose quota is at least `k` takes one turn, in id order.
struct WeightClass {
    weight: u64,
    /// Positions in the id order (indices into the walkers), increasing.
    members: Vec<u32>,
    /// Highest quota of a member: the last round.
    last_round: u32,
    /// Current round, from 1.
    round: u32,
    /// Index into `members` of the next to take a turn.
    next: usize,
}

impl WeightClass {
    fn new(weight: u64, members: Vec<u32>, walkers: &[Walker]) -> Self {
        let last_round = members
            .iter()
            .map(|&i| walkers[i as usize].quota)
            .max()
            .unwrap_or(0);
        // Positioned just before the first turn: `advance` moves to it.
        let next = members.len() - 1;
        WeightClass {
            weight,
            members,
            last_round,
            round: 0,
            next,
        }
    }

    /// The walker whose turn is next.
    fn current(&self) -> u32 {
        self.members[self.next]
    }

    /// Move to the next member with a turn left; false when the class is done.
    fn advance(&mut self, walkers: &[Walker]) -> bool {
        loop {
            self.next += 1;
            if self.next == self.members.len() {
                self.next = 0;
                self.round += 1;
                if self.round > self.last_round {
                    return false;
                }
            }
            if walkers[self.current() as usize].quota >= self.round {
                return true;
            }
        }
    }
}

impl Ord for WeightClass {
    /// Earlier virtual time first, then lower id.
    fn cmp(&self, other: &Self) -> Ordering {
        // round <= M < 2^20 and weight < 2^32: the products fit in u64.
        (self.round as u64 * other.weight)
            .cmp(&(other.round as u64 * self.weight))
            .then(self.current().cmp(&other.current()))
    }
}

impl PartialOrd for WeightClass {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for WeightClass {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for WeightClass {}

fn check_table_size(table_size: u32) -> Result<(), MaglevError> {
    if table_size == 0 {
        return Err(MaglevError::ZeroTableSize);
    }
    if table_size as usize > MAX_BIG_TABLE_SIZE {
        return Err(MaglevError::TableTooLarge(table_size));
    }
    if !is_prime(table_size) {
        return Err(MaglevError::TableSizeNotPrime(table_size));
    }
    Ok(())
}

/// Build the Maglev table: exactly `table_size` slots, each holding a backend's
/// [`MaglevBackend::index`], or all [`NO_BACKEND`] when no backend has a weight above 0.
///
/// The result depends only on the set of backends (not their order), `table_size` and
/// `seed`, so every LB node with the same configuration builds the same table.
/// `table_size` must be a prime no larger than [`MAX_BIG_TABLE_SIZE`] (tables above
/// [`crate::maps::MAX_TABLE_SIZE`] go to the data plane's big-table map); [`table_size`] picks it. Balance holds
/// for any size, but changes of the backend set move few slots beyond the necessary
/// ones only when `table_size` is several hundred times the number of backends (see
/// the module documentation).
///
/// Runs in about `O(M log M + M log D)` for `D` distinct weights.
pub fn build(
    backends: &[MaglevBackend],
    table_size: u32,
    seed: u64,
) -> Result<Vec<u16>, MaglevError> {
    check_table_size(table_size)?;
    if backends.len() >= NO_BACKEND as usize {
        return Err(MaglevError::TooManyBackends(backends.len()));
    }

    // Canonical order: by id. Everything below depends on this order only.
    let mut sorted: Vec<&MaglevBackend> = backends.iter().collect();
    sorted.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    for pair in sorted.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(MaglevError::DuplicateId(pair[0].id.clone()));
        }
    }
    let mut seen = vec![false; NO_BACKEND as usize];
    for b in &sorted {
        if b.index == NO_BACKEND {
            return Err(MaglevError::ReservedIndex(b.id.clone()));
        }
        if std::mem::replace(&mut seen[b.index as usize], true) {
            return Err(MaglevError::DuplicateIndex(b.index));
        }
    }

    let m = table_size;
    let mut fill = Fill::new(m);
    let active: Vec<&MaglevBackend> = sorted.into_iter().filter(|b| b.weight > 0).collect();
    if active.is_empty() {
        return Ok(fill.table);
    }

    let mut walkers = make_walkers(&active, m, seed);

    // Turns in virtual-time order: backend i's k-th turn (k = 1..=quota) comes at time
    // k / w_i; equal times go to the lower id. With equal weights that is the paper's
    // round robin. Backends of equal weight move in lockstep, so the heap holds one
    // entry per distinct weight (just one for equal weights) rather than per backend.
    // Each turn claims one free slot and the quotas sum to M, so population ends after
    // exactly M turns with the table full.
    let mut by_weight: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for (i, b) in active.iter().enumerate() {
        by_weight.entry(b.weight as u64).or_default().push(i as u32);
    }
    if by_weight.len() == 1 {
        // One weight (the common case): the plain round robin, in id order, each
        // backend until its quota is full; the same turns the heap below would give.
        let last_round = walkers.iter().map(|w| w.quota).max().unwrap_or(0);
        for round in 1..=last_round {
            for w in walkers.iter_mut().filter(|w| w.quota >= round) {
                w.claim(&mut fill);
            }
        }
        debug_assert!(fill.table.iter().all(|&s| s != NO_BACKEND));
        return Ok(fill.table);
    }
    let mut turns: BinaryHeap<Reverse<WeightClass>> = by_weight
        .into_iter()
        .map(|(weight, members)| WeightClass::new(weight, members, &walkers))
        .filter_map(|mut class| class.advance(&walkers).then_some(Reverse(class)))
        .collect();
    while let Some(mut next) = turns.peek_mut() {
        let class = &mut next.0;
        walkers[class.current() as usize].claim(&mut fill);
        if !class.advance(&walkers) {
            PeekMut::pop(next);
        }
        // Otherwise dropping `next` moves the class to its place for its next turn.
    }
    debug_assert!(fill.table.iter().all(|&s| s != NO_BACKEND));
    Ok(fill.table)
}

/// Combine the table currently in the data plane (`old`) with a freshly built one
/// (`new`), marking slots whose backend moved as dirty so flows that predate the
/// change can be found in the connection table.
///
/// - `old` is `None` (or empty): every slot clean, `{ backend: new[i], prev: NO_BACKEND }`.
/// - A clean slot whose backend is unchanged stays clean.
/// - A clean slot whose backend changed becomes dirty, `{ backend: new[i], prev:
///   old.backend }`, unless it had no backend (`NO_BACKEND`): it carried no flows, so it
///   stays clean.
/// - A dirty slot stays dirty and keeps its original `prev`, `{ backend: new[i], prev:
///   old.prev }`, even when `new[i] == old.prev`: flows recorded while it was dirty may
///   be elsewhere. Only [`settle`] makes slots clean again.
/// - `old` of another size (a resize): a flow's slot is `reduce(hash, M)`, which keeps
///   hash order, so new slot `i` takes the hashes of one old slot or two neighbours
///   (several when shrinking). It is judged as above against the old slot holding most
///   of its hashes, and is dirty if any of those old slots is dirty or had another
///   backend. Untracked flows in the minority part of a slot that straddles two old
///   slots of different backends move (about an eighth of them when the size doubles);
///   every other flow keeps its backend.
pub fn merge(old: Option<&[TableEntry]>, new: &[u16]) -> Vec<TableEntry> {
    let clean = |backend: u16| TableEntry {
        backend,
        prev: NO_BACKEND,
    };
    match old {
        Some(old) if old.len() == new.len() => old
            .iter()
            .zip(new)
            .map(|(o, &n)| {
                if o.is_dirty() {
                    TableEntry {
                        backend: n,
                        prev: o.prev,
                    }
                } else if o.backend == n || o.backend == NO_BACKEND {
                    clean(n)
                } else {
                    TableEntry {
                        backend: n,
                        prev: o.backend,
                    }
                }
            })
            .collect(),
        Some(old) if !old.is_empty() => resized(old, new, true),
        _ => new.iter().map(|&n| clean(n)).collect(),
    }
}

/// The first hash (of 2^32) that `reduce(hash, m)` puts in `slot` (`slot <= m`;
/// `slot == m` gives 2^32, the end of the last slot).
fn first_hash(slot: u64, m: u64) -> u64 {
    (slot << 32).div_ceil(m)
}

/// [`merge`] (`keep_moved`) or [`carry_dirty`] of tables of different sizes: each new
/// slot against the old slots that held its hashes (see [`merge`]).
fn resized(old: &[TableEntry], new: &[u16], keep_moved: bool) -> Vec<TableEntry> {
    let (m_old, m_new) = (old.len() as u64, new.len() as u64);
    new.iter()
        .enumerate()
        .map(|(slot, &n)| {
            let (lo, end) = (
                first_hash(slot as u64, m_new),
                first_hash(slot as u64 + 1, m_new),
            );
            // The old slot with most of this slot's hashes (the first on a tie), among
            // those that matter: every slot that carried flows when merging, only the
            // dirty ones when carrying dirty marks.
            let mut best: Option<(u64, TableEntry)> = None;
            let mut moved = false;
            let mut o = (lo * m_old) >> 32;
            while o < m_old {
                let o_lo = first_hash(o, m_old).max(lo);
                let o_end = first_hash(o + 1, m_old).min(end);
                if o_lo >= end {
                    break;
                }
                let e = old[o as usize];
                let matters = if keep_moved {
                    e.is_dirty() || e.backend != NO_BACKEND
                } else {
                    e.is_dirty()
                };
                if matters {
                    moved |= e.is_dirty() || e.backend != n;
                    let hashes = o_end - o_lo;
                    if best.is_none_or(|(most, _)| hashes > most) {
                        best = Some((hashes, e));
                    }
                }
                o += 1;
            }
            match best {
                Some((_, e)) if moved || !keep_moved => TableEntry {
                    backend: n,
                    prev: if e.is_dirty() { e.prev } else { e.backend },
                },
                _ => TableEntry {
                    backend: n,
                    prev: NO_BACKEND,
                },
            }
        })
        .collect()
}

/// Install `new` over `old` without marking moved slots: for a table no flow can be on
/// yet (a node coming up). Slots that are already dirty (a peer's, synced) stay dirty
/// with their `prev`, as in [`merge`]; every other slot is clean. `old` of another
/// size carries the dirty marks over by hash range as [`merge`] does; none gives an
/// all-clean table.
pub fn carry_dirty(old: Option<&[TableEntry]>, new: &[u16]) -> Vec<TableEntry> {
    match old {
        Some(old) if old.len() == new.len() => old
            .iter()
            .zip(new)
            .map(|(o, &n)| TableEntry {
                backend: n,
                prev: if o.is_dirty() { o.prev } else { NO_BACKEND },
            })
            .collect(),
        Some(old) if !old.is_empty() => resized(old, new, false),
        _ => merge(None, new),
    }
}

/// Mark every slot clean (`prev = NO_BACKEND`): for when the connection table no
/// longer needs consulting, i.e. every flow that predates the last change is gone.
pub fn settle(entries: &mut [TableEntry]) {
    for e in entries {
        e.prev = NO_BACKEND;
    }
}

/// How many slots hold each value, in value order. [`NO_BACKEND`] is counted like any
/// other value (an empty table is `{NO_BACKEND: M}`); backends with no slots are absent.
pub fn slot_counts<B: core::borrow::Borrow<u16>>(
    table: impl IntoIterator<Item = B>,
) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for b in table {
        *counts.entry(*b.borrow()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SIZES: [u32; 3] = [251, 4093, 65537];

    fn backend(i: u16, weight: u32) -> MaglevBackend {
        MaglevBackend {
            id: format!("10.0.{}.{}:80", i / 256, i % 256).into_bytes(),
            index: i,
            weight,
        }
    }

    fn equal(n: u16) -> Vec<MaglevBackend> {
        (0..n).map(|i| backend(i, 1)).collect()
    }

    fn moved(a: &[u16], b: &[u16]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    fn check_weighted(backends: &[MaglevBackend], m: u32, seed: u64) {
        let table = build(backends, m, seed).unwrap();
        assert_eq!(table.len(), m as usize);
        let counts = slot_counts(&table);
        let total: u64 = backends.iter().map(|b| b.weight as u64).sum();
        if total == 0 {
            assert!(table.iter().all(|&s| s == NO_BACKEND));
            return;
        }
        assert!(!counts.contains_key(&NO_BACKEND));
        for b in backends {
            let got = counts.get(&b.index).copied().unwrap_or(0) as f64;
            let want = m as f64 * b.weight as f64 / total as f64;
            let tolerance = (want * 0.01).max(2.0);
            assert!(
                (got - want).abs() <= tolerance,
                "backend {} weight {}: {got} slots, want {want}",
                b.index,
                b.weight
            );
            if b.weight == 0 {
                assert_eq!(got, 0.0);
            }
        }
    }

    /// Algorithm 1 of the paper, written out: backends in id order take turns round
    /// robin until the table is full, permutation[i][j] = (offset + j * skip) mod M.
    fn paper_algorithm(backends: &[MaglevBackend], m: u32, seed: u64) -> Vec<u16> {
        let mut sorted: Vec<&MaglevBackend> = backends.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        let m = m as u64;
        let permutation = |b: &MaglevBackend, j: u64| {
            let offset = bytes_hash64(seed ^ OFFSET_SALT, &b.id) % m;
            let skip = bytes_hash64(seed ^ SKIP_SALT, &b.id) % (m - 1) + 1;
            ((offset + j * skip) % m) as usize
        };
        let mut next = vec![0u64; sorted.len()];
        let mut entry = vec![NO_BACKEND; m as usize];
        let mut n = 0;
        loop {
            for (i, b) in sorted.iter().enumerate() {
                let mut c = permutation(b, next[i]);
                while entry[c] != NO_BACKEND {
                    next[i] += 1;
                    c = permutation(b, next[i]);
                }
                entry[c] = b.index;
                next[i] += 1;
                n += 1;
                if n == m {
                    return entry;
                }
            }
        }
    }

    /// The weighted population order written out plainly: every turn (k, i) for
    /// k = 1..=quota_i, sorted by virtual time k / w_i, then id.
    fn plain_weighted(backends: &[MaglevBackend], m: u32, seed: u64) -> Vec<u16> {
        let mut active: Vec<&MaglevBackend> = backends.iter().filter(|b| b.weight > 0).collect();
        active.sort_by(|a, b| a.id.cmp(&b.id));
        let mut fill = Fill::new(m);
        if active.is_empty() {
            return fill.table;
        }
        let mut walkers = make_walkers(&active, m, seed);
        let mut turns: Vec<(u64, u64, usize)> = Vec::new();
        for (i, w) in walkers.iter().enumerate() {
            for k in 1..=w.quota as u64 {
                turns.push((k, active[i].weight as u64, i));
            }
        }
        assert_eq!(turns.len(), m as usize);
        turns.sort_by(|a, b| (a.0 * b.1).cmp(&(b.0 * a.1)).then(a.2.cmp(&b.2)));
        for (_, _, i) in turns {
            walkers[i].claim(&mut fill);
        }
        fill.table
    }

    #[test]
    fn equal_weights_are_the_paper_algorithm() {
        for m in SIZES {
            for n in [1u16, 2, 3, 7, 100, 1000] {
                for seed in [0, 1, u64::MAX] {
                    assert_eq!(
                        build(&equal(n), m, seed).unwrap(),
                        paper_algorithm(&equal(n), m, seed),
                        "M={m} N={n}"
                    );
                }
            }
        }
    }

    #[test]
    fn primes() {
        let small: Vec<u32> = (0..60).filter(|&n| is_prime(n)).collect();
        assert_eq!(
            small,
            [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59]
        );
        for p in [251, 4093, 65537, 65521, 1_000_003, 4_294_967_291] {
            assert!(is_prime(p), "{p}");
        }
        for c in [1, 4, 25, 49, 4095, 65535, 65539 * 3, 65537 * 2, u32::MAX] {
            assert!(!is_prime(c), "{c}");
        }
        // The largest prime square below 2^32 (65521^2) must not overflow the check.
        assert!(!is_prime(65521 * 65521));
        assert!(is_prime(crate::maps::DEFAULT_TABLE_SIZE));
        assert!(is_prime(crate::maps::MAX_TABLE_SIZE as u32));
        assert!(is_prime(MAX_BIG_TABLE_SIZE as u32));
    }

    #[test]
    fn equal_weights_get_floor_or_ceil() {
        for m in SIZES {
            for n in [1u16, 2, 3, 7, 100] {
                let table = build(&equal(n), m, 42).unwrap();
                assert_eq!(table.len(), m as usize);
                let counts = slot_counts(&table);
                assert_eq!(
                    counts.len(),
                    n as usize,
                    "M={m} N={n}: every backend gets slots"
                );
                let lo = (m / n as u32) as usize;
                let hi = lo + usize::from(m % n as u32 != 0);
                for (b, c) in &counts {
                    assert!(
                        *b < n && (*c == lo || *c == hi),
                        "M={m} N={n}: backend {b} has {c} slots"
                    );
                }
            }
        }
    }

    #[test]
    fn equal_weights_any_weight_value() {
        // Equal weights of any magnitude are the same as weight 1.
        let ones = build(&equal(10), 4093, 5).unwrap();
        let mut big = equal(10);
        big.iter_mut().for_each(|b| b.weight = u32::MAX);
        assert_eq!(build(&big, 4093, 5).unwrap(), ones);
    }

    #[test]
    fn more_backends_than_slots() {
        let table = build(&equal(300), 251, 1).unwrap();
        let counts = slot_counts(&table);
        assert_eq!(counts.len(), 251);
        assert!(counts.values().all(|&c| c == 1));
    }

    #[test]
    fn weighted_counts() {
        let weights = [1u32, 2, 3, 10, 0, 100, 7];
        let backends: Vec<_> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| backend(i as u16, w))
            .collect();
        for m in SIZES {
            check_weighted(&backends, m, 9);
        }
        // Extreme ratio.
        let backends = vec![backend(0, 1), backend(1, u32::MAX), backend(2, 1 << 20)];
        for m in SIZES {
            check_weighted(&backends, m, 9);
        }
    }

    #[test]
    fn weight_zero_gets_nothing_and_equals_absence() {
        let mut backends = equal(5);
        backends[2].weight = 0;
        let table = build(&backends, 4093, 3).unwrap();
        assert!(!slot_counts(&table).contains_key(&2));
        backends.remove(2);
        assert_eq!(build(&backends, 4093, 3).unwrap(), table);
    }

    #[test]
    fn no_usable_backend_gives_empty_table() {
        for m in SIZES {
            assert_eq!(build(&[], m, 0).unwrap(), vec![NO_BACKEND; m as usize]);
            let zero: Vec<_> = (0..4).map(|i| backend(i, 0)).collect();
            let table = build(&zero, m, 0).unwrap();
            assert_eq!(table, vec![NO_BACKEND; m as usize]);
            assert_eq!(
                slot_counts(&table),
                BTreeMap::from([(NO_BACKEND, m as usize)])
            );
        }
    }

    #[test]
    fn tiny_tables() {
        for m in [2u32, 3, 5, 7] {
            for n in 1..=4u16 {
                let table = build(&equal(n), m, 11).unwrap();
                assert_eq!(table.len(), m as usize);
                assert!(table.iter().all(|&s| s < n));
            }
        }
    }

    #[test]
    fn deterministic_and_seeded() {
        let backends = equal(20);
        let a = build(&backends, 4093, 1234).unwrap();
        assert_eq!(a, build(&backends, 4093, 1234).unwrap());
        assert_ne!(a, build(&backends, 4093, 1235).unwrap());
        assert_ne!(a, build(&backends, 4093, 1234 ^ (1 << 63)).unwrap());
    }

    #[test]
    fn pinned_table() {
        // Pinned values: every LB node, whatever its version, must build this table.
        // If this fails, the hash, the salts or the population order changed, and
        // mixed-version nodes would disagree about where flows go.
        let backends = vec![
            MaglevBackend {
                id: b"10.0.0.1:80".to_vec(),
                index: 0,
                weight: 1,
            },
            MaglevBackend {
                id: b"10.0.0.2:80".to_vec(),
                index: 1,
                weight: 1,
            },
            MaglevBackend {
                id: b"10.0.0.3:80".to_vec(),
                index: 2,
                weight: 2,
            },
        ];
        assert_eq!(build(&backends, 13, 0x5eed).unwrap(), PINNED_13);
        let big = build(&equal(100), 65537, 7).unwrap();
        let digest = bytes_hash64(
            0,
            &big.iter()
                .flat_map(|s| s.to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        assert_eq!(digest, PINNED_DIGEST);
    }

    const PINNED_13: [u16; 13] = [0, 2, 0, 2, 2, 0, 2, 2, 1, 1, 1, 2, 2];
    const PINNED_DIGEST: u64 = 14522103740142846621;

    #[test]
    fn errors() {
        let ok = equal(3);
        assert_eq!(build(&ok, 0, 0), Err(MaglevError::ZeroTableSize));
        assert_eq!(build(&ok, 1, 0), Err(MaglevError::TableSizeNotPrime(1)));
        assert_eq!(
            build(&ok, 4096, 0),
            Err(MaglevError::TableSizeNotPrime(4096))
        );
        assert_eq!(
            build(&ok, 65535, 0),
            Err(MaglevError::TableSizeNotPrime(65535))
        );
        assert_eq!(
            build(&ok, 655379, 0),
            Err(MaglevError::TableTooLarge(655379))
        );
        assert_eq!(
            build(&ok, u32::MAX, 0),
            Err(MaglevError::TableTooLarge(u32::MAX))
        );

        let mut dup = equal(3);
        dup.push(MaglevBackend {
            id: dup[1].id.clone(),
            index: 9,
            weight: 0,
        });
        assert_eq!(
            build(&dup, 251, 0),
            Err(MaglevError::DuplicateId(dup[1].id.clone()))
        );

        let mut dup = equal(3);
        dup[2].index = 0;
        assert_eq!(build(&dup, 251, 0), Err(MaglevError::DuplicateIndex(0)));

        let mut reserved = equal(3);
        reserved[1].index = NO_BACKEND;
        assert_eq!(
            build(&reserved, 251, 0),
            Err(MaglevError::ReservedIndex(reserved[1].id.clone()))
        );

        let many: Vec<_> = (0..NO_BACKEND as u32)
            .map(|i| MaglevBackend {
                id: i.to_le_bytes().to_vec(),
                index: 0,
                weight: 1,
            })
            .collect();
        assert_eq!(
            build(&many, 251, 0),
            Err(MaglevError::TooManyBackends(NO_BACKEND as usize))
        );

        // Errors display and are std errors.
        let e: Box<dyn std::error::Error> = Box::new(MaglevError::TableSizeNotPrime(4096));
        assert_eq!(e.to_string(), "Maglev table size 4096 is not prime");
        assert!(MaglevError::DuplicateId(b"10.0.0.1:80".to_vec())
            .to_string()
            .contains("10.0.0.1:80"));
    }

    const A: u16 = 1;
    const B: u16 = 2;
    const C: u16 = 3;

    fn clean(backend: u16) -> TableEntry {
        TableEntry {
            backend,
            prev: NO_BACKEND,
        }
    }

    fn dirty(backend: u16, prev: u16) -> TableEntry {
        TableEntry { backend, prev }
    }

    #[test]
    fn carry_dirty_keeps_dirty_slots_and_marks_nothing_new() {
        let old = [dirty(B, A), clean(A), clean(B)];
        assert_eq!(
            carry_dirty(Some(&old), &[C, C, B]),
            [dirty(C, A), clean(C), clean(B)]
        );
        // Resized: the dirty slot's mark goes with its hashes.
        assert_eq!(carry_dirty(Some(&old), &[C]), [dirty(C, A)]);
        assert_eq!(carry_dirty(None, &[C, A]), [clean(C), clean(A)]);
    }

    #[test]
    fn merge_without_old_is_clean() {
        assert_eq!(
            merge(None, &[A, B, NO_BACKEND]),
            [clean(A), clean(B), clean(NO_BACKEND)]
        );
    }

    #[test]
    fn merge_of_a_resized_table_goes_by_hash_range() {
        let old = [dirty(A, B), clean(C)];
        // New slot 0 takes old slot 0's hashes, slot 1 straddles (old slot 1 holds one
        // hash more), slot 2 takes old slot 1's.
        assert_eq!(
            merge(Some(&old), &[B, B, C]),
            [dirty(B, B), dirty(B, C), clean(C)]
        );
        // Shrinking: both old slots, tie to the first.
        assert_eq!(merge(Some(&old), &[C]), [dirty(C, B)]);
        assert_eq!(
            carry_dirty(Some(&old), &[B, B, C]),
            [dirty(B, B), dirty(B, B), clean(C)]
        );
        let clean_old = [clean(A), clean(NO_BACKEND)];
        assert_eq!(
            carry_dirty(Some(&clean_old), &[B, B, C]),
            [clean(B), clean(B), clean(C)]
        );
        // An old slot without a backend carried no flows.
        assert_eq!(
            merge(Some(&clean_old), &[A, A, C]),
            [clean(A), clean(A), clean(C)]
        );
        assert_eq!(merge(Some(&[]), &[A]), [clean(A)]);
    }

    #[test]
    fn resized_merge_of_one_size_is_the_plain_merge() {
        let before = merge(None, &build(&equal(10), 4093, 3).unwrap());
        let once = merge(Some(&before), &build(&equal(9), 4093, 3).unwrap());
        let after = build(&equal(11), 4093, 3).unwrap();
        assert_eq!(resized(&once, &after, true), merge(Some(&once), &after));
        assert_eq!(
            resized(&once, &after, false),
            carry_dirty(Some(&once), &after)
        );
    }

    /// Where an untracked flow of hash `h` goes under `table` (the data plane's rule
    /// with every backend up: a dirty slot's previous backend).
    fn untracked_backend(table: &[TableEntry], h: u32) -> u16 {
        let e = table[crate::hash::reduce(h, table.len() as u32) as usize];
        if e.is_dirty() {
            e.prev
        } else {
            e.backend
        }
    }

    /// Growing or shrinking a table keeps untracked flows on their backend but those in
    /// the minority part of a straddling slot, and a flow whose backend changes is on a
    /// dirty slot, so tracked flows keep theirs.
    #[test]
    fn a_resize_keeps_most_flows() {
        for (from, to) in [
            (4093u32, 8191u32),
            (8191, 4093),
            (65537, 131071),
            (131071, 65537),
        ] {
            let backends = equal(50);
            let old = merge(None, &build(&backends, from, 5).unwrap());
            let new_table = build(&backends, to, 5).unwrap();
            let merged = merge(Some(&old), &new_table);
            let mut kept = 0;
            let samples = 100_000u32;
            for i in 0..samples {
                let h = i.wrapping_mul(0x9e37_79b9);
                let was = untracked_backend(&old, h);
                if untracked_backend(&merged, h) == was {
                    kept += 1;
                }
                let e = merged[crate::hash::reduce(h, to) as usize];
                assert!(e.backend == was || e.is_dirty());
            }
            let kept = kept as f64 / samples as f64;
            // Growing about 2x: each old boundary splits a new slot, the minority part
            // averaging a quarter of it (about 12% of flows move). Shrinking 2x: a new
            // slot holds two old slots' flows and one prev (about half move).
            let least = if to > from { 0.8 } else { 0.4 };
            assert!(
                kept > least,
                "{from} -> {to}: {kept} of untracked flows kept"
            );
        }
    }

    #[test]
    fn merge_clean_unchanged_stays_clean() {
        let old = [clean(A), clean(B)];
        assert_eq!(merge(Some(&old), &[A, B]), old);
    }

    #[test]
    fn merge_clean_changed_becomes_dirty() {
        let old = [clean(A), clean(B)];
        assert_eq!(merge(Some(&old), &[B, B]), [dirty(B, A), clean(B)]);
        // Losing every backend is a change too: flows on A are still there.
        assert_eq!(
            merge(Some(&old), &[NO_BACKEND, B]),
            [dirty(NO_BACKEND, A), clean(B)]
        );
    }

    #[test]
    fn merge_clean_empty_slot_stays_clean() {
        let old = [clean(NO_BACKEND), clean(NO_BACKEND)];
        assert_eq!(
            merge(Some(&old), &[A, NO_BACKEND]),
            [clean(A), clean(NO_BACKEND)]
        );
    }

    #[test]
    fn merge_dirty_keeps_original_prev() {
        // A -> B -> C: prev stays A.
        let t1 = merge(None, &[A]);
        let t2 = merge(Some(&t1), &[B]);
        assert_eq!(t2, [dirty(B, A)]);
        let t3 = merge(Some(&t2), &[C]);
        assert_eq!(t3, [dirty(C, A)]);
        // Unchanged dirty slot stays dirty.
        assert_eq!(merge(Some(&t3), &[C]), [dirty(C, A)]);
    }

    #[test]
    fn merge_back_to_prev_stays_dirty() {
        // A -> B -> A: the slot is dirty with prev A even though backend == prev.
        let t1 = merge(None, &[A]);
        let t2 = merge(Some(&t1), &[B]);
        let t3 = merge(Some(&t2), &[A]);
        assert_eq!(t3, [dirty(A, A)]);
        assert!(t3[0].is_dirty());
    }

    #[test]
    fn settle_cleans_everything() {
        let mut t = vec![dirty(A, A), dirty(B, C), clean(C), dirty(NO_BACKEND, A)];
        settle(&mut t);
        assert_eq!(t, [clean(A), clean(B), clean(C), clean(NO_BACKEND)]);
        // After settling, a change is tracked from the settled state.
        assert_eq!(
            merge(Some(&t), &[B, B, C, A]),
            [dirty(B, A), clean(B), clean(C), clean(A)]
        );
    }

    #[test]
    fn merge_of_real_tables_marks_exactly_the_moved_slots() {
        let before = build(&equal(10), 4093, 8).unwrap();
        let after = build(&equal(9), 4093, 8).unwrap();
        let merged = merge(Some(&merge(None, &before)), &after);
        for i in 0..before.len() {
            assert_eq!(merged[i].backend, after[i]);
            assert_eq!(merged[i].is_dirty(), before[i] != after[i]);
            if merged[i].is_dirty() {
                assert_eq!(merged[i].prev, before[i]);
            }
        }
    }

    /// Slots moved by removing `backends[victim]`. Checks that the count is exactly the
    /// removed backend's slots plus the survivors' slots that moved, and a hard bound of
    /// 3 * M/N (only hash coincidences come near it; see [`disruption`]).
    fn removal_moved(backends: &[MaglevBackend], victim: usize, m: u32, seed: u64) -> usize {
        let n = backends.len();
        let before = build(backends, m, seed).unwrap();
        let mut rest = backends.to_vec();
        let gone = rest.remove(victim).index;
        let after = build(&rest, m, seed).unwrap();
        assert!(!after.contains(&gone));

        let total = moved(&before, &after);
        let owned = before.iter().filter(|&&s| s == gone).count();
        let survivors_moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != gone && b != a)
            .count();
        assert_eq!(
            total,
            owned + survivors_moved,
            "every moved slot is the removed backend's or a survivor's"
        );
        assert!(
            owned * n >= m as usize - n,
            "the removed backend had its share"
        );
        let hard = 3 * m as usize / n;
        assert!(
            total < hard,
            "M={m} N={n} seed={seed}: removing one moved {total} slots ({owned} owned)"
        );
        total
    }

    /// Slots moved by adding `extra` to `backends` (N + 1 backends after), with a hard
    /// bound of 3 * M/(N+1).
    fn addition_moved(
        backends: &[MaglevBackend],
        extra: MaglevBackend,
        m: u32,
        seed: u64,
    ) -> usize {
        let n = backends.len() + 1;
        let before = build(backends, m, seed).unwrap();
        let mut more = backends.to_vec();
        let index = extra.index;
        more.push(extra);
        let after = build(&more, m, seed).unwrap();
        let total = moved(&before, &after);
        let taken = after.iter().filter(|&&s| s == index).count();
        assert!(
            taken * n >= m as usize - n,
            "the new backend gets its share"
        );
        assert!(total >= taken);
        let hard = 3 * m as usize / n;
        assert!(
            total < hard,
            "M={m} N={n} seed={seed}: adding one moved {total} slots ({taken} to it)"
        );
        total
    }

    /// The mean of `moved` is below 1.5 * M/`n` (+ rounding slack).
    fn assert_mean_below_1_5(moved: &[usize], m: u32, n: usize, what: &str) {
        let mean = moved.iter().sum::<usize>() as f64 / moved.len() as f64;
        let bound = 1.5 * m as f64 / n as f64 + 8.0;
        assert!(
            mean < bound,
            "M={m} N={n}: {what} moved {mean} slots on average ({moved:?}), bound {bound}"
        );
    }

    /// Seeds for one disruption measurement: a change is judged over several tables.
    const DISRUPTION_SEEDS: u64 = 8;

    /// Disruption approaches the minimum (`M/N` slots) only when `M` is far above `N`.
    /// Measured over thousands of seeds, removing one backend moves on average about
    /// 1.01 * M/N slots at M/N = 10000, 1.2x at 1300, 1.3x at 200, 1.9x at 100, 4x at 40,
    /// 6.8x at 65 (M = 65537, N = 1000); the same with SipHash in place of
    /// `bytes_hash64`, so it is Maglev's, not the hash's. A few seeds in a thousand do
    /// worse (up to 1.9x at M/N = 1300, 2.3x at M/N = 700): two backends whose walks
    /// nearly coincide. So the 1.5 * M/N bound is asserted on the mean over
    /// [`DISRUPTION_SEEDS`] seeds (whose worst case over 500 trials was 1.27x at
    /// M/N = 400 and 1.31x at M/N = 1300, but 1.50x at M/N = 200), for M/N of 400 or
    /// more; single changes only get the hard 3 * M/N bound.
    #[test]
    fn disruption() {
        for (m, sizes) in [(4093, &[3u16, 10][..]), (65537, &[3, 10, 49][..])] {
            for &n in sizes {
                let backends = equal(n);
                for victim in [0, n as usize - 1] {
                    let moved: Vec<_> = (0..DISRUPTION_SEEDS)
                        .map(|seed| removal_moved(&backends, victim, m, seed))
                        .collect();
                    assert_mean_below_1_5(&moved, m, n as usize, "removing one");
                }
                let moved: Vec<_> = (0..DISRUPTION_SEEDS)
                    .map(|seed| addition_moved(&backends, backend(n, 1), m, seed))
                    .collect();
                assert_mean_below_1_5(&moved, m, n as usize + 1, "adding one");
            }
        }
    }

    #[test]
    fn weighted_removal_moves_little_more_than_its_share() {
        let backends: Vec<_> = (0..10).map(|i| backend(i, 1 + i as u32 * 10)).collect();
        let total_weight: u32 = backends.iter().map(|b| b.weight).sum();
        for victim in [0usize, 5, 9] {
            let share = 65537.0 * backends[victim].weight as f64 / total_weight as f64;
            let moved: Vec<_> = (0..DISRUPTION_SEEDS)
                .map(|seed| {
                    let before = build(&backends, 65537, seed).unwrap();
                    let mut rest = backends.clone();
                    rest.remove(victim);
                    moved(&before, &build(&rest, 65537, seed).unwrap())
                })
                .collect();
            let mean = moved.iter().sum::<usize>() as f64 / moved.len() as f64;
            assert!(
                mean >= share - 2.0 && mean < 1.5 * share + 0.01 * 65537.0,
                "victim {victim}: {moved:?}, share {share}"
            );
        }
    }

    /// Backends with distinct ids and indices, random weights.
    fn arb_backends(max: usize, max_weight: u32) -> impl Strategy<Value = Vec<MaglevBackend>> {
        prop::collection::btree_set(any::<u32>(), 1..max).prop_flat_map(move |ids| {
            let n = ids.len();
            prop::collection::vec(0..=max_weight, n).prop_map(move |weights| {
                ids.iter()
                    .zip(weights)
                    .enumerate()
                    .map(|(i, (id, weight))| MaglevBackend {
                        id: format!("backend-{id}").into_bytes(),
                        index: i as u16,
                        weight,
                    })
                    .collect()
            })
        })
    }

    fn arb_size() -> impl Strategy<Value = u32> {
        prop::sample::select(vec![251u32, 4093, 65537])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn order_does_not_matter(
            (backends, shuffled) in arb_backends(40, 20).prop_flat_map(|b| (Just(b.clone()), Just(b).prop_shuffle())),
            m in arb_size(),
            seed in any::<u64>(),
        ) {
            prop_assert_eq!(build(&backends, m, seed).unwrap(), build(&shuffled, m, seed).unwrap());
        }

        #[test]
        fn weighted_order_is_the_plain_one(
            backends in prop_oneof![arb_backends(40, 4), arb_backends(40, 1000), arb_backends(20, u32::MAX)],
            m in arb_size(),
            seed in any::<u64>(),
        ) {
            prop_assert_eq!(build(&backends, m, seed).unwrap(), plain_weighted(&backends, m, seed));
        }

        #[test]
        fn weights_are_honoured(backends in arb_backends(50, 1000), m in arb_size(), seed in any::<u64>()) {
            check_weighted(&backends, m, seed);
        }

        #[test]
        fn huge_weights_are_honoured(backends in arb_backends(20, u32::MAX), m in arb_size(), seed in any::<u64>()) {
            check_weighted(&backends, m, seed);
        }

        #[test]
        fn equal_weights_balanced(n in 1u16..200, w in 1u32.., m in arb_size(), seed in any::<u64>()) {
            let mut backends = equal(n);
            backends.iter_mut().for_each(|b| b.weight = w);
            let counts = slot_counts(build(&backends, m, seed).unwrap());
            let lo = (m / n as u32) as usize;
            let hi = lo + usize::from(m % n as u32 != 0);
            prop_assert!(counts.values().all(|&c| c == lo || c == hi));
        }

        #[test]
        fn seed_changes_table(seed in any::<u64>(), other in any::<u64>()) {
            prop_assume!(seed != other);
            let backends = equal(10);
            let a = build(&backends, 4093, seed).unwrap();
            prop_assert_eq!(&a, &build(&backends, 4093, seed).unwrap());
            prop_assert_ne!(a, build(&backends, 4093, other).unwrap());
        }
    }

    proptest! {
        // Each case builds 2 * DISRUPTION_SEEDS tables of up to 65537 slots (~30 ms each
        // in a debug build).
        #![proptest_config(ProptestConfig::with_cases(8))]

        /// See [`disruption`] for why the 1.5 bound is on a mean and needs M/N >= 400.
        #[test]
        fn removal_moves_about_one_nth(
            n in 3u16..50,
            victim in any::<prop::sample::Index>(),
            seed in any::<u64>(),
        ) {
            let victim = victim.index(n as usize);
            let moved: Vec<_> = (0..DISRUPTION_SEEDS)
                .map(|i| removal_moved(&equal(n), victim, 65537, seed.wrapping_add(i)))
                .collect();
            assert_mean_below_1_5(&moved, 65537, n as usize, "removing one");
        }

        #[test]
        fn removal_moves_about_one_nth_small_table(
            n in 3u16..=10,
            victim in any::<prop::sample::Index>(),
            seed in any::<u64>(),
        ) {
            let victim = victim.index(n as usize);
            let moved: Vec<_> = (0..DISRUPTION_SEEDS)
                .map(|i| removal_moved(&equal(n), victim, 4093, seed.wrapping_add(i)))
                .collect();
            assert_mean_below_1_5(&moved, 4093, n as usize, "removing one");
        }

        #[test]
        fn addition_moves_about_one_over_n_plus_one(
            n in 3u16..50,
            m in prop::sample::select(vec![4093u32, 65537]),
            seed in any::<u64>(),
        ) {
            prop_assume!(m / n as u32 >= 400);
            let moved: Vec<_> = (0..DISRUPTION_SEEDS)
                .map(|i| addition_moved(&equal(n), backend(n, 1), m, seed.wrapping_add(i)))
                .collect();
            assert_mean_below_1_5(&moved, m, n as usize + 1, "adding one");
        }
    }

    #[test]
    fn auto_sizes_follow_the_n_squared_rule() {
        assert!(TABLE_SIZES.iter().all(|&m| is_prime(m)));
        assert!(TABLE_SIZES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(TABLE_SIZES[0] as usize, crate::maps::MAX_TABLE_SIZE);
        assert_eq!(TABLE_SIZES[3] as usize, MAX_BIG_TABLE_SIZE);
        for (n, m) in [
            (0, 65537),
            (1, 65537),
            (256, 65537),
            (257, 131071),
            (362, 131071),
            (363, 262139),
            (511, 262139),
            (512, 655373),
            (4000, 655373),
            (65535, 655373),
        ] {
            assert_eq!(table_size(AUTO_TABLE_SIZE, n), m, "{n} backends");
            assert!(m as u64 >= (n * n) as u64 || m == 655373);
        }
        // A size the operator set is kept, whatever the backends.
        assert_eq!(table_size(251, 5000), 251);
        assert_eq!(table_size(655373, 1), 655373);
    }

    #[test]
    fn big_tables_build_balanced() {
        assert_eq!(
            build(&equal(3), 655379, 1),
            Err(MaglevError::TableTooLarge(655379))
        );
        assert_eq!(
            build(&equal(3), 655371, 1),
            Err(MaglevError::TableSizeNotPrime(655371))
        );
        for m in &TABLE_SIZES[1..] {
            let table = build(&equal(4000), *m, 9).unwrap();
            let counts = slot_counts(&table);
            let lo = (*m / 4000) as usize;
            assert_eq!(counts.len(), 4000);
            assert!(counts.values().all(|&c| c == lo || c == lo + 1), "M={m}");
        }
        // The late claims (by free list) find exactly the walk's slots.
        assert_eq!(
            build(&equal(700), 131071, 2).unwrap(),
            paper_algorithm(&equal(700), 131071, 2)
        );
        let weighted: Vec<_> = (0..300).map(|i| backend(i, 1 + i as u32 % 7)).collect();
        check_weighted(&weighted, 262139, 4);
        assert_eq!(
            build(&weighted, 262139, 4).unwrap(),
            plain_weighted(&weighted, 262139, 4)
        );
    }

    /// The point of the big tables: at 400 backends, 65537 slots (M/N² = 0.4) make a
    /// removal move about 4.5x the ideal M/N slots; the auto size (262139, M/N² = 1.6)
    /// about 2.6x.
    #[test]
    fn auto_size_cuts_disruption_at_many_backends() {
        let backends = equal(400);
        let ratio = |m: u32| {
            let moved: usize = (0..2)
                .map(|seed| {
                    let before = build(&backends, m, seed).unwrap();
                    let after = build(&backends[1..], m, seed).unwrap();
                    moved(&before, &after)
                })
                .sum();
            moved as f64 / 2.0 / (m as f64 / 400.0)
        };
        let small = ratio(65537);
        let auto = ratio(table_size(AUTO_TABLE_SIZE, 400));
        assert!(small > 3.5, "{small}");
        assert!(auto < 3.0, "{auto}");
    }

    /// `cargo test --release -p lb-common --features std -- --ignored --nocapture build_time`
    #[test]
    #[ignore]
    fn build_time() {
        for n in [1000u16, 4000] {
            let backends: Vec<_> = (0..n).map(|i| backend(i, 1)).collect();
            let weighted: Vec<_> = (0..n)
                .map(|i| backend(i, 1 + (i as u32 * 7919) % 100))
                .collect();
            for m in TABLE_SIZES {
                for (name, set) in [("equal", &backends), ("weighted", &weighted)] {
                    let _ = build(set, m, 1).unwrap();
                    let runs = 10;
                    let start = std::time::Instant::now();
                    for seed in 0..runs {
                        std::hint::black_box(build(std::hint::black_box(set), m, seed).unwrap());
                    }
                    println!(
                        "M={m} N={n} {name}: {:?} per build",
                        start.elapsed() / runs as u32
                    );
                }
            }
        }
    }
}

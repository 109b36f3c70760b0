//! A service's Maglev table as the controller handles it ([`Table`]: id, flags,
//! slots), and its two kernel layouts: up to `MAX_TABLE_SIZE` slots inline in the
//! `SERVICES` value ([`ServiceTable`]); above, in [`BigChunk`]s of `BIG_TABLES` keyed
//! by (service id, generation, chunk), the `SERVICES` value then carrying the id, the
//! flags with [`SVC_F_BIG_TABLE`], the size and the generation.

use lb_common::maps::{
    BigChunk, ServiceTable, TableEntry, BIG_CHUNK_SLOTS, MAX_BIG_TABLE_SIZE, MAX_TABLE_SIZE,
    SVC_F_BIG_TABLE,
};

/// One service's table: what the reconciler builds, settles and installs, whatever
/// its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    /// Counter index of the service (and its `BIG_TABLES` key).
    pub id: u32,
    /// `SVC_F_*` flags, without [`SVC_F_BIG_TABLE`] (the layout's business).
    pub flags: u32,
    /// The slots; `entries.len()` is the table size M.
    pub entries: Vec<TableEntry>,
}

impl Table {
    /// A table of `entries` for service `id`.
    pub fn new(id: u32, flags: u32, entries: Vec<TableEntry>) -> Self {
        Table {
            id,
            flags: flags & !SVC_F_BIG_TABLE,
            entries,
        }
    }

    /// The table size M.
    pub fn len(&self) -> u32 {
        self.entries.len() as u32
    }

    /// No slots (a table that cannot forward).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The slots.
    pub fn slots(&self) -> &[TableEntry] {
        &self.entries
    }

    /// Whether the table needs a [`BigTable`] (more than `MAX_TABLE_SIZE` slots).
    pub fn is_big(&self) -> bool {
        self.entries.len() > MAX_TABLE_SIZE
    }

    /// The `SERVICES` value and, for a big table, its chunks in order, as generation
    /// `gen` (ignored for an inline table). `None` when the table exceeds
    /// [`MAX_BIG_TABLE_SIZE`].
    pub fn to_maps(&self, gen: u16) -> Option<(Box<ServiceTable>, Vec<Box<BigChunk>>)> {
        if !self.is_big() {
            let value = ServiceTable::boxed(self.id, self.flags, &self.entries)?;
            return Some((value, Vec::new()));
        }
        let chunks = BigChunk::split(&self.entries)?;
        let mut value = ServiceTable::boxed(self.id, self.flags | SVC_F_BIG_TABLE, &[])?;
        value.len = self.len();
        value.big_gen = gen as u32;
        Some((value, chunks))
    }

    /// How many chunks a big table of `service`'s size has (0 for an inline one).
    pub fn chunks_of(service: &ServiceTable) -> u16 {
        if service.flags & SVC_F_BIG_TABLE == 0 {
            return 0;
        }
        (service.len as usize)
            .min(MAX_BIG_TABLE_SIZE)
            .div_ceil(BIG_CHUNK_SLOTS) as u16
    }

    /// The table the maps hold: `service` (the `SERVICES` value) and, when it is
    /// flagged [`SVC_F_BIG_TABLE`], its chunks in order (fewer than
    /// [`Table::chunks_of`]: some are missing, and so is the table).
    pub fn from_maps(service: &ServiceTable, chunks: &[Box<BigChunk>]) -> Option<Table> {
        let entries = if service.flags & SVC_F_BIG_TABLE != 0 {
            if chunks.len() < Self::chunks_of(service) as usize {
                return None;
            }
            let len = (service.len as usize).min(MAX_BIG_TABLE_SIZE);
            let mut entries: Vec<TableEntry> = Vec::with_capacity(len);
            for chunk in chunks {
                let take = (len - entries.len()).min(BIG_CHUNK_SLOTS);
                entries.extend_from_slice(&chunk.entries[..take]);
            }
            entries
        } else {
            service.slots().to_vec()
        };
        Some(Table::new(service.id, service.flags, entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_common::maps::NO_BACKEND;

    fn slots(n: usize) -> Vec<TableEntry> {
        (0..n)
            .map(|i| TableEntry {
                backend: (i % 7) as u16,
                prev: if i % 5 == 0 { 3 } else { NO_BACKEND },
            })
            .collect()
    }

    #[test]
    fn small_tables_stay_inline_and_big_ones_go_to_chunks() {
        let small = Table::new(4, 1, slots(65537));
        let (service, chunks) = small.to_maps(7).unwrap();
        assert!(chunks.is_empty() && !small.is_big());
        assert_eq!(
            (service.id, service.flags, service.len, service.big_gen),
            (4, 1, 65537, 0)
        );
        assert_eq!(Table::from_maps(&service, &[]), Some(small));

        for size in [65539, 131071, 655373] {
            let large = Table::new(9, 1, slots(size));
            let (service, chunks) = large.to_maps(7).unwrap();
            assert_eq!(service.flags, 1 | SVC_F_BIG_TABLE);
            assert_eq!(
                (service.id, service.len, service.big_gen),
                (9, size as u32, 7)
            );
            assert_eq!(chunks.len(), size.div_ceil(BIG_CHUNK_SLOTS));
            assert_eq!(Table::chunks_of(&service) as usize, chunks.len());
            assert_eq!(
                chunks.last().unwrap().entries[BIG_CHUNK_SLOTS - 1],
                TableEntry::EMPTY
            );
            assert_eq!(Table::from_maps(&service, &chunks), Some(large));
            // A big service missing a chunk has no table.
            assert_eq!(Table::from_maps(&service, &chunks[1..]), None);
        }
        assert!(Table::new(1, 0, slots(MAX_BIG_TABLE_SIZE + 1))
            .to_maps(1)
            .is_none());
    }
}

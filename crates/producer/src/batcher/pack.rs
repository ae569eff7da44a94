//! Firehose packing: newline-delimited records share one Firehose record,
//! which Firehose bills rounded up to 5 KB.

use shardline_core::PartitionKey;

use super::{Batcher, Draft, Queued, Unit};
use crate::destination::Entry;

/// Several records' data in one entry.
fn packed<T: Queued>(data: Vec<u8>, mut members: Vec<T>) -> Unit<T> {
    // The list grew by doubling; it lives as long as the request, and the
    // memory cap counts each record once.
    members.shrink_to_fit();
    let partition_key = members.first().map_or_else(
        || PartitionKey::new_or_hashed(""),
        |r| r.record().partition_key.clone(),
    );
    Unit {
        draft: Draft::Ready(Entry {
            data: bytes::Bytes::from(data),
            partition_key,
            explicit_hash_key: None,
        }),
        members,
        predicted_shard: None,
    }
}

/// The key length of an entry's first record, if it has one.
fn first_key_len<T: Queued>(members: &[T]) -> Option<usize> {
    members
        .first()
        .map(|r| r.record().partition_key.len_bytes())
}

impl<T: Queued> Batcher<T> {
    /// Newline-delimited records packed into entries of at most `max_bytes`,
    /// up to the batch limits. A record that does not end in `\n` gets one.
    pub(super) fn take_packed(&mut self, max_bytes: usize) -> Vec<Unit<T>> {
        let limits = self.limits;
        let mut units: Vec<Unit<T>> = Vec::new();
        // Bytes of the closed entries, as the destination counts them.
        let mut batch_bytes = 0;
        let mut data: Vec<u8> = Vec::new();
        let mut members: Vec<T> = Vec::new();
        while let Some(front) = self.ready.front() {
            let plain_size = self.size_of(front);
            let record = front.record();
            let front_key_len = record.partition_key.len_bytes();
            let len = record.data.len() + usize::from(!record.data.ends_with(b"\n"));
            if limits.record_size(len, front_key_len) > limits.max_record_bytes {
                // No room for its newline: it goes out alone, as it is.
                if let Some(key_len) = first_key_len(&members) {
                    batch_bytes += limits.record_size(data.len(), key_len);
                    units.push(packed(
                        std::mem::take(&mut data),
                        std::mem::take(&mut members),
                    ));
                }
                if units.len() >= self.config.batch_records
                    || (!units.is_empty() && batch_bytes + plain_size > self.config.batch_bytes)
                {
                    break;
                }
                let Some(record) = self.ready.pop_front() else {
                    break;
                };
                self.ready_bytes = self.ready_bytes.saturating_sub(plain_size);
                batch_bytes += plain_size;
                units.push(Unit::single(record, None));
                continue;
            }
            // The entry's key (its first record's) counts towards the
            // limits where the destination counts keys.
            let key_len = first_key_len(&members).unwrap_or(front_key_len);
            let cap = max_bytes.min(
                limits
                    .max_record_bytes
                    .saturating_sub(limits.record_size(0, key_len)),
            );
            if !members.is_empty() && data.len() + len > cap {
                batch_bytes += limits.record_size(data.len(), key_len);
                units.push(packed(
                    std::mem::take(&mut data),
                    std::mem::take(&mut members),
                ));
            }
            let key_len = first_key_len(&members).unwrap_or(front_key_len);
            let entries = units.len() + usize::from(!members.is_empty());
            if members.is_empty() && entries >= self.config.batch_records {
                break;
            }
            let grown = limits.record_size(data.len() + len, key_len);
            if entries > 0 && batch_bytes + grown > self.config.batch_bytes {
                break;
            }
            let Some(record) = self.ready.pop_front() else {
                break;
            };
            self.ready_bytes = self.ready_bytes.saturating_sub(plain_size);
            let bytes = &record.record().data;
            data.extend_from_slice(bytes);
            if !bytes.ends_with(b"\n") {
                data.push(b'\n');
            }
            members.push(record);
        }
        if !members.is_empty() {
            units.push(packed(data, members));
        }
        units
    }
}

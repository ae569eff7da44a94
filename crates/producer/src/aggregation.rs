//! The KPL aggregated-record format: many user records in one Kinesis
//! record, so a shard's 1,000 records/s limit stops being the limit.
//!
//! An aggregated record's data is the 4-byte magic `F3 89 9A C2`, then a
//! protobuf `AggregatedRecord` (a table of partition keys, a table of
//! explicit hash keys, and the records, each naming its keys by index), then
//! the MD5 of the protobuf bytes. This module writes it byte for byte as the
//! Kinesis Producer Library does — AWS's own deaggregator (`aws-kinesis-agg`)
//! reads every record shardline aggregates, which a test checks — and reads
//! it back ([`deaggregate`]) for consumers.
//!
//! The protobuf is written and read by hand: three messages, four field
//! types, no code generation.

use bytes::{BufMut, Bytes, BytesMut};
use foldhash::HashMap;
use md5::{Digest, Md5};
use shardline_partition_key::{ExplicitHashKey, PartitionKey};

/// The magic prefix of an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// The MD5 trailer's length.
const DIGEST_LEN: usize = 16;
/// The KPL's default `AggregationMaxSize`: 51,200 bytes (two 25 KB PUT
/// payload units).
pub const DEFAULT_AGGREGATE_MAX_BYTES: usize = 51_200;

// Protobuf field keys: (field number << 3) | wire type.
const KEY_PARTITION_KEY_TABLE: u8 = (1 << 3) | 2;
const KEY_EXPLICIT_HASH_KEY_TABLE: u8 = (2 << 3) | 2;
const KEY_RECORDS: u8 = (3 << 3) | 2;
const KEY_RECORD_PARTITION_KEY_INDEX: u8 = 1 << 3;
const KEY_RECORD_EXPLICIT_HASH_KEY_INDEX: u8 = 2 << 3;
const KEY_RECORD_DATA: u8 = (3 << 3) | 2;

fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// The bytes a length-delimited field of `len` bytes takes, key included.
fn delimited_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Builds one aggregated record from user records.
#[derive(Debug, Clone, Default)]
pub struct Aggregate {
    partition_keys: Vec<PartitionKey>,
    partition_key_index: HashMap<PartitionKey, u64>,
    explicit_hash_keys: Vec<String>,
    explicit_hash_key_index: HashMap<ExplicitHashKey, u64>,
    records: Vec<(u64, Option<u64>, Bytes)>,
    /// The protobuf's length so far.
    proto_len: usize,
}

impl Aggregate {
    /// An empty aggregate.
    pub fn new() -> Self {
        Aggregate::default()
    }

    /// User records in it.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no user record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The encoded size: magic + protobuf + MD5.
    pub fn encoded_len(&self) -> usize {
        MAGIC.len() + self.proto_len + DIGEST_LEN
    }

    /// Whether a record with (or without) an explicit hash key may join.
    ///
    /// An aggregate holds either records that all have explicit hash keys,
    /// or records that have none: AWS's Python deaggregator reads a missing
    /// index as index 0 and would give records without a key the first
    /// record's key. Keeping the two apart makes every deaggregator agree.
    pub fn accepts(&self, explicit_hash_key: Option<ExplicitHashKey>) -> bool {
        match self.records.first() {
            None => true,
            Some((_, first, _)) => first.is_some() == explicit_hash_key.is_some(),
        }
    }

    /// The encoded size it would have with one more user record.
    pub fn encoded_len_with(
        &self,
        partition_key: &PartitionKey,
        explicit_hash_key: Option<ExplicitHashKey>,
        data_len: usize,
    ) -> usize {
        self.encoded_len() + self.growth(partition_key, explicit_hash_key, data_len)
    }

    fn record_len(pk_index: u64, ehk_index: Option<u64>, data_len: usize) -> usize {
        1 + varint_len(pk_index)
            + ehk_index.map_or(0, |i| 1 + varint_len(i))
            + delimited_len(data_len)
    }

    fn growth(
        &self,
        partition_key: &PartitionKey,
        explicit_hash_key: Option<ExplicitHashKey>,
        data_len: usize,
    ) -> usize {
        let mut growth = 0;
        let pk_index = match self.partition_key_index.get(partition_key) {
            Some(&index) => index,
            None => {
                growth += delimited_len(partition_key.len_bytes());
                self.partition_keys.len() as u64
            }
        };
        let ehk_index = explicit_hash_key.map(|key| match self.explicit_hash_key_index.get(&key) {
            Some(&index) => index,
            None => {
                growth += delimited_len(key.to_string().len());
                self.explicit_hash_keys.len() as u64
            }
        });
        growth + delimited_len(Self::record_len(pk_index, ehk_index, data_len))
    }

    /// Adds a user record. Check [`Aggregate::accepts`] first: a record that
    /// mixes explicit hash keys with records without one is still written
    /// correctly, but not every deaggregator reads it right.
    pub fn push(
        &mut self,
        partition_key: &PartitionKey,
        explicit_hash_key: Option<ExplicitHashKey>,
        data: Bytes,
    ) {
        self.proto_len += self.growth(partition_key, explicit_hash_key, data.len());
        let pk_index = match self.partition_key_index.get(partition_key) {
            Some(&index) => index,
            None => {
                let index = self.partition_keys.len() as u64;
                self.partition_keys.push(partition_key.clone());
                self.partition_key_index
                    .insert(partition_key.clone(), index);
                index
            }
        };
        let ehk_index = explicit_hash_key.map(|key| {
            *self.explicit_hash_key_index.entry(key).or_insert_with(|| {
                self.explicit_hash_keys.push(key.to_string());
                self.explicit_hash_keys.len() as u64 - 1
            })
        });
        self.records.push((pk_index, ehk_index, data));
    }

    /// The aggregated record's data.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        out.put_slice(&MAGIC);
        let proto_start = out.len();
        for key in &self.partition_keys {
            out.put_u8(KEY_PARTITION_KEY_TABLE);
            put_varint(&mut out, key.len_bytes() as u64);
            out.put_slice(key.as_str().as_bytes());
        }
        for key in &self.explicit_hash_keys {
            out.put_u8(KEY_EXPLICIT_HASH_KEY_TABLE);
            put_varint(&mut out, key.len() as u64);
            out.put_slice(key.as_bytes());
        }
        for (pk_index, ehk_index, data) in &self.records {
            out.put_u8(KEY_RECORDS);
            put_varint(
                &mut out,
                Self::record_len(*pk_index, *ehk_index, data.len()) as u64,
            );
            out.put_u8(KEY_RECORD_PARTITION_KEY_INDEX);
            put_varint(&mut out, *pk_index);
            if let Some(index) = ehk_index {
                out.put_u8(KEY_RECORD_EXPLICIT_HASH_KEY_INDEX);
                put_varint(&mut out, *index);
            }
            out.put_u8(KEY_RECORD_DATA);
            put_varint(&mut out, data.len() as u64);
            out.put_slice(data);
        }
        let digest = Md5::digest(out.get(proto_start..).unwrap_or_default());
        out.put_slice(&digest);
        out.freeze()
    }
}

/// One user record read out of an aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Its partition key, from the aggregate's table.
    pub partition_key: String,
    /// Its explicit hash key, if it has one.
    pub explicit_hash_key: Option<String>,
    /// Its data.
    pub data: Vec<u8>,
}

/// An aggregated record that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregationError {
    /// The protobuf ends inside a field.
    #[error("the protobuf ends inside a field at byte {offset}")]
    Truncated {
        /// Where, in bytes from the start of the protobuf.
        offset: usize,
    },
    /// A varint is longer than 10 bytes.
    #[error("a varint at byte {offset} is longer than 10 bytes")]
    BadVarint {
        /// Where, in bytes from the start of the protobuf.
        offset: usize,
    },
    /// A field has a wire type the format does not use.
    #[error("unsupported protobuf wire type {wire_type} at byte {offset}")]
    WireType {
        /// The wire type found.
        wire_type: u8,
        /// Where, in bytes from the start of the protobuf.
        offset: usize,
    },
    /// A record names a key the table does not have.
    #[error("record {record} names {what} index {index}, but the table has {len} entries")]
    Index {
        /// Which user record (from 0).
        record: usize,
        /// Which table: partition keys or explicit hash keys.
        what: &'static str,
        /// The index the record names.
        index: u64,
        /// Entries in that table.
        len: usize,
    },
    /// A record lacks a required field.
    #[error("record {record} has no {what}")]
    Missing {
        /// Which user record (from 0).
        record: usize,
        /// Which table: partition keys or explicit hash keys.
        what: &'static str,
    },
    /// A partition key or explicit hash key is not UTF-8.
    #[error("a key is not UTF-8")]
    Utf8,
}

/// Reads the user records out of a record's data. `Ok(None)`: the data is
/// not an aggregated record (no magic, or the MD5 does not match, as AWS's
/// deaggregators decide) and is a user record by itself.
pub fn deaggregate(data: &[u8]) -> Result<Option<Vec<UserRecord>>, AggregationError> {
    let Some(rest) = data.strip_prefix(&MAGIC) else {
        return Ok(None);
    };
    if rest.len() <= DIGEST_LEN {
        return Ok(None);
    }
    let (proto, digest) = rest.split_at(rest.len() - DIGEST_LEN);
    if Md5::digest(proto).as_slice() != digest {
        return Ok(None);
    }
    let mut partition_keys = Vec::new();
    let mut explicit_hash_keys = Vec::new();
    let mut raw_records = Vec::new();
    let mut reader = Reader { buf: proto, at: 0 };
    while let Some((field, wire_type)) = reader.key()? {
        match (field, wire_type) {
            (1, 2) => partition_keys.push(reader.string()?),
            (2, 2) => explicit_hash_keys.push(reader.string()?),
            (3, 2) => raw_records.push(reader.bytes()?),
            _ => reader.skip(wire_type)?,
        }
    }
    let mut records = Vec::with_capacity(raw_records.len());
    for (number, raw) in raw_records.into_iter().enumerate() {
        let mut reader = Reader { buf: raw, at: 0 };
        let (mut pk, mut ehk, mut data) = (None, None, None);
        while let Some((field, wire_type)) = reader.key()? {
            match (field, wire_type) {
                (1, 0) => pk = Some(reader.varint()?),
                (2, 0) => ehk = Some(reader.varint()?),
                (3, 2) => data = Some(reader.bytes()?.to_vec()),
                _ => reader.skip(wire_type)?,
            }
        }
        let lookup = |table: &Vec<String>, index: u64, what| {
            usize::try_from(index)
                .ok()
                .and_then(|i| table.get(i))
                .cloned()
                .ok_or(AggregationError::Index {
                    record: number,
                    what,
                    index,
                    len: table.len(),
                })
        };
        let pk = pk.ok_or(AggregationError::Missing {
            record: number,
            what: "partition key index",
        })?;
        records.push(UserRecord {
            partition_key: lookup(&partition_keys, pk, "partition key")?,
            explicit_hash_key: ehk
                .map(|i| lookup(&explicit_hash_keys, i, "explicit hash key"))
                .transpose()?,
            data: data.ok_or(AggregationError::Missing {
                record: number,
                what: "data",
            })?,
        });
    }
    Ok(Some(records))
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, AggregationError> {
        let start = self.at;
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .buf
                .get(self.at)
                .ok_or(AggregationError::Truncated { offset: self.at })?;
            self.at += 1;
            value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(AggregationError::BadVarint { offset: start })
    }

    /// The next field's number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u8)>, AggregationError> {
        if self.at >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        Ok(Some((key >> 3, (key & 7) as u8)))
    }

    fn bytes(&mut self) -> Result<&'a [u8], AggregationError> {
        let len = usize::try_from(self.varint()?)
            .map_err(|_| AggregationError::Truncated { offset: self.at })?;
        let end = self
            .at
            .checked_add(len)
            .ok_or(AggregationError::Truncated { offset: self.at })?;
        let slice = self
            .buf
            .get(self.at..end)
            .ok_or(AggregationError::Truncated { offset: self.at })?;
        self.at = end;
        Ok(slice)
    }

    fn string(&mut self) -> Result<String, AggregationError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| AggregationError::Utf8)
    }

    fn skip(&mut self, wire_type: u8) -> Result<(), AggregationError> {
        let offset = self.at;
        match wire_type {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            other => Err(AggregationError::WireType {
                wire_type: other,
                offset,
            }),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), AggregationError> {
        if self.at + n > self.buf.len() {
            return Err(AggregationError::Truncated { offset: self.at });
        }
        self.at += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(text: &str) -> PartitionKey {
        PartitionKey::new(text).unwrap()
    }

    #[test]
    fn known_bytes_for_one_record() {
        let mut aggregate = Aggregate::new();
        aggregate.push(&key("a"), None, Bytes::from_static(b"hi"));
        let encoded = aggregate.encode();
        // magic, pk table "a", record {pk 0, data "hi"}, md5.
        let proto = [
            0x0A, 0x01, b'a', 0x1A, 0x06, 0x08, 0x00, 0x1A, 0x02, b'h', b'i',
        ];
        assert_eq!(&encoded[..4], &MAGIC);
        assert_eq!(&encoded[4..4 + proto.len()], &proto);
        assert_eq!(&encoded[4 + proto.len()..], Md5::digest(proto).as_slice());
        assert_eq!(encoded.len(), aggregate.encoded_len());
    }

    #[test]
    fn explicit_hash_keys_and_none_do_not_mix() {
        let mut aggregate = Aggregate::new();
        assert!(aggregate.accepts(None) && aggregate.accepts(Some(ExplicitHashKey(1))));
        aggregate.push(&key("a"), None, Bytes::new());
        assert!(aggregate.accepts(None));
        assert!(!aggregate.accepts(Some(ExplicitHashKey(1))));
    }

    #[test]
    fn not_aggregated_data_is_a_user_record_by_itself() {
        assert_eq!(deaggregate(b"plain"), Ok(None));
        let mut tampered = {
            let mut aggregate = Aggregate::new();
            aggregate.push(&key("a"), None, Bytes::from_static(b"hi"));
            aggregate.encode().to_vec()
        };
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(deaggregate(&tampered), Ok(None));
    }

    proptest! {
        #[test]
        fn round_trip_and_exact_size(
            records in proptest::collection::vec(
                ("[a-zé]{1,20}", proptest::option::of(any::<u128>()), proptest::collection::vec(any::<u8>(), 0..300)),
                1..60,
            )
        ) {
            let mut aggregate = Aggregate::new();
            for (pk, ehk, data) in &records {
                let pk = key(pk);
                let ehk = ehk.map(ExplicitHashKey);
                let predicted = aggregate.encoded_len_with(&pk, ehk, data.len());
                aggregate.push(&pk, ehk, Bytes::from(data.clone()));
                prop_assert_eq!(aggregate.encoded_len(), predicted);
            }
            let encoded = aggregate.encode();
            prop_assert_eq!(encoded.len(), aggregate.encoded_len());
            let read = deaggregate(&encoded).unwrap().unwrap();
            prop_assert_eq!(read.len(), records.len());
            for (user, (pk, ehk, data)) in read.iter().zip(&records) {
                prop_assert_eq!(&user.partition_key, pk);
                prop_assert_eq!(user.explicit_hash_key.clone(), ehk.map(|k| k.to_string()));
                prop_assert_eq!(&user.data, data);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = deaggregate(&bytes);
            // With a valid magic and digest, the protobuf parser itself runs.
            let digest = Md5::digest(&bytes);
            bytes.extend_from_slice(&digest);
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&bytes);
            let _ = deaggregate(&framed);
        }
    }
}

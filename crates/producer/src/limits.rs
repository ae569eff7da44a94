//! The service limits a batch must respect, from the AWS API references.

/// Entries in one Kinesis `PutRecords` request.
/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html>
pub const PUT_RECORDS_MAX_RECORDS: usize = 500;
/// Bytes in one `PutRecords` request, data and partition keys counted.
/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html>
pub const PUT_RECORDS_MAX_BYTES: usize = 5 * 1024 * 1024;
/// Bytes in one Kinesis record, data and partition key counted.
/// <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html>
pub const KINESIS_RECORD_MAX_BYTES: usize = 1024 * 1024;

/// Records in one Firehose `PutRecordBatch` request.
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>
pub const PUT_RECORD_BATCH_MAX_RECORDS: usize = 500;
/// Bytes in one `PutRecordBatch` request.
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>
pub const PUT_RECORD_BATCH_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Bytes in one Firehose record, before base64 encoding (1,000 KiB).
/// <https://docs.aws.amazon.com/firehose/latest/dev/limits.html>
pub const FIREHOSE_RECORD_MAX_BYTES: usize = 1000 * 1024;

/// The limits of one destination's batch call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Entries per request.
    pub max_records: usize,
    /// Bytes per request, as [`BatchLimits::counts_partition_key`] says.
    pub max_bytes: usize,
    /// Bytes per record, as [`BatchLimits::counts_partition_key`] says.
    pub max_record_bytes: usize,
    /// Whether the partition key counts towards the sizes (Kinesis: yes;
    /// Firehose has no partition key).
    pub counts_partition_key: bool,
}

impl BatchLimits {
    /// Kinesis Data Streams `PutRecords`.
    pub const KINESIS: BatchLimits = BatchLimits {
        max_records: PUT_RECORDS_MAX_RECORDS,
        max_bytes: PUT_RECORDS_MAX_BYTES,
        max_record_bytes: KINESIS_RECORD_MAX_BYTES,
        counts_partition_key: true,
    };

    /// Firehose `PutRecordBatch`.
    pub const FIREHOSE: BatchLimits = BatchLimits {
        max_records: PUT_RECORD_BATCH_MAX_RECORDS,
        max_bytes: PUT_RECORD_BATCH_MAX_BYTES,
        max_record_bytes: FIREHOSE_RECORD_MAX_BYTES,
        counts_partition_key: false,
    };

    /// A record's size as these limits count it.
    pub fn record_size(&self, data_len: usize, partition_key_len: usize) -> usize {
        if self.counts_partition_key {
            data_len + partition_key_len
        } else {
            data_len
        }
    }
}

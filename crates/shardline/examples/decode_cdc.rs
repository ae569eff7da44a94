//! Decoding change-data-capture events with no AWS dependency: each line
//! of a Debezium, AWS DMS, Maxwell or wal2json stream becomes a change
//! event, printed one per line as `operation table key (change type)`.
//!
//! ```text
//! cargo run -p shardline --no-default-features --features cdc --example decode_cdc -- debezium fixtures/cdc/debezium.ndjson inventory.customers=id
//! ```
//!
//! Debezium values and DMS records do not name a table's key columns: give
//! them as `TABLE=COLUMN[,COLUMN...]` after the file.

use std::io::{BufRead, BufReader, Write};

use shardline::cdc::{Decoded, Decoder, Format, KeyColumns};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(format), Some(path)) = (args.next(), args.next()) else {
        return Err(
            "usage: decode_cdc debezium|dms|maxwell|wal2json FILE [TABLE=COLUMN[,COLUMN...]...]"
                .into(),
        );
    };
    let format = match format.as_str() {
        "debezium" => Format::Debezium,
        "dms" => Format::Dms,
        "maxwell" => Format::Maxwell,
        "wal2json" => Format::Wal2json,
        other => return Err(format!("unknown format {other:?}").into()),
    };
    let mut keys = KeyColumns::new();
    for table_key in args {
        let (table, columns) = table_key
            .split_once('=')
            .ok_or_else(|| format!("not TABLE=COLUMN: {table_key:?}"))?;
        let columns = columns.split(',').map(str::to_owned).collect();
        keys.insert(table.to_owned(), columns);
    }
    let mut decoder = Decoder::new(format).key_columns(keys);
    let mut out = std::io::stdout().lock();
    for (number, line) in BufReader::new(std::fs::File::open(&path)?)
        .lines()
        .enumerate()
    {
        let line = line?;
        match decoder.decode(line.as_bytes()) {
            Ok(Decoded::Change(event)) => writeln!(
                out,
                "{} {} {} ({})",
                event.operation,
                event.qualified_table(),
                event.primary_key_text().unwrap_or_else(|| "-".to_owned()),
                event.change_type.as_str(),
            )?,
            Ok(_) => {}
            Err(e) => eprintln!("{path}:{}: {e}", number + 1),
        }
    }
    Ok(())
}

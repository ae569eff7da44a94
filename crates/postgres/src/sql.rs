//! What the slot source asks PostgreSQL, over a normal SQL connection.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, Config, NoTls, RowStream};

use crate::SlotError;
use crate::wal2json::{PLUGIN, Round};
use shardline_cdc::decode::{lsn_text, parse_lsn};

/// Whether an error is worth reconnecting for: a lost or refused
/// connection, a server starting or shutting down, the slot briefly in use.
pub(crate) fn transient(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        None => true,
        Some(state) => {
            let code = state.code();
            code.starts_with("08") // connection exception
                || code.starts_with("57P") // admin shutdown, cannot connect now
                || code.starts_with("53") // insufficient resources
                || code == "55006" // object in use: the slot is active elsewhere
                || code == "40001"
                || code == "40P01"
        }
    }
}

/// How long a TCP connection to the server may take, unless the URL says
/// (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalives, unless the URL sets them (libpq's `keepalives_idle`,
/// `keepalives_interval`, `keepalives_count`): a server that is gone
/// without closing the connection (a failover, a dead host) is noticed
/// after about 10 + 3 × 5 = 25 s of silence, inside Kubernetes' 30 s
/// termination grace, instead of the kernel's two hours.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVES_RETRIES: u32 = 3;
/// Sent data unacknowledged this long ends the connection (`TCP_USER_TIMEOUT`,
/// libpq's `tcp_user_timeout`), unless the URL sets it.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest `statement_timeout` PostgreSQL takes (an `int` of ms, about
/// 24.8 days); a longer one is as good as none.
const MAX_STATEMENT_TIMEOUT_MS: u128 = i32::MAX as u128;
/// tokio-postgres's keepalive idle time when the URL gives none.
const DRIVER_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// A connection: the client, and the task that runs its socket.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) client: Arc<Client>,
    task: tokio::task::AbortHandle,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A half-open socket would otherwise be held until the kernel
        // gives up on it.
        self.task.abort();
    }
}

/// Connects to `url` with the keepalives and timeouts above (where the URL
/// does not set its own) and this session's `statement_timeout`
/// (`Duration::ZERO`: none); the connection runs on its own task.
pub(crate) async fn connect(
    url: &str,
    statement_timeout: Duration,
) -> Result<Connection, SlotError> {
    let mut config: Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| SlotError::Url(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_keepalives() {
        if config.get_keepalives_idle() == DRIVER_KEEPALIVES_IDLE {
            config.keepalives_idle(KEEPALIVES_IDLE);
        }
        if config.get_keepalives_interval().is_none() {
            config.keepalives_interval(KEEPALIVES_INTERVAL);
        }
        if config.get_keepalives_retries().is_none() {
            config.keepalives_retries(KEEPALIVES_RETRIES);
        }
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    let (client, connection) = config.connect(NoTls).await?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("PostgreSQL connection ended: {e}");
        }
    })
    .abort_handle();
    let connection = Connection {
        client: Arc::new(client),
        task,
    };
    connection
        .client
        .batch_execute(&format!(
            "SET statement_timeout = {}",
            statement_timeout.as_millis().min(MAX_STATEMENT_TIMEOUT_MS)
        ))
        .await?;
    Ok(connection)
}

/// The slot as found, or as created; with its `confirmed_flush_lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Found(u64),
    Created(u64),
}

/// Checks that the server decodes logically, and that `slot` is a wal2json
/// slot of this database (creating it when it is missing and `create`
/// says so).
pub(crate) async fn check_slot(
    client: &Client,
    slot: &str,
    create: bool,
) -> Result<Slot, SlotError> {
    let wal_level: String = client.query_one("SHOW wal_level", &[]).await?.try_get(0)?;
    if wal_level != "logical" {
        return Err(SlotError::WalLevel(wal_level));
    }
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, current_database()::text, \
             confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1::text",
            &[&slot],
        )
        .await?;
    match row {
        Some(row) => {
            let plugin: Option<String> = row.try_get(0)?;
            let plugin = plugin.unwrap_or_else(|| "physical".into());
            if plugin != PLUGIN {
                return Err(SlotError::Plugin {
                    slot: slot.to_owned(),
                    plugin,
                });
            }
            let (found, expected): (Option<String>, String) = (row.try_get(1)?, row.try_get(2)?);
            if found.as_deref() != Some(&expected) {
                return Err(SlotError::Database {
                    slot: slot.to_owned(),
                    found: found.unwrap_or_default(),
                    expected,
                });
            }
            let confirmed: Option<String> = row.try_get(3)?;
            Ok(Slot::Found(
                confirmed.as_deref().and_then(parse_lsn).unwrap_or(0),
            ))
        }
        None if create => {
            let row = client
                .query_one(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot($1::text::name, $2::text::name)",
                    &[&slot, &PLUGIN],
                )
                .await?;
            let lsn: String = row.try_get(0)?;
            tracing::info!("created replication slot {slot} ({PLUGIN}) at {lsn}");
            Ok(Slot::Created(parse_lsn(&lsn).unwrap_or(0)))
        }
        None => Err(SlotError::NoSlot(slot.to_owned())),
    }
}

/// The server's WAL flush position.
pub(crate) async fn flush_lsn(client: &Client) -> Result<u64, SlotError> {
    let row = client
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .await?;
    let text: String = row.try_get(0)?;
    parse_lsn(&text).ok_or_else(|| SlotError::Protocol(format!("an LSN {text:?}")))
}

/// Moves `slot` up to `target` if it is behind.
pub(crate) async fn advance(client: &Client, slot: &str, target: u64) -> Result<(), SlotError> {
    let text = lsn_text(target);
    client
        .execute(
            "SELECT pg_replication_slot_advance($1::text::name, $2::text::pg_lsn) \
             FROM pg_replication_slots \
             WHERE slot_name = $1::text AND confirmed_flush_lsn < $2::text::pg_lsn",
            &[&slot, &text],
        )
        .await?;
    Ok(())
}

/// One round: the flush position (unless `upto` is given), then the
/// changes committed up to it, at most about `limit` rows, streamed.
///
/// The binary form returns each message as `bytea`, as wal2json wrote it:
/// the text form converts it to the client's encoding, and in an
/// `SQL_ASCII` database a value that is not UTF-8 then fails the whole
/// query, on every retry. Here it reaches the decoder, which dead-letters
/// it.
pub(crate) async fn peek(
    client: &Client,
    slot: &str,
    upto: Option<u64>,
    limit: usize,
    options: &[String],
    started_ms: i64,
) -> Result<(RowStream, Round), tokio_postgres::Error> {
    let upto = match upto {
        Some(upto) => upto,
        None => {
            let row = client
                .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
                .await?;
            let text: String = row.try_get(0)?;
            parse_lsn(&text).unwrap_or(0)
        }
    };
    let upto_text = lsn_text(upto);
    let limit_param = i32::try_from(limit).unwrap_or(i32::MAX);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&slot, &upto_text, &limit_param, &options];
    let rows = client
        .query_raw(
            "SELECT lsn::text, xid::text, data FROM pg_logical_slot_peek_binary_changes(\
             $1::text::name, $2::text::pg_lsn, $3::int4, VARIADIC $4::text[])",
            params,
        )
        .await?;
    Ok((
        rows,
        Round {
            upto,
            started_ms,
            limit,
            rows: 0,
            new_rows: 0,
        },
    ))
}

/// The slot's `confirmed_flush_lsn`, the server's WAL position, and the
/// WAL bytes the slot holds back; `None` if the slot is gone.
pub(crate) async fn lag(
    client: &Client,
    slot: &str,
) -> Result<Option<(Option<String>, Option<String>, Option<u64>)>, SlotError> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text, pg_current_wal_lsn()::text, \
             (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 \
             FROM pg_replication_slots WHERE slot_name = $1::text",
            &[&slot],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let lag: Option<i64> = row.try_get(2)?;
    Ok(Some((
        row.try_get(0)?,
        row.try_get(1)?,
        lag.and_then(|l| u64::try_from(l).ok()),
    )))
}

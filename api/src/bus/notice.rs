//! Resync notices: how an instance that lost publishes tells the others to resync, and how
//! an instance that was reconnecting at that moment learns of it anyway.
//!
//! A notice is the sender's id and the moment its earliest unreported lost publish began
//! (microseconds since the epoch), published on `{ns}:resync`, which every instance follows.
//! Pub/sub reaches only the instances subscribed at that moment, and one that was
//! reconnecting then resyncs from the moment its subscriber connection was last known to
//! work, which can be later than the sender's loss began. So the same MULTI adds the notice
//! to `{ns}:resync:log`, a sorted set scored by the moment it was sent that keeps the last
//! `LOG_KEEP`; a reconnecting instance reads the notices sent since that moment and resyncs
//! from the earliest loss among them too. A log it cannot read may hold a loss that began at
//! any time: then its feeds reread from their previous reread (`redis.rs`).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use super::hub::LostAfter;
use super::link::RedisLink;

/// The channel every instance follows for notices.
pub(super) const CHANNEL: &str = "resync";
/// The sorted set of the notices sent in the last `LOG_KEEP`.
pub(super) const LOG: &str = "resync:log";
/// How long the log keeps a notice. An instance whose subscriber connection was down for
/// longer finds only this much of it.
const LOG_KEEP: TimeDelta = TimeDelta::hours(1);
/// How much earlier than it went out a notice may be scored: its moment is taken before the
/// MULTI, which may take `COMMAND_TIMEOUT` (2 s), on the sender's clock, which may run behind
/// the reader's. Reading too far back only widens a reread.
const LOG_SLACK: TimeDelta = TimeDelta::seconds(5);
/// How long reading the log may take, connecting included.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// A resync notice: who lost publishes, and when the earliest of them began (`None` from the
/// release that sent only its id, or if garbled: then the loss may have begun at any time).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Notice {
    pub origin: Option<Uuid>,
    pub lost_after: LostAfter,
}

impl Notice {
    pub fn text(origin: Uuid, began: DateTime<Utc>) -> String {
        format!("{origin} {}", began.timestamp_micros())
    }

    pub fn parse(payload: &[u8]) -> Self {
        let text = String::from_utf8_lossy(payload);
        let mut parts = text.split(' ');
        let origin = parts.next().and_then(|id| id.parse().ok());
        let lost_after =
            parts.next().and_then(|micros| micros.parse().ok()).and_then(DateTime::from_timestamp_micros);
        Self { origin, lost_after }
    }
}

/// Publishes the notice `text` and logs it, in one MULTI; true once Redis took it.
pub(super) async fn send(link: &RedisLink, timeout: Duration, text: String) -> bool {
    let (channel, log) = (link.key(CHANNEL), link.key(LOG));
    let sent_at = Utc::now();
    let command = move |mut conn: ConnectionManager| async move {
        redis::pipe()
            .atomic()
            .zadd(&log, &text, sent_at.timestamp_micros())
            .ignore()
            .zrembyscore(&log, "-inf", (sent_at - LOG_KEEP).timestamp_micros())
            .ignore()
            .pexpire(&log, LOG_KEEP.num_milliseconds())
            .ignore()
            .publish(&channel, &text)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
    };
    link.run(timeout, command).await.is_some()
}

/// The earliest loss among the other instances' notices sent since `unheard_since` (when
/// the subscriber connection was last known to work), less `LOG_SLACK`, which pub/sub may
/// not have brought; `None` when there are none. A log that cannot be read may hold a loss
/// that began at any time, so that is `Some(None)`, as an old notice says: feeds then reread
/// from their previous reread. Read on a connection of its own: the instance's command
/// connection may still hold the socket that died with the subscriber's, and its first
/// command after an outage fails.
pub(super) async fn missed_since(
    client: &redis::Client,
    log: &str,
    own: Uuid,
    unheard_since: DateTime<Utc>,
) -> Option<LostAfter> {
    let since = (unheard_since - LOG_SLACK).timestamp_micros();
    let read = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        conn.zrangebyscore::<_, _, _, Vec<Vec<u8>>>(log, since, "+inf").await
    };
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(logged)) => {
            let others = logged.iter().map(|text| Notice::parse(text)).filter(|n| n.origin != Some(own));
            let mut found = 0;
            let earliest = others.inspect(|_| found += 1).map(|notice| notice.lost_after).min();
            // Some may have been heard before the drop, within the slack, or since the new
            // connection subscribed.
            metrics::counter!("parley_bus_notices_from_log_total").increment(found);
            earliest
        }
        Ok(Err(error)) => {
            metrics::counter!("parley_bus_notice_log_read_failures_total").increment(1);
            tracing::warn!(%error, "cannot read the resync log; feeds reread from their previous reread");
            Some(None)
        }
        Err(_) => {
            metrics::counter!("parley_bus_notice_log_read_failures_total").increment(1);
            tracing::warn!("reading the resync log timed out; feeds reread from their previous reread");
            Some(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_says_who_lost_publishes_and_from_when() {
        let (id, began) = (Uuid::now_v7(), Utc::now());
        let micros = DateTime::from_timestamp_micros(began.timestamp_micros());
        assert_eq!(
            Notice::parse(Notice::text(id, began).as_bytes()),
            Notice { origin: Some(id), lost_after: micros }
        );
        // The release that introduced notices sent the id alone.
        assert_eq!(Notice::parse(id.to_string().as_bytes()), Notice { origin: Some(id), lost_after: None });
        assert_eq!(Notice::parse(b"garbled"), Notice { origin: None, lost_after: None });
    }
}

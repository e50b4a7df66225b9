//! Each limit's state for `GET /queues`: its rate, its concurrency, who runs under it, and how
//! long it is paused.

use chrono::{DateTime, SecondsFormat};
use serde::Serialize;

use crate::jobs::Registry;
use crate::queue::{Queue, QueueError};

/// The most keys paused without a declared limit that are listed (every `http` host may pause).
const PAUSES_LISTED: usize = 100;

/// One limit as every process sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitStatus {
    /// `kind:<name>` or `http:<host>`.
    pub key: String,
    /// Starts per period, as `LIMITS` spells it (`5/s`); null when only paused or concurrent.
    pub rate: Option<String>,
    /// Most at once; null when unbounded.
    pub concurrency: Option<u32>,
    /// Jobs holding a concurrency slot now (0 without a concurrency bound).
    pub running: u64,
    /// When its pause ends (RFC 3339), or null.
    pub paused_until: Option<String>,
}

/// Every declared limit, then every other key paused now (at most [`PAUSES_LISTED`]).
pub async fn status(queue: &Queue, registry: &Registry) -> Result<Vec<LimitStatus>, QueueError> {
    let declared = registry.limits();
    let keys: Vec<String> = declared.keys().cloned().collect();
    let state = queue.limit_state(&keys).await?;
    let mut listed: Vec<LimitStatus> = state
        .keys
        .into_iter()
        .map(|(key, running, until)| {
            let limit = declared.get(&key).copied().unwrap_or_default();
            LimitStatus {
                rate: limit.rate.map(|r| r.to_string()),
                concurrency: limit.concurrency,
                running,
                paused_until: (until > 0).then(|| timestamp(until)),
                key,
            }
        })
        .collect();
    let paused_only = state
        .pauses
        .into_iter()
        .filter(|(key, _)| !declared.contains_key(key))
        .take(PAUSES_LISTED)
        .map(|(key, until)| LimitStatus {
            key,
            rate: None,
            concurrency: None,
            running: 0,
            paused_until: Some(timestamp(until)),
        });
    listed.extend(paused_only);
    Ok(listed)
}

fn timestamp(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

//! Pub/sub hints from other processes, on a Redis connection of their own.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::connection::RedisHandle;
use super::keys::Keys;
use crate::shutdown::Shutdown;

/// A hint that something changed. Hints can be lost (while the subscription reconnects); the
/// worker also polls, and learns of cancellations at its heartbeat, so they only make it faster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// A queue got a ready job.
    Ready(String),
    /// A running job was cancelled through the API.
    Cancelled(String),
    /// The subscription (re)connected: anything may have happened meanwhile.
    Resubscribed,
}

/// Bounded so a flood of enqueues cannot grow memory: when full, further hints are dropped,
/// which is harmless since a full channel already means "look at the queues".
const EVENT_BUFFER: usize = 256;

pub(super) fn subscribe(
    redis: RedisHandle,
    keys: Keys,
    shutdown: Shutdown,
) -> mpsc::Receiver<QueueEvent> {
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    tokio::spawn(async move {
        let wake = keys.wake_channel();
        let cancel = keys.cancel_channel();
        let mut delay = Duration::from_millis(250);
        loop {
            let session = async {
                let mut pubsub = redis.pubsub().await?;
                pubsub.subscribe(&wake).await?;
                pubsub.subscribe(&cancel).await?;
                let _ = tx.try_send(QueueEvent::Resubscribed);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    let event = if msg.get_channel_name() == cancel {
                        QueueEvent::Cancelled(payload)
                    } else {
                        QueueEvent::Ready(payload)
                    };
                    // A cancellation must not be dropped behind wake-ups: wait for room.
                    if matches!(event, QueueEvent::Cancelled(_)) {
                        if tx.send(event).await.is_err() {
                            return Ok(());
                        }
                    } else if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(event) {
                        return Ok(());
                    }
                }
                Err(super::QueueError::NoAnswer("pub/sub connection closed"))
            };
            let ended = tokio::select! {
                r = session => r,
                _ = shutdown.requested() => return,
            };
            match ended {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(event = "redis.pubsub_lost", error = %e);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.requested() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(3));
        }
    });
    rx
}

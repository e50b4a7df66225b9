//! The queue's errors.

use thiserror::Error;

/// What can go wrong talking to the queue.
#[derive(Debug, Error)]
pub enum QueueError {
    /// Redis cannot be reached now (not yet connected, connection lost, timed out, loading).
    #[error("redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis refuses writes because it is out of memory.
    #[error("redis is full: {0}")]
    Full(String),
    /// Any other Redis error: a bug or a misconfigured server.
    #[error("redis error: {0}")]
    Redis(String),
    /// A stored record could not be read back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> QueueError {
        if e.code() == Some("OOM") {
            return QueueError::Full(e.to_string());
        }
        // Replies that say "not now": a long script, a failed save, missing replicas.
        let not_now = matches!(
            e.code(),
            Some("BUSY" | "MISCONF" | "NOREPLICAS" | "LOADING" | "MASTERDOWN" | "TRYAGAIN")
        );
        let busy = matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::BusyLoading
                    | redis::ServerErrorKind::TryAgain
                    | redis::ServerErrorKind::MasterDown
                    | redis::ServerErrorKind::ClusterDown
                    | redis::ServerErrorKind::ReadOnly
            )
        );
        if busy
            || not_now
            || e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            QueueError::Unavailable(e.to_string())
        } else {
            QueueError::Redis(e.to_string())
        }
    }
}

impl QueueError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable(_) | QueueError::Full(_))
    }
}

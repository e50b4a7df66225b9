//! The queue's errors. Every module of `crate::queue` returns them; `crate::http` maps them to
//! statuses and the worker and maintenance loops log them.

use redis::RedisError;
use thiserror::Error;

/// What can go wrong talking to the queue.
#[derive(Debug, Error)]
pub enum QueueError {
    /// Redis cannot be reached now (connection lost or refused, timed out, loading).
    #[error("redis is unavailable: {source}")]
    Unavailable {
        /// What the client reported.
        #[source]
        source: RedisError,
    },
    /// Redis cannot be reached now, and no Redis error says why: the first connection has not
    /// been made yet, or a command got no answer within its deadline.
    #[error("redis is unavailable: {0}")]
    NoAnswer(&'static str),
    /// Redis refuses writes because it is out of memory.
    #[error("redis is full: {source}")]
    Full {
        /// The OOM reply.
        #[source]
        source: RedisError,
    },
    /// Any other Redis error: a bug or a misconfigured server.
    #[error("redis error: {source}")]
    Redis {
        /// What the client or server reported.
        #[source]
        source: RedisError,
    },
    /// `REDIS_URL` cannot be parsed.
    #[error("bad Redis URL {url}: {source}")]
    BadUrl {
        /// The URL with its password hidden.
        url: String,
        /// Why the client refused it.
        #[source]
        source: RedisError,
    },
    /// A stored job record has a field that cannot be read back.
    #[error("unreadable record of job {id}: bad {field}")]
    UnreadableRecord {
        /// The job's id (empty when the id itself is missing).
        id: String,
        /// The field that could not be read.
        field: String,
    },
    /// A script answered with something it never returns: the Lua and the Rust disagree.
    #[error("unexpected reply from the {script} script: {reply}")]
    UnexpectedReply {
        /// The script's name.
        script: &'static str,
        /// What was wrong with the reply.
        reply: String,
    },
    /// A value could not be encoded as JSON for Redis.
    #[error("cannot encode as JSON: {0}")]
    Encoding(#[from] serde_json::Error),
}

impl QueueError {
    /// The same error again, for each of the jobs one failed call carried (see
    /// `enqueue_batch.rs`).
    pub(super) fn duplicate(&self) -> QueueError {
        match self {
            QueueError::Unavailable { source } => QueueError::Unavailable {
                source: source.clone(),
            },
            QueueError::NoAnswer(why) => QueueError::NoAnswer(why),
            QueueError::Full { source } => QueueError::Full {
                source: source.clone(),
            },
            QueueError::Redis { source } => QueueError::Redis {
                source: source.clone(),
            },
            QueueError::BadUrl { url, source } => QueueError::BadUrl {
                url: url.clone(),
                source: source.clone(),
            },
            QueueError::UnreadableRecord { id, field } => QueueError::UnreadableRecord {
                id: id.clone(),
                field: field.clone(),
            },
            QueueError::UnexpectedReply { script, reply } => QueueError::UnexpectedReply {
                script,
                reply: reply.clone(),
            },
            QueueError::Encoding(e) => {
                QueueError::Encoding(<serde_json::Error as serde::ser::Error>::custom(e))
            }
        }
    }
}

impl From<RedisError> for QueueError {
    fn from(e: RedisError) -> QueueError {
        if e.code() == Some("OOM") {
            return QueueError::Full { source: e };
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
        // The cluster client found no node for the slot, or was still redirected after its
        // retries: a node lost, a failover or a resharding under way.
        let slot_moving = matches!(
            e.kind(),
            redis::ErrorKind::ClusterConnectionNotFound
                | redis::ErrorKind::Server(
                    redis::ServerErrorKind::Moved | redis::ServerErrorKind::Ask
                )
        );
        if busy
            || not_now
            || slot_moving
            || e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            QueueError::Unavailable { source: e }
        } else {
            QueueError::Redis { source: e }
        }
    }
}

impl QueueError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            QueueError::Unavailable { .. } | QueueError::NoAnswer(_) | QueueError::Full { .. }
        )
    }

    /// Whether Redis cannot be reached now (as opposed to refusing what was asked).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            QueueError::Unavailable { .. } | QueueError::NoAnswer(_)
        )
    }

    /// A field of job `id` that cannot be read back.
    pub(crate) fn unreadable(id: &str, field: &str) -> QueueError {
        QueueError::UnreadableRecord {
            id: id.to_owned(),
            field: field.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_without_a_node_is_unavailable_not_a_bug() {
        let e = RedisError::from((redis::ErrorKind::ClusterConnectionNotFound, "no node"));
        assert!(QueueError::from(e).is_unavailable());
        for reply in [
            &b"-MOVED 15381 127.0.0.1:7001\r\n"[..],
            b"-CLUSTERDOWN down\r\n",
        ] {
            let Ok(redis::Value::ServerError(e)) = redis::parse_redis_value(reply) else {
                panic!("not an error reply");
            };
            assert!(QueueError::from(RedisError::from(e)).is_unavailable());
        }
        let e = RedisError::from((redis::ErrorKind::Client, "a bug"));
        assert!(!QueueError::from(e).is_transient());
    }
}

//! Where a job is in its life: the one status the API shows and the scripts write.

use serde::{Deserialize, Serialize};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for its `run_at`.
    Scheduled,
    /// Ready, in its queue.
    Queued,
    /// A worker holds it.
    Running,
    /// Failed, waiting for its next attempt.
    Retrying,
    /// Done.
    Succeeded,
    /// Failed `max_attempts` times, or permanently; kept for inspection.
    Dead,
    /// Cancelled through the API.
    Cancelled,
}

impl JobStatus {
    const ALL: [JobStatus; 7] = [
        JobStatus::Scheduled,
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Succeeded,
        JobStatus::Dead,
        JobStatus::Cancelled,
    ];

    /// The status as the API and the Lua scripts spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Scheduled => "scheduled",
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Retrying => "retrying",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Dead => "dead",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub(super) fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_written() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}

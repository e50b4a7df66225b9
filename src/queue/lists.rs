//! Job lists for every status, a page at a time: `summaries.lua` reads one page of one source
//! (a zset, a queue's list, or every process's in-flight jobs), and a [`ListCursor`] says where
//! the next page starts.
//!
//! | status | source | order |
//! | --- | --- | --- |
//! | queued | each queue's list, queues by name | next to run first |
//! | running | every process's in-flight list | longest running first |
//! | scheduled, retrying | `scheduled`, `retry` zsets | next due first |
//! | dead | `dead` zset | newest first |
//! | succeeded | the `finished` list (its cancelled ids passed over) | newest first |
//! | cancelled | `done:cancelled` zset (bounded like `finished`) | newest first |
//!
//! A cursor is an offset into its source, so a page is as cheap wherever it starts; a job that
//! moves between two calls may be seen twice or not at all, as with any offset paging.

use super::error::QueueError;
use super::job::JobStatus;
use super::summary::JobSummary;
use super::{Queue, scripts};

/// The most entries one call looks at past those it returns (filters that match little answer
/// a short page and a cursor to go on from, rather than scanning a whole set).
const SCAN_WINDOW: usize = 2000;

/// Where the next page starts: an offset into the source, and for queued jobs listed across
/// queues, the queue it is an offset into. Written as `{offset}` or `{offset}:{queue}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListCursor {
    offset: u64,
    queue: Option<String>,
}

impl ListCursor {
    /// Reads a cursor a page returned; `None` when it is not one.
    pub fn parse(text: &str) -> Option<ListCursor> {
        let (offset, queue) = match text.split_once(':') {
            Some((offset, queue)) if !queue.is_empty() => (offset, Some(queue.to_string())),
            Some(_) => return None,
            None => (text, None),
        };
        let offset = offset.parse().ok().filter(|_| !offset.starts_with('+'))?;
        Some(ListCursor { offset, queue })
    }
}

impl std::fmt::Display for ListCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.queue {
            Some(queue) => write!(f, "{}:{queue}", self.offset),
            None => write!(f, "{}", self.offset),
        }
    }
}

/// Which jobs to list.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// The status listed.
    pub status: JobStatus,
    /// Only this queue's jobs.
    pub queue: Option<String>,
    /// Only this kind's jobs.
    pub kind: Option<String>,
    /// The most jobs on the page.
    pub limit: usize,
    /// Where the page starts (the first page without one).
    pub cursor: Option<ListCursor>,
}

/// One page of a list.
#[derive(Debug)]
pub struct JobPage {
    /// The jobs, in the list's order.
    pub jobs: Vec<JobSummary>,
    /// Where the next page starts; `None` at the end.
    pub next: Option<ListCursor>,
}

impl Queue {
    /// One page of the jobs with `req.status` (see the module's table for each order).
    pub async fn list_jobs(&self, req: &ListRequest) -> Result<JobPage, QueueError> {
        let offset = req.cursor.as_ref().map_or(0, |c| c.offset);
        let (key, mode) = match req.status {
            JobStatus::Queued => return self.list_queued(req).await,
            JobStatus::Running => (self.keys.processes(), "running"),
            JobStatus::Scheduled => (self.keys.scheduled(), "asc"),
            JobStatus::Retrying => (self.keys.retry(), "asc"),
            JobStatus::Dead => (self.keys.dead(), "desc"),
            JobStatus::Succeeded => (self.keys.finished(), "newest"),
            JobStatus::Cancelled => (self.keys.done("cancelled"), "desc"),
        };
        let (next, jobs) = self.page(&key, mode, offset, req.limit, req).await?;
        Ok(JobPage {
            jobs,
            next: next.map(|offset| ListCursor {
                offset,
                queue: None,
            }),
        })
    }

    /// Queued jobs: one queue's, or every queue's in name order (the cursor names the queue).
    async fn list_queued(&self, req: &ListRequest) -> Result<JobPage, QueueError> {
        let cursor = req.cursor.clone().unwrap_or_default();
        let names = match &req.queue {
            Some(queue) => vec![queue.clone()],
            None => {
                let mut conn = self.redis.connection()?;
                let mut names: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(self.keys.queues())
                    .query_async(&mut conn)
                    .await?;
                names.sort();
                names
            }
        };
        let start = match &cursor.queue {
            Some(queue) => names.partition_point(|n| n < queue),
            None => 0,
        };
        let mut jobs = Vec::new();
        // A cursor into a queue that is gone since goes on at the start of the next one.
        let mut offset = match &cursor.queue {
            Some(queue) if names.get(start) != Some(queue) => 0,
            _ => cursor.offset,
        };
        let mut scanned = 0;
        for (i, name) in names.iter().enumerate().skip(start) {
            if i > start {
                offset = 0;
            }
            let left = req.limit - jobs.len();
            let (next, page) = self
                .page(&self.keys.queue(name), "queued", offset, left, req)
                .await?;
            scanned += 1;
            jobs.extend(page);
            let resume = match next {
                Some(next) => Some((next, name.clone())),
                None => names.get(i + 1).map(|n| (0, n.clone())),
            };
            // A page ends when it is full, or after a bounded number of queues.
            if jobs.len() >= req.limit || next.is_some() || scanned >= 50 {
                return Ok(JobPage {
                    jobs,
                    next: resume.map(|(offset, queue)| ListCursor {
                        offset,
                        queue: req.queue.is_none().then_some(queue),
                    }),
                });
            }
        }
        Ok(JobPage { jobs, next: None })
    }

    /// One call of `summaries.lua`: the next offset (`None` at the end) and the summaries.
    async fn page(
        &self,
        key: &str,
        mode: &str,
        offset: u64,
        limit: usize,
        req: &ListRequest,
    ) -> Result<(Option<u64>, Vec<JobSummary>), QueueError> {
        let mut conn = self.redis.connection()?;
        let (next, replies): (i64, Vec<Vec<Option<String>>>) = scripts::SUMMARIES
            .key(key)
            .arg(self.keys.base())
            .arg(mode)
            .arg(offset)
            .arg(limit.max(1))
            .arg(SCAN_WINDOW.max(limit))
            .arg(req.status.as_str())
            .arg(req.queue.as_deref().unwrap_or(""))
            .arg(req.kind.as_deref().unwrap_or(""))
            .invoke_async(&mut conn)
            .await?;
        let jobs = replies
            .into_iter()
            .map(JobSummary::from_reply)
            .collect::<Result<_, _>>()?;
        Ok((u64::try_from(next).ok(), jobs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_write() {
        for text in ["0", "120", "5:default", "7:a:b"] {
            assert_eq!(ListCursor::parse(text).unwrap().to_string(), text);
        }
        for bad in ["", "x", "-1", "+3", "3:", "1.5"] {
            assert!(ListCursor::parse(bad).is_none(), "{bad}");
        }
    }
}

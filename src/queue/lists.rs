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
//! Every status but `queued` reads one source per shard and merges them (`list_merge.rs`);
//! queued jobs list queue by queue. A cursor is an offset into each source (one per shard for
//! a merged list), so a page is as cheap wherever it starts; a job that moves between two calls
//! may be seen twice or not at all, as with any offset paging.

use super::error::QueueError;
use super::job::JobStatus;
use super::keys::Shard;
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
    /// Where a page merged over several shards goes on in each (shards not named are done).
    pub(super) shards: Vec<(String, u64)>,
}

/// The largest offset a cursor may hold: far past any list Redis can keep, and small enough that
/// the scripts' Lua numbers still print it as digits (`%.14g`), not `1e+17`, which Redis refuses.
const MAX_OFFSET: u64 = 1_000_000_000_000;

/// An offset as a cursor spells it: digits only, at most [`MAX_OFFSET`].
fn parse_offset(text: &str) -> Option<u64> {
    text.parse()
        .ok()
        .filter(|o| *o <= MAX_OFFSET && !text.starts_with('+'))
}

impl ListCursor {
    /// Reads a cursor a page returned; `None` when it is not one.
    pub fn parse(text: &str) -> Option<ListCursor> {
        if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Self::parse_shards(text);
        }
        let (offset, queue) = match text.split_once(':') {
            Some((offset, queue)) if !queue.is_empty() => (offset, Some(queue.to_string())),
            Some(_) => return None,
            None => (text, None),
        };
        let offset = parse_offset(offset)?;
        Some(ListCursor {
            offset,
            queue,
            shards: Vec::new(),
        })
    }

    /// `label.offset,label.offset,...`: a merged page's place in each shard.
    fn parse_shards(text: &str) -> Option<ListCursor> {
        let mut shards = Vec::new();
        for part in text.split(',') {
            let (label, offset) = part.split_once('.')?;
            if label.is_empty() {
                return None;
            }
            shards.push((label.to_string(), parse_offset(offset)?));
        }
        Some(ListCursor {
            shards,
            ..Default::default()
        })
    }

    /// The cursor of a merged page that goes on at these places.
    pub(super) fn in_shards(shards: Vec<(String, u64)>) -> ListCursor {
        ListCursor {
            shards,
            ..Default::default()
        }
    }

    /// Where a merged page starts in the shard `label`: `None` when the cursor says it is done.
    /// A cursor of one list (an offset) applies its offset to every shard.
    pub(super) fn start_in(&self, label: &str) -> Option<u64> {
        if self.shards.is_empty() {
            return Some(self.offset);
        }
        self.shards
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, o)| *o)
    }
}

impl std::fmt::Display for ListCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.shards.is_empty() {
            let parts: Vec<String> = self
                .shards
                .iter()
                .map(|(l, o)| format!("{l}.{o}"))
                .collect();
            return write!(f, "{}", parts.join(","));
        }
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
    /// One page of the jobs in `req.status` (see the module's doc). Each shard is a source of
    /// its own, listed one after the other (the legacy shard first, then by shard number), in
    /// the status's order within each; the cursor names the source it points into.
    pub async fn list_jobs(&self, req: &ListRequest) -> Result<JobPage, QueueError> {
        let (key_of, mode): (fn(&Shard) -> String, &str) = match req.status {
            JobStatus::Queued => return self.list_queued(req).await,
            JobStatus::Running => (Shard::processes, "running"),
            JobStatus::Scheduled => (Shard::scheduled, "asc"),
            JobStatus::Retrying => (Shard::retry, "asc"),
            JobStatus::Dead => (Shard::dead, "desc"),
            JobStatus::Succeeded => (Shard::finished, "newest"),
            JobStatus::Cancelled => (|s: &Shard| s.done("cancelled"), "desc"),
        };
        let shards = match &req.queue {
            Some(name) => vec![self.keys.legacy().clone(), self.keys.for_queue(name)],
            None => self.known_shards(&[]).await?,
        };
        let sources = shards
            .iter()
            .map(|shard| Source {
                label: self.label(shard),
                key: key_of(shard),
                base: shard.base().to_string(),
            })
            .collect();
        self.list_merged(sources, mode, req).await
    }

    /// Queued jobs: each queue's list (in its shard, then in the legacy shard), queues by name.
    async fn list_queued(&self, req: &ListRequest) -> Result<JobPage, QueueError> {
        let legacy = self.keys.legacy();
        let (names, legacy_names) = match &req.queue {
            Some(queue) => (vec![queue.clone()], vec![queue.clone()]),
            None => {
                let mut names = Vec::new();
                let mut legacy_names = Vec::new();
                for shard in self.known_shards(&[]).await? {
                    let found = self.queue_names(&shard).await?;
                    if shard == *legacy {
                        legacy_names = found;
                    } else {
                        names.extend(found);
                    }
                }
                (names, legacy_names)
            }
        };
        let mut sources: Vec<Source> = names
            .into_iter()
            .map(|name| {
                let shard = self.keys.for_queue(&name);
                Source {
                    key: shard.queue(&name),
                    base: shard.base().to_string(),
                    label: name,
                }
            })
            .collect();
        sources.extend(legacy_names.into_iter().map(|name| Source {
            key: legacy.queue(&name),
            base: legacy.base().to_string(),
            label: format!("{name}:{LEGACY}"),
        }));
        self.list_sources(sources, "queued", req).await
    }

    /// The names in a shard's queue-names set.
    async fn queue_names(&self, shard: &Shard) -> Result<Vec<String>, QueueError> {
        let mut conn = self.redis.connection()?;
        Ok(redis::cmd("SMEMBERS")
            .arg(shard.queues())
            .query_async(&mut conn)
            .await?)
    }

    /// A shard's name in a cursor.
    fn label(&self, shard: &Shard) -> String {
        match self.keys.number_of(shard) {
            Some(n) => format!("s{n:03x}"),
            None => LEGACY.to_string(),
        }
    }

    /// One page over `sources`, one after the other in the order of their labels, from the
    /// cursor's source and offset on.
    async fn list_sources(
        &self,
        mut sources: Vec<Source>,
        mode: &str,
        req: &ListRequest,
    ) -> Result<JobPage, QueueError> {
        sources.sort_by(|a, b| a.label.cmp(&b.label));
        sources.dedup_by(|a, b| a.label == b.label);
        let cursor = req.cursor.clone().unwrap_or_default();
        let start = match &cursor.queue {
            Some(label) => sources.partition_point(|s| s.label < *label),
            None => 0,
        };
        // A cursor into a source that is gone since goes on at the start of the next one.
        let mut offset = match &cursor.queue {
            Some(label) if sources.get(start).map(|s| &s.label) != Some(label) => 0,
            _ => cursor.offset,
        };
        let mut jobs = Vec::new();
        let mut scanned = 0;
        for (i, source) in sources.iter().enumerate().skip(start) {
            if i > start {
                offset = 0;
            }
            let left = req.limit - jobs.len();
            let Page {
                next, jobs: page, ..
            } = self.page(source, mode, offset, left, req).await?;
            scanned += 1;
            jobs.extend(page);
            let resume = match next {
                Some(next) => Some((next, source.label.clone())),
                None => sources.get(i + 1).map(|s| (0, s.label.clone())),
            };
            // A page ends when it is full, or after a bounded number of sources.
            if jobs.len() >= req.limit || next.is_some() || scanned >= 50 {
                return Ok(JobPage {
                    jobs,
                    next: resume.map(|(offset, queue)| ListCursor {
                        offset,
                        queue: Some(queue),
                        shards: Vec::new(),
                    }),
                });
            }
        }
        Ok(JobPage { jobs, next: None })
    }

    /// One call of `summaries.lua`: the next offset (`None` at the end) and the summaries.
    /// One `summaries.lua` call: a page of `source` from `offset` on.
    pub(super) async fn page(
        &self,
        source: &Source,
        mode: &str,
        offset: u64,
        limit: usize,
        req: &ListRequest,
    ) -> Result<Page, QueueError> {
        let mut conn = self.redis.connection()?;
        let (next, replies, positions): (i64, Vec<Vec<Option<String>>>, Vec<u64>) =
            scripts::SUMMARIES
                .key(&source.key)
                .arg(&source.base)
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
        Ok(Page {
            next: u64::try_from(next).ok(),
            jobs,
            positions,
        })
    }
}

/// One page of one source.
pub(super) struct Page {
    /// Where the next page starts, or `None` at the end of the source.
    pub(super) next: Option<u64>,
    /// The page's jobs, in the source's order.
    pub(super) jobs: Vec<JobSummary>,
    /// Each job's position in the source.
    pub(super) positions: Vec<u64>,
}

/// The legacy shard's name in a cursor.
const LEGACY: &str = "legacy";

/// One list of ids to page through: its key, its shard's base, and its name in a cursor.
pub(super) struct Source {
    pub(super) label: String,
    pub(super) key: String,
    pub(super) base: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_past_any_list_is_no_cursor() {
        assert!(ListCursor::parse("1000000000000").is_some());
        assert!(ListCursor::parse("100000000000000000").is_none());
        assert!(ListCursor::parse("100000000000000000:default").is_none());
        assert!(ListCursor::parse("sbde.100000000000000000").is_none());
        assert!(ListCursor::parse("+5").is_none());
    }

    #[test]
    fn cursors_read_back_what_they_write() {
        for text in [
            "0",
            "120",
            "5:default",
            "7:a:b",
            "legacy.3,s1ab.20",
            "s000.0",
        ] {
            assert_eq!(ListCursor::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "",
            "x",
            "-1",
            "+3",
            "3:",
            "1.5",
            "s1ab",
            "s1ab.x",
            "legacy.+1",
            "s1.2,",
        ] {
            assert!(ListCursor::parse(bad).is_none(), "{bad}");
        }
    }
}

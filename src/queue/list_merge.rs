//! Job lists over several shards, merged in the status's order: each page reads one window of
//! every shard (a summaries call each, from where the cursor left that shard) and merges their
//! heads, so a page costs the same wherever it starts, and the cursor keeps each shard's place.

use super::Queue;
use super::error::QueueError;
use super::lists::{JobPage, ListCursor, ListRequest, Page, Source};
use super::summary::JobSummary;

impl Queue {
    /// One page over `sources` (one per shard), merged in `mode`'s order.
    pub(super) async fn list_merged(
        &self,
        sources: Vec<Source>,
        mode: &str,
        req: &ListRequest,
    ) -> Result<JobPage, QueueError> {
        let cursor = req.cursor.clone().unwrap_or_default();
        let mut reads = Vec::new();
        for source in sources {
            let Some(start) = cursor.start_in(&source.label) else {
                continue;
            };
            let page = self.page(&source, mode, start, req.limit, req).await?;
            reads.push(Read {
                label: source.label,
                start,
                page,
                used: 0,
            });
        }
        let jobs = merge(&mut reads, mode, req.limit);
        let places: Vec<(String, u64)> = reads.iter().filter_map(Read::goes_on_at).collect();
        Ok(JobPage {
            jobs,
            next: (!places.is_empty()).then(|| ListCursor::in_shards(places)),
        })
    }
}

/// What one shard's page gave, and how much of it the merged page used.
struct Read {
    label: String,
    start: u64,
    page: Page,
    used: usize,
}

impl Read {
    /// Where the next page starts in this shard, or `None` when it has nothing more.
    fn goes_on_at(&self) -> Option<(String, u64)> {
        let at = if self.used == self.page.jobs.len() {
            self.page.next?
        } else if self.used == 0 {
            self.start
        } else {
            self.page.positions.get(self.used - 1)? + 1
        };
        Some((self.label.clone(), at))
    }

    fn head(&self) -> Option<&JobSummary> {
        self.page.jobs.get(self.used)
    }

    /// Whether this shard may hold more than the page read, past what the merge used.
    fn unread_rest(&self) -> bool {
        self.head().is_none() && self.page.next.is_some()
    }
}

/// Takes up to `limit` jobs from the heads of `reads`, the first in `mode`'s order each time.
/// Stops early when a shard's read is used up while the shard holds more: its next jobs are
/// unknown and might come first.
fn merge(reads: &mut [Read], mode: &str, limit: usize) -> Vec<JobSummary> {
    let mut jobs = Vec::new();
    while jobs.len() < limit && !reads.iter().any(Read::unread_rest) {
        let best = reads
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.head().map(|job| (i, job)))
            .min_by(|(_, a), (_, b)| order(mode, a, b))
            .map(|(i, _)| i);
        let Some(i) = best else { break };
        jobs.push(reads[i].page.jobs[reads[i].used].clone());
        reads[i].used += 1;
    }
    jobs
}

/// `mode`'s order, as each shard's script lists it: next due first (`asc`), longest running
/// first (`running`), newest finish first (`desc`, `newest`); ties by id.
fn order(mode: &str, a: &JobSummary, b: &JobSummary) -> std::cmp::Ordering {
    let key = |j: &JobSummary| match mode {
        "asc" => j.run_at.unwrap_or(j.created_at),
        "running" => j.started_at.unwrap_or(0),
        _ => -j.finished_at.unwrap_or(0),
    };
    key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::super::job::JobStatus;
    use super::*;

    fn dead(id: &str, finished_at: i64) -> JobSummary {
        JobSummary {
            id: id.into(),
            kind: "k".into(),
            queue: "q".into(),
            status: JobStatus::Dead,
            attempts: 1,
            max_attempts: 1,
            created_at: 0,
            run_at: None,
            started_at: None,
            finished_at: Some(finished_at),
            last_error: None,
            progress: None,
        }
    }

    fn read(label: &str, start: u64, jobs: Vec<JobSummary>, next: Option<u64>) -> Read {
        let positions = (start..start + jobs.len() as u64).collect();
        Read {
            label: label.into(),
            start,
            page: Page {
                next,
                jobs,
                positions,
            },
            used: 0,
        }
    }

    #[test]
    fn two_shards_merge_newest_first_and_each_resumes_after_what_was_used() {
        let mut reads = vec![
            read("legacy", 0, vec![dead("a", 90), dead("b", 50)], Some(2)),
            read("s001", 4, vec![dead("c", 80), dead("d", 70)], None),
        ];
        let ids: Vec<String> = merge(&mut reads, "desc", 3)
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(ids, ["a", "c", "d"]);
        let places: Vec<_> = reads.iter().filter_map(Read::goes_on_at).collect();
        // The legacy shard goes on at "b" (position 1); s001 is done.
        assert_eq!(places, [("legacy".to_string(), 1)]);
    }

    #[test]
    fn a_merge_stops_where_a_shard_with_more_was_used_up() {
        let mut reads = vec![
            read("legacy", 0, vec![dead("a", 90)], Some(1)),
            read("s001", 0, vec![dead("c", 80), dead("d", 70)], None),
        ];
        let ids: Vec<String> = merge(&mut reads, "desc", 3)
            .into_iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(
            ids,
            ["a"],
            "the legacy shard's next job may be newer than c"
        );
        let places: Vec<_> = reads.iter().filter_map(Read::goes_on_at).collect();
        assert_eq!(places, [("legacy".to_string(), 1), ("s001".to_string(), 0)]);
    }
}

//! This process's metrics: jobs finished by outcome, job durations, HTTP requests by route, for
//! `GET /metrics` (Prometheus/OpenMetrics text, written by `prometheus-client`) and for the l2met
//! line the maintenance loop logs every minute.
//!
//! The counters live for the process, as Prometheus expects (it computes rates across
//! restarts); the l2met window is what finished since the last line, as l2met's `count#` wants.
//! Labels come from bounded sets: queue and kind names, outcomes, route templates and statuses.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The outcomes a finished attempt is counted under, in the l2met line's order.
pub const OUTCOMES: [&str; 5] = ["succeeded", "failed", "dead", "cancelled", "requeued"];
/// The most durations kept for the l2met percentiles between two lines.
const DURATIONS_KEPT: usize = 4096;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    queue: String,
    kind: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    queue: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

/// A hasher for maps keyed by queue and kind names (the app's own, from bounded sets).
type Fast = foldhash::fast::RandomState;

/// One queue and kind's series, taken from the families the first time they are needed. A
/// family's lookup builds its labels (two `String`s) and hashes them with SipHash: twice a job,
/// that was 4% of the instructions of the thread that runs the runners. A handle shares its
/// series with the family, so what it counts is what `GET /metrics` shows.
struct JobSeries {
    /// Per outcome (as [`OUTCOMES`]); a series appears once something is counted in it.
    finished: [Option<Counter>; 5],
    duration: Histogram,
}

/// The process's metrics.
struct Metrics {
    registry: Registry,
    finished: Family<FinishedLabels, Counter>,
    durations: Family<JobLabels, Histogram>,
    requests: Family<RequestLabels, Counter>,
    /// By queue, then kind.
    job_series: Mutex<HashMap<String, HashMap<String, JobSeries, Fast>, Fast>>,
    /// Per outcome (as [`OUTCOMES`]), since the last l2met line.
    window_counts: [AtomicU64; 5],
    /// Durations in seconds since the last l2met line (the first [`DURATIONS_KEPT`]).
    window_durations: Mutex<Vec<f64>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let finished = Family::<FinishedLabels, Counter>::default();
    registry.register(
        "onedyno_jobs_finished",
        "Job attempts this process finished, by outcome",
        finished.clone(),
    );
    let durations = Family::<JobLabels, Histogram>::new_with_constructor(|| {
        // 5 ms to about 12 minutes.
        Histogram::new(exponential_buckets(0.005, 2.5, 14))
    });
    registry.register(
        "onedyno_job_duration_seconds",
        "Duration of job attempts this process finished",
        durations.clone(),
    );
    let requests = Family::<RequestLabels, Counter>::default();
    registry.register(
        "onedyno_http_requests",
        "HTTP requests this process answered, by route template and status",
        requests.clone(),
    );
    Metrics {
        registry,
        finished,
        durations,
        requests,
        job_series: Mutex::default(),
        window_counts: Default::default(),
        window_durations: Mutex::new(Vec::new()),
    }
});

/// Counts a finished attempt. `status` is the runner's word for what was written (`retrying`
/// counts as `failed`); one that wrote nothing (`lease_lost`) is not counted.
pub fn job_finished(queue: &str, kind: &str, status: &str, duration: Duration) {
    let outcome = if status == "retrying" {
        "failed"
    } else {
        status
    };
    let Some(slot) = OUTCOMES.iter().position(|o| *o == outcome) else {
        return;
    };
    let m = &*METRICS;
    m.count_job(queue, kind, slot, duration);
    m.window_counts[slot].fetch_add(1, Ordering::Relaxed);
    if let Ok(mut kept) = m.window_durations.lock()
        && kept.len() < DURATIONS_KEPT
    {
        kept.push(duration.as_secs_f64());
    }
}

impl Metrics {
    /// Counts a finished attempt in its queue and kind's series.
    fn count_job(&self, queue: &str, kind: &str, slot: usize, duration: Duration) {
        let mut by_queue = self
            .job_series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !by_queue.contains_key(queue) {
            by_queue.insert(queue.to_string(), HashMap::default());
        }
        let Some(by_kind) = by_queue.get_mut(queue) else {
            return;
        };
        if !by_kind.contains_key(kind) {
            let labels = JobLabels {
                queue: queue.to_string(),
                kind: kind.to_string(),
            };
            let duration = self.durations.get_or_create(&labels).clone();
            by_kind.insert(
                kind.to_string(),
                JobSeries {
                    finished: Default::default(),
                    duration,
                },
            );
        }
        let Some(series) = by_kind.get_mut(kind) else {
            return;
        };
        series.finished[slot]
            .get_or_insert_with(|| {
                self.finished
                    .get_or_create(&FinishedLabels {
                        queue: queue.to_string(),
                        kind: kind.to_string(),
                        outcome: OUTCOMES[slot],
                    })
                    .clone()
            })
            .inc();
        series.duration.observe(duration.as_secs_f64());
    }
}

/// Counts an answered request under its route template (`/jobs/{id}`), never its raw path.
pub fn http_request(route: &str, status: u16) {
    METRICS
        .requests
        .get_or_create(&RequestLabels {
            route: route.to_string(),
            status,
        })
        .inc();
}

/// Writes this process's metrics, then `global`'s (gauges read from Redis for this scrape),
/// then the end marker.
pub fn encode(global: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode_registry(&mut text, &METRICS.registry)?;
    prometheus_client::encoding::text::encode_registry(&mut text, global)?;
    prometheus_client::encoding::text::encode_eof(&mut text)?;
    Ok(text)
}

/// What finished since the last call: counts per outcome (as [`OUTCOMES`]), and the p50, p95
/// and p99 of the durations in seconds (`None` when nothing finished).
pub fn take_window() -> ([u64; 5], Option<[f64; 3]>) {
    let m = &*METRICS;
    let counts = std::array::from_fn(|i| m.window_counts[i].swap(0, Ordering::Relaxed));
    let mut durations = m
        .window_durations
        .lock()
        .map(|mut kept| std::mem::take(&mut *kept))
        .unwrap_or_default();
    (counts, percentiles(&mut durations))
}

/// p50, p95 and p99 by the nearest-rank method.
fn percentiles(values: &mut [f64]) -> Option<[f64; 3]> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
        values[i - 1]
    };
    Some([rank(0.50), rank(0.95), rank(0.99)])
}

/// This process's resident memory (Linux's `VmRSS`), in bytes.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentiles(&mut values), Some([50.0, 95.0, 99.0]));
        assert_eq!(percentiles(&mut [3.0]), Some([3.0, 3.0, 3.0]));
        assert_eq!(percentiles(&mut []), None);
    }

    #[test]
    fn finished_jobs_are_counted_by_outcome_and_exposed() {
        job_finished("q1", "echo", "retrying", Duration::from_millis(20));
        job_finished("q1", "echo", "lease_lost", Duration::from_millis(20));
        let text = encode(&Registry::default()).unwrap();
        assert!(
            text.contains(
                r#"onedyno_jobs_finished_total{queue="q1",kind="echo",outcome="failed"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("lease_lost"), "{text}");
        // Counted again through the series kept for the queue and kind: the same series.
        job_finished("q1", "echo", "failed", Duration::from_millis(20));
        job_finished("q1", "echo", "succeeded", Duration::from_millis(20));
        let text = encode(&Registry::default()).unwrap();
        assert!(
            text.contains(
                r#"onedyno_jobs_finished_total{queue="q1",kind="echo",outcome="failed"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"onedyno_jobs_finished_total{queue="q1",kind="echo",outcome="succeeded"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains(r#"outcome="dead""#), "{text}");
        assert!(
            text.contains(r#"onedyno_job_duration_seconds_count{queue="q1",kind="echo"} 3"#),
            "{text}"
        );
        assert!(
            text.contains("onedyno_job_duration_seconds_bucket{"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert!(resident_memory_bytes().unwrap() > 0);
    }
}

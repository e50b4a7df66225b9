//! The metrics line, in the l2met convention that Heroku's log-based metrics and add-ons read:
//! `source=<dyno>`, then `count#` per job outcome since the last line, `measure#` for job
//! duration percentiles, `sample#` for queue depth, latency and running, jobs waiting, processes
//! and memory. One line however many queues exist: queue samples stop at [`QUEUE_SAMPLES_MAX_BYTES`]
//! and the rest are counted in `sample#queues.omitted`.

use std::fmt::Write;

use super::metrics::OUTCOMES;
use crate::queue::{RedisMemory, Stats};

/// The most bytes of per-queue samples on one line (Heroku's log lines are cut at 10 000).
const QUEUE_SAMPLES_MAX_BYTES: usize = 4000;

/// What the line reports.
pub struct Window<'a> {
    /// The dyno (`DYNO`), or the process id when not on Heroku.
    pub source: &'a str,
    /// Jobs finished by outcome since the last line (as [`OUTCOMES`]).
    pub counts: [u64; 5],
    /// p50, p95, p99 of their durations in seconds.
    pub durations: Option<[f64; 3]>,
    /// The queues (none while Redis is unreachable).
    pub stats: Option<&'a Stats>,
    /// Redis's memory.
    pub redis: Option<&'a RedisMemory>,
    /// This process's resident memory.
    pub rss: Option<u64>,
}

/// The line's fields after `event=metrics`.
pub fn line(w: &Window<'_>) -> String {
    let mut line = format!("source={}", w.source);
    for (outcome, n) in OUTCOMES.iter().zip(w.counts) {
        let _ = write!(line, " count#jobs.{outcome}={n}");
    }
    if let Some([p50, p95, p99]) = w.durations {
        for (name, secs) in [("p50", p50), ("p95", p95), ("p99", p99)] {
            let _ = write!(line, " measure#jobs.duration.{name}={:.1}ms", secs * 1000.0);
        }
    }
    if let Some(stats) = w.stats {
        push_stats(&mut line, stats);
    }
    if let Some(rss) = w.rss {
        let _ = write!(line, " sample#memory.rss={rss}bytes");
    }
    if let Some(m) = w.redis {
        let _ = write!(line, " sample#redis.memory={}bytes", m.used_bytes);
        if m.max_bytes > 0 {
            let _ = write!(line, " sample#redis.memory_max={}bytes", m.max_bytes);
        }
    }
    line
}

fn push_stats(line: &mut String, stats: &Stats) {
    let mut queues = String::new();
    let mut omitted = stats.queues_omitted;
    for q in &stats.queues {
        if queues.len() >= QUEUE_SAMPLES_MAX_BYTES {
            omitted += 1;
            continue;
        }
        let _ = write!(
            queues,
            " sample#queue.{0}.depth={1} sample#queue.{0}.latency={2:.3}s sample#queue.{0}.running={3}",
            q.name, q.depth, q.latency, q.running
        );
    }
    line.push_str(&queues);
    let _ = write!(
        line,
        " sample#jobs.running={} sample#jobs.scheduled={} sample#jobs.retrying={} sample#jobs.dead={} sample#processes={}",
        stats.running, stats.scheduled, stats.retrying, stats.dead, stats.processes
    );
    if omitted > 0 {
        let _ = write!(line, " sample#queues.omitted={omitted}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueStats;

    fn stats(queues: usize) -> Stats {
        Stats {
            queues: (0..queues)
                .map(|i| QueueStats {
                    name: format!("{}{i}", "q".repeat(60)),
                    depth: 12,
                    latency: 1.5,
                    running: 3,
                    served: true,
                })
                .collect(),
            scheduled: 4,
            retrying: 1,
            dead: 2,
            processes: 2,
            queues_omitted: 0,
            running: 3,
        }
    }

    #[test]
    fn the_line_follows_the_l2met_convention() {
        let mut s = stats(1);
        s.queues[0].name = "default".into();
        let w = Window {
            source: "web.1",
            counts: [5, 1, 0, 0, 2],
            durations: Some([0.012, 0.2, 1.5]),
            stats: Some(&s),
            redis: None,
            rss: Some(1000),
        };
        assert_eq!(
            line(&w),
            "source=web.1 count#jobs.succeeded=5 count#jobs.failed=1 count#jobs.dead=0 \
             count#jobs.cancelled=0 count#jobs.requeued=2 measure#jobs.duration.p50=12.0ms \
             measure#jobs.duration.p95=200.0ms measure#jobs.duration.p99=1500.0ms \
             sample#queue.default.depth=12 sample#queue.default.latency=1.500s \
             sample#queue.default.running=3 sample#jobs.running=3 sample#jobs.scheduled=4 \
             sample#jobs.retrying=1 sample#jobs.dead=2 sample#processes=2 \
             sample#memory.rss=1000bytes"
        );
    }

    #[test]
    fn the_line_is_bounded_however_many_queues() {
        let s = stats(50);
        let memory = RedisMemory {
            used_bytes: 1000,
            max_bytes: 25_000_000,
            policy: "noeviction".into(),
        };
        let w = Window {
            source: "web.1",
            counts: [0; 5],
            durations: None,
            stats: Some(&s),
            redis: Some(&memory),
            rss: None,
        };
        let text = line(&w);
        assert!(text.len() < 6000, "{}", text.len());
        assert!(text.contains("sample#queues.omitted="), "{text}");
        assert!(
            text.ends_with("sample#redis.memory=1000bytes sample#redis.memory_max=25000000bytes")
        );
    }
}

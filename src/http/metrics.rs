//! `GET /metrics`: Prometheus (OpenMetrics) text. Counters and the duration histogram are this
//! process's; the queue gauges and `onedyno_jobs_running` are read from Redis for each scrape,
//! so they are the same whichever dyno the router sends the scrape to.

use std::sync::atomic::AtomicU64;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{ApiError, AppState};
use crate::queue::Stats;
use crate::telemetry::metrics;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

/// `GET /metrics`. While Redis is unreachable the queue gauges are left out and the process's
/// own metrics still answer.
pub(super) async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = state.queue.stats(&state.config.queues.names()).await.ok();
    let text = metrics::encode(&gauges(stats.as_ref()))
        .map_err(|e| ApiError::internal("encoding the metrics", e))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text))
}

/// The gauges of this scrape: queue depth and latency, jobs running, and this process's memory.
fn gauges(stats: Option<&Stats>) -> Registry {
    let mut registry = Registry::default();
    let memory = Gauge::<i64>::default();
    memory.set(metrics::resident_memory_bytes().unwrap_or(0) as i64);
    registry.register(
        "onedyno_process_resident_memory_bytes",
        "Resident memory of this process",
        memory,
    );
    let Some(stats) = stats else {
        return registry;
    };
    let depth = Family::<QueueLabel, Gauge>::default();
    let latency = Family::<QueueLabel, Gauge<f64, AtomicU64>>::default();
    for q in &stats.queues {
        let label = QueueLabel {
            queue: q.name.clone(),
        };
        depth.get_or_create(&label).set(q.depth as i64);
        latency.get_or_create(&label).set(q.latency);
    }
    registry.register(
        "onedyno_queue_depth",
        "Jobs waiting in the queue (all processes)",
        depth,
    );
    registry.register(
        "onedyno_queue_latency_seconds",
        "How long the oldest waiting job of the queue has waited",
        latency,
    );
    let running = Gauge::<i64>::default();
    running.set(stats.running as i64);
    registry.register(
        "onedyno_jobs_running",
        "Jobs being worked now (all processes)",
        running,
    );
    registry
}

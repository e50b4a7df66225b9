//! Telemetry: the tracing subscriber, writing Heroku-style logfmt (or JSON) lines to stdout
//! (in batches, see `log_writer`).
//!
//! A logfmt line reads `at=info event=job.finished job_id=... status=succeeded`: the level first,
//! then the event's fields in the order they were written, values quoted only when they must be.
//! An event inside a span (a job's attempt runs in a `job` span) carries the current span's fields
//! too, right after its `event=` field in logfmt and as top-level keys in JSON, so every line of
//! an attempt names its job without each event repeating it.

pub mod l2met;
mod log_writer;
mod logfmt;
pub mod metrics;
mod outage;

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, prelude::*};

pub use log_writer::{flush, flush_unless_busy};
pub use logfmt::{Logfmt, LogfmtFields, logfmt_value};
pub use outage::Outage;

use crate::config::LogFormat;
use logfmt::push_value;

/// Installs the global subscriber, and a panic hook that logs panics as events. Call once,
/// first thing in `main`.
pub fn init(filter: &str, format: LogFormat) {
    std::panic::set_hook(Box::new(|info| {
        let message = panic_message(info.payload());
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        tracing::error!(event = "panic", thread, location, message);
        flush();
    }));
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let stdout = log_writer::batched_stdout();
    match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(LogfmtFields)
                    .event_format(ProtocolErrorsAsWarn {
                        inner: Logfmt,
                        format,
                    })
                    .with_writer(stdout),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .map_event_format(|inner| ProtocolErrorsAsWarn { inner, format })
                    .with_writer(stdout),
            )
            .init(),
    }
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_string())
}

/// actix-http's HTTP/1 dispatcher logs at `error` (`stream error: ...`) what any client can cause:
/// a malformed request line, a bad `Content-Length`, an oversized head, a dropped connection.
/// These reach no handler, so no request line is logged for them either.
fn is_protocol_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target().starts_with("actix_http::h1")
}

/// Writes actix-http's client-caused `error` events as one readable `warn` line of ours,
/// `event=http.protocol_error request_id=... error=...`, and every other event as `inner` does.
/// Rewritten at formatting time: emitting a new event from inside the subscriber would nest
/// dispatches, which tracing does not support.
pub struct ProtocolErrorsAsWarn<F> {
    inner: F,
    format: LogFormat,
}

impl<S, N, F> FormatEvent<S, N> for ProtocolErrorsAsWarn<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if !is_protocol_error(event.metadata()) {
            return match self.format {
                LogFormat::Logfmt => self.inner.format_event(ctx, writer, event),
                LogFormat::Json => json_with_span_fields(&self.inner, ctx, writer, event),
            };
        }
        let mut message = String::new();
        event.record(&mut MessageVisitor(&mut message));
        let error = message.strip_prefix("stream error: ").unwrap_or(&message);
        // The request never parsed, so it has no id of its own; a fresh one lets a report of
        // the line be matched to it.
        let request_id = uuid::Uuid::now_v7().to_string();
        match self.format {
            LogFormat::Logfmt => {
                let mut line = String::from("at=warn event=http.protocol_error request_id=");
                line.push_str(&request_id);
                line.push_str(" error=");
                push_value(&mut line, error);
                writeln!(writer, "{line}")
            }
            LogFormat::Json => {
                let line = serde_json::json!({
                    "timestamp": chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    "level": "WARN",
                    "event": "http.protocol_error",
                    "request_id": request_id,
                    "error": error,
                    "target": event.metadata().target(),
                });
                writeln!(writer, "{line}")
            }
        }
    }
}

/// The current span's fields as its field formatter wrote them, if the event is inside a span.
pub(crate) fn current_span_fields<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<String>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let span = ctx.lookup_current()?;
    let extensions = span.extensions();
    let fields = &extensions.get::<FormattedFields<N>>()?.fields;
    Some(fields.clone())
}

/// Writes `inner`'s JSON line with the current span's fields as top-level keys. tracing's JSON
/// layer can only nest them under `"span"`, and a drain's query for `job_id` should not depend on
/// which event it looks at.
fn json_with_span_fields<S, N, F>(
    inner: &F,
    ctx: &FmtContext<'_, S, N>,
    mut writer: Writer<'_>,
    event: &Event<'_>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    // JsonFields writes a span's fields as one JSON object, `{"job_id":"...",...}`.
    let Some(fields) = current_span_fields(ctx).filter(|f| f.starts_with('{') && f.len() > 2)
    else {
        return inner.format_event(ctx, writer, event);
    };
    let mut line = String::new();
    inner.format_event(ctx, Writer::new(&mut line), event)?;
    match line.trim_end().strip_suffix('}') {
        Some(head) => writeln!(writer, "{head},{}", &fields[1..]),
        None => writer.write_str(&line),
    }
}

struct MessageVisitor<'a>(&'a mut String);

impl Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    pub(super) struct Buffer(pub(super) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        pub(super) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn json_lines_carry_the_span_fields_at_the_top_level() {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let format = LogFormat::Json;
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .map_event_format(|inner| ProtocolErrorsAsWarn { inner, format })
                .with_writer(move || sink.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("job", job_id = "j1", kind = "echo", attempt = 3);
            let _entered = span.enter();
            tracing::info!(event = "job.finished", status = "dead");
        });
        let line: serde_json::Value = serde_json::from_str(buffer.text().trim()).unwrap();
        assert_eq!(line["event"], "job.finished");
        assert_eq!(line["status"], "dead");
        assert_eq!(line["job_id"], "j1");
        assert_eq!(line["kind"], "echo");
        assert_eq!(line["attempt"], 3);
        assert!(line.get("span").is_none(), "{line}");
    }
}

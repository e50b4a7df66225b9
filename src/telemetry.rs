//! Telemetry: the tracing subscriber, writing Heroku-style logfmt (or JSON) lines to stdout.
//!
//! A logfmt line reads `at=info event=job.finished job_id=... status=succeeded`: the level first,
//! then the event's fields in the order they were written, values quoted only when they must be.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, prelude::*};

use crate::config::LogFormat;

/// Installs the global subscriber, and a panic hook that logs panics as events. Call once,
/// first thing in `main`.
pub fn init(filter: &str, format: LogFormat) {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info.location().map(|l| l.to_string()).unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        tracing::error!(event = "panic", thread, location, message);
    }));
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(ProtocolErrorsAsWarn {
                        inner: Logfmt,
                        format,
                    })
                    .with_writer(std::io::stdout),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .map_event_format(|inner| ProtocolErrorsAsWarn { inner, format })
                    .with_writer(std::io::stdout),
            )
            .init(),
    }
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
            return self.inner.format_event(ctx, writer, event);
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

struct MessageVisitor<'a>(&'a mut String);

impl Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

/// A `FormatEvent` that writes one logfmt line per event.
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let mut line = format!("at={level}");
        event.record(&mut LogfmtVisitor { line: &mut line });
        writeln!(writer, "{line}")
    }
}

struct LogfmtVisitor<'a> {
    line: &'a mut String,
}

impl LogfmtVisitor<'_> {
    fn push(&mut self, key: &str, value: &str) {
        // Metric lines carry l2met `sample#name=value` pairs, written as they are.
        if key == "l2met" {
            self.line.push(' ');
            self.line.push_str(value);
            return;
        }
        let key = if key == "message" { "msg" } else { key };
        self.line.push(' ');
        self.line.push_str(key);
        self.line.push('=');
        push_value(self.line, value);
    }
}

impl Visit for LogfmtVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field.name(), &format!("{value:?}"));
    }
}

/// `value` as a logfmt value: bare when it can be, quoted and escaped when it must be.
pub fn logfmt_value(value: &str) -> String {
    let mut out = String::new();
    push_value(&mut out, value);
    out
}

/// Appends `value`, quoted and escaped only when it holds spaces, quotes, `=` or control characters.
fn push_value(line: &mut String, value: &str) {
    let needs_quotes = value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control());
    if !needs_quotes {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() => line.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => line.push(c),
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: &str) -> String {
        logfmt_value(v)
    }

    #[test]
    fn plain_values_stay_bare_and_others_are_quoted() {
        assert_eq!(value("succeeded"), "succeeded");
        assert_eq!(value("0190-ab:c/d"), "0190-ab:c/d");
        assert_eq!(value(""), "\"\"");
        assert_eq!(value("two words"), "\"two words\"");
        assert_eq!(value("a=b"), "\"a=b\"");
        assert_eq!(value("say \"hi\"\nbye"), "\"say \\\"hi\\\"\\nbye\"");
    }

    #[test]
    fn an_event_becomes_one_logfmt_line() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .event_format(Logfmt)
                .with_writer(move || sink.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                event = "job.finished",
                job_id = "j1",
                attempt = 2,
                "all done"
            );
        });
        let out = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            out,
            "at=info msg=\"all done\" event=job.finished job_id=j1 attempt=2\n"
        );
    }
}

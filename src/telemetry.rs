//! Telemetry: the tracing subscriber, writing Heroku-style logfmt (or JSON) lines to stdout.
//!
//! A logfmt line reads `at=info event=job.finished job_id=... status=succeeded`: the level first,
//! then the event's fields in the order they were written, values quoted only when they must be.
//! An event inside a span (a job's attempt runs in a `job` span) carries the current span's fields
//! too, right after its `event=` field in logfmt and as top-level keys in JSON, so every line of
//! an attempt names its job without each event repeating it.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, prelude::*};

use crate::config::LogFormat;

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
    }));
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(LogfmtFields)
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

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_string())
}

/// A loop's view of an outage of something it calls, so that it logs the first failure and the
/// recovery once each rather than a line per try (the Redis connection already logs every
/// reconnection attempt).
#[derive(Debug)]
pub struct Outage {
    failed: &'static str,
    recovered: Option<&'static str>,
    level: Level,
    down: bool,
}

impl Outage {
    /// Logs `event=<failed> error=...` at warn once per outage and `event=<recovered>` at info.
    pub fn new(failed: &'static str, recovered: &'static str) -> Outage {
        Outage {
            failed,
            recovered: Some(recovered),
            level: Level::WARN,
            down: false,
        }
    }

    /// Logs only the first failure, at debug: for loops whose outage others report already.
    pub fn quiet(failed: &'static str) -> Outage {
        Outage {
            failed,
            recovered: None,
            level: Level::DEBUG,
            down: false,
        }
    }

    /// A call failed: logged if it is the first failure since the last success.
    pub fn fail(&mut self, error: &dyn fmt::Display) {
        if std::mem::replace(&mut self.down, true) {
            return;
        }
        if self.level == Level::WARN {
            tracing::warn!(event = self.failed, error = %error);
        } else {
            tracing::debug!(event = self.failed, error = %error);
        }
    }

    /// A call succeeded: logged if it ends an outage. Returns whether it did.
    pub fn recovered(&mut self) -> bool {
        let was_down = std::mem::replace(&mut self.down, false);
        if let (true, Some(event)) = (was_down, self.recovered) {
            tracing::info!(event);
        }
        was_down
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
fn current_span_fields<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<String>
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

/// A `FormatEvent` that writes one logfmt line per event.
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let mut line = format!("at={level}");
        let span_fields = current_span_fields(ctx).filter(|f| !f.is_empty());
        let mut visitor = LogfmtVisitor {
            line: &mut line,
            span_fields: span_fields.as_deref(),
        };
        event.record(&mut visitor);
        // An event without an `event` field gets the span's fields at the end.
        if let Some(fields) = visitor.span_fields.take() {
            visitor.line.push(' ');
            visitor.line.push_str(fields);
        }
        writeln!(writer, "{line}")
    }
}

/// Formats spans' fields as logfmt (`job_id=... kind=echo`), for [`Logfmt`] to copy into lines.
pub struct LogfmtFields;

impl<'writer> FormatFields<'writer> for LogfmtFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut line = String::new();
        fields.record(&mut LogfmtVisitor {
            line: &mut line,
            span_fields: None,
        });
        writer.write_str(line.trim_start())
    }
}

struct LogfmtVisitor<'a> {
    line: &'a mut String,
    /// The current span's fields, still to be written after the `event` field.
    span_fields: Option<&'a str>,
}

impl LogfmtVisitor<'_> {
    fn push(&mut self, key: &str, value: &str) {
        self.push_field(key, value);
        if key == "event"
            && let Some(fields) = self.span_fields.take()
        {
            self.line.push(' ');
            self.line.push_str(fields);
        }
    }

    fn push_field(&mut self, key: &str, value: &str) {
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

    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

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
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// What `emit` logs through the logfmt layer `init` installs.
    fn logfmt_lines(emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(LogfmtFields)
                .event_format(Logfmt)
                .with_writer(move || sink.clone()),
        );
        tracing::subscriber::with_default(subscriber, emit);
        buffer.text()
    }

    #[test]
    fn an_event_becomes_one_logfmt_line() {
        let out = logfmt_lines(|| {
            tracing::info!(
                event = "job.finished",
                job_id = "j1",
                attempt = 2,
                "all done"
            );
        });
        assert_eq!(
            out,
            "at=info msg=\"all done\" event=job.finished job_id=j1 attempt=2\n"
        );
    }

    #[test]
    fn events_in_a_span_carry_its_fields_after_their_event() {
        let out = logfmt_lines(|| {
            let span = tracing::info_span!(
                "job",
                job_id = "j1",
                kind = "echo",
                queue = "two words",
                attempt = 3
            );
            let _entered = span.enter();
            tracing::info!(event = "job.finished", duration_ms = 4, status = "dead");
            tracing::warn!(error = "no event field");
        });
        assert_eq!(
            out,
            "at=info event=job.finished job_id=j1 kind=echo queue=\"two words\" attempt=3 \
             duration_ms=4 status=dead\n\
             at=warn error=\"no event field\" job_id=j1 kind=echo queue=\"two words\" attempt=3\n"
        );
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

//! The logfmt format: `at=info event=job.finished job_id=... status=succeeded`.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::current_span_fields;

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
pub(super) fn push_value(line: &mut String, value: &str) {
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
    use tracing_subscriber::prelude::*;

    use super::*;
    use crate::telemetry::tests::Buffer;

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
}

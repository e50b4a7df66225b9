//! The logfmt format: `at=info event=job.finished job_id=... status=succeeded`.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// A `FormatEvent` that writes one logfmt line per event.
///
/// A busy process writes a line per request and per job, so the line is written straight into
/// the layer's buffer: no string per field, per line or per span copy (a drain of no-op jobs
/// spent about 3 µs per job on its `job.finished` line).
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
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        writer.write_str("at=")?;
        writer.write_str(level)?;
        let span = ctx.lookup_current();
        let extensions = span.as_ref().map(|span| span.extensions());
        let span_fields = extensions
            .as_ref()
            .and_then(|e| e.get::<FormattedFields<N>>())
            .map(|f| f.fields.as_str())
            .filter(|f| !f.is_empty());
        let mut visitor = LogfmtVisitor::new(&mut writer, span_fields, true);
        event.record(&mut visitor);
        // An event without an `event` field gets the span's fields at the end.
        if let Some(fields) = visitor.span_fields.take() {
            visitor.raw(fields);
        }
        visitor.result?;
        writer.write_char('\n')
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
        let mut visitor = LogfmtVisitor::new(&mut writer, None, false);
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes fields as ` key=value` pairs (the first without its space when nothing precedes it).
struct LogfmtVisitor<'a, W: fmt::Write> {
    out: &'a mut W,
    /// The current span's fields, still to be written after the `event` field.
    span_fields: Option<&'a str>,
    /// Whether something precedes the next pair on its line.
    after: bool,
    /// A value formatted through `Debug` (a `%` or `?` field), before it is quoted if need be.
    scratch: String,
    result: fmt::Result,
}

impl<'a, W: fmt::Write> LogfmtVisitor<'a, W> {
    fn new(out: &'a mut W, span_fields: Option<&'a str>, after: bool) -> Self {
        LogfmtVisitor {
            out,
            span_fields,
            after,
            scratch: String::new(),
            result: Ok(()),
        }
    }

    /// Writes `text` as it is, as the next part of the line.
    fn raw(&mut self, text: &str) {
        if self.after {
            self.result = self.result.and_then(|()| self.out.write_char(' '));
        }
        self.after = true;
        self.result = self.result.and_then(|()| self.out.write_str(text));
    }

    fn key(&mut self, key: &str) {
        let key = if key == "message" { "msg" } else { key };
        self.raw(key);
        self.result = self.result.and_then(|()| self.out.write_char('='));
    }

    /// After the `event` field come the span's fields.
    fn then_span_fields(&mut self, key: &str) {
        if key == "event"
            && let Some(fields) = self.span_fields.take()
        {
            self.raw(fields);
        }
    }

    fn push(&mut self, key: &str, value: &str) {
        // Metric lines carry l2met `sample#name=value` pairs, written as they are.
        if key == "l2met" {
            self.raw(value);
            return;
        }
        self.key(key);
        self.result = self.result.and_then(|()| write_value(self.out, value));
        self.then_span_fields(key);
    }

    /// A number or a boolean: never quoted.
    fn push_bare(&mut self, key: &str, value: impl fmt::Display) {
        self.key(key);
        self.result = self.result.and_then(|()| write!(self.out, "{value}"));
        self.then_span_fields(key);
    }
}

impl<W: fmt::Write> Visit for LogfmtVisitor<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push_bare(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push_bare(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push_bare(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let _ = write!(scratch, "{value:?}");
        self.push(field.name(), &scratch);
        self.scratch = scratch;
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
    // Writing to a String cannot fail.
    let _ = write_value(line, value);
}

/// Whether `value` must be quoted: empty, or holding whitespace, a quote, `=` or a control
/// character.
fn needs_quotes(value: &str) -> bool {
    // By byte, through a table and with no branch per byte (ids, names and numbers are ASCII):
    // decoding chars, or four comparisons a byte, cost more than the rest of writing the value.
    let seen = value
        .bytes()
        .fold(0, |seen, b| seen | QUOTE_BYTE[usize::from(b)]);
    if seen & QUOTED != 0 {
        return true;
    }
    if seen & NON_ASCII == 0 {
        return value.is_empty();
    }
    value
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control())
}

/// In [`QUOTE_BYTE`]: an ASCII byte that makes a value quoted (the controls, ASCII's whitespace,
/// which is all at or below the space, `"`, `=` and DEL).
const QUOTED: u8 = 1;
/// In [`QUOTE_BYTE`]: a byte of a character beyond ASCII, which the character itself decides.
const NON_ASCII: u8 = 2;
const QUOTE_BYTE: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = if b <= 0x20 || b == 0x22 || b == 0x3d || b == 0x7f {
            QUOTED
        } else if b >= 0x80 {
            NON_ASCII
        } else {
            0
        };
        b += 1;
    }
    table
};

fn write_value(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    if !needs_quotes(value) {
        return out.write_str(value);
    }
    out.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control() => write!(out, "\\u{{{:x}}}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
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
        // ASCII is checked by byte, the rest by char: the same verdicts either way.
        let cases = [
            ("succeeded", "succeeded"),
            ("0190-ab:c/d", "0190-ab:c/d"),
            ("", "\"\""),
            ("two words", "\"two words\""),
            ("a=b", "\"a=b\""),
            ("say \"hi\"\nbye", "\"say \\\"hi\\\"\\nbye\""),
            ("tab\there", "\"tab\\there\""),
            ("del\u{7f}", "\"del\\u{7f}\""),
            ("vt\u{b}", "\"vt\\u{b}\""),
            ("café", "café"),
            ("no\u{a0}break", "\"no\u{a0}break\""),
            ("é=1", "\"é=1\""),
        ];
        for (raw, written) in cases {
            assert_eq!(value(raw), written, "{raw:?}");
        }
    }

    #[test]
    fn the_byte_table_agrees_with_the_char_rule_for_every_char() {
        let by_char = |v: &str| {
            v.is_empty()
                || v.chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control())
        };
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            for v in [c.to_string(), format!("é{c}")] {
                assert_eq!(needs_quotes(&v), by_char(&v), "{v:?}");
            }
        }
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

//! Size limits on what a job stores, so one job (or one hostile request) costs bounded Redis
//! memory, bounded script time and bounded response size, whatever its handler returns.

use std::borrow::Cow;

/// The most bytes of one failed attempt's message that are stored (and logged).
pub const ERROR_MAX_BYTES: usize = 2 * 1024;
/// How many failed-attempt entries a job keeps (the most recent): with [`ERROR_MAX_BYTES`], a
/// job's whole error history stays under about 52 KiB.
pub const ERRORS_KEPT: usize = 25;
/// The most bytes of a handler's result (as JSON) that may be stored.
pub const RESULT_MAX_BYTES: usize = 64 * 1024;
/// The most bytes of a progress report (as JSON).
pub const PROGRESS_MAX_BYTES: usize = 8 * 1024;
/// The most bytes of a checkpoint (as JSON).
pub const CHECKPOINT_MAX_BYTES: usize = 64 * 1024;
/// The most bytes of the last error shown in a list's job summary.
pub const SUMMARY_ERROR_MAX_BYTES: usize = 256;

/// What [`truncate`] appends to a cut text.
const CUT_MARKER: &str = "… [truncated]";

/// `text` if it fits in `max` bytes, else its longest prefix that ends on a character boundary
/// and leaves room for a marker saying it was cut (the result is at most `max` bytes).
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max.saturating_sub(CUT_MARKER.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{CUT_MARKER}", &text[..end]))
}

/// Why a value a handler produced was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {size} bytes as JSON, over the {max}-byte limit")]
pub struct TooLarge {
    /// What was refused (`result`, `progress`, `checkpoint`).
    pub what: &'static str,
    /// Its size as JSON.
    pub size: usize,
    /// The limit.
    pub max: usize,
}

/// `value` as JSON text, or [`TooLarge`] when that text is over `max` bytes.
pub fn json_within(
    what: &'static str,
    value: &serde_json::Value,
    max: usize,
) -> Result<String, TooLarge> {
    let text = value.to_string();
    if text.len() > max {
        return Err(TooLarge {
            what,
            size: text.len(),
            max,
        });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_text_is_kept_as_is() {
        assert!(matches!(truncate("boom", 10), Cow::Borrowed("boom")));
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary_with_a_marker() {
        let text = "é".repeat(5000); // 10,000 bytes, two per character
        let cut = truncate(&text, ERROR_MAX_BYTES);
        assert!(cut.len() <= ERROR_MAX_BYTES, "{}", cut.len());
        assert!(cut.ends_with(CUT_MARKER));
        assert!(cut.len() > ERROR_MAX_BYTES - CUT_MARKER.len() - 2);
        for max in 0..40 {
            assert!(truncate(&text, max).len() <= max.max(CUT_MARKER.len()));
        }
    }

    #[test]
    fn json_over_the_limit_is_refused_with_its_size() {
        assert_eq!(
            json_within("result", &json!({"a": 1}), 100).unwrap(),
            r#"{"a":1}"#
        );
        let err = json_within("result", &json!("x".repeat(100)), 50).unwrap_err();
        assert_eq!(err.size, 102);
        assert_eq!(
            err.to_string(),
            "result is 102 bytes as JSON, over the 50-byte limit"
        );
    }
}

//! The `email` kind's arguments, checked when the job is enqueued: every address is parsed as a
//! mailbox, so a typo is a 422 naming the field and the address instead of a dead job later.

use lettre::message::Mailbox;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The most recipients (`to`, `cc` and `bcc` together) of one message: a sign-up or receipt
/// e-mail has one or a few, and providers cap a message near here (SES at 50), so a bigger list
/// is a mistake or a newsletter, which belongs to a mailing service.
pub(crate) const MAX_RECIPIENTS: usize = 50;
/// The longest subject, in characters: long enough for any real subject line, short enough that
/// no header grows past what servers take.
pub(crate) const MAX_SUBJECT_CHARS: usize = 500;
/// The most `reply_to` addresses.
const MAX_REPLY_TO: usize = 10;

/// What the message says: plain text, HTML, or both (sent as `multipart/alternative`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    /// `text/plain` only.
    Text(String),
    /// `text/html` only.
    Html(String),
    /// Both, so each mail client shows the one it can.
    Alternative {
        /// The plain-text part.
        text: String,
        /// The HTML part.
        html: String,
    },
}

/// The checked arguments. `FROM_REQUIRED` is true when `MAIL_FROM` is unset, so a job without
/// `from` is refused at enqueue rather than dead at send.
#[derive(Debug, Clone)]
pub(crate) struct EmailArgs<const FROM_REQUIRED: bool> {
    pub(crate) to: Vec<Mailbox>,
    pub(crate) cc: Vec<Mailbox>,
    pub(crate) bcc: Vec<Mailbox>,
    pub(crate) reply_to: Vec<Mailbox>,
    pub(crate) from: Option<Mailbox>,
    pub(crate) subject: String,
    pub(crate) body: Body,
}

/// The arguments as sent. Address fields stay raw JSON so their errors can name the field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArgs {
    to: Option<Value>,
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
    from: Option<Value>,
    reply_to: Option<Value>,
    cc: Option<Value>,
    bcc: Option<Value>,
}

impl<'de, const FROM_REQUIRED: bool> Deserialize<'de> for EmailArgs<FROM_REQUIRED> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawArgs::deserialize(deserializer)?;
        EmailArgs::check(raw).map_err(serde::de::Error::custom)
    }
}

impl<const FROM_REQUIRED: bool> EmailArgs<FROM_REQUIRED> {
    fn check(raw: RawArgs) -> Result<Self, String> {
        let to = mailboxes("to", raw.to)?;
        if to.is_empty() {
            return Err("\"to\" is required: an address or a list of addresses".to_string());
        }
        let cc = mailboxes("cc", raw.cc)?;
        let bcc = mailboxes("bcc", raw.bcc)?;
        let recipients = to.len() + cc.len() + bcc.len();
        if recipients > MAX_RECIPIENTS {
            return Err(format!(
                "{recipients} recipients in \"to\", \"cc\" and \"bcc\"; at most {MAX_RECIPIENTS}"
            ));
        }
        let reply_to = mailboxes("reply_to", raw.reply_to)?;
        if reply_to.len() > MAX_REPLY_TO {
            return Err(format!("\"reply_to\": at most {MAX_REPLY_TO} addresses"));
        }
        let from = match raw.from {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(mailbox("from", &text)?),
            Some(_) => return Err("\"from\" must be one address, as a string".to_string()),
        };
        if FROM_REQUIRED && from.is_none() {
            return Err("\"from\" is required: MAIL_FROM, the default sender, is not set".into());
        }
        Ok(EmailArgs {
            to,
            cc,
            bcc,
            reply_to,
            from,
            subject: subject(raw.subject)?,
            body: body(raw.text, raw.html)?,
        })
    }

    /// Everyone the message goes to, `bcc` included, in the order given.
    pub(crate) fn recipients(&self) -> impl Iterator<Item = &Mailbox> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }
}

/// A field holding one address or a list of them; absent or null is an empty list.
fn mailboxes(field: &str, value: Option<Value>) -> Result<Vec<Mailbox>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![mailbox(field, &text)?]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => mailbox(field, text),
                other => Err(format!("{field:?}: {other} is not an address string")),
            })
            .collect(),
        Some(other) => Err(format!(
            "{field:?} must be an address or a list of addresses, not {other}"
        )),
    }
}

/// One address, `user@example.com` or `Name <user@example.com>`.
fn mailbox(field: &str, text: &str) -> Result<Mailbox, String> {
    text.trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{field:?}: invalid address {text:?}: {e}"))
}

fn subject(subject: Option<String>) -> Result<String, String> {
    let subject = subject.ok_or("\"subject\" is required")?;
    let chars = subject.chars().count();
    if chars > MAX_SUBJECT_CHARS {
        return Err(format!(
            "\"subject\" has {chars} characters; at most {MAX_SUBJECT_CHARS}"
        ));
    }
    // A line break in a header would start a new header; refuse it rather than guess.
    if subject.chars().any(char::is_control) {
        return Err("\"subject\" must not contain line breaks or control characters".into());
    }
    Ok(subject)
}

fn body(text: Option<String>, html: Option<String>) -> Result<Body, String> {
    match (text, html) {
        (Some(text), Some(html)) => Ok(Body::Alternative { text, html }),
        (Some(text), None) => Ok(Body::Text(text)),
        (None, Some(html)) => Ok(Body::Html(html)),
        (None, None) => Err("give \"text\", \"html\" or both".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse<const R: bool>(args: Value) -> Result<EmailArgs<R>, String> {
        EmailArgs::<R>::deserialize(args).map_err(|e| e.to_string())
    }

    fn emails(list: &[Mailbox]) -> Vec<String> {
        list.iter().map(|m| m.email.to_string()).collect()
    }

    #[test]
    fn addresses_come_one_or_many_with_names() {
        let args = parse::<false>(json!({
            "to": "Ada <ada@example.com>",
            "cc": ["b@example.com", "Cy <c@example.org>"],
            "bcc": [],
            "reply_to": "help@example.com",
            "from": "Shop <shop@example.com>",
            "subject": "Welcome",
            "text": "Hi"
        }))
        .unwrap();
        assert_eq!(emails(&args.to), ["ada@example.com"]);
        assert_eq!(args.to[0].name.as_deref(), Some("Ada"));
        assert_eq!(emails(&args.cc), ["b@example.com", "c@example.org"]);
        assert!(args.bcc.is_empty());
        assert_eq!(emails(&args.reply_to), ["help@example.com"]);
        assert_eq!(
            args.from.as_ref().unwrap().email.to_string(),
            "shop@example.com"
        );
        assert_eq!(args.body, Body::Text("Hi".into()));
        assert_eq!(args.recipients().count(), 3);
    }

    #[test]
    fn text_html_or_both() {
        let base = json!({"to": "a@example.com", "subject": "s"});
        let with = |extra: Value| {
            let mut args = base.clone();
            args.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse::<false>(args).map(|a| a.body)
        };
        assert_eq!(
            with(json!({"html": "<b>h</b>"})),
            Ok(Body::Html("<b>h</b>".into()))
        );
        assert_eq!(
            with(json!({"text": "t", "html": "h"})),
            Ok(Body::Alternative {
                text: "t".into(),
                html: "h".into()
            })
        );
        let err = with(json!({})).unwrap_err();
        assert!(err.contains("text") && err.contains("html"), "{err}");
    }

    #[test]
    fn a_bad_address_is_named_with_its_field() {
        for (args, field, address) in [
            (json!({"to": "not-an-address"}), "\"to\"", "not-an-address"),
            (json!({"to": ["a@example.com", "b@"]}), "\"to\"", "b@"),
            (
                json!({"to": "a@example.com", "cc": ["@x.com"]}),
                "\"cc\"",
                "@x.com",
            ),
            (
                json!({"to": "a@example.com", "bcc": "a b@x"}),
                "\"bcc\"",
                "a b@x",
            ),
            (
                json!({"to": "a@example.com", "from": "shop"}),
                "\"from\"",
                "shop",
            ),
            (
                json!({"to": "a@example.com", "reply_to": ["x@@y"]}),
                "\"reply_to\"",
                "x@@y",
            ),
        ] {
            let mut args = args;
            args["subject"] = json!("s");
            args["text"] = json!("t");
            let err = parse::<false>(args).unwrap_err();
            assert!(
                err.contains(field) && err.contains(address),
                "{field} {address}: {err}"
            );
        }
    }

    #[test]
    fn shapes_and_sizes_are_bounded() {
        let ok = json!({"to": "a@example.com", "subject": "s", "text": "t"});
        let refused = |patch: Value, needle: &str| {
            let mut args = ok.clone();
            for (k, v) in patch.as_object().unwrap() {
                args[k] = v.clone();
            }
            let err = parse::<false>(args).unwrap_err();
            assert!(err.contains(needle), "{patch}: {err}");
        };
        refused(json!({"to": []}), "\"to\" is required");
        refused(json!({"to": null}), "\"to\" is required");
        refused(json!({"to": 5}), "\"to\" must be");
        refused(json!({"cc": [5]}), "not an address");
        refused(
            json!({"from": ["a@example.com"]}),
            "\"from\" must be one address",
        );
        refused(json!({"subject": null}), "\"subject\" is required");
        refused(json!({"subject": "a\r\nBcc: x@evil.com"}), "line breaks");
        refused(
            json!({"subject": "x".repeat(MAX_SUBJECT_CHARS + 1)}),
            "at most 500",
        );
        let many: Vec<String> = (0..=MAX_RECIPIENTS)
            .map(|i| format!("u{i}@example.com"))
            .collect();
        refused(json!({"bcc": many}), "at most 50");
        refused(json!({"body": "t"}), "unknown field `body`");
        assert!(
            parse::<false>(json!({"subject": "x".repeat(MAX_SUBJECT_CHARS)}))
                .is_err_and(|e| e.contains("\"to\""))
        );
        assert!(parse::<false>(ok).is_ok());
    }

    #[test]
    fn without_mail_from_the_sender_is_required() {
        let args = json!({"to": "a@example.com", "subject": "s", "text": "t"});
        assert!(parse::<false>(args.clone()).is_ok());
        let err = parse::<true>(args.clone()).unwrap_err();
        assert!(
            err.contains("\"from\"") && err.contains("MAIL_FROM"),
            "{err}"
        );
        let mut with_from = args;
        with_from["from"] = json!("shop@example.com");
        assert!(parse::<true>(with_from).is_ok());
    }
}

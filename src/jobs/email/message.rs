//! The message a job sends: headers from its args, one or two bodies, and a Message-ID derived
//! from the job id.

use lettre::Message;
use lettre::message::{Mailbox, MultiPart, SinglePart};

use super::args::{Body, EmailArgs};

/// The Message-ID of a job's message: the same on every attempt, so when an attempt's outcome
/// was unknown (the connection broke after the data was sent) and the retry delivers it again,
/// mail clients that de-duplicate by Message-ID show it once.
pub(crate) fn message_id(job_id: &str, from: &Mailbox) -> String {
    let local: String = job_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    format!("<{local}.onedyno@{}>", from.email.domain())
}

/// Builds the message; `Bcc` goes into the envelope only (lettre drops the header).
pub(crate) fn build<const R: bool>(
    args: &EmailArgs<R>,
    from: Mailbox,
    message_id: String,
) -> Result<Message, lettre::error::Error> {
    let mut builder = Message::builder()
        .from(from)
        .subject(args.subject.clone())
        .message_id(Some(message_id))
        .date_now();
    for to in &args.to {
        builder = builder.to(to.clone());
    }
    for cc in &args.cc {
        builder = builder.cc(cc.clone());
    }
    for bcc in &args.bcc {
        builder = builder.bcc(bcc.clone());
    }
    for reply_to in &args.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    match &args.body {
        Body::Text(text) => builder.singlepart(SinglePart::plain(text.clone())),
        Body::Html(html) => builder.singlepart(SinglePart::html(html.clone())),
        Body::Alternative { text, html } => builder.multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
    }
}

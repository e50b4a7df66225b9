//! The `email` kind: one message to `SMTP_URL`, through one pooled SMTP transport per process.
//!
//! A 4xx reply or a broken connection is retried with backoff; a 5xx reply is final, and the job
//! is dead with the server's reply in its error.

mod args;
mod message;

use std::sync::OnceLock;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::response::Response;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::{Value, json};

use super::{DuplicateKind, Handler, JobContext, JobError, Registry};
use crate::config::{MailSettings, SmtpSettings};
use args::EmailArgs;

/// The kind's name.
pub(crate) const EMAIL_KIND: &str = "email";

/// After a cancellation, how long a send already talking to the server may still finish: its
/// outcome is then known, so a drained job is not sent twice. Under the runner's stop grace.
const CANCEL_GRACE: Duration = Duration::from_millis(300);

/// Registers the kind when `SMTP_URL` is set. Without `MAIL_FROM` every job must name its `from`.
pub(crate) fn register(registry: &mut Registry, mail: &MailSettings) -> Result<(), DuplicateKind> {
    let Some(smtp) = &mail.smtp else {
        return Ok(());
    };
    match &mail.default_from {
        Some(from) => {
            registry.register(EMAIL_KIND, Email::<false>::new(smtp, Some(from.clone())))?
        }
        None => registry.register(EMAIL_KIND, Email::<true>::new(smtp, None))?,
    };
    Ok(())
}

/// Sends one e-mail. `FROM_REQUIRED` mirrors [`EmailArgs`]: true when there is no default sender.
pub(crate) struct Email<const FROM_REQUIRED: bool> {
    smtp: SmtpSettings,
    default_from: Option<Mailbox>,
    /// Built on the first send: lettre's pool starts a task when it is built, which needs the
    /// runtime the jobs run on, and a web-only process never needs it.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl<const FROM_REQUIRED: bool> Email<FROM_REQUIRED> {
    fn new(smtp: &SmtpSettings, default_from: Option<Mailbox>) -> Self {
        Email {
            smtp: smtp.clone(),
            default_from,
            transport: OnceLock::new(),
        }
    }

    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        self.transport
            .get_or_init(|| {
                tracing::info!(event = "email.transport", smtp_url = %self.smtp.redacted_url());
                self.smtp.transport()
            })
            .clone()
    }
}

impl<const FROM_REQUIRED: bool> Handler for Email<FROM_REQUIRED> {
    type Args = EmailArgs<FROM_REQUIRED>;

    async fn run(&self, args: Self::Args, ctx: JobContext) -> Result<Value, JobError> {
        let from = args
            .from
            .clone()
            .or_else(|| self.default_from.clone())
            .ok_or_else(|| JobError::permanent("no sender: give \"from\" or set MAIL_FROM"))?;
        let message_id = message::message_id(ctx.id(), &from);
        let message = message::build(&args, from, message_id.clone())
            .map_err(|e| JobError::permanent(format!("could not build the message: {e}")))?;
        let accepted: Vec<String> = args.recipients().map(|m| m.email.to_string()).collect();
        if ctx.is_cancelled() {
            return Err(JobError::new("cancelled before sending"));
        }
        let reply = send(self.transport(), message, &ctx).await?;
        Ok(json!({
            "message_id": message_id,
            "accepted": accepted,
            "smtp_reply": reply_text(&reply),
        }))
    }
}

/// Sends on a task of its own, so a cancelled job never drops a connection in the middle of an
/// SMTP transaction: the pool would take it back half-used and a later message could go astray.
async fn send(
    transport: AsyncSmtpTransport<Tokio1Executor>,
    message: lettre::Message,
    ctx: &JobContext,
) -> Result<Response, JobError> {
    let mut sending = tokio::spawn(async move { transport.send(message).await });
    let joined = tokio::select! {
        joined = &mut sending => joined,
        () = ctx.cancelled() => match tokio::time::timeout(CANCEL_GRACE, &mut sending).await {
            Ok(joined) => joined,
            Err(_) => {
                return Err(JobError::new(
                    "cancelled while the SMTP server was answering; it may still deliver the message",
                ));
            }
        },
    };
    match joined {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(smtp_failure(&e)),
        Err(e) => Err(JobError::new(format!("the send task failed: {e}"))),
    }
}

/// 5xx replies (and messages the server cannot take at all) are final; 4xx replies, timeouts
/// and network, TLS or connection trouble are worth another attempt.
fn smtp_failure(e: &SmtpError) -> JobError {
    if e.is_permanent() {
        JobError::permanent(format!("SMTP server refused the message: {e}"))
    } else if e.is_client() {
        JobError::permanent(format!("the message cannot be sent: {e}"))
    } else if e.is_transient() {
        JobError::new(format!("SMTP server deferred the message: {e}"))
    } else {
        JobError::new(format!("SMTP failed: {}", error_chain(e)))
    }
}

/// The error and its causes, as "connection refused" hides two levels down in lettre's errors.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `250 2.0.0 Ok: queued as 1234`: the code and every line of the server's text.
fn reply_text(reply: &Response) -> String {
    let lines: Vec<&str> = reply.message().collect();
    format!("{} {}", reply.code(), lines.join(" "))
}

#[cfg(test)]
mod tests;

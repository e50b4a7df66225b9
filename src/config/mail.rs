//! The `email` kind's settings: `SMTP_URL`, where mail goes, and `MAIL_FROM`, the default sender.
//!
//! Both are checked whole at start-up, so a typo stops the process (exit code 2) instead of
//! killing every e-mail job later. The URL may hold a password: it is shown only redacted.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use super::ConfigError;
use super::parse::invalid;
use super::secrets::redact_url;

/// How long the SMTP client waits to connect and for each reply: a server that hangs costs a job
/// this long per command, not its whole `JOB_TIMEOUT`.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// The most idle SMTP connections one process keeps for reuse; busier moments open more, which
/// are closed after their message instead of kept.
const SMTP_POOL_SIZE: u32 = 10;
/// How long an idle pooled connection stays open; servers drop idle clients after a few minutes.
const SMTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The `email` kind's settings. `smtp` is `None` when `SMTP_URL` is unset: the kind is then not
/// registered.
#[derive(Clone, Default)]
pub struct MailSettings {
    /// Where mail goes (`SMTP_URL`).
    pub smtp: Option<SmtpSettings>,
    /// The sender of a message whose args name none (`MAIL_FROM`).
    pub default_from: Option<Mailbox>,
}

/// A checked `SMTP_URL`, ready to become a transport.
#[derive(Clone)]
pub struct SmtpSettings {
    builder: AsyncSmtpTransportBuilder,
    redacted: String,
}

impl SmtpSettings {
    /// The pooled transport. lettre's pool starts its idle-connection reaper on the current Tokio
    /// runtime when it is built, so call this from the runtime that sends the mail.
    pub fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        self.builder.clone().build()
    }

    /// The URL with its password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp", &self.smtp)
            .field(
                "default_from",
                &self.default_from.as_ref().map(|m| m.to_string()),
            )
            .finish()
    }
}

/// Parses `SMTP_URL` and `MAIL_FROM`. `MAIL_FROM` without `SMTP_URL` is accepted with a warning,
/// as the kind it serves is off.
pub(super) fn parse_mail(
    smtp_url: Option<String>,
    mail_from: Option<String>,
    warnings: &mut Vec<String>,
) -> Result<MailSettings, ConfigError> {
    let smtp = smtp_url.as_deref().map(parse_smtp_url).transpose()?;
    if smtp_url.as_deref().is_some_and(sends_password_in_clear) {
        warnings.push(
            "SMTP_URL sends its password unencrypted (smtp:// without ?tls=required): \
             fine for a relay on this machine, not over a network"
                .to_string(),
        );
    }
    let default_from = mail_from
        .as_deref()
        .map(|from| {
            let from = from.trim();
            from.parse::<Mailbox>().map_err(|e| {
                invalid(
                    "MAIL_FROM",
                    from,
                    &format!("expected an address like \"App <noreply@example.com>\": {e}"),
                )
            })
        })
        .transpose()?;
    if smtp.is_none() && default_from.is_some() {
        warnings.push("MAIL_FROM is set but SMTP_URL is not: the email kind is off".to_string());
    }
    Ok(MailSettings { smtp, default_from })
}

/// Plain `smtp://` (no `tls` parameter) with a user in the URL: lettre would send the login as is.
fn sends_password_in_clear(url: &str) -> bool {
    let Some(rest) = url.trim().strip_prefix("smtp://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.contains('@') && !url.contains("tls=")
}

/// Checks `SMTP_URL` with lettre's own URL parser, so what starts is what will connect.
fn parse_smtp_url(url: &str) -> Result<SmtpSettings, ConfigError> {
    let url = url.trim();
    let redacted = redact_url(url);
    let refuse = |reason: String| invalid("SMTP_URL", &redacted, &reason);
    if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
        return Err(refuse(
            "expected smtp://[user:pass@]host[:port][?tls=required|opportunistic] or smtps://..."
                .to_string(),
        ));
    }
    let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        // lettre's messages name the part that is wrong, never the password.
        .map_err(|e| {
            refuse(format!(
                "{e} (URL-encode a user or password holding @, / or :)"
            ))
        })?
        .timeout(Some(SMTP_TIMEOUT))
        .pool_config(
            PoolConfig::new()
                .max_size(SMTP_POOL_SIZE)
                .idle_timeout(SMTP_IDLE_TIMEOUT),
        );
    Ok(SmtpSettings { builder, redacted })
}

#[cfg(test)]
mod tests {
    use super::super::test_config as config;

    #[test]
    fn without_smtp_url_mail_is_off() {
        let c = config(&[]).unwrap();
        assert!(c.mail.smtp.is_none() && c.mail.default_from.is_none());
        let c = config(&[("MAIL_FROM", "a@example.com")]).unwrap();
        assert!(c.mail.smtp.is_none());
        assert!(
            c.warnings().iter().any(|w| w.contains("SMTP_URL")),
            "{:?}",
            c.warnings()
        );
    }

    #[test]
    fn every_documented_smtp_url_form_is_accepted() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://user:pass@smtp.example.com:587?tls=required",
            "smtp://smtp.example.com?tls=opportunistic",
            "smtps://apikey:SG.x-y_z@smtp.sendgrid.net",
            "smtps://postmaster%40mg.example.com:p%40ss%2Fw%3Ard@smtp.mailgun.org:465",
        ] {
            let c = config(&[("SMTP_URL", url)]).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert!(c.mail.smtp.is_some(), "{url}");
        }
    }

    #[test]
    fn bad_smtp_urls_name_the_setting_and_hide_the_password() {
        for url in [
            "http://user:hunter2@smtp.example.com",
            "smtp://user:hunter2@smtp.example.com:notaport",
            "smtp://user:hunter2@smtp.example.com?tls=sometimes",
            "smtp://user:hunter2@:587",
            "smtp.example.com:587",
        ] {
            let err = config(&[("SMTP_URL", url)]).unwrap_err().to_string();
            assert!(err.contains("SMTP_URL"), "{url}: {err}");
            assert!(!err.contains("hunter2"), "{url}: {err}");
        }
    }

    #[test]
    fn a_password_over_plain_smtp_is_warned_about() {
        let warned = |url: &str| {
            let c = config(&[("SMTP_URL", url)]).unwrap();
            c.warnings().iter().any(|w| w.contains("unencrypted"))
        };
        assert!(warned("smtp://user:pass@smtp.example.com:587"));
        assert!(!warned(
            "smtp://user:pass@smtp.example.com:587?tls=required"
        ));
        assert!(!warned("smtps://user:pass@smtp.example.com"));
        assert!(!warned("smtp://127.0.0.1:2525"));
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let c = config(&[(
            "SMTP_URL",
            "smtp://user:hunter2@smtp.example.com:587?tls=required",
        )])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user:***@smtp.example.com"), "{shown}");
    }

    #[test]
    fn mail_from_is_a_checked_mailbox() {
        let c = config(&[
            ("SMTP_URL", "smtp://127.0.0.1:2525"),
            ("MAIL_FROM", " Onedyno <noreply@example.com> "),
        ])
        .unwrap();
        let from = c.mail.default_from.unwrap();
        assert_eq!(from.email.to_string(), "noreply@example.com");
        assert_eq!(from.name.as_deref(), Some("Onedyno"));
        for bad in ["noreply", "Onedyno <noreply@>", "a@b@c"] {
            let err = config(&[("MAIL_FROM", bad)]).unwrap_err().to_string();
            assert!(err.contains("MAIL_FROM") && err.contains(bad), "{err}");
        }
    }
}

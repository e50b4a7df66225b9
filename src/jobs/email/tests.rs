use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::jobs::{Retry, TestContext};

fn args(value: Value) -> EmailArgs<false> {
    EmailArgs::deserialize(value).unwrap()
}

fn settings(vars: &[(&str, &str)]) -> MailSettings {
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    crate::config::Config::from_vars(vars).unwrap().mail
}

/// The headers of a formatted message, unfolded, and its body.
fn formatted(message: &lettre::Message) -> (String, String) {
    let text = String::from_utf8(message.formatted()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.replace("\r\n ", " ").replace("\r\n\t", " "),
        body.to_string(),
    )
}

#[test]
fn the_message_has_every_header_and_bcc_only_in_the_envelope() {
    let args = args(json!({
        "to": ["Ada <ada@example.com>", "bob@example.com"],
        "cc": "cy@example.org",
        "bcc": ["secret@example.net"],
        "reply_to": "help@example.com",
        "subject": "Welcome aboard",
        "text": "Hello in text",
        "html": "<p>Hello in HTML</p>"
    }));
    let from: Mailbox = "Shop <shop@example.com>".parse().unwrap();
    let id = message::message_id("0190-abc", &from);
    assert_eq!(id, "<0190-abc.onedyno@example.com>");
    let message = message::build(&args, from, id.clone()).unwrap();
    let (head, body) = formatted(&message);
    for header in [
        "From: Shop <shop@example.com>",
        "To: Ada <ada@example.com>, bob@example.com",
        "Cc: cy@example.org",
        "Reply-To: help@example.com",
        "Subject: Welcome aboard",
        "Message-ID: <0190-abc.onedyno@example.com>",
        "Date: ",
        "Content-Type: multipart/alternative",
    ] {
        assert!(head.contains(header), "{header} missing in\n{head}");
    }
    assert!(
        !head.contains("secret@example.net") && !head.contains("Bcc"),
        "{head}"
    );
    assert!(body.contains("Hello in text") && body.contains("<p>Hello in HTML</p>"));
    let envelope: Vec<String> = message
        .envelope()
        .to()
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        envelope,
        [
            "ada@example.com",
            "bob@example.com",
            "cy@example.org",
            "secret@example.net"
        ]
    );
    assert_eq!(
        message.envelope().from().map(|a| a.to_string()).as_deref(),
        Some("shop@example.com")
    );
}

#[test]
fn a_message_id_keeps_only_safe_characters_of_the_job_id() {
    let from: Mailbox = "a@mail.example.com".parse().unwrap();
    assert_eq!(
        message::message_id("we<ird>@ id", &from),
        "<weirdid.onedyno@mail.example.com>"
    );
}

#[test]
fn one_body_is_a_single_part() {
    let from: Mailbox = "shop@example.com".parse().unwrap();
    let html = args(json!({"to": "a@example.com", "subject": "s", "html": "<i>x</i>"}));
    let (head, body) = formatted(&message::build(&html, from.clone(), "<1@x>".into()).unwrap());
    assert!(head.contains("Content-Type: text/html"), "{head}");
    assert!(body.contains("<i>x</i>"), "{body}");
    let text = args(json!({"to": "a@example.com", "subject": "s", "text": "plain"}));
    let (head, _) = formatted(&message::build(&text, from, "<1@x>".into()).unwrap());
    assert!(head.contains("Content-Type: text/plain"), "{head}");
}

#[test]
fn non_ascii_text_is_encoded_so_any_server_takes_it() {
    let args = args(json!({
        "to": "Zoë Ünal <zoe@example.com>",
        "subject": "Café ☕ à bientôt",
        "text": "Grüße, ünïcödé",
        "html": "<p>日本語</p>"
    }));
    let from: Mailbox = "shop@example.com".parse().unwrap();
    let message = message::build(&args, from, "<1@example.com>".into()).unwrap();
    let raw = message.formatted();
    assert!(raw.is_ascii(), "{}", String::from_utf8_lossy(&raw));
    let (head, _) = formatted(&message);
    assert!(head.contains("Subject: =?utf-8?"), "{head}");
}

#[test]
fn without_smtp_url_the_kind_is_not_registered() {
    let mut registry = Registry::new();
    register(&mut registry, &settings(&[])).unwrap();
    assert!(registry.kinds().is_empty());
    let err = registry
        .validate(EMAIL_KIND, &json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("SMTP_URL"), "{err}");
}

#[test]
fn the_registered_kind_checks_the_sender_against_mail_from() {
    let args = json!({"to": "a@example.com", "subject": "s", "text": "t"});
    let mut with_default = Registry::new();
    register(
        &mut with_default,
        &settings(&[
            ("SMTP_URL", "smtp://127.0.0.1:2525"),
            ("MAIL_FROM", "n@example.com"),
        ]),
    )
    .unwrap();
    assert_eq!(with_default.validate(EMAIL_KIND, &args), Ok(()));
    let mut without = Registry::new();
    register(
        &mut without,
        &settings(&[("SMTP_URL", "smtp://127.0.0.1:2525")]),
    )
    .unwrap();
    let err = without.validate(EMAIL_KIND, &args).unwrap_err().to_string();
    assert!(err.contains("MAIL_FROM"), "{err}");
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn handler_for(url: &str) -> Email<false> {
    let mail = settings(&[("SMTP_URL", url), ("MAIL_FROM", "n@example.com")]);
    Email::new(mail.smtp.as_ref().unwrap(), mail.default_from)
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    let email = handler_for(&format!("smtp://127.0.0.1:{}", closed_port()));
    let args = args(json!({"to": "a@example.com", "subject": "s", "text": "t"}));
    let err = email
        .run(args, TestContext::new().context())
        .await
        .unwrap_err();
    assert_eq!(err.retry(), Retry::Backoff, "{err}");
    assert!(err.message().contains("refused"), "{err}");
}

#[tokio::test]
async fn a_cancelled_job_does_not_send() {
    let email = handler_for(&format!("smtp://127.0.0.1:{}", closed_port()));
    let args = args(json!({"to": "a@example.com", "subject": "s", "text": "t"}));
    let test = TestContext::new();
    test.cancel();
    let err = email.run(args, test.context()).await.unwrap_err();
    assert!(err.message().contains("cancelled"), "{err}");
    assert!(
        email.transport.get().is_none(),
        "no connection was even set up"
    );
}

//! The `email` kind's settings and arguments, with the real binary: `SMTP_URL` turns the kind on
//! (its login URL-decoded, never logged), a bad `SMTP_URL` or `MAIL_FROM` stops start-up, and bad
//! arguments are a 422 at enqueue naming the field and the address.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::smtp_server::SmtpServer;
use support::{App, Redis};

const FROM: &str = "Onedyno Test <noreply@example.com>";

fn enqueue_email(app: &App, args: serde_json::Value, max_attempts: u32) -> String {
    app.enqueue_ok(&json!({"kind": "email", "args": args, "max_attempts": max_attempts}))
}

#[test]
fn the_login_in_smtp_url_is_url_decoded_and_a_refused_login_is_final() {
    let redis = Redis::start();
    // A Mailgun-style login, and a password with every character that must be encoded.
    let smtp = SmtpServer::start_with_login("postmaster@mg.example.com", "p@ss/w:rd");
    let port = smtp.port();
    let good = format!("smtp://postmaster%40mg.example.com:p%40ss%2Fw%3Ard@127.0.0.1:{port}");
    let app = App::start_ready(&redis.url(), &[("SMTP_URL", &good), ("MAIL_FROM", FROM)]);
    let id = enqueue_email(
        &app,
        json!({"to": "a@example.com", "subject": "s", "text": "t"}),
        3,
    );
    app.wait_for_status(&id, "succeeded", Duration::from_secs(15));
    assert_eq!(smtp.logins(), ["postmaster@mg.example.com"]);
    assert_eq!(smtp.messages().len(), 1);
    app.wait_for_log("event=email.transport", Duration::from_secs(5));
    let logs = app.logs();
    assert!(
        logs.contains("postmaster%40mg.example.com:***@127.0.0.1"),
        "{logs}"
    );
    assert!(!logs.contains("p%40ss") && !logs.contains("p@ss"), "{logs}");
    assert!(
        logs.contains("event=config.warning") && logs.contains("unencrypted"),
        "{logs}"
    );
    drop(app);

    let bad = format!("smtp://postmaster%40mg.example.com:wrong@127.0.0.1:{port}");
    let app = App::start_ready(&redis.url(), &[("SMTP_URL", &bad), ("MAIL_FROM", FROM)]);
    let id = enqueue_email(
        &app,
        json!({"to": "a@example.com", "subject": "s", "text": "t"}),
        5,
    );
    let dead = app.wait_for_status(&id, "dead", Duration::from_secs(15));
    assert_eq!(
        dead["attempts"], 1,
        "a refused login is not retried: {dead}"
    );
    let error = dead["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains("535") && error.contains("credentials invalid"),
        "{dead}"
    );
    assert_eq!(smtp.messages().len(), 1);
}

#[test]
fn bad_args_are_a_422_at_enqueue_naming_the_field_and_address() {
    let redis = Redis::start();
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let web = App::start_web_only_with(&redis.url(), &[("SMTP_URL", &url), ("MAIL_FROM", FROM)]);
    for (args, needles) in [
        (
            json!({"to": "not-an-address", "subject": "s", "text": "t"}),
            vec!["\"to\"", "not-an-address"],
        ),
        (
            json!({"to": "a@example.com", "cc": ["ok@example.com", "broken@"], "subject": "s", "text": "t"}),
            vec!["\"cc\"", "broken@"],
        ),
        (
            json!({"to": "a@example.com", "from": "shop", "subject": "s", "text": "t"}),
            vec!["\"from\"", "shop"],
        ),
        (
            json!({"to": "a@example.com", "subject": "s"}),
            vec!["text", "html"],
        ),
        (
            json!({"to": "a@example.com", "subject": "s", "body": "t"}),
            vec!["unknown field"],
        ),
    ] {
        let (status, _, body) = web.enqueue(&json!({"kind": "email", "args": args}));
        let message =
            support::assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
        for needle in needles {
            assert!(message.contains(needle), "{needle} not in {message}");
        }
    }

    // Without MAIL_FROM, a job must name its sender.
    let no_from = App::start_web_only_with(&redis.url(), &[("SMTP_URL", &url)]);
    let args = json!({"to": "a@example.com", "subject": "s", "text": "t"});
    let (status, _, body) = no_from.enqueue(&json!({"kind": "email", "args": args}));
    let message = support::assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(message.contains("MAIL_FROM"), "{message}");
    let mut with_from = args;
    with_from["from"] = json!("shop@example.com");
    no_from.enqueue_ok(&json!({"kind": "email", "args": with_from}));
}

#[test]
fn without_smtp_url_the_email_kind_is_refused_naming_smtp_url() {
    let redis = Redis::start();
    let web = App::start_web_only_with(&redis.url(), &[("MAIL_FROM", FROM)]);
    let args = json!({"to": "a@example.com", "subject": "s", "text": "t"});
    let (status, _, body) = web.enqueue(&json!({"kind": "email", "args": args}));
    let message = support::assert_error(status, &body, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(message.contains("SMTP_URL"), "{message}");
    web.wait_for_log(
        "MAIL_FROM is set but SMTP_URL is not",
        Duration::from_secs(5),
    );
}

#[test]
fn a_bad_smtp_url_or_mail_from_stops_start_up_with_exit_code_2() {
    let redis = Redis::start();
    for (var, value, shown) in [
        (
            "SMTP_URL",
            "smtp://user:hunter2@smtp.example.com:notaport",
            "user:***@smtp.example.com",
        ),
        (
            "SMTP_URL",
            "smtp://user:hunter2@smtp.example.com?tls=sometimes",
            "tls",
        ),
        (
            "SMTP_URL",
            "mailgun://user:hunter2@smtp.example.com",
            "smtp://",
        ),
        ("MAIL_FROM", "noreply", "noreply"),
    ] {
        let mut app = App::spawn(&redis.url(), &[(var, value)]);
        let status = app
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{var}={value} did not stop start-up"));
        // The log readers drain the pipes on their own threads; wait for the line, not a sleep.
        app.wait_for_log("event=config.invalid", Duration::from_secs(5));
        assert_eq!(status.code(), Some(2), "{var}={value}: {}", app.logs());
        let logs = app.logs();
        assert!(
            logs.contains("event=config.invalid") && logs.contains(var),
            "{logs}"
        );
        assert!(logs.contains(shown), "{shown} not in {logs}");
        assert!(!logs.contains("hunter2"), "{logs}");
    }
}

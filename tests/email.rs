//! The `email` kind against a real SMTP server on loopback (tests/support/smtp_server.rs) and the
//! real binary: the message that arrives (headers, bodies, envelope), a 550 ending dead, a 451
//! retried, refused arguments at enqueue, and the settings that turn the kind on or stop start-up.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::smtp_server::{SmtpServer, Stage};
use support::{App, Redis};

const FROM: &str = "Onedyno Test <noreply@example.com>";

/// A worker process sending to `smtp`, with `MAIL_FROM` set and fast retries.
fn app_sending_to(redis: &Redis, smtp: &SmtpServer) -> App {
    let url = smtp.url();
    let mut env = vec![("SMTP_URL", url.as_str()), ("MAIL_FROM", FROM)];
    env.extend(support::FAST_BACKOFF);
    App::start_ready(&redis.url(), &env)
}

fn enqueue_email(app: &App, args: Value, max_attempts: u32) -> String {
    app.enqueue_ok(&json!({"kind": "email", "args": args, "max_attempts": max_attempts}))
}

#[test]
fn an_email_arrives_with_its_headers_bodies_and_envelope() {
    let redis = Redis::start();
    let smtp = SmtpServer::start();
    let app = app_sending_to(&redis, &smtp);
    let id = enqueue_email(
        &app,
        json!({
            "to": ["Ada Lovelace <ada@example.com>", "bob@example.org"],
            "cc": "cy@example.net",
            "bcc": ["hidden@example.com"],
            "reply_to": "help@example.com",
            "subject": "Welcome to the app",
            "text": "Hello Ada,\n.a line starting with a dot\nBye",
            "html": "<p>Hello <b>Ada</b></p>"
        }),
        3,
    );
    let job = app.wait_for_status(&id, "succeeded", Duration::from_secs(15));
    let messages = smtp.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(messages.len(), 1);
    let mail = &messages[0];

    assert_eq!(mail.mail_from, "noreply@example.com");
    assert_eq!(
        mail.rcpt_to,
        [
            "ada@example.com",
            "bob@example.org",
            "cy@example.net",
            "hidden@example.com"
        ]
    );
    let header = |name: &str| {
        mail.header(name)
            .unwrap_or_else(|| panic!("no {name} header in\n{}", mail.data))
    };
    // lettre quotes a display name with a space, which RFC 5322 allows either way.
    assert_eq!(header("From"), "\"Onedyno Test\" <noreply@example.com>");
    assert_eq!(
        header("To"),
        "\"Ada Lovelace\" <ada@example.com>, bob@example.org"
    );
    assert_eq!(header("Cc"), "cy@example.net");
    assert_eq!(header("Reply-To"), "help@example.com");
    assert_eq!(header("Subject"), "Welcome to the app");
    assert_eq!(header("Message-ID"), format!("<{id}.onedyno@example.com>"));
    let date = header("Date");
    assert!(
        chrono::DateTime::parse_from_rfc2822(&date).is_ok(),
        "Date {date:?} is not RFC 2822"
    );
    assert!(
        header("Content-Type").starts_with("multipart/alternative"),
        "{}",
        mail.data
    );
    assert!(mail.header("Bcc").is_none(), "{}", mail.data);
    assert!(!mail.data.contains("hidden@example.com"), "{}", mail.data);
    let body = mail.body();
    assert!(body.contains("Content-Type: text/plain"), "{body}");
    assert!(body.contains("Content-Type: text/html"), "{body}");
    // The leading dot came through the client's stuffing and the server's unstuffing intact.
    assert!(
        body.contains("Hello Ada,\r\n.a line starting with a dot\r\nBye"),
        "{body}"
    );
    assert!(body.contains("<p>Hello <b>Ada</b></p>"), "{body}");

    let result = &job["result"];
    assert_eq!(result["message_id"], header("Message-ID"), "{job}");
    assert_eq!(
        result["accepted"],
        json!([
            "ada@example.com",
            "bob@example.org",
            "cy@example.net",
            "hidden@example.com"
        ]),
        "{job}"
    );
    let reply = result["smtp_reply"].as_str().unwrap_or_default();
    assert!(
        reply.starts_with("250") && reply.contains("queued as TEST1"),
        "{job}"
    );
}

#[test]
fn from_in_args_overrides_mail_from_and_one_body_is_one_part() {
    let redis = Redis::start();
    let smtp = SmtpServer::start();
    let app = app_sending_to(&redis, &smtp);
    let first = enqueue_email(
        &app,
        json!({"to": "a@example.com", "subject": "Text", "text": "Just text",
               "from": "Shop <shop@shop.example>"}),
        1,
    );
    app.wait_for_status(&first, "succeeded", Duration::from_secs(15));
    let second = enqueue_email(
        &app,
        json!({"to": "b@example.com", "subject": "Html", "html": "<i>only html</i>"}),
        1,
    );
    app.wait_for_status(&second, "succeeded", Duration::from_secs(15));
    let messages = smtp.wait_for_messages(2, Duration::from_secs(5));

    assert_eq!(messages[0].mail_from, "shop@shop.example");
    assert_eq!(
        messages[0].header("From").as_deref(),
        Some("Shop <shop@shop.example>")
    );
    let content_type = messages[0].header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "{}",
        messages[0].data
    );
    assert!(messages[0].body().contains("Just text"));
    assert_eq!(
        messages[0].header("Message-ID"),
        Some(format!("<{first}.onedyno@shop.example>"))
    );

    assert_eq!(messages[1].mail_from, "noreply@example.com");
    let content_type = messages[1].header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "{}",
        messages[1].data
    );
    assert!(messages[1].body().contains("<i>only html</i>"));
    // One pooled connection carried both messages.
    assert_eq!(smtp.connections(), 1, "{:?}", smtp.commands());
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
fn a_550_rejection_ends_dead_with_the_servers_reply() {
    let redis = Redis::start();
    let smtp = SmtpServer::start();
    let app = app_sending_to(&redis, &smtp);
    smtp.reply_times(
        Stage::Rcpt,
        "550 5.1.1 <nobody@example.com>: Recipient address rejected",
        1,
    );
    let rcpt = enqueue_email(
        &app,
        json!({"to": "nobody@example.com", "subject": "s", "text": "t"}),
        5,
    );
    let dead = app.wait_for_status(&rcpt, "dead", Duration::from_secs(15));
    assert_eq!(
        dead["attempts"], 1,
        "a permanent refusal is not retried: {dead}"
    );
    let error = dead["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains("550") && error.contains("Recipient address rejected"),
        "{dead}"
    );

    smtp.reply_times(Stage::Data, "554 5.7.1 Message rejected as spam", 1);
    let data = enqueue_email(
        &app,
        json!({"to": "a@example.com", "subject": "s", "text": "t"}),
        5,
    );
    let dead = app.wait_for_status(&data, "dead", Duration::from_secs(15));
    assert_eq!(dead["attempts"], 1, "{dead}");
    let error = dead["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains("554") && error.contains("rejected as spam"),
        "{dead}"
    );
    assert!(smtp.messages().is_empty());
}

#[test]
fn a_451_is_retried_and_then_delivered() {
    let redis = Redis::start();
    let smtp = SmtpServer::start();
    let app = app_sending_to(&redis, &smtp);
    smtp.reply_times(Stage::Rcpt, "451 4.7.1 Greylisted, try again later", 1);
    smtp.reply_times(Stage::Data, "452 4.3.1 Insufficient system storage", 1);
    let id = enqueue_email(
        &app,
        json!({"to": "a@example.com", "subject": "s", "text": "t"}),
        5,
    );
    let done = app.wait_for_status(&id, "succeeded", Duration::from_secs(20));
    assert_eq!(done["attempts"], 3, "{done}");
    let errors: Vec<&str> = done["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["message"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(errors.len(), 2, "{done}");
    assert!(
        errors[0].contains("451") && errors[0].contains("Greylisted"),
        "{done}"
    );
    assert!(errors[1].contains("452"), "{done}");
    let messages = smtp.wait_for_messages(1, Duration::from_secs(5));
    assert_eq!(messages.len(), 1, "delivered once");
    // Every attempt carried the same Message-ID, so a duplicate could be recognised.
    assert_eq!(
        messages[0].header("Message-ID"),
        Some(format!("<{id}.onedyno@example.com>"))
    );
}

#[test]
fn an_unreachable_server_is_retried_until_dead() {
    let redis = Redis::start();
    let closed = support::free_port();
    let url = format!("smtp://127.0.0.1:{closed}");
    let mut env = vec![("SMTP_URL", url.as_str()), ("MAIL_FROM", FROM)];
    env.extend(support::FAST_BACKOFF);
    let app = App::start_ready(&redis.url(), &env);
    let id = enqueue_email(
        &app,
        json!({"to": "a@example.com", "subject": "s", "text": "t"}),
        2,
    );
    let dead = app.wait_for_status(&id, "dead", Duration::from_secs(20));
    assert_eq!(dead["attempts"], 2, "a connection error is retried: {dead}");
    let error = dead["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(error.to_lowercase().contains("refused"), "{dead}");
}

#[test]
fn a_job_cancelled_mid_send_stops_and_the_next_one_still_goes_out() {
    let redis = Redis::start();
    let smtp = SmtpServer::start();
    let app = app_sending_to(&redis, &smtp);
    smtp.delay_data_reply(Duration::from_secs(4));
    let slow = enqueue_email(
        &app,
        json!({"to": "a@example.com", "subject": "1", "text": "t"}),
        1,
    );
    let in_data = support::eventually(Duration::from_secs(10), || {
        smtp.commands().iter().any(|c| c == "DATA").then_some(())
    });
    assert!(in_data.is_some(), "{:?}", smtp.commands());
    let asked = Instant::now();
    let (status, body) = app.cancel(&slow);
    assert_eq!(status, StatusCode::OK, "{body}");
    app.wait_for_status(&slow, "cancelled", Duration::from_secs(3));
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );

    // The cancelled transaction ends on its own; its connection is not handed to the next job
    // half-used, so the next message arrives whole, to its own recipient only.
    smtp.delay_data_reply(Duration::ZERO);
    let next = enqueue_email(
        &app,
        json!({"to": "b@example.com", "subject": "2", "text": "t"}),
        1,
    );
    app.wait_for_status(&next, "succeeded", Duration::from_secs(15));
    let messages = smtp.wait_for_messages(2, Duration::from_secs(10));
    let second = messages
        .iter()
        .find(|m| m.header("Subject").as_deref() == Some("2"))
        .expect("the second message");
    assert_eq!(second.rcpt_to, ["b@example.com"]);
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

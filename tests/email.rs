//! The `email` kind against a real SMTP server on loopback (tests/support/smtp_server.rs) and the
//! real binary: the message that arrives (headers, bodies, envelope), a 550 ending dead, a 451
//! retried, an unreachable server, and a cancellation in the middle of a send. Settings and
//! refused arguments are in email_settings.rs.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::smtp_server::{Delivered, SmtpServer, Stage};
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

const RECIPIENTS: [&str; 4] = [
    "ada@example.com",
    "bob@example.org",
    "cy@example.net",
    "hidden@example.com",
];

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
    assert_eq!(mail.rcpt_to, RECIPIENTS, "bcc is in the envelope");
    assert_headers(mail, &id);
    assert_bodies(mail);

    let result = &job["result"];
    assert_eq!(
        result["message_id"],
        format!("<{id}.onedyno@example.com>"),
        "{job}"
    );
    assert_eq!(result["accepted"], json!(RECIPIENTS), "{job}");
    let reply = result["smtp_reply"].as_str().unwrap_or_default();
    assert!(
        reply.starts_with("250") && reply.contains("queued as TEST1"),
        "{job}"
    );
}

/// The headers of the welcome message of job `id`; `Bcc` nowhere.
fn assert_headers(mail: &Delivered, id: &str) {
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
}

/// Both parts of the welcome message.
fn assert_bodies(mail: &Delivered) {
    let body = mail.body();
    assert!(body.contains("Content-Type: text/plain"), "{body}");
    assert!(body.contains("Content-Type: text/html"), "{body}");
    // The leading dot came through the client's stuffing and the server's unstuffing intact.
    assert!(
        body.contains("Hello Ada,\r\n.a line starting with a dot\r\nBye"),
        "{body}"
    );
    assert!(body.contains("<p>Hello <b>Ada</b></p>"), "{body}");
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

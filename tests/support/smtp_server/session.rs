//! One SMTP session: the commands, the scripted replies, and the state every session shares.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use super::{Delivered, Stage};

/// A session idle this long is closed (as real servers do).
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest message taken; larger is answered 552.
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// A reply that replaces the usual one of a stage.
pub(super) struct Scripted {
    pub(super) stage: Stage,
    pub(super) reply: String,
    /// How many more times; `None` for every time.
    pub(super) remaining: Option<usize>,
}

/// What every session of one server shares.
#[derive(Default)]
pub(super) struct State {
    pub(super) delivered: Vec<Delivered>,
    pub(super) commands: Vec<String>,
    pub(super) script: Vec<Scripted>,
    pub(super) data_delay: Duration,
    pub(super) connections: usize,
    /// The user and password AUTH PLAIN must give; `None` = no AUTH offered or needed.
    pub(super) login: Option<(String, String)>,
    /// The users that logged in, one per successful AUTH.
    pub(super) logins: Vec<String>,
}

impl State {
    /// The scripted reply for `stage`, if any is left, used up once.
    fn scripted(&mut self, stage: Stage) -> Option<String> {
        let index = self
            .script
            .iter()
            .position(|s| s.stage == stage && s.remaining != Some(0))?;
        let entry = &mut self.script[index];
        if let Some(n) = entry.remaining.as_mut() {
            *n -= 1;
        }
        Some(entry.reply.clone())
    }
}

pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One client connection.
pub(super) struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    state: Arc<Mutex<State>>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
    authenticated: bool,
}

impl Session {
    pub(super) fn new(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<Session> {
        stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
        lock(&state).connections += 1;
        Ok(Session {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            state,
            mail_from: None,
            rcpt_to: Vec::new(),
            authenticated: false,
        })
    }

    fn reply(&mut self, reply: &str) -> std::io::Result<()> {
        self.writer.write_all(format!("{reply}\r\n").as_bytes())
    }

    /// One line without its CRLF; `None` at end of stream.
    fn line(&mut self) -> std::io::Result<Option<String>> {
        let mut bytes = Vec::new();
        if self.reader.read_until(b'\n', &mut bytes)? == 0 {
            return Ok(None);
        }
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    pub(super) fn run(mut self) -> std::io::Result<()> {
        self.reply("220 localhost ESMTP onedyno-test")?;
        while let Some(line) = self.line()? {
            lock(&self.state).commands.push(line.clone());
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => self.ehlo()?,
                "AUTH" => self.auth(&line)?,
                "HELO" => self.reply("250 localhost")?,
                "MAIL" => self.mail(&line)?,
                "RCPT" => self.rcpt(&line)?,
                "DATA" => self.data()?,
                "RSET" => {
                    self.reset();
                    self.reply("250 2.0.0 Ok")?;
                }
                "NOOP" => self.reply("250 2.0.0 Ok")?,
                "QUIT" => {
                    self.reply("221 2.0.0 Bye")?;
                    return Ok(());
                }
                _ => self.reply("502 5.5.2 Command not recognized")?,
            }
        }
        Ok(())
    }

    fn needs_login(&self) -> bool {
        !self.authenticated && lock(&self.state).login.is_some()
    }

    fn ehlo(&mut self) -> std::io::Result<()> {
        let auth = if lock(&self.state).login.is_some() {
            "250-AUTH PLAIN\r\n"
        } else {
            ""
        };
        self.reply(&format!(
            "250-localhost\r\n{auth}250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760"
        ))
    }

    /// `AUTH PLAIN <base64 of "\0user\0password">`, the form lettre sends.
    fn auth(&mut self, line: &str) -> std::io::Result<()> {
        let mut words = line.split_whitespace().skip(1);
        let (Some(mechanism), Some(encoded)) = (words.next(), words.next()) else {
            return self.reply("501 5.5.4 Syntax: AUTH PLAIN <initial response>");
        };
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return self.reply("504 5.5.4 Unrecognized authentication type");
        }
        let decoded = base64_decode(encoded).unwrap_or_default();
        let given: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
        let mut state = lock(&self.state);
        let accepted = match (&state.login, given.as_slice()) {
            (Some((user, password)), [_, u, p]) => {
                *u == user.as_bytes() && *p == password.as_bytes()
            }
            _ => false,
        };
        if !accepted {
            drop(state);
            return self.reply("535 5.7.8 Authentication credentials invalid");
        }
        let user = String::from_utf8_lossy(given[1]).into_owned();
        state.logins.push(user);
        drop(state);
        self.authenticated = true;
        self.reply("235 2.7.0 Authentication successful")
    }

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    fn mail(&mut self, line: &str) -> std::io::Result<()> {
        if self.mail_from.is_some() {
            return self.reply("503 5.5.1 Nested MAIL command");
        }
        if self.needs_login() {
            return self.reply("530 5.7.0 Authentication required");
        }
        match path(line, "MAIL FROM:") {
            Some(from) => {
                self.mail_from = Some(from);
                self.reply("250 2.1.0 Ok")
            }
            None => self.reply("501 5.5.4 Syntax: MAIL FROM:<address>"),
        }
    }

    fn rcpt(&mut self, line: &str) -> std::io::Result<()> {
        if self.mail_from.is_none() {
            return self.reply("503 5.5.1 Need MAIL before RCPT");
        }
        let Some(to) = path(line, "RCPT TO:") else {
            return self.reply("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        let scripted = lock(&self.state).scripted(Stage::Rcpt);
        match scripted {
            Some(reply) => self.reply(&reply),
            None => {
                self.rcpt_to.push(to);
                self.reply("250 2.1.5 Ok")
            }
        }
    }

    fn data(&mut self) -> std::io::Result<()> {
        let Some(mail_from) = self.mail_from.clone() else {
            return self.reply("503 5.5.1 Need MAIL before DATA");
        };
        if self.rcpt_to.is_empty() {
            return self.reply("554 5.5.1 No valid recipients");
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>")?;
        let mut lines = Vec::new();
        let mut size = 0;
        loop {
            let Some(line) = self.line()? else {
                return Ok(());
            };
            if line == "." {
                break;
            }
            // Dot-unstuffing (RFC 5321 4.5.2): the client doubled every leading dot.
            let line = line.strip_prefix('.').map_or(line.clone(), str::to_string);
            size += line.len() + 2;
            lines.push(line);
        }
        let (scripted, delay) = {
            let mut state = lock(&self.state);
            (state.scripted(Stage::Data), state.data_delay)
        };
        thread::sleep(delay);
        let rcpt_to = std::mem::take(&mut self.rcpt_to);
        self.mail_from = None;
        if size > MAX_MESSAGE_BYTES {
            return self.reply("552 5.3.4 Message too big");
        }
        if let Some(reply) = scripted {
            return self.reply(&reply);
        }
        let mut state = lock(&self.state);
        state.delivered.push(Delivered {
            mail_from,
            rcpt_to,
            data: lines.join("\r\n"),
        });
        let queued = state.delivered.len();
        drop(state);
        self.reply(&format!("250 2.0.0 Ok: queued as TEST{queued}"))
    }
}

/// The address in `MAIL FROM:<a@b> SIZE=1` or `RCPT TO:<a@b>`, without its brackets.
fn path(line: &str, prefix: &str) -> Option<String> {
    let head = line.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = line[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_string())
}

/// Standard base64 (with padding) to bytes; `None` when it is not base64.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|c| *c == byte)? as u32;
        // Only the bits not yet written out are kept.
        bits = ((bits << 6) | value) & 0xFFFF;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

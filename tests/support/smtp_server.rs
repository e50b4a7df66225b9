//! A small real SMTP server on loopback for the `email` kind's tests: greeting, EHLO/HELO, MAIL
//! FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP and QUIT over plain TCP, one thread per
//! connection. It records every message it accepts with its envelope, and can be told to answer
//! a RCPT or the end of DATA with another reply (a 550 or a 451), or to answer DATA slowly.
//!
//! Every read has a timeout and every wait a deadline, so a stuck client ends its session
//! instead of hanging a test.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A session idle this long is closed (as real servers do).
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest message taken; larger is answered 552.
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;

/// Which reply a scripted answer replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The reply to each `RCPT TO`.
    Rcpt,
    /// The reply after the message data's final dot.
    Data,
}

/// A message the server accepted, with its envelope.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The `MAIL FROM` address.
    pub mail_from: String,
    /// The accepted `RCPT TO` addresses, in order.
    pub rcpt_to: Vec<String>,
    /// The message as received, dot-unstuffed, lines joined with CRLF.
    pub data: String,
}

impl Delivered {
    /// The message's top-level header block, with folded lines unfolded.
    pub fn head(&self) -> String {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        head.replace("\r\n ", " ").replace("\r\n\t", " ")
    }

    /// The value of the first top-level header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head().lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    }

    /// Everything after the top-level header block.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }
}

struct Scripted {
    stage: Stage,
    reply: String,
    /// How many more times; `None` for every time.
    remaining: Option<usize>,
}

#[derive(Default)]
struct State {
    delivered: Vec<Delivered>,
    commands: Vec<String>,
    script: Vec<Scripted>,
    data_delay: Duration,
    connections: usize,
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

/// The server; stops accepting on drop.
pub struct SmtpServer {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl SmtpServer {
    /// Listens on a free loopback port.
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the SMTP server");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (state, stop) = (state.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    thread::spawn(move || {
                        let _ = Session::new(stream, state).and_then(Session::run);
                    });
                }
            })
        };
        SmtpServer {
            port,
            state,
            stop,
            accept: Some(accept),
        }
    }

    /// `smtp://127.0.0.1:<port>`: plain SMTP, as `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Answers the next `times` replies of `stage` with `reply` (e.g. `451 4.7.1 Try later`).
    pub fn reply_times(&self, stage: Stage, reply: &str, times: usize) {
        self.lock().script.push(Scripted {
            stage,
            reply: reply.to_string(),
            remaining: Some(times),
        });
    }

    /// Answers every reply of `stage` with `reply` from now on.
    pub fn reply_always(&self, stage: Stage, reply: &str) {
        self.lock().script.push(Scripted {
            stage,
            reply: reply.to_string(),
            remaining: None,
        });
    }

    /// Waits this long before answering the end of each message's data.
    pub fn delay_data_reply(&self, delay: Duration) {
        self.lock().data_delay = delay;
    }

    /// The messages accepted so far.
    pub fn messages(&self) -> Vec<Delivered> {
        self.lock().delivered.clone()
    }

    /// Every command line received so far, in order (`AUTH` lines included; there are none).
    pub fn commands(&self) -> Vec<String> {
        self.lock().commands.clone()
    }

    /// How many connections were opened.
    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    /// Waits until at least `n` messages arrived; returns them all, or panics after `timeout`.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<Delivered> {
        super::eventually(timeout, || {
            let messages = self.messages();
            (messages.len() >= n).then_some(messages)
        })
        .unwrap_or_else(|| {
            panic!(
                "expected {n} messages, got {}; commands: {:?}",
                self.messages().len(),
                self.commands()
            )
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// One client connection.
struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    state: Arc<Mutex<State>>,
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

impl Session {
    fn new(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<Session> {
        stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
        lock(&state).connections += 1;
        Ok(Session {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            state,
            mail_from: None,
            rcpt_to: Vec::new(),
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

    fn run(mut self) -> std::io::Result<()> {
        self.reply("220 localhost ESMTP onedyno-test")?;
        while let Some(line) = self.line()? {
            lock(&self.state).commands.push(line.clone());
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match verb.as_str() {
                "EHLO" => self
                    .reply("250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760")?,
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

    fn reset(&mut self) {
        self.mail_from = None;
        self.rcpt_to.clear();
    }

    fn mail(&mut self, line: &str) -> std::io::Result<()> {
        if self.mail_from.is_some() {
            return self.reply("503 5.5.1 Nested MAIL command");
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

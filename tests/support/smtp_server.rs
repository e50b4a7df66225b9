//! A small real SMTP server on loopback for the `email` kind's tests: greeting, EHLO/HELO, MAIL
//! FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP and QUIT over plain TCP, one thread per
//! connection, and AUTH PLAIN when started with a login. It records every message it accepts with
//! its envelope, and can be told to answer a RCPT or the end of DATA with another reply (a 550 or
//! a 451), or to answer DATA slowly.
//!
//! Every read has a timeout and every wait a deadline, so a stuck client ends its session
//! instead of hanging a test.

mod session;

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use session::{Scripted, Session, State, lock};

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
        SmtpServer::listen(None)
    }

    /// Like [`SmtpServer::start`], but offers AUTH PLAIN and takes mail only after a login with
    /// this user and password.
    pub fn start_with_login(user: &str, password: &str) -> SmtpServer {
        SmtpServer::listen(Some((user.to_string(), password.to_string())))
    }

    fn listen(login: Option<(String, String)>) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the SMTP server");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State {
            login,
            ..State::default()
        }));
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

    /// The users that logged in, in order.
    pub fn logins(&self) -> Vec<String> {
        self.lock().logins.clone()
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

//! A real HTTP/1.1 server on loopback for the `http` kind's tests: it answers scripted replies
//! per path and records every request it received, so a test can say what the job sent and prove
//! that a refused job sent nothing.
//!
//! One thread per connection, keep-alive honoured (the app's client reuses connections), every
//! read bounded by a timeout, and the listener stopped on drop.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a connection may sit idle before the server closes it.
const IDLE: Duration = Duration::from_secs(30);
/// The most bytes an endless body sends before giving up on a client that keeps reading.
const ENDLESS_MAX_BYTES: usize = 256 * 1024 * 1024;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
    endless: bool,
}

impl Reply {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            endless: false,
        }
    }

    /// `status` with a `text/plain` body.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply::status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.as_bytes())
    }

    /// `status` with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply::status(status)
            .header("content-type", "application/json")
            .body(body.to_string().as_bytes())
    }

    /// A 200 whose chunked body never ends (up to 256 MiB), to prove the client stops reading.
    pub fn endless() -> Reply {
        Reply {
            endless: true,
            ..Reply::status(200).header("content-type", "text/plain")
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: &[u8]) -> Reply {
        self.body = body.to_vec();
        self
    }

    /// Waits this long before answering.
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When the request head arrived.
    pub at: Instant,
}

impl Received {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (Null when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Default)]
struct State {
    routes: HashMap<String, VecDeque<Reply>>,
    received: Vec<Received>,
}

/// The server; stops accepting on drop.
pub struct HttpServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl HttpServer {
    /// Starts a server on `127.0.0.1`, any free port.
    pub fn start() -> HttpServer {
        HttpServer::start_on("127.0.0.1")
    }

    /// Starts a server on `ip` (any loopback address on Linux), any free port.
    pub fn start_on(ip: &str) -> HttpServer {
        let listener = TcpListener::bind((ip, 0)).expect("bind the test HTTP server");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (state2, stop2) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let state = state2.clone();
                    thread::spawn(move || serve(stream, &state));
                }
            }
        });
        HttpServer { addr, state, stop }
    }

    /// Scripts `path`: the replies are given in order, and the last one repeats.
    pub fn route(&self, path: &str, replies: Vec<Reply>) {
        assert!(!replies.is_empty(), "a route needs a reply");
        let mut state = self.state.lock().unwrap();
        state.routes.insert(path.to_string(), replies.into());
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://ip:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// How many requests were received so far.
    pub fn received_count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    /// The requests received for `path`.
    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Serves requests on one connection until the client closes it or it idles out.
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(IDLE));
    // Without it, a reply written in more than one segment waits for the client's delayed ACK.
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let reply = {
            let mut state = state.lock().unwrap();
            let reply = state.routes.get_mut(&request.path).map(|replies| {
                if replies.len() > 1 {
                    replies.pop_front().expect("not empty")
                } else {
                    replies[0].clone()
                }
            });
            state.received.push(request);
            reply.unwrap_or_else(|| Reply::text(404, "no such route"))
        };
        thread::sleep(reply.delay);
        if write_reply(&mut writer, &reply).is_err() || reply.endless {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Received> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let at = Instant::now();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        path,
        headers,
        body,
        at,
    })
}

fn write_reply(writer: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if reply.endless {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        writer.write_all(head.as_bytes())?;
        let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "y".repeat(16 * 1024));
        let mut sent = 0;
        while sent < ENDLESS_MAX_BYTES {
            writer.write_all(chunk.as_bytes())?;
            sent += 16 * 1024;
        }
        return writer.write_all(b"0\r\n\r\n");
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", reply.body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&reply.body);
    writer.write_all(&bytes)
}

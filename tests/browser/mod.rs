//! A small Chrome DevTools Protocol client for the dashboard test: Debian's headless `chromium`
//! driven over `--remote-debugging-pipe` (JSON messages ending in a NUL byte on fds 3 and 4), so
//! no websocket client and no browser download is needed.
//!
//! Every wait here is bounded; a failed wait saves a screenshot beside the others.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, PipeWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one protocol call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Debian's chromium, if installed.
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A headless chromium with one page attached; killed on drop.
pub struct Browser {
    child: Child,
    to_chrome: PipeWriter,
    replies: Receiver<Value>,
    next_id: u64,
    session: String,
    /// Uncaught exceptions and console/security errors the page reported.
    problems: Arc<Mutex<Vec<String>>>,
    screenshots: PathBuf,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromium (`binary`) with a fresh profile and opens a blank page at `width` px.
    pub fn launch(binary: &Path, screenshots: &Path, width: u32) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        // Screenshots of an earlier run's failures would mislead.
        for entry in std::fs::read_dir(screenshots)
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with("failed-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let (chrome_reads, from_test) = std::io::pipe().expect("pipe");
        let (to_test, chrome_writes) = std::io::pipe().expect("pipe");
        let (read_fd, write_fd) = (chrome_reads.as_raw_fd(), chrome_writes.as_raw_fd());
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log file");
        let mut command = Command::new(binary);
        command
            .args([
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},900"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. Both ends are
        // first moved above 4 so that placing one on 3 or 4 cannot close the other.
        unsafe {
            command.pre_exec(move || {
                use nix::libc::{F_DUPFD_CLOEXEC, dup2, fcntl};
                let r = fcntl(read_fd, F_DUPFD_CLOEXEC, 10);
                let w = fcntl(write_fd, F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || dup2(r, 3) < 0 || dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start chromium");
        // The child holds its own copies; ours must close so EOF means chromium is gone.
        drop(chrome_reads);
        drop(chrome_writes);
        let (tx, replies) = channel();
        let problems = Arc::new(Mutex::new(Vec::new()));
        let seen = problems.clone();
        thread::spawn(move || {
            let mut reader = BufReader::new(to_test);
            let mut buf = Vec::new();
            while reader
                .read_until(0, &mut buf)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                buf.pop_if(|b| *b == 0);
                if let Ok(message) = serde_json::from_slice::<Value>(&buf) {
                    if message.get("id").is_some() {
                        let _ = tx.send(message);
                    } else {
                        note_problem(&message, &seen);
                    }
                }
                buf.clear();
            }
        });
        let mut browser = Browser {
            child,
            to_chrome: from_test,
            replies,
            next_id: 0,
            session: String::new(),
            problems,
            screenshots: screenshots.to_path_buf(),
            profile,
        };
        browser.attach(width);
        browser
    }

    fn attach(&mut self, width: u32) {
        let target = self.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = self.call_browser(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        self.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            self.call(domain, json!({}));
        }
        self.viewport(width, 900);
    }

    fn send(&mut self, method: &str, params: Value, session: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if session {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("encode");
        bytes.push(0);
        self.to_chrome
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("chromium is gone ({e}):\n{}", self.chromium_log()));
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .replies
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no reply to {method} ({e}):\n{}", self.chromium_log()));
            if reply["id"] == id {
                if let Some(error) = reply.get("error") {
                    panic!("{method} failed: {error}");
                }
                return reply["result"].clone();
            }
        }
    }

    /// A protocol call on the page.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, true)
    }

    /// A protocol call on the browser itself.
    pub fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, false)
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let reply = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(details) = reply.get("exceptionDetails") {
            panic!("{expression} threw: {details}");
        }
        reply["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy (not null, false, 0 or ""); returns its value.
    #[track_caller]
    pub fn wait_for(&mut self, what: &str, expression: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(expression);
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let shot = self.screenshot(&format!("failed-{}", slug(what)));
                panic!(
                    "timed out waiting for {what}: {expression} is {value}; screenshot {}; page problems: {:?}",
                    shot.display(),
                    self.problems()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens `url` and waits for its document to load.
    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for(
            "the page to load",
            &format!(
                "location.href.startsWith({}) && document.readyState === 'complete'",
                json!(url.split('#').next().unwrap_or(url))
            ),
            Duration::from_secs(10),
        );
    }

    /// Clicks the element `selector` names (which must exist).
    pub fn click(&mut self, selector: &str) {
        let clicked = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
            json!(selector)
        ));
        assert_eq!(clicked, json!(true), "nothing to click at {selector}");
    }

    /// Sets a form field's value as typing would (input and change events).
    pub fn fill(&mut self, selector: &str, value: &str) {
        let done = self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.value = {};
               e.dispatchEvent(new Event('input', {{bubbles: true}}));
               e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
            json!(selector),
            json!(value)
        ));
        assert_eq!(done, json!(true), "no field at {selector}");
    }

    /// The text of the element `selector` names, or null.
    pub fn text(&mut self, selector: &str) -> Value {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.textContent.trim() : null; }})()",
            json!(selector)
        ))
    }

    /// Sets the viewport (a phone-like one below 600 px).
    pub fn viewport(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}),
        );
    }

    /// Saves a PNG of the whole page as `<name>.png` in the screenshot directory.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let size = self.eval(
            "[document.documentElement.clientWidth, Math.max(document.documentElement.scrollHeight, innerHeight)]",
        );
        let shot = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}}),
        );
        let png = decode_base64(shot["data"].as_str().unwrap_or_default());
        std::fs::create_dir_all(&self.screenshots).expect("screenshot dir");
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// Exceptions and errors the page reported so far.
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }

    fn chromium_log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Uncaught exceptions, and console or security (CSP) errors; failed requests (a 401 the page
/// expects) are the network's, not the page's.
fn note_problem(message: &Value, problems: &Mutex<Vec<String>>) {
    let params = &message["params"];
    let problem = match message["method"].as_str() {
        Some("Runtime.exceptionThrown") => Some(params["exceptionDetails"].to_string()),
        Some("Log.entryAdded")
            if params["entry"]["level"] == "error" && params["entry"]["source"] != "network" =>
        {
            Some(params["entry"]["text"].to_string())
        }
        _ => None,
    };
    if let Some(problem) = problem {
        problems.lock().unwrap().push(problem);
    }
}

fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Standard base64 (the screenshot's PNG), without a crate for one call.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
    for chunk in sextets.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, s)| n | (u32::from(*s) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_with_and_without_padding() {
    assert_eq!(decode_base64("aGVsbG8="), b"hello");
    assert_eq!(decode_base64("aGk="), b"hi");
    assert_eq!(decode_base64("YWJj"), b"abc");
}

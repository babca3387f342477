//! Running the real `txn-mailer` binary against the real broker and SMTP server that `scripts/test` started.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
pub use streamcore::testkit::kafka::{bootstrap, create_topic, produce, read_topic, unique, wait_caught_up};

/// The SMTP server's URL and Maildir, from `scripts/test`. Panics (fails) without them.
pub fn smtp() -> (String, PathBuf) {
    let url = std::env::var("SMTP_URL").expect("SMTP_URL is not set: run the tests with scripts/test");
    let dir = std::env::var("SMTP_MAILDIR").expect("SMTP_MAILDIR is not set: run the tests with scripts/test");
    (url, PathBuf::from(dir))
}

/// A private SMTP server (for tests that stop and start it), via the project's own script.
pub struct SmtpServer {
    pub dir: PathBuf,
    pub url: String,
}

impl SmtpServer {
    pub fn start(dir: &Path) -> Self {
        let out = Command::new(script("smtp")).arg("start").arg(dir).output().expect("scripts/smtp");
        assert!(out.status.success(), "scripts/smtp start: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let url = text.lines().find_map(|l| l.strip_prefix("SMTP_URL=")).expect("SMTP_URL").to_owned();
        SmtpServer { dir: dir.to_path_buf(), url }
    }
    pub fn maildir(&self) -> PathBuf {
        self.dir.join("maildir")
    }
    pub fn stop(&self) {
        let out = Command::new(script("smtp")).arg("stop").arg(&self.dir).output().expect("scripts/smtp");
        assert!(out.status.success());
    }
    /// Start again on the same port, keeping the Maildir.
    pub fn restart(&self) {
        let out = Command::new(script("smtp")).arg("start").arg(&self.dir).output().expect("scripts/smtp");
        assert!(out.status.success(), "scripts/smtp start: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = Command::new(script("smtp")).arg("clean").arg(&self.dir).output();
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts").join(name)
}

/// Emails in a Maildir whose subject contains `needle`: txn_id -> how many.
pub fn emails(maildir: &Path, needle: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else { return out };
    for e in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else { continue };
        let Some(subject) = text.lines().find_map(|l| l.strip_prefix("Subject: High-value transaction ")) else { continue };
        if let Some((txn, _)) = subject.split_once(':') {
            if txn.contains(needle) {
                *out.entry(txn.to_owned()).or_insert(0) += 1;
            }
        }
    }
    out
}

/// Wait until at least `n` emails matching `needle` are in the Maildir.
pub fn wait_emails(maildir: &Path, needle: &str, n: usize, timeout: Duration) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = emails(maildir, needle);
        if got.values().sum::<usize>() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A running `txn-mailer` process.
pub struct Mailer {
    child: Child,
    pub port: u16,
    pub app: String,
}

pub struct MailerArgs<'a> {
    pub app: &'a str,
    pub input: &'a str,
    pub alerts: &'a str,
    pub smtp_url: &'a str,
    pub state: &'a Path,
}

impl Mailer {
    pub fn start(a: &MailerArgs<'_>) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_txn-mailer"))
            .args(["--bootstrap", &bootstrap(), "--application-id", a.app, "--input-topic", a.input, "--alerts-topic", a.alerts])
            .args(["--smtp-url", a.smtp_url, "--fx", "EUR=1.08,GBP=1.27", "--default-rep", "desk@example.com"])
            .args(["--http", &format!("127.0.0.1:{port}"), "--commit-interval-ms", "200"])
            .arg("--state-dir")
            .arg(a.state)
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start txn-mailer");
        let m = Mailer { child, port, app: a.app.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if m.get("/readyz").0 == 200 {
                return m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("txn-mailer did not become ready within 120 s");
    }

    /// GET a path: (status, body). Status 0 when the server does not answer.
    pub fn get(&self, path: &str) -> (u16, String) {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return (0, String::new()) };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        if write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_err() {
            return (0, String::new());
        }
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }

    /// Poll `path` until `done` holds for its JSON (state is queryable once committed), or fail after 60 s.
    pub fn wait_json(&self, path: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.json(path);
            if done(&v) || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until both stages (input and repartition topic) are processed and committed.
    pub fn wait_caught_up(&self, input: &str) -> bool {
        let bs = bootstrap();
        let repartition = streamcore::topology::repartition_topic(&self.app, txn_mailer::topology::BY_TXN_ID);
        [input, repartition.as_str()].iter().all(|t| wait_caught_up(&bs, &self.app, t, Duration::from_secs(90)))
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON body")
    }

    /// A counter's value from /metrics (sum over labels).
    pub fn metric(&self, name: &str) -> f64 {
        self.get("/metrics").1.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }

    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
        self.child.wait().expect("wait")
    }
}

impl Drop for Mailer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A transaction as JSON bytes, keyed by its account.
pub fn txn(id: &str, amount: &str, currency: &str) -> (Option<String>, Vec<u8>) {
    let v = serde_json::json!({"txn_id": id, "account_id": "acc-7", "amount": amount, "currency": currency,
        "merchant": "Acme Travel", "sales_rep": "kim@example.com", "ts": "2026-11-24T14:30:00.250Z"});
    (Some("acc-7".to_owned()), v.to_string().into_bytes())
}

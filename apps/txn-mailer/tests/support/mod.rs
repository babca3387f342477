//! Running the real `txn-mailer` binary against the real broker and SMTP server that `scripts/test` started.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use streamcore::runtime::Guarantee;
pub use streamcore::testkit::kafka::{bootstrap, create_topic, produce, read_to_end, read_topic, unique, wait_caught_up};
pub use streamcore::testkit::process::{free_port, ServiceProcess};

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

/// A private Kafka broker (for tests that stop and start it), via the project's own script.
pub struct KafkaBroker {
    dir: PathBuf,
    pub bootstrap: String,
}

impl KafkaBroker {
    pub fn start(dir: &Path) -> Self {
        let out = Command::new(script("kafka")).arg("start").arg(dir).output().expect("scripts/kafka");
        assert!(out.status.success(), "scripts/kafka start: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let bootstrap = text.lines().find_map(|l| l.strip_prefix("KAFKA_BOOTSTRAP=")).expect("KAFKA_BOOTSTRAP").to_owned();
        KafkaBroker { dir: dir.to_path_buf(), bootstrap }
    }
    /// SIGKILL the broker, then start it again on its port and data.
    pub fn kill_and_restart(&self) {
        for action in ["kill", "start"] {
            let out = Command::new(script("kafka")).arg(action).arg(&self.dir).output().expect("scripts/kafka");
            assert!(out.status.success(), "scripts/kafka {action}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        let _ = Command::new(script("kafka")).arg("stop").arg(&self.dir).output();
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

/// A running `txn-mailer` process.
pub struct Mailer {
    process: ServiceProcess,
    pub app: String,
    bootstrap: String,
}

pub struct MailerArgs<'a> {
    /// The broker: the one `scripts/test` started, unless a test runs its own.
    pub bootstrap: String,
    pub app: &'a str,
    pub input: &'a str,
    pub alerts: &'a str,
    pub smtp_url: &'a str,
    pub state: &'a Path,
    pub guarantee: Guarantee,
    /// Whether it advertises its URL, so that its lists are gathered from every instance.
    pub advertised: bool,
}

impl<'a> MailerArgs<'a> {
    /// At-least-once, the services' default.
    pub fn new(app: &'a str, input: &'a str, alerts: &'a str, smtp_url: &'a str, state: &'a Path) -> Self {
        MailerArgs { bootstrap: bootstrap(), app, input, alerts, smtp_url, state, guarantee: Guarantee::AtLeastOnce, advertised: false }
    }
}

impl std::ops::Deref for Mailer {
    type Target = ServiceProcess;
    fn deref(&self) -> &ServiceProcess {
        &self.process
    }
}

impl Mailer {
    pub fn start(a: &MailerArgs<'_>) -> Self {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let advertised = if a.advertised { vec!["--advertised-url", url.as_str()] } else { Vec::new() };
        let args: Vec<String> = [
            "--bootstrap",
            &a.bootstrap,
            "--application-id",
            a.app,
            "--input-topic",
            a.input,
            "--alerts-topic",
            a.alerts,
            "--smtp-url",
            a.smtp_url,
            "--fx",
            "EUR=1.08,GBP=1.27",
            "--default-rep",
            "desk@example.com",
            "--commit-interval-ms",
            "200",
            "--state-dir",
            &a.state.display().to_string(),
            "--guarantee",
            &a.guarantee.to_string(),
        ]
        .iter()
        .chain(&advertised)
        .map(|s| s.to_string())
        .collect();
        let process = ServiceProcess::start_on(port, env!("CARGO_BIN_EXE_txn-mailer"), &args);
        Mailer { process, app: a.app.to_owned(), bootstrap: a.bootstrap.clone() }
    }

    /// Poll `path` until `done` holds for its JSON, or fail after 60 s.
    pub fn wait_json(&self, path: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        self.process.wait_for(path, |status, v| status == 200 && done(v)).1
    }

    /// Wait until both stages (input and repartition topic) are processed and committed.
    pub fn wait_caught_up(&self, input: &str) -> bool {
        let bs = &self.bootstrap;
        let repartition = streamcore::topology::repartition_topic(&self.app, txn_mailer::topology::BY_TXN_ID);
        [input, repartition.as_str()].iter().all(|t| wait_caught_up(bs, &self.app, t, Duration::from_secs(90)))
    }

    pub fn kill(self) {
        self.process.kill()
    }

    /// Whether the process has exited (on its own: nothing here stops it).
    pub fn exited(&mut self) -> bool {
        self.process.exited()
    }

    /// Wait until the metric `name` reaches `at_least`, or fail after 60 s.
    pub fn wait_metric(&self, name: &str, at_least: f64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.process.metric(name) < at_least {
            assert!(Instant::now() < deadline, "{name} did not reach {at_least}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.process.terminate()
    }
}

/// A transaction as JSON bytes, keyed by its account.
pub fn txn(id: &str, amount: &str, currency: &str) -> (Option<String>, Vec<u8>) {
    let v = serde_json::json!({"txn_id": id, "account_id": "acc-7", "amount": amount, "currency": currency,
        "merchant": "Acme Travel", "sales_rep": "kim@example.com", "ts": "2026-11-24T14:30:00.250Z"});
    (Some("acc-7".to_owned()), v.to_string().into_bytes())
}

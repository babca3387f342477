//! A service binary running as a child process, for tests against the real broker: started on a free HTTP port,
//! awaited until `/readyz` answers 200, queried over plain HTTP/1.1, and stopped by SIGTERM or SIGKILL.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// A running service process.
pub struct ServiceProcess {
    child: Child,
    /// Its HTTP port.
    pub port: u16,
}

impl ServiceProcess {
    /// Start `binary` with `args` plus `--http 127.0.0.1:<free port>`, and wait up to two minutes until it is
    /// ready. Panics (fails the test) when it does not start or become ready.
    pub fn start(binary: &str, args: &[String]) -> Self {
        Self::start_on(free_port(), binary, args)
    }

    /// Like [`start`](Self::start), on a port chosen by the caller (who may need to tell the service its own
    /// address, as `--advertised-url` does).
    pub fn start_on(port: u16, binary: &str, args: &[String]) -> Self {
        // Logs are dropped unless STREAMSUITE_SERVICE_LOGS names a directory for them (one file per process).
        let stdout = std::env::var_os("STREAMSUITE_SERVICE_LOGS")
            .and_then(|dir| {
                let name = std::path::Path::new(binary).file_name()?.to_string_lossy().into_owned();
                let path = std::path::Path::new(&dir).join(format!("{name}-{port}.log"));
                std::fs::OpenOptions::new().create(true).append(true).open(path).ok()
            })
            .map_or_else(Stdio::null, Stdio::from);
        let child = Command::new(binary)
            .args(args)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let mut s = ServiceProcess { child, port };
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if s.get("/readyz").0 == 200 {
                return s;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("{binary} exited before it was ready: {status}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{binary} did not become ready within 120 s");
    }

    /// GET a path: (status, body). Status 0 when the server does not answer.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &[], "")
    }

    /// Any request with extra `headers` and a `body`: (status, body). Status 0 when the server does not answer.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let (status, _, body) = self.exchange(method, path, headers, body);
        (status, body)
    }

    /// Like [`request`](Self::request), with the answer's head too (status line and headers, names lower-cased):
    /// (status, head, body).
    pub fn exchange(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return (0, String::new(), String::new()) };
        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if write!(s, "{head}\r\n{body}").is_err() {
            return (0, String::new(), String::new());
        }
        let mut raw = String::new();
        let _ = s.read_to_string(&mut raw);
        let status = raw.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    /// GET a path that must answer 200 with JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    /// Poll `path` until `done` holds for its (status, JSON body) (state is queryable once committed), or 60 s passed;
    /// returns the last answer.
    pub fn wait_for(&self, path: &str, done: impl Fn(u16, &serde_json::Value) -> bool) -> (u16, serde_json::Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.get(path);
            let v = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
            if done(status, &v) || Instant::now() > deadline {
                return (status, v);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A metric's value from /metrics, summed over its label sets.
    pub fn metric(&self, name: &str) -> f64 {
        self.get("/metrics")
            .1
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .fold(0.0, |a, b| a + b)
    }

    /// Send a signal by name (`STOP`, `CONT`, ...) without waiting for anything.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
    }

    /// Whether the process has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The HTTP port it serves on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL, and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().unwrap_or_else(|e| panic!("waiting for the service: {e}"))
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

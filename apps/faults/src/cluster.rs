//! What the faults act on: the ticker's instances (each its own process, port and state directory, all in one
//! consumer group) and the broker (through `scripts/kafka`, when the suite was given its run directory).

use std::path::{Path, PathBuf};
use std::process::Command;
use streamcore::runtime::Guarantee;
use streamcore::testkit::process::{free_port, ServiceProcess};

/// One ticker instance: a process, or none while it is down.
pub struct Instance {
    /// The running process.
    pub process: Option<ServiceProcess>,
    state: PathBuf,
    port: u16,
}

/// The instances of one run, sharing an application id.
pub struct Cluster {
    /// The instances.
    pub instances: Vec<Instance>,
    binary: PathBuf,
    args: Vec<String>,
    exits: usize,
    /// Standby replicas each instance keeps (which needs each to advertise its URL).
    standby_replicas: usize,
}

impl Cluster {
    /// `count` instances of the ticker at `binary`, reading topics under `prefix` as application `app`, each
    /// keeping `standby_replicas` standby replicas.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        binary: &Path,
        bootstrap: &str,
        app: &str,
        prefix: &str,
        guarantee: Guarantee,
        dir: &Path,
        count: usize,
        standby_replicas: usize,
    ) -> Self {
        let args: Vec<String> = [
            "--bootstrap",
            bootstrap,
            "--application-id",
            app,
            "--topic-prefix",
            prefix,
            "--guarantee",
            &guarantee.to_string(),
            "--commit-interval-ms",
            "200",
            "--close-when-idle",
            "off",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let instances =
            (0..count).map(|i| Instance { process: None, state: dir.join(format!("instance-{i}")), port: free_port() }).collect();
        Cluster { instances, binary: binary.to_path_buf(), args, exits: 0, standby_replicas }
    }

    /// Start instance `i` on its state directory (and its port, so its address stays the same).
    pub fn start(&mut self, i: usize) {
        let inst = &mut self.instances[i];
        let mut args = self.args.clone();
        args.extend(["--state-dir".to_owned(), inst.state.display().to_string()]);
        if self.standby_replicas > 0 {
            let url = format!("http://127.0.0.1:{}", inst.port);
            args.extend(["--standby-replicas".to_owned(), self.standby_replicas.to_string(), "--advertised-url".to_owned(), url]);
        }
        inst.process = Some(ServiceProcess::start_on(inst.port, &self.binary.display().to_string(), &args));
    }

    /// SIGKILL instance `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(p) = self.instances[i].process.take() {
            p.kill();
        }
    }

    /// SIGTERM instance `i` and wait for it to exit.
    pub fn terminate(&mut self, i: usize) {
        if let Some(p) = self.instances[i].process.take() {
            p.terminate();
        }
    }

    /// Delete instance `i`'s state directory (it must be down).
    pub fn delete_state(&self, i: usize) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.instances[i].state) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Send instance `i` a signal (`STOP`, `CONT`).
    pub fn signal(&self, i: usize, name: &str) {
        if let Some(p) = &self.instances[i].process {
            p.signal(name);
        }
    }

    /// Start again every instance that exited on its own (as a supervisor with a restart policy would);
    /// returns how many.
    pub fn restart_exited(&mut self) -> usize {
        let exited: Vec<usize> =
            (0..self.instances.len()).filter(|&i| self.instances[i].process.as_mut().is_some_and(ServiceProcess::exited)).collect();
        for &i in &exited {
            self.instances[i].process = None;
            self.start(i);
        }
        self.exits += exited.len();
        exited.len()
    }

    /// How many times an instance exited on its own so far.
    pub fn exits(&self) -> usize {
        self.exits
    }

    /// A metric of instance `i` (0 while it is down).
    pub fn metric_of(&self, i: usize, name: &str) -> f64 {
        self.instances[i].process.as_ref().map_or(0.0, |p| p.metric(name))
    }

    /// The sum of a metric over the running instances.
    pub fn metric(&self, name: &str) -> f64 {
        self.instances.iter().filter_map(|i| i.process.as_ref()).map(|p| p.metric(name)).fold(0.0, |a, b| a + b)
    }
}

/// The broker, through `scripts/kafka` and its run directory.
pub struct Broker {
    script: PathBuf,
    run_dir: PathBuf,
}

impl Broker {
    /// The broker `scripts/kafka` runs in `run_dir`.
    pub fn new(script: PathBuf, run_dir: PathBuf) -> Self {
        Broker { script, run_dir }
    }

    /// `scripts/kafka term|kill|start` on the run directory.
    pub fn run(&self, action: &str) -> anyhow::Result<()> {
        let status = Command::new(&self.script).args([action, &self.run_dir.display().to_string()]).status()?;
        anyhow::ensure!(status.success(), "scripts/kafka {action} failed: {status}");
        Ok(())
    }
}

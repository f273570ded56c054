//! The servers under test and what the bench reads about processes.
//!
//! `parley` instances run as child processes (`PARLEY_BIND=127.0.0.1:0`; the bench waits for
//! the `listening on http://…` line and keeps draining their output). The main pair A and B
//! share the fresh PostgreSQL database and one Redis; scenarios start extra instances when they
//! need one (in-process bus, SQLite, a fresh process for memory, a counting proxy). Memory is
//! VmRSS from `/proc/PID/status`; CPU is utime+stime from `/proc/PID/stat`, turned into cores
//! used over a wall-clock interval; the machine's busy share comes from `/proc/stat`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// What every instance shares: binary, database, Redis, secret.
#[derive(Clone)]
pub struct Env {
    pub bin: PathBuf,
    /// PostgreSQL URL of the bench database (with `sslmode=disable`).
    pub database_url: String,
    pub redis_url: String,
    pub jwt_secret: String,
    pub pool_size: u32,
    /// Scratch space (SQLite files).
    pub work_dir: PathBuf,
}

/// How to start one instance.
pub struct Spec {
    pub label: String,
    pub database_url: String,
    /// `None`: the in-process bus.
    pub redis_url: Option<String>,
    pub pool_size: u32,
}

impl Env {
    /// An instance on the bench database with the Redis bus.
    pub fn spec(&self, label: &str) -> Spec {
        Spec {
            label: label.into(),
            database_url: self.database_url.clone(),
            redis_url: Some(self.redis_url.clone()),
            pool_size: self.pool_size,
        }
    }
}

pub struct Instance {
    pub label: String,
    pub addr: String,
    pub pid: u32,
    /// Spawn → `listening on` line.
    pub startup: Duration,
    child: Child,
    logs: Arc<Mutex<VecDeque<String>>>,
}

impl Instance {
    pub async fn spawn(env: &Env, spec: Spec) -> Result<Self> {
        let mut cmd = Command::new(&env.bin);
        cmd.arg("serve")
            .env("DATABASE_URL", &spec.database_url)
            .env("PARLEY_BIND", "127.0.0.1:0")
            .env("PARLEY_JWT_SECRET", &env.jwt_secret)
            .env("PARLEY_DEMO", "false")
            .env("PARLEY_SEND_RATE_PER_SEC", "1000000")
            .env("PARLEY_SEND_BURST", "1000000")
            // The `notify` scenario's webhook receiver listens on 127.0.0.1.
            .env("PARLEY_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("PARLEY_DB_POOL_SIZE", spec.pool_size.to_string())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match &spec.redis_url {
            Some(url) => cmd.env("REDIS_URL", url),
            None => cmd.env_remove("REDIS_URL"),
        };
        let started = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("starting {}", env.bin.display()))?;
        let pid = child.id().context("the child has no pid")?;
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        let (addr_tx, mut addr_rx) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(drain(out, logs.clone(), Some(addr_tx)));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(drain(err, logs.clone(), None));
        }
        let addr = tokio::time::timeout(Duration::from_secs(60), addr_rx.recv()).await.ok().flatten();
        let startup = started.elapsed();
        let Some(addr) = addr else {
            let _ = child.start_kill();
            bail!("{} did not print `listening on`; its output:\n{}", spec.label, tail(&logs));
        };
        Ok(Self { label: spec.label, addr, pid, startup, child, logs })
    }

    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws(&self) -> String {
        format!("ws://{}/graphql", self.addr)
    }

    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(&format!("/proc/{}/status", self.pid))
    }

    /// Its resident memory split by kind: `RssAnon` (heap, stacks: what the process allocated),
    /// `RssFile` (pages of the binary and libraries, mapped once touched) and, of `RssAnon`,
    /// `AnonHugePages` (transparent huge pages: mimalloc asks for them, and each counts its
    /// whole 2 MiB once touched; none where the kernel has no `smaps_rollup`), in KiB.
    pub fn rss_split_kib(&self) -> Result<(u64, u64, Option<u64>)> {
        let path = format!("/proc/{}/status", self.pid);
        let huge = status_kib(&format!("/proc/{}/smaps_rollup", self.pid), "AnonHugePages:").ok();
        Ok((status_kib(&path, "RssAnon:")?, status_kib(&path, "RssFile:")?, huge))
    }

    /// Its recent output, for error reports.
    pub fn recent_output(&self) -> String {
        tail(&self.logs)
    }

    /// Fails when the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited ({status}); its output:\n{}", self.label, self.recent_output());
        }
        Ok(())
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

async fn drain(
    stream: impl AsyncRead + Unpin,
    logs: Arc<Mutex<VecDeque<String>>>,
    addr: Option<mpsc::UnboundedSender<String>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let (Some(tx), Some(rest)) = (&addr, line.strip_prefix("listening on http://")) {
            let _ = tx.send(rest.trim().to_owned());
        }
        let mut logs = logs.lock().unwrap_or_else(|p| p.into_inner());
        if logs.len() >= 200 {
            logs.pop_front();
        }
        logs.push_back(line);
    }
}

fn tail(logs: &Mutex<VecDeque<String>>) -> String {
    let logs = logs.lock().unwrap_or_else(|p| p.into_inner());
    logs.iter().cloned().collect::<Vec<_>>().join("\n")
}

/// VmRSS in KiB.
pub fn rss_kib(status_path: &str) -> Result<u64> {
    status_kib(status_path, "VmRSS:")
}

/// One `… kB` line of a `/proc/PID/status` (or `smaps_rollup`) file.
fn status_kib(status_path: &str, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(status_path).with_context(|| format!("reading {status_path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} line in {status_path}"))
}

/// The bench process's own VmRSS.
pub fn self_rss_kib() -> Result<u64> {
    rss_kib("/proc/self/status")
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system) of a process; `None` for the bench itself.
pub fn cpu_time(pid: Option<u32>) -> Result<Duration> {
    let path = pid.map(|p| format!("/proc/{p}/stat")).unwrap_or_else(|| "/proc/self/stat".into());
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the `(comm)`, which may contain spaces: state is field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')').map(|(_, r)| r).context("odd /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        [11, 12].iter().map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0)).sum();
    Ok(Duration::from_secs_f64(ticks / clock_ticks()))
}

/// Jiffies of the whole machine since boot.
#[derive(Clone, Copy)]
struct Jiffies {
    busy: u64,
    /// Time the hypervisor ran something else while this machine had work (in `busy` too).
    steal: u64,
    total: u64,
}

fn machine_jiffies() -> Jiffies {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> =
        text.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Jiffies { busy: total.saturating_sub(idle), steal: values.get(7).copied().unwrap_or(0), total }
}

/// CPU use of some processes (and the machine) over an interval.
pub struct CpuMeter {
    procs: Vec<(String, Option<u32>, Duration)>,
    /// PostgreSQL backends and Redis: CPU time per pid at the start.
    services: Vec<(&'static str, HashMap<u32, Duration>)>,
    machine: Jiffies,
    started: Instant,
}

/// Process names whose CPU is summed as the "services" under the servers.
const SERVICES: [&str; 2] = ["postgres", "redis-server"];

/// CPU time of every process named `name`, by pid.
fn by_name(name: &str) -> HashMap<u32, Duration> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return HashMap::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|pid| Some((pid, cpu_time(Some(pid)).ok()?)))
        .collect()
}

impl CpuMeter {
    /// `procs`: label and pid (`None`: the bench itself). PostgreSQL (all backends, including
    /// other clients of the server) and Redis are measured too.
    pub fn start(procs: &[(&str, Option<u32>)]) -> Self {
        let mut seen = std::collections::HashSet::new();
        let procs = procs
            .iter()
            .filter(|(_, p)| seen.insert(*p))
            .map(|(l, p)| (l.to_string(), *p, cpu_time(*p).unwrap_or_default()))
            .collect();
        let services = SERVICES.iter().map(|name| (*name, by_name(name))).collect();
        Self { procs, services, machine: machine_jiffies(), started: Instant::now() }
    }

    /// Cores used per process since `start`, and the machine's busy share.
    pub fn finish(&self) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64().max(1e-6);
        let procs = self
            .procs
            .iter()
            .map(|(label, pid, before)| {
                let used = cpu_time(*pid).unwrap_or_default().saturating_sub(*before).as_secs_f64();
                (label.clone(), *pid, used / wall)
            })
            .collect();
        let services = self
            .services
            .iter()
            .map(|(name, before)| {
                let used: f64 = by_name(name)
                    .iter()
                    .map(|(pid, now)| {
                        now.saturating_sub(before.get(pid).copied().unwrap_or_default()).as_secs_f64()
                    })
                    .sum();
                (name.to_string(), used / wall)
            })
            .collect();
        let (now, then) = (machine_jiffies(), self.machine);
        let dt = now.total.saturating_sub(then.total);
        let share = |now: u64, then: u64| (dt > 0).then(|| now.saturating_sub(then) as f64 / dt as f64);
        CpuUse { procs, services, machine: share(now.busy, then.busy), steal: share(now.steal, then.steal) }
    }
}

pub struct CpuUse {
    /// Label, pid (`None`: the bench) and cores used.
    pub procs: Vec<(String, Option<u32>, f64)>,
    /// `postgres` (all backends) and `redis-server`, cores used.
    pub services: Vec<(String, f64)>,
    /// Busy share of all cores.
    pub machine: Option<f64>,
    /// Share of all cores the hypervisor gave to other machines while this one had work: a
    /// stall with little CPU used and steal > 0 was not Parley's.
    pub steal: Option<f64>,
}

impl CpuUse {
    /// Cores used by the server processes (everything but the bench).
    pub fn servers(&self) -> f64 {
        self.procs.iter().filter(|(_, pid, _)| pid.is_some()).map(|(_, _, c)| c).sum()
    }

    pub fn notes(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.procs.iter().map(|(label, _, cores)| format!("cpu {label} {cores:.2} cores")).collect();
        out.extend(self.services.iter().map(|(name, cores)| format!("cpu {name} {cores:.2} cores")));
        if let Some(m) = self.machine {
            out.push(format!("machine {:.0}% busy", 100.0 * m));
        }
        if let Some(s) = self.steal.filter(|s| *s > 0.0) {
            out.push(format!("steal {:.2}%", 100.0 * s));
        }
        out
    }
}

/// Cores, memory, kernel and CPU model of this machine.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: Option<u64> = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok());
    serde_json::json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu": model,
        "memory_gib": mem_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

/// Sums of every un-labelled and labelled sample per metric name in Prometheus text.
pub fn prometheus_sums(text: &str) -> HashMap<&str, f64> {
    let mut sums = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let name = series.split('{').next().unwrap_or(series);
        if let Ok(value) = value.parse::<f64>() {
            *sums.entry(name).or_insert(0.0) += value;
        }
    }
    sums
}

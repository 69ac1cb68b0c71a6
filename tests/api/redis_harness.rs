//! Real `redis-server` processes (single node or a three-master Cluster) and real
//! `sentinel serve` processes for the Redis tests: loopback only, free ports, a temp dir each,
//! killed on drop.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sentinel::store::redis::{RedisOptions, RedisStore};
use sentinel::store::Store;
use tempfile::TempDir;

/// A loopback port nothing listens on right now, for a child process to bind (and, for Cluster
/// nodes, whose bus port +10000 is free too).
///
/// Ports come from below the kernel's ephemeral range (32768-60999 on Linux): a port picked
/// there could be taken, between this check and the child's bind, as the local port of some
/// other test's outgoing connection. Each test process walks the window from its own
/// starting point (from its pid) and never hands a port out twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 12_000;
    const SPAN: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7_919)) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback port pair found below the ephemeral range");
}

fn require(binary: &str) {
    let found = Command::new(binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{binary} is not installed: run scripts/test.sh (it installs redis-server and redis-tools)"
    );
}

/// One `redis-server` on a loopback port in its own temp dir, with every write fsynced to the
/// append-only file (`appendfsync always`), so a killed server restarts with all it answered.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        Self::spawn(&[]).await
    }

    async fn spawn(extra: &[&str]) -> RedisServer {
        require("redis-server");
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.launch().await;
        server
    }

    async fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        self.wait_until_answering().await;
    }

    /// SIGKILL, like a crash; `restart` brings it back on the same port and data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    async fn wait_until_answering(&self) {
        let client = redis::Client::open(self.url()).expect("url");
        let what = format!("redis-server on port {} to answer PING", self.port);
        crate::helpers::eventually(Duration::from_secs(10), &what, || async {
            let ping = async {
                let mut c = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING").query_async::<String>(&mut c).await.ok()
            };
            tokio::time::timeout(Duration::from_millis(500), ping)
                .await
                .ok()
                .flatten()
        })
        .await;
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// A store on this server with its own key prefix.
    pub async fn store(&self) -> Arc<dyn Store> {
        Arc::new(connect(&self.url(), "sentinel").await)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // A paused server ignores SIGTERM until continued; SIGKILL works regardless.
        self.kill();
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// A Redis store on `url` whose keys start with `prefix`.
pub async fn connect(url: &str, prefix: &str) -> RedisStore {
    let options = RedisOptions {
        prefix: prefix.to_string(),
        ..RedisOptions::default()
    };
    let url = sentinel::config::RedisUrl::parse(url).expect("a redis URL");
    RedisStore::connect(&url, options)
        .await
        .expect("redis store connects")
}

/// Three masters, no replicas, every slot assigned.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        require("redis-cli");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(
                RedisServer::spawn(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                    "--appendonly",
                    "no",
                ])
                .await,
            );
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_ok().await;
        cluster
    }

    async fn wait_until_ok(&self) {
        for node in &self.nodes {
            let client = redis::Client::open(node.url()).expect("url");
            let what = format!("cluster node {} to report a converged cluster", node.url());
            crate::helpers::eventually(Duration::from_secs(20), &what, || async {
                let mut c = client.get_multiplexed_async_connection().await.ok()?;
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut c)
                    .await
                    .ok()?;
                (info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3"))
                    .then_some(())
            })
            .await;
        }
    }

    /// The `redis+cluster://` form of the seed list.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

/// A real `sentinel serve` process, killed (SIGKILL) on drop.
pub struct Replica {
    pub grpc_addr: String,
    pub http_addr: String,
    child: Child,
    _dir: TempDir,
}

impl Replica {
    /// Starts a replica and waits until it is ready.
    pub async fn start(redis_url: &str, env: &[(&str, &str)]) -> Replica {
        let replica = Replica::spawn(redis_url, env);
        assert!(
            replica.wait_ready(Duration::from_secs(20)).await,
            "replica did not become ready:\n{}",
            replica.log()
        );
        replica
    }

    /// Starts a replica on the in-memory store and waits until it is ready.
    pub async fn start_in_memory(env: &[(&str, &str)]) -> Replica {
        // A blank SENTINEL_REDIS_URL counts as unset.
        Replica::start("", env).await
    }

    /// Starts a replica without waiting for it.
    pub fn spawn(redis_url: &str, env: &[(&str, &str)]) -> Replica {
        let dir = tempfile::tempdir().expect("temp dir");
        let grpc_addr = format!("127.0.0.1:{}", free_port());
        let http_addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("sentinel.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sentinel"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SENTINEL_GRPC_ADDR", &grpc_addr)
            .env("SENTINEL_HTTP_ADDR", &http_addr)
            .env("SENTINEL_REDIS_URL", redis_url)
            .env("SENTINEL_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sentinel serve starts");
        Replica {
            grpc_addr,
            http_addr,
            child,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("sentinel.log")).unwrap_or_default()
    }

    /// `GET /readyz` status, or None when the sidecar does not answer.
    pub async fn readyz(&self) -> Option<u16> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("http client");
        let r = client
            .get(format!("http://{}/readyz", self.http_addr))
            .send()
            .await
            .ok()?;
        Some(r.status().as_u16())
    }

    /// The value of an unlabelled sample on this replica's `/metrics`, when it answers.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .expect("http client")
            .get(format!("http://{}/metrics", self.http_addr))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    pub async fn wait_ready(&self, limit: Duration) -> bool {
        self.wait_readyz(200, limit).await
    }

    pub async fn wait_readyz(&self, status: u16, limit: Duration) -> bool {
        crate::helpers::within(limit, || async {
            (self.readyz().await == Some(status)).then_some(())
        })
        .await
        .is_some()
    }

    pub async fn client(&self) -> crate::helpers::Client {
        let channel = tonic::transport::Channel::from_shared(self.url())
            .expect("url")
            .connect()
            .await
            .expect("connects");
        crate::helpers::Client {
            inner: sentinel::grpc::pb::sentinel_client::SentinelClient::new(channel),
            key: None,
        }
    }

    /// SIGKILL: no shutdown hooks, in-flight work lost, exactly like a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

//! The real `sentinel serve` binary (memory or Redis) and a real redis-server for the
//! client's tests. The binary is `$SENTINEL_BIN` or the workspace's `target/debug/sentinel`
//! (`cargo test` at the workspace root builds it; `cargo build` otherwise).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const STARTUP: Duration = Duration::from_secs(30);

fn binary() -> PathBuf {
    let path = std::env::var_os("SENTINEL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/sentinel")
        });
    assert!(
        path.exists(),
        "{} not found: run `cargo build` first (or set SENTINEL_BIN)",
        path.display()
    );
    path
}

/// Reads a child's output until a line matches; returns what `matches` made of it.
async fn wait_for_line<T>(
    child: &mut Child,
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    matches: impl Fn(&str) -> Option<T>,
) -> T {
    let mut lines = BufReader::new(stream).lines();
    let found = tokio::time::timeout(STARTUP, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(found) = matches(&line) {
                return Some(found);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(found)) => {
            // Keep draining so the child never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            found
        }
        _ => {
            let _ = child.kill().await;
            panic!("the process did not report that it was ready");
        }
    }
}

pub struct Redis {
    child: Child,
    pub url: String,
}

impl Redis {
    pub async fn start() -> Redis {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let stdout = child.stdout.take().unwrap();
        wait_for_line(&mut child, stdout, |l| {
            l.contains("Ready to accept connections").then_some(())
        })
        .await;
        Redis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }
}

/// One `sentinel serve` process. `restart` binds the same ports again.
pub struct Server {
    child: Option<Child>,
    env: Vec<(String, String)>,
    pub grpc_addr: String,
    pub http_addr: String,
}

impl Server {
    pub async fn memory() -> Server {
        Server::start(vec![]).await
    }

    pub async fn redis(redis: &Redis) -> Server {
        Server::start(vec![("SENTINEL_REDIS_URL".into(), redis.url.clone())]).await
    }

    pub async fn start(env: Vec<(String, String)>) -> Server {
        let mut server = Server {
            child: None,
            env,
            grpc_addr: "127.0.0.1:0".into(),
            http_addr: "127.0.0.1:0".into(),
        };
        server.launch().await;
        server
    }

    async fn launch(&mut self) {
        let mut child = Command::new(binary())
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SENTINEL_GRPC_ADDR", &self.grpc_addr)
            .env("SENTINEL_HTTP_ADDR", &self.http_addr)
            .env("SENTINEL_LOG_FORMAT", "json")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sentinel serve starts");
        let stderr = child.stderr.take().unwrap();
        let (grpc, http) = wait_for_line(&mut child, stderr, |line| {
            let record: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = record.get("fields")?;
            (fields.get("message")?.as_str()? == "sentinel is serving").then(|| {
                (
                    fields["grpc_addr"].as_str().unwrap_or_default().to_string(),
                    fields["http_addr"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .await;
        self.grpc_addr = grpc;
        self.http_addr = http;
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub fn jwks_url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.http_addr)
    }

    /// SIGKILL, like a crashed replica.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    pub async fn restart(&mut self) {
        self.kill().await;
        self.launch().await;
    }
}

/// A fresh agent id per test.
pub fn agent() -> String {
    format!("bot-{}", &uuid_like())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

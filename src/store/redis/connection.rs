//! The Redis handle shared by every Redis-backed component: where the data lives (one node
//! or a Cluster), one connection type for both, every call under a deadline with one retry
//! on a dropped connection, and the stable bucket (Cluster hash tag) of a key.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, ScriptInvocation, Value};

use super::{RedisOptions, BUCKETS};
use crate::config::RedisUrl;
use crate::outbound::{Failure, GaveUp, RetryPolicy};
use crate::store::StoreError;

/// What a call answers: Redis's reply, or why there is none.
type Reply<T> = Result<T, StoreError>;

/// One more attempt after a dropped connection, soon: the connection manager reconnects.
const RETRY: RetryPolicy = RetryPolicy {
    name: "redis",
    retries: 1,
    first_wait: Duration::from_millis(20),
    max_wait: Duration::from_millis(20),
    longest_retry_after: Duration::ZERO,
};

/// One connection type for both deployments: commands go through the same code.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection, a key prefix and a deadline: what every Redis-backed component needs.
pub(crate) struct Redis {
    conn: Conn,
    prefix: String,
    timeout: Duration,
}

impl Redis {
    /// Connects to the URL (one node or a Cluster, see `docs/redis.md`). A single node is
    /// connected lazily: a replica may start while Redis is down; readiness says so.
    pub(crate) async fn open(url: &RedisUrl, options: &RedisOptions) -> Reply<Redis> {
        if options.prefix.is_empty() || options.prefix.contains(['{', '}']) {
            return Err(StoreError::Unavailable(
                "redis key prefix must be non-empty and contain no braces".into(),
            ));
        }
        let timeout = options.timeout;
        let conn = match url {
            RedisUrl::Single(url) => {
                let client = client_for(url.expose()).map_err(unavailable)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                Conn::Single(
                    ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?,
                )
            }
            RedisUrl::Cluster(_) => {
                let client = redis::cluster::ClusterClientBuilder::new(url.nodes())
                    .tcp_settings(tcp_settings())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .build()
                    .map_err(unavailable)?;
                let conn = tokio::time::timeout(timeout * 5, client.get_async_connection())
                    .await
                    .map_err(|_| StoreError::Unavailable("redis cluster did not answer".into()))?
                    .map_err(unavailable)?;
                Conn::Cluster(conn)
            }
        };
        Ok(Redis {
            conn,
            prefix: options.prefix.clone(),
            timeout,
        })
    }

    /// One field of a hash, under the deadline.
    pub(crate) async fn hget(&self, what: &str, key: &str, field: &str) -> Reply<Option<Vec<u8>>> {
        self.query(what, redis::cmd("HGET").arg(key).arg(field))
            .await
    }

    /// `<prefix>:{b<bucket>}:<rest>`: the bucket is the Cluster hash tag.
    pub(crate) fn key(&self, bucket: u32, rest: &str) -> String {
        format!("{}:{{b{bucket}}}:{rest}", self.prefix)
    }

    /// One command under the deadline, retried as [`Redis::call`] retries.
    pub(crate) async fn query<T: FromRedisValue>(&self, what: &str, cmd: &Cmd) -> Reply<T> {
        self.call(what, |mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    /// One pipeline (one round trip) under the deadline, retried as [`Redis::call`] retries.
    pub(crate) async fn query_pipe<T: FromRedisValue>(
        &self,
        what: &str,
        pipe: &Pipeline,
    ) -> Reply<T> {
        self.call(what, |mut c| async move { pipe.query_async(&mut c).await })
            .await
    }

    /// One Lua script with its keys and arguments under the deadline (EVALSHA, loading the
    /// script when the server does not know it yet), retried as [`Redis::call`] retries.
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        what: &str,
        invocation: &ScriptInvocation<'_>,
    ) -> Reply<T> {
        self.call(what, |mut c| async move {
            invocation.invoke_async(&mut c).await
        })
        .await
    }

    /// Runs one Redis call under the store's deadline. A call that fails because the
    /// connection dropped is retried once while time remains: every write here is safe to
    /// repeat (creates are keyed by id, transitions are compare-and-set and converge).
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, f: F) -> Reply<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let called = RETRY.run(deadline, |_| async {
            f(self.conn.clone()).await.map_err(|e| {
                if e.is_connection_dropped() || e.is_io_error() {
                    Failure::transient(e)
                } else {
                    Failure::fatal(e)
                }
            })
        });
        called.await.map_err(|gave_up| match gave_up {
            GaveUp::Failed(e) | GaveUp::WaitTooLong { error: e, .. } => {
                StoreError::Unavailable(format!("{what}: {e}"))
            }
            GaveUp::Deadline => StoreError::Unavailable(format!(
                "{what}: redis did not answer within {} ms",
                self.timeout.as_millis()
            )),
        })
    }
}

/// A stable bucket for a string: FNV-1a, identical on every replica and every build.
pub(crate) fn bucket_of(s: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(BUCKETS)) as u32
}

/// Nagle's algorithm off: small pipelined commands must not wait for delayed ACKs.
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    redis::io::tcp::TcpSettings::default().set_nodelay(true)
}

pub(super) fn client_for(url: &str) -> Result<redis::Client, RedisError> {
    use redis::IntoConnectionInfo as _;
    redis::Client::open(url.into_connection_info()?.set_tcp_settings(tcp_settings()))
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::IntentId;

    #[test]
    fn buckets_are_stable_and_spread() {
        // Every replica must agree on where an intent lives, whatever build it runs.
        assert_eq!(
            bucket_of("0190a8f0-0000-7000-8000-000000000000"),
            bucket_of("0190a8f0-0000-7000-8000-000000000000")
        );
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|_| bucket_of(IntentId::generate().as_str()))
            .collect();
        assert_eq!(used.len(), BUCKETS as usize);
    }
}

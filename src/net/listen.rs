//! The two listeners as the app starts them: descriptor budget, accept loops, and the gRPC
//! server's HTTP/2 limits.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::accept::{spawn_accept_loop, Incoming, ListenerLimits};
use super::budget::Budget;
use crate::config::NetConfig;
use crate::metrics::Listener;

/// Server-sent HTTP/2 pings find dead gRPC peers (a vanished client behind a NAT).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// A ping not answered within this closes the connection.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Webhook and probe requests are short: a silent HTTP connection is closed after this.
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts the accept loops of the gRPC and HTTP listeners under the process's descriptor
/// budget; returns what each server should serve and the loops' tasks.
pub fn listen(
    config: &NetConfig,
    grpc: TcpListener,
    http: TcpListener,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Incoming, Incoming, [JoinHandle<()>; 2])> {
    let budget = Budget::for_this_process()?;
    let (grpc, grpc_loop) = spawn_accept_loop(
        grpc,
        ListenerLimits {
            listener: Listener::Grpc,
            max_connections: budget.grpc,
            handshake_timeout: config.handshake_timeout,
            // Keepalive pings make live HTTP/2 peers answer; dead ones fail the ping.
            idle_timeout: None,
            // A small unary response must not wait for the client's delayed ACK (about
            // 40 ms per call otherwise; see docs/BENCHMARKS.md).
            nodelay: true,
            tls: config.tls.clone(),
        },
        shutdown.clone(),
    )?;
    let (http, http_loop) = spawn_accept_loop(
        http,
        ListenerLimits {
            listener: Listener::Http,
            max_connections: budget.http,
            handshake_timeout: config.handshake_timeout,
            idle_timeout: Some(HTTP_IDLE_TIMEOUT),
            nodelay: false,
            tls: None,
        },
        shutdown.clone(),
    )?;
    Ok((grpc, http, [grpc_loop, http_loop]))
}

/// The gRPC server with its HTTP/2 limits: keepalive, streams per connection, and a maximum
/// connection age so clients reconnect and spread across replicas.
pub fn grpc_server(config: &NetConfig) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(config.max_streams_per_connection))
        .max_connection_age(config.grpc_max_connection_age)
        .max_connection_age_grace(config.grpc_max_connection_age_grace)
}

//! The upstream MCP server: a child process on stdio, or a streamable HTTP endpoint. The
//! proxy is its client; what the upstream announces (list changes, resource updates, log
//! messages) goes on to the stdio client once it initialized.

#![allow(deprecated)] // MCP logging is deprecated but still spoken; its messages pass through.

use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, LoggingMessageNotificationParam,
    ResourceUpdatedNotificationParam,
};
use rmcp::service::{NotificationContext, Peer, RoleClient, RoleServer, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt as _};

/// Where the upstream server is.
#[derive(Debug, Clone)]
pub enum Upstream {
    /// A command and its arguments, started as a child speaking MCP on stdio.
    Command(Vec<String>),
    /// A streamable HTTP endpoint (`http://host:port/mcp`).
    Url(String),
}

/// The proxy's side of the upstream session.
#[derive(Clone, Default)]
pub struct UpstreamClient {
    pub downstream: Arc<OnceLock<Peer<RoleServer>>>,
}

/// `ClientHandler` methods that pass an upstream notification on to the stdio client, once
/// it initialized: `handler(Params)? => the downstream peer's notify method, "its name"`.
/// One that cannot be delivered is only logged (the client may have gone).
macro_rules! relay {
    ($($handler:ident $(($params:ty))? => $notify:ident, $what:literal;)*) => {
        $(
            async fn $handler(
                &self,
                $(params: $params,)?
                _context: NotificationContext<RoleClient>,
            ) {
                if let Some(peer) = self.downstream.get() {
                    if let Err(e) = peer.$notify($(relay!(@pass params, $params))?).await {
                        tracing::debug!(error = %e, "{} not passed to the MCP client", $what);
                    }
                }
            }
        )*
    };
    (@pass $value:ident, $params:ty) => {
        $value
    };
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("sentinel-mcp", env!("CARGO_PKG_VERSION")),
        )
    }

    relay! {
        on_tool_list_changed => notify_tool_list_changed, "tools/list_changed";
        on_resource_list_changed => notify_resource_list_changed, "resources/list_changed";
        on_prompt_list_changed => notify_prompt_list_changed, "prompts/list_changed";
        on_resource_updated(ResourceUpdatedNotificationParam)
            => notify_resource_updated, "resources/updated";
        on_logging_message(LoggingMessageNotificationParam)
            => notify_logging_message, "notifications/message";
    }
}

/// Starts (or connects to) the upstream and completes its MCP handshake.
pub async fn connect(
    upstream: &Upstream,
    client: UpstreamClient,
) -> anyhow::Result<RunningService<RoleClient, UpstreamClient>> {
    match upstream {
        Upstream::Command(argv) => {
            let (program, args) = argv
                .split_first()
                .context("the upstream command is empty: give it after `--`")?;
            let mut command = tokio::process::Command::new(program);
            command.args(args);
            let transport = TokioChildProcess::new(command)
                .with_context(|| format!("cannot start the upstream MCP server {program:?}"))?;
            client
                .serve(transport)
                .await
                .with_context(|| format!("the upstream MCP server {program:?} did not initialize"))
        }
        Upstream::Url(url) => {
            let transport = StreamableHttpClientTransport::from_uri(url.as_str());
            client
                .serve(transport)
                .await
                .with_context(|| format!("the upstream MCP server at {url} did not initialize"))
        }
    }
}

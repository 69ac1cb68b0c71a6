//! A small upstream MCP server for the `sentinel mcp` tests and benchmark: tools named after
//! the built-in pack's actions, each call appended as a JSON line to the file named by
//! `SENTINEL_TEST_UPSTREAM_LOG` (so a test can prove a refused call never arrived).
//!
//! `sentinel-mcp-test-upstream` serves stdio; `sentinel-mcp-test-upstream --http 127.0.0.1:0`
//! serves streamable HTTP at `/mcp` and prints `listening on http://ADDR/mcp` first.

use std::io::Write as _;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, ServerHandler, ServiceExt as _};

/// (tool, description, argument) of every tool.
const TOOLS: [(&str, &str, &str); 4] = [
    ("restart_server", "Restart a server", "environment"),
    ("drop_table", "Drop a database table", "table"),
    ("delete_user", "Delete a user account", "user_id"),
    ("echo", "Echo the text back", "text"),
];

#[derive(Clone)]
struct Upstream {
    log: Option<Arc<std::path::PathBuf>>,
}

impl Upstream {
    fn record(&self, call: &CallToolRequestParams) -> std::io::Result<()> {
        let Some(path) = &self.log else {
            return Ok(());
        };
        let line = serde_json::json!({"tool": call.name, "arguments": call.arguments});
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.as_path())?;
        writeln!(file, "{line}")
    }
}

impl ServerHandler for Upstream {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("test-upstream", "1.0.0"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = TOOLS
            .iter()
            .map(|(name, description, arg)| {
                let schema = serde_json::json!({
                    "type": "object",
                    "properties": {*arg: {"type": "string"}},
                });
                Tool::new(
                    *name,
                    *description,
                    Arc::new(schema.as_object().cloned().unwrap_or_default()),
                )
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.record(&request)
            .map_err(|e| McpError::internal_error(format!("cannot record the call: {e}"), None))?;
        let args = serde_json::Value::Object(request.arguments.clone().unwrap_or_default());
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "{} done: {args}",
            request.name
        ))])
        .into())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let upstream = Upstream {
        log: std::env::var_os("SENTINEL_TEST_UPSTREAM_LOG").map(|p| Arc::new(p.into())),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            upstream
                .serve(rmcp::transport::stdio())
                .await?
                .waiting()
                .await?;
        }
        [flag, addr] if flag == "--http" => {
            let service = StreamableHttpService::new(
                move || Ok(upstream.clone()),
                LocalSessionManager::default().into(),
                StreamableHttpServerConfig::default(),
            );
            let router = axum::Router::new().nest_service("/mcp", service);
            let listener = tokio::net::TcpListener::bind(addr.as_str()).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on http://{}/mcp", listener.local_addr()?)?;
            out.flush()?;
            drop(out);
            axum::serve(listener, router).await?;
        }
        _ => anyhow::bail!("usage: sentinel-mcp-test-upstream [--http ADDR]"),
    }
    Ok(())
}

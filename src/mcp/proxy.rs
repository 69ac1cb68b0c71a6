//! The MCP server the client talks to: every request passes through to the upstream server
//! unchanged, except `tools/call`, which becomes an intent and reaches the upstream only
//! once Sentinel approved it, and `tools/list`, whose descriptions say where a human must
//! approve.

#![allow(deprecated)] // resources/subscribe and logging/setLevel are still passed through.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rmcp::model::*;
use rmcp::service::{NotificationContext, Peer, RequestContext, RoleClient, RoleServer};
use rmcp::{ErrorData as McpError, ServerHandler, ServiceError};

use super::answer;
use super::gateway::{Credential, Gateway};
use super::intent::{self, Generations, ToolCall};
use super::wait::{self, Progress, Waited};
use crate::grpc::pb;
use crate::grpc::pb::IntentState;
use crate::policy::PolicyPack;

/// What every call of a proxy shares.
pub struct Settings {
    /// The agent intents are submitted as; empty: the API key's agent.
    pub agent: String,
    /// How long one `tools/call` waits for a human before answering "awaiting approval".
    pub wait: Duration,
    pub pack: Arc<PolicyPack>,
    /// The stdio proxy's own key; over HTTP each request brings its own.
    pub credential: Credential,
}

#[derive(Clone)]
pub struct Proxy(Arc<Inner>);

struct Inner {
    upstream: Peer<RoleClient>,
    upstream_info: ServerConfig,
    gateway: Gateway,
    settings: Settings,
    generations: Generations,
    /// This proxy process's id: the stdio session, and the prefix of every HTTP session.
    session: String,
    /// The stdio client, once it initialized: where upstream notifications go.
    downstream: Arc<OnceLock<Peer<RoleServer>>>,
}

impl Proxy {
    pub fn new(
        upstream: Peer<RoleClient>,
        gateway: Gateway,
        settings: Settings,
        downstream: Arc<OnceLock<Peer<RoleServer>>>,
    ) -> Proxy {
        let upstream_info = upstream
            .peer_info()
            .map(|i| as_server_config(&i))
            .unwrap_or_else(|| ServerConfig::new(ServerCapabilities::default()));
        Proxy(Arc::new(Inner {
            upstream,
            upstream_info,
            gateway,
            settings,
            generations: Generations::default(),
            session: uuid::Uuid::new_v4().to_string(),
            downstream,
        }))
    }

    fn server_name(&self) -> &str {
        &self.0.upstream_info.server_info.name
    }

    /// The credential and session of a request: from the HTTP request when there is one,
    /// else the stdio proxy's own. Over HTTP the proxy's key is never used: whoever reaches
    /// a shared proxy must bring their own.
    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<(Credential, String), String> {
        match context.extensions.get::<http::request::Parts>() {
            Some(parts) => {
                let credential =
                    Credential::from_header(parts.headers.get(http::header::AUTHORIZATION))?;
                // Prefixed with the process's id: a restarted proxy has forgotten which calls
                // ran, so it must not reuse their idempotency keys (and replay approvals).
                let session = format!(
                    "{}/{}",
                    self.0.session,
                    parts
                        .headers
                        .get("mcp-session-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("stateless")
                );
                Ok((credential, session))
            }
            None => Ok((self.0.settings.credential.clone(), self.0.session.clone())),
        }
    }

    /// `tools/list` descriptions gain "requires approval above risk N" for tools the pack
    /// maps to an action of a module.
    fn annotate(&self, tool: &mut Tool) {
        let pack = &self.0.settings.pack;
        let Some(action) = pack.mcp_action(&tool.name) else {
            return;
        };
        let note = match pack.approval_threshold(action) {
            Some(n) => format!("[Sentinel: {action}; requires approval above risk {n}]"),
            None => format!("[Sentinel: {action}; always requires approval]"),
        };
        tool.description = Some(match tool.description.take() {
            Some(d) if !d.is_empty() => format!("{d} {note}").into(),
            _ => note.into(),
        });
    }

    async fn guarded_call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let tool = request.name.to_string();
        let (credential, session) = match self.caller(&context) {
            Ok(c) => c,
            Err(why) => return Ok(answer::refused_locally(&tool, &why).into()),
        };
        let empty = serde_json::Map::new();
        let call = ToolCall {
            tool: &tool,
            arguments: request.arguments.as_ref().unwrap_or(&empty),
            meta: &context.meta,
            server: self.server_name(),
            session: &session,
        };
        let fingerprint = intent::call_fingerprint(&call);
        let generation = self.0.generations.current(&fingerprint);
        let submit = intent::submit_request(
            &call,
            &self.0.settings.agent,
            intent::action_for(&self.0.settings.pack, &tool),
            intent::idempotency_key(&fingerprint, generation),
        );
        let gateway = &self.0.gateway;
        let refused =
            |status: tonic::Status| answer::gateway_failed(gateway.addr(), &tool, &status);
        let intent = match gateway.submit(&credential, submit).await {
            Ok(r) => match r.intent {
                Some(i) => i,
                None => {
                    return Ok(refused(tonic::Status::internal("no intent in the answer")).into())
                }
            },
            Err(status) => return Ok(refused(status).into()),
        };
        let intent = if wait::is_terminal(intent.state) {
            intent
        } else {
            let progress = Progress::new(context.peer.clone(), context.meta.get_progress_token());
            let waited = wait::until_decided(
                gateway,
                &credential,
                intent,
                self.0.settings.wait,
                progress,
                &context.ct,
            )
            .await;
            match waited {
                Ok(Waited::Decided(i)) => i,
                Ok(Waited::StillPending(i)) => return Ok(answer::still_pending(&i).into()),
                Ok(Waited::ClientCancelled(i)) => {
                    return Ok(answer::cancelled_by_client(&tool, &i).into())
                }
                Err(status) => return Ok(refused(status).into()),
            }
        };
        // An approval seen on a watch comes without its receipt (events carry the slim
        // intent): read it back. SubmitIntent's own answer already has it.
        let intent = if is_approved(&intent) && intent.receipt.is_empty() {
            match gateway.get(&credential, &intent.intent_id).await {
                Ok(full) => full,
                Err(status) => return Ok(refused(status).into()),
            }
        } else {
            intent
        };
        if !is_approved(&intent) {
            return Ok(answer::refused(&tool, &intent).into());
        }
        if intent.receipt.is_empty() {
            return Ok(answer::unsigned_approval(&tool, &intent).into());
        }
        if !self.0.generations.claim(&fingerprint, generation) {
            return Ok(answer::already_ran(&tool, &intent).into());
        }
        self.forward(request, &intent, &context).await
    }

    /// Sends an approved call upstream. A client that cancels now cancels the upstream call.
    async fn forward(
        &self,
        request: CallToolRequestParams,
        intent: &pb::Intent,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let response = tokio::select! {
            r = self.0.upstream.call_tool_once(request) => r.map_err(upstream_error)?,
            _ = context.ct.cancelled() => {
                return Err(McpError::internal_error("cancelled by the client", None));
            }
        };
        Ok(match response {
            CallToolResponse::Complete(result) => {
                CallToolResponse::Complete(answer::forwarded(result, intent))
            }
            other => other,
        })
    }
}

fn is_approved(intent: &pb::Intent) -> bool {
    IntentState::try_from(intent.state) == Ok(IntentState::Approved)
}

/// What the upstream announced, announced again to the proxy's own clients.
fn as_server_config(info: &ServerPeerInfo) -> ServerConfig {
    let mut config = ServerConfig::new(info.capabilities.clone())
        .with_protocol_version(info.protocol_version.clone())
        .with_server_info(
            info.server_info
                .clone()
                .unwrap_or_else(|| Implementation::new("upstream", "unknown")),
        );
    config.instructions = info.instructions.clone();
    config.meta = info.meta.clone();
    config
}

fn upstream_error(e: ServiceError) -> McpError {
    match e {
        ServiceError::McpError(e) => e,
        other => McpError::internal_error(format!("upstream MCP server: {other}"), None),
    }
}

/// `ServerHandler` methods that send the request to the upstream unchanged and return its
/// answer (or its error). `method(Params) -> Result` calls the upstream peer's method of the
/// same name; `= other` names the peer's method when it differs.
macro_rules! pass_through {
    ($($method:ident($params:ty) -> $result:ty $(= $peer_method:ident)?;)*) => {
        $(
            async fn $method(
                &self,
                request: $params,
                _context: RequestContext<RoleServer>,
            ) -> Result<$result, McpError> {
                pass_through!(@call self, request, $method $(, $peer_method)?)
                    .await
                    .map_err(upstream_error)
            }
        )*
    };
    (@call $self:ident, $request:ident, $method:ident) => {
        $self.0.upstream.$method($request)
    };
    (@call $self:ident, $request:ident, $method:ident, $peer_method:ident) => {
        $self.0.upstream.$peer_method($request)
    };
}

impl ServerHandler for Proxy {
    fn get_info(&self) -> ServerConfig {
        self.0.upstream_info.clone()
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        if context.extensions.get::<http::request::Parts>().is_none() {
            let _ = self.0.downstream.set(context.peer.clone());
        }
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.guarded_call(request, context).await
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut result = self
            .0
            .upstream
            .list_tools(request)
            .await
            .map_err(upstream_error)?;
        result.tools.iter_mut().for_each(|t| self.annotate(t));
        Ok(result)
    }

    pass_through! {
        list_resources(Option<PaginatedRequestParams>) -> ListResourcesResult;
        list_resource_templates(Option<PaginatedRequestParams>) -> ListResourceTemplatesResult;
        read_resource(ReadResourceRequestParams) -> ReadResourceResponse = read_resource_once;
        subscribe(SubscribeRequestParams) -> ();
        unsubscribe(UnsubscribeRequestParams) -> ();
        list_prompts(Option<PaginatedRequestParams>) -> ListPromptsResult;
        get_prompt(GetPromptRequestParams) -> GetPromptResponse = get_prompt_once;
        complete(CompleteRequestParams) -> CompleteResult;
        set_level(SetLevelRequestParams) -> ();
    }

    async fn on_roots_list_changed(&self, _context: NotificationContext<RoleServer>) {
        if let Err(e) = self.0.upstream.notify_roots_list_changed().await {
            tracing::debug!(error = %e, "roots/list_changed not passed upstream");
        }
    }
}

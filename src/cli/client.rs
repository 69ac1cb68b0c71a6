//! The gRPC client subcommands.

use std::process::ExitCode;

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use tonic::metadata::MetadataValue;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Request;

use super::output::{outln, print_event, print_history, print_intent, print_intents};
use super::{ClientOpts, Command};
use crate::domain::IntentState;
use crate::grpc::convert::{json_to_struct, state_to_pb};
use crate::grpc::pb;
use crate::grpc::pb::sentinel_client::SentinelClient;

/// TLS files of a client: the CA that signed the gateway's certificate (`SENTINEL_CA_CERT`;
/// none: the system's roots) and, for mutual TLS, the client's certificate and key
/// (`SENTINEL_CLIENT_CERT`, `SENTINEL_CLIENT_KEY`). Used only with an `https://` address.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

fn read_pem(variable: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{variable}: cannot read {}", path.display()))
}

/// Connects to the gateway at `addr` (`http://` plaintext, `https://` TLS with `tls`).
pub async fn channel(addr: &str, tls: &ClientTls) -> anyhow::Result<Channel> {
    endpoint(addr, tls)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {addr}"))
}

/// The gateway's endpoint, TLS configured, not yet connected (`connect_lazy` for a client
/// that must start while the gateway is down).
pub fn endpoint(addr: &str, tls: &ClientTls) -> anyhow::Result<Endpoint> {
    let mut endpoint = Channel::from_shared(addr.to_string()).with_context(|| {
        format!("SENTINEL_ADDR {addr:?} is not a URL like http://127.0.0.1:50051")
    })?;
    if endpoint.uri().scheme_str() == Some("https") {
        let mut config = ClientTlsConfig::new();
        config = match &tls.ca_cert {
            Some(ca) => {
                config.ca_certificate(Certificate::from_pem(read_pem("SENTINEL_CA_CERT", ca)?))
            }
            None => config.with_native_roots(),
        };
        match (&tls.client_cert, &tls.client_key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                config = config.identity(Identity::from_pem(
                    read_pem("SENTINEL_CLIENT_CERT", cert)?,
                    read_pem("SENTINEL_CLIENT_KEY", key)?,
                ));
            }
            (Some(_), None) => {
                anyhow::bail!("SENTINEL_CLIENT_KEY is required with SENTINEL_CLIENT_CERT")
            }
            (None, Some(_)) => {
                anyhow::bail!("SENTINEL_CLIENT_CERT is required with SENTINEL_CLIENT_KEY")
            }
        }
        endpoint = endpoint.tls_config(config).context(
            "SENTINEL_CA_CERT, SENTINEL_CLIENT_CERT or SENTINEL_CLIENT_KEY: invalid TLS settings",
        )?;
    } else if tls.ca_cert.is_some() || tls.client_cert.is_some() || tls.client_key.is_some() {
        anyhow::bail!(
            "SENTINEL_ADDR {addr:?}: TLS files are set but the address is not https://; refusing to send the API key in plaintext"
        );
    }
    Ok(endpoint)
}

struct Client {
    inner: SentinelClient<Channel>,
    api_key: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Client {
    async fn connect(opts: &ClientOpts) -> anyhow::Result<Client> {
        let channel = channel(
            &opts.addr,
            &ClientTls {
                ca_cert: opts.ca_cert.clone(),
                client_cert: opts.client_cert.clone(),
                client_key: opts.client_key.clone(),
            },
        )
        .await?;
        let api_key = match &opts.api_key {
            None => None,
            Some(k) => Some(
                format!("Bearer {k}")
                    .parse()
                    .context("SENTINEL_API_KEY contains characters not allowed in a header")?,
            ),
        };
        Ok(Client {
            inner: SentinelClient::new(channel),
            api_key,
        })
    }

    /// Prints one intent's events until its stream ends; returns the last one.
    async fn watch_one(
        &mut self,
        intent_id: String,
        json: bool,
    ) -> anyhow::Result<Option<pb::DecisionEvent>> {
        let req = self.request(pb::WatchDecisionRequest { intent_id });
        let stream = reply(self.inner.watch_decision(req).await)?;
        stream_events(stream, json).await
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        if let Some(k) = &self.api_key {
            r.metadata_mut().insert("authorization", k.clone());
        }
        r.metadata_mut().insert(
            "x-sentinel-channel",
            MetadataValue::from_static(crate::domain::Channel::Cli.as_str()),
        );
        r
    }
}

fn states(raw: &[String]) -> anyhow::Result<Vec<i32>> {
    raw.iter()
        .map(|s| {
            IntentState::parse(s)
                .map(|st| state_to_pb(st) as i32)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "--state {s:?} is not a state (PENDING_APPROVAL, APPROVED, ...)"
                    )
                })
        })
        .collect()
}

fn fail(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

/// What a call answered, or its status as the error.
fn reply<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> anyhow::Result<T> {
    answer.map(tonic::Response::into_inner).map_err(fail)
}

/// Prints the intent a call answered with.
fn print_answered(intent: Option<pb::Intent>, json: bool) -> anyhow::Result<ExitCode> {
    print_intent(&intent.context("server sent no intent")?, json);
    Ok(ExitCode::SUCCESS)
}

async fn stream_events(
    mut stream: tonic::Streaming<pb::DecisionEvent>,
    json: bool,
) -> anyhow::Result<Option<pb::DecisionEvent>> {
    let mut last = None;
    while let Some(event) = stream.message().await.map_err(fail)? {
        print_event(&event, json);
        last = Some(event);
    }
    Ok(last)
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Submit {
            client,
            agent,
            action,
            payload,
            reasoning,
            idempotency_key,
            module,
            labels,
            wait,
        } => {
            let payload: serde_json::Value =
                serde_json::from_str(&payload).context("--payload must be a JSON object")?;
            if !payload.is_object() {
                anyhow::bail!("--payload must be a JSON object");
            }
            let mut c = Client::connect(&client).await?;
            let req = c.request(pb::SubmitIntentRequest {
                agent_id: agent,
                action,
                payload: Some(json_to_struct(&payload)),
                reasoning,
                idempotency_key,
                labels: labels.into_iter().collect(),
                module,
            });
            let resp = reply(c.inner.submit_intent(req).await)?;
            let intent = resp.intent.context("server sent no intent")?;
            if resp.replayed && !client.json {
                outln!("(replayed: this idempotency key was already used for the same request)");
            }
            print_intent(&intent, client.json);
            let open = [
                pb::IntentState::PendingApproval as i32,
                pb::IntentState::Analyzing as i32,
            ];
            if wait && open.contains(&intent.state) {
                let last = c.watch_one(intent.intent_id.clone(), client.json).await?;
                return Ok(exit_for(
                    last.and_then(|e| e.intent).as_ref().unwrap_or(&intent),
                ));
            }
            Ok(exit_for(&intent))
        }
        Command::Watch {
            client,
            intent_id,
            all,
            agent,
            module,
            states: st,
            progress,
        } => {
            let mut c = Client::connect(&client).await?;
            match (intent_id, all) {
                (Some(id), false) => {
                    c.watch_one(id, client.json).await?;
                }
                (None, true) => {
                    let req = c.request(pb::WatchDecisionsRequest {
                        agent_id: agent,
                        module,
                        states: states(&st)?,
                        include_progress: progress,
                    });
                    let stream = reply(c.inner.watch_decisions(req).await)?;
                    stream_events(stream, client.json).await?;
                }
                _ => anyhow::bail!("give an intent id, or --all"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { client, intent_id } => {
            let mut c = Client::connect(&client).await?;
            let req = c.request(pb::GetIntentRequest { intent_id });
            let resp = reply(c.inner.get_intent(req).await)?;
            print_answered(resp.intent, client.json)
        }
        Command::History { client, intent_id } => {
            let mut c = Client::connect(&client).await?;
            let req = c.request(pb::GetIntentHistoryRequest { intent_id });
            let resp = reply(c.inner.get_intent_history(req).await)?;
            print_history(&resp.entries, client.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::List {
            client,
            states: st,
            agent,
            module,
            action,
            page_size,
            page_token,
        } => {
            let mut c = Client::connect(&client).await?;
            let req = c.request(pb::ListIntentsRequest {
                states: states(&st)?,
                agent_id: agent,
                module,
                action,
                created_after: None,
                created_before: None,
                page_size,
                page_token,
            });
            let resp = reply(c.inner.list_intents(req).await)?;
            print_intents(&resp.intents, &resp.next_page_token, client.json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Resolve {
            client,
            intent_id,
            approve,
            decline: _,
            reason,
            approver,
        } => {
            let mut c = Client::connect(&client).await?;
            let req = c.request(pb::ResolveIntentRequest {
                intent_id,
                approve,
                approver,
                reason,
                expected_version: 0,
            });
            let resp = reply(c.inner.resolve_intent(req).await)?;
            print_answered(resp.intent, client.json)
        }
        Command::Cancel {
            client,
            intent_id,
            reason,
        } => {
            let mut c = Client::connect(&client).await?;
            let req = c.request(pb::CancelIntentRequest { intent_id, reason });
            let resp = reply(c.inner.cancel_intent(req).await)?;
            print_answered(resp.intent, client.json)
        }
        Command::Serve
        | Command::Policy { .. }
        | Command::Keys { .. }
        | Command::Health { .. }
        | Command::Receipt { .. }
        | Command::Mcp(_)
        | Command::Audit { .. } => {
            unreachable!("handled by cli::run")
        }
    }
}

/// `submit` exits 0 only for an approval, so a shell script can gate on it.
fn exit_for(intent: &pb::Intent) -> ExitCode {
    if intent.state == pb::IntentState::Approved as i32 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

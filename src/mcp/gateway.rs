//! The proxy's gRPC client of the gateway: submit, watch, get, cancel, each with the
//! caller's credential. The channel connects lazily, so the proxy starts (and answers
//! `tools/list`) while the gateway is down; a call made then is refused, never forwarded.

use anyhow::Context as _;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};

use crate::cli::client::{endpoint, ClientTls};
use crate::cli::ClientOpts;
use crate::grpc::pb;
use crate::grpc::pb::sentinel_client::SentinelClient;

/// The `authorization` value sent with a call: the proxy's own key on stdio, the MCP
/// client's `Authorization` header over HTTP. Never logged.
#[derive(Clone, Default)]
pub struct Credential(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Credential(redacted)"
        } else {
            "Credential(none)"
        })
    }
}

impl Credential {
    /// From a raw API key (`SENTINEL_API_KEY`).
    pub fn from_key(key: Option<&str>) -> anyhow::Result<Credential> {
        key.map(|k| {
            format!("Bearer {k}")
                .parse()
                .context("SENTINEL_API_KEY contains characters not allowed in a header")
        })
        .transpose()
        .map(Credential)
    }

    /// From an HTTP `Authorization` header, passed on as it came (`Bearer <key>`).
    pub fn from_header(value: Option<&http::HeaderValue>) -> Result<Credential, String> {
        value
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| "Authorization: not a valid header value".to_string())
            })
            .transpose()
            .map(Credential)
    }
}

#[derive(Clone)]
pub struct Gateway {
    client: SentinelClient<Channel>,
    addr: String,
}

impl Gateway {
    pub fn connect_lazy(opts: &ClientOpts) -> anyhow::Result<Gateway> {
        let tls = ClientTls {
            ca_cert: opts.ca_cert.clone(),
            client_cert: opts.client_cert.clone(),
            client_key: opts.client_key.clone(),
        };
        let channel = endpoint(&opts.addr, &tls)?.connect_lazy();
        Ok(Gateway {
            client: SentinelClient::new(channel),
            addr: opts.addr.clone(),
        })
    }

    /// The gateway's address, for messages.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// A client on the shared channel, and `message` with the caller's credential.
    fn call<T>(
        &self,
        credential: &Credential,
        message: T,
    ) -> (SentinelClient<Channel>, Request<T>) {
        let mut r = Request::new(message);
        if let Some(k) = &credential.0 {
            r.metadata_mut().insert("authorization", k.clone());
        }
        (self.client.clone(), r)
    }

    pub async fn submit(
        &self,
        credential: &Credential,
        request: pb::SubmitIntentRequest,
    ) -> Result<pb::SubmitIntentResponse, Status> {
        let (mut c, r) = self.call(credential, request);
        Ok(c.submit_intent(r).await?.into_inner())
    }

    pub async fn watch(
        &self,
        credential: &Credential,
        intent_id: &str,
    ) -> Result<Streaming<pb::DecisionEvent>, Status> {
        let intent_id = intent_id.to_string();
        let (mut c, r) = self.call(credential, pb::WatchDecisionRequest { intent_id });
        Ok(c.watch_decision(r).await?.into_inner())
    }

    pub async fn get(
        &self,
        credential: &Credential,
        intent_id: &str,
    ) -> Result<pb::Intent, Status> {
        let intent_id = intent_id.to_string();
        let (mut c, r) = self.call(credential, pb::GetIntentRequest { intent_id });
        the_intent(c.get_intent(r).await?.into_inner().intent)
    }

    pub async fn cancel(
        &self,
        credential: &Credential,
        intent_id: &str,
        reason: &str,
    ) -> Result<pb::Intent, Status> {
        let (intent_id, reason) = (intent_id.to_string(), reason.to_string());
        let (mut c, r) = self.call(credential, pb::CancelIntentRequest { intent_id, reason });
        the_intent(c.cancel_intent(r).await?.into_inner().intent)
    }
}

fn the_intent(intent: Option<pb::Intent>) -> Result<pb::Intent, Status> {
    intent.ok_or_else(|| Status::internal("the gateway sent no intent"))
}

//! The connection: address, API key, TLS, and the bounds on each call and on an outage.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::proto::sentinel_client::SentinelClient;
use crate::{Decision, Error};

/// TLS towards the gateway: its CA (default: the system's roots), a client certificate for
/// mutual TLS, and the name to check the certificate against (default: the address's host).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub ca_pem: Option<Vec<u8>>,
    /// `(certificate PEM, private key PEM)`.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    pub domain: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Bounds each unary call (SubmitIntent runs policy and the scorer).
    pub timeout: Duration,
    /// How long the gateway may stay unreachable in a row, while resubmitting or
    /// resubscribing, before [`Error::Unavailable`].
    pub retry_window: Duration,
    /// `None`: plaintext for `http://` addresses, system roots for `https://`.
    pub tls: Option<TlsOptions>,
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(10),
            retry_window: Duration::from_secs(30),
            tls: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A connection to a gateway. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: SentinelClient<Channel>,
    api_key: Option<MetadataValue<Ascii>>,
    pub(crate) options: ClientOptions,
}

impl Client {
    /// Connects to `addr` (`http://host:port`, `https://host:port`, or `host:port` for
    /// plaintext) with the default options.
    pub async fn connect(addr: impl Into<String>) -> Result<Client, Error> {
        Client::connect_with(addr, ClientOptions::default()).await
    }

    pub async fn connect_with(
        addr: impl Into<String>,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let mut addr: String = addr.into();
        if !addr.contains("://") {
            let scheme = if options.tls.is_some() {
                "https"
            } else {
                "http"
            };
            addr = format!("{scheme}://{addr}");
        }
        let mut endpoint = Endpoint::from_shared(addr.clone())
            .map_err(|e| Error::Config(format!("address {addr:?}: {e}")))?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true);
        if options.tls.is_some() || addr.starts_with("https://") {
            let tls = options.tls.clone().unwrap_or_default();
            let mut config = ClientTlsConfig::new();
            config = match &tls.ca_pem {
                Some(pem) => config.ca_certificate(Certificate::from_pem(pem)),
                None => config.with_native_roots(),
            };
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            if let Some(domain) = &tls.domain {
                config = config.domain_name(domain.clone());
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        }
        let channel = endpoint.connect().await.map_err(|e| Error::Unavailable {
            message: format!("cannot connect to {addr}: {e}"),
            intent_id: None,
            idempotency_key: None,
        })?;
        Ok(Client {
            inner: SentinelClient::new(channel),
            api_key: None,
            options,
        })
    }

    /// Sends `key` as `authorization: Bearer <key>` on every call.
    pub fn with_api_key(mut self, key: &str) -> Result<Client, Error> {
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| Error::Config("api key: must be printable ASCII".into()))?;
        self.api_key = Some(value);
        Ok(self)
    }

    /// The generated client, for calls `Client` does not wrap (with [`Client::request`]).
    pub fn raw(&self) -> SentinelClient<Channel> {
        self.inner.clone()
    }

    /// A request carrying the API key and, when given, a deadline.
    pub fn request<T>(&self, message: T, timeout: Option<Duration>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(key) = &self.api_key {
            request.metadata_mut().insert("authorization", key.clone());
        }
        if let Some(t) = timeout {
            request.set_timeout(t);
        }
        request
    }

    /// The intent's current state (`approved` only once APPROVED).
    pub async fn get_decision(&self, intent_id: &str) -> Result<Decision, Error> {
        let request = self.request(
            crate::proto::GetIntentRequest {
                intent_id: intent_id.to_string(),
            },
            Some(self.options.timeout),
        );
        let response = self
            .inner
            .clone()
            .get_intent(request)
            .await
            .map_err(|s| Error::from_status(&s))?;
        let intent = response.into_inner().intent.ok_or_else(|| Error::Other {
            code: tonic::Code::Internal,
            message: "the gateway sent no intent".into(),
        })?;
        Ok(Decision::from_intent(&intent, false))
    }
}

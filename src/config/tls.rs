//! The gRPC listener's TLS: a certificate chain and key, and optionally a CA that client
//! certificates must chain to (mutual TLS). Loaded once at start-up; every failure names the
//! variable whose file is at fault.

use std::path::Path;
use std::sync::Arc;

use crate::macros::debug_showing;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A ready TLS acceptor for the gRPC listener.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    mutual: bool,
}

debug_showing!(ServerTls { mutual });

/// Which variable's file is at fault, and why.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct TlsError {
    pub variable: &'static str,
    pub message: String,
}

fn fail(variable: &'static str, message: impl Into<String>) -> TlsError {
    TlsError {
        variable,
        message: message.into(),
    }
}

fn certificates(
    variable: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path)
        .map_err(|e| fail(variable, format!("cannot read {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(variable, format!("{} is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(fail(
            variable,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

impl ServerTls {
    /// Reads `SENTINEL_TLS_CERT`, `SENTINEL_TLS_KEY` and, for mutual TLS,
    /// `SENTINEL_TLS_CLIENT_CA`.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, TlsError> {
        let chain = certificates("SENTINEL_TLS_CERT", cert)?;
        let key_pem = std::fs::read(key).map_err(|e| {
            fail(
                "SENTINEL_TLS_KEY",
                format!("cannot read {}: {e}", key.display()),
            )
        })?;
        let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            fail(
                "SENTINEL_TLS_KEY",
                format!("{} holds no PEM private key: {e}", key.display()),
            )
        })?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| fail("SENTINEL_TLS_CERT", e.to_string()))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in certificates("SENTINEL_TLS_CLIENT_CA", ca)? {
                    roots.add(c).map_err(|e| {
                        fail("SENTINEL_TLS_CLIENT_CA", format!("{}: {e}", ca.display()))
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| fail("SENTINEL_TLS_CLIENT_CA", e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, private_key).map_err(|e| {
            fail(
                "SENTINEL_TLS_KEY",
                format!("does not fit the certificate in SENTINEL_TLS_CERT: {e}"),
            )
        })?;
        // gRPC is HTTP/2 only.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            mutual: client_ca.is_some(),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Whether clients must present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.mutual
    }
}

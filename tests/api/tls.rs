//! TLS and mutual TLS on the gRPC listener, with certificates made at run time: a client
//! that trusts the CA submits; plaintext and untrusting clients are refused; with mutual TLS
//! only a certificate from the configured CA gets in; the CLI works over https.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::json;
use tempfile::TempDir;
use tokio::process::Command;

use crate::helpers::*;
use sentinel::cli::client::{channel, ClientTls};
use sentinel::config::Config;
use sentinel::grpc::pb::sentinel_client::SentinelClient;
use sentinel::grpc::pb::IntentState;

/// A CA and files of certificates it signed, in a temporary directory.
struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        let dir = TempDir::new().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write");
        Pki { dir, ca }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Writes `<name>.pem` and `<name>.key` for a certificate with `sans`; returns the paths.
    fn issue(
        &self,
        name: &str,
        sans: &[&str],
        purpose: ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let cert_path = self.dir.path().join(format!("{name}.pem"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write");
        std::fs::write(&key_path, key.serialize_pem()).expect("write");
        (cert_path, key_path)
    }
}

fn load(vars: &[(&str, &Path)]) -> Result<Config, sentinel::config::ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.display().to_string()))
        .collect();
    Config::load(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

/// A gateway serving gRPC over TLS with a certificate for `localhost` from `pki`; with
/// `client_ca`, clients need a certificate from it.
async fn spawn_tls(pki: &Pki, client_ca: Option<&Path>) -> TestApp {
    let (cert, key) = pki.issue(
        "server",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let mut vars = vec![
        ("SENTINEL_TLS_CERT", cert.as_path()),
        ("SENTINEL_TLS_KEY", key.as_path()),
    ];
    if let Some(ca) = client_ca {
        vars.push(("SENTINEL_TLS_CLIENT_CA", ca));
    }
    let mut config = load(&vars).expect("TLS config loads");
    config.grpc_addr = "127.0.0.1:0".parse().expect("addr");
    config.http_addr = "127.0.0.1:0".parse().expect("addr");
    spawn_with(Parts {
        config,
        ..Default::default()
    })
    .await
}

fn https(app: &TestApp) -> String {
    format!("https://localhost:{}", app.grpc_addr.port())
}

/// Connects with `tls` and submits an intent the policy approves.
async fn submit_over(addr: &str, tls: &ClientTls) -> anyhow::Result<IntentState> {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut client = SentinelClient::new(channel(addr, tls).await?);
        let intent = client
            .submit_intent(intent_request(
                "bot",
                "PAY_INVOICE",
                json!({"amount": 20, "vendor": "AWS"}),
            ))
            .await?
            .into_inner()
            .intent
            .ok_or_else(|| anyhow::anyhow!("no intent"))?;
        Ok(state(&intent))
    })
    .await
    .map_err(|_| anyhow::anyhow!("timed out"))?
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca_and_refuses_plaintext() {
    let pki = Pki::new("sentinel test CA");
    let app = spawn_tls(&pki, None).await;
    let trusting = ClientTls {
        ca_cert: Some(pki.ca_path()),
        ..Default::default()
    };
    assert_eq!(
        submit_over(&https(&app), &trusting)
            .await
            .expect("TLS submit"),
        IntentState::Approved
    );
    // Plaintext HTTP/2 to a TLS listener: no TLS handshake, no service.
    let plain = submit_over(&app.url(), &ClientTls::default()).await;
    assert!(plain.is_err(), "plaintext was served: {plain:?}");
    // A client that does not trust the CA refuses the server.
    let other = Pki::new("another CA");
    let untrusting = ClientTls {
        ca_cert: Some(other.ca_path()),
        ..Default::default()
    };
    assert!(submit_over(&https(&app), &untrusting).await.is_err());
    app.stop().await;
}

#[tokio::test]
async fn mutual_tls_admits_only_certificates_from_the_client_ca() {
    let pki = Pki::new("sentinel test CA");
    let app = spawn_tls(&pki, Some(&pki.ca_path())).await;
    let (agent_cert, agent_key) =
        pki.issue("agent-1", &["agent-1"], ExtendedKeyUsagePurpose::ClientAuth);

    let no_cert = ClientTls {
        ca_cert: Some(pki.ca_path()),
        ..Default::default()
    };
    let refused = submit_over(&https(&app), &no_cert).await;
    assert!(
        refused.is_err(),
        "a client without a certificate was served"
    );

    let with_cert = ClientTls {
        ca_cert: Some(pki.ca_path()),
        client_cert: Some(agent_cert),
        client_key: Some(agent_key),
    };
    assert_eq!(
        submit_over(&https(&app), &with_cert)
            .await
            .expect("mTLS submit"),
        IntentState::Approved
    );

    let stranger_ca = Pki::new("stranger CA");
    let (cert, key) = stranger_ca.issue(
        "intruder",
        &["intruder"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let foreign = ClientTls {
        ca_cert: Some(pki.ca_path()),
        client_cert: Some(cert),
        client_key: Some(key),
    };
    let refused = submit_over(&https(&app), &foreign).await;
    assert!(refused.is_err(), "a certificate from another CA was served");
    app.stop().await;
}

/// Runs a CLI command that must succeed; returns its JSON output.
async fn succeeds(mut command: Command) -> serde_json::Value {
    let out = run_ok(&mut command).await;
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test]
async fn the_cli_submits_and_gets_over_mutual_tls() {
    let pki = Pki::new("sentinel test CA");
    let app = spawn_tls(&pki, Some(&pki.ca_path())).await;
    let (cert, key) = pki.issue(
        "operator",
        &["operator"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let cli = |args: &[&str]| {
        let mut c = cli_at(&https(&app));
        c.args(args)
            .env("SENTINEL_CA_CERT", pki.ca_path())
            .env("SENTINEL_CLIENT_CERT", &cert)
            .env("SENTINEL_CLIENT_KEY", &key);
        c
    };
    let intent = succeeds(cli(&SUBMIT_APPROVED)).await;
    assert_eq!(intent["state"], "APPROVED");
    let id = intent["intent_id"].as_str().expect("id").to_string();

    let got = succeeds(cli(&["get", "--json", &id])).await;
    assert_eq!(got["intent_id"], id.as_str());

    // Without its certificate the same CLI is refused.
    let out = cli(&["get", "--json", &id])
        .env_remove("SENTINEL_CLIENT_CERT")
        .env_remove("SENTINEL_CLIENT_KEY")
        .output()
        .await
        .expect("cli runs");
    assert!(!out.status.success());
    app.stop().await;
}

#[test]
fn tls_settings_errors_name_the_variable() {
    let pki = Pki::new("sentinel test CA");
    let (cert, key) = pki.issue(
        "server",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let only_cert = load(&[("SENTINEL_TLS_CERT", &cert)]).expect_err("cert alone");
    assert_eq!(only_cert.name, "SENTINEL_TLS_KEY");
    let only_key = load(&[("SENTINEL_TLS_KEY", &key)]).expect_err("key alone");
    assert_eq!(only_key.name, "SENTINEL_TLS_CERT");

    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let bad_cert =
        load(&[("SENTINEL_TLS_CERT", &garbage), ("SENTINEL_TLS_KEY", &key)]).expect_err("bad cert");
    assert_eq!(bad_cert.name, "SENTINEL_TLS_CERT");
    let bad_key =
        load(&[("SENTINEL_TLS_CERT", &cert), ("SENTINEL_TLS_KEY", &garbage)]).expect_err("bad key");
    assert_eq!(bad_key.name, "SENTINEL_TLS_KEY");
    let missing = pki.dir.path().join("missing.pem");
    let bad_ca = load(&[
        ("SENTINEL_TLS_CERT", &cert),
        ("SENTINEL_TLS_KEY", &key),
        ("SENTINEL_TLS_CLIENT_CA", &missing),
    ])
    .expect_err("missing CA");
    assert_eq!(bad_ca.name, "SENTINEL_TLS_CLIENT_CA");
    // A key that is not the certificate's.
    let (_, other_key) = pki.issue("other", &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let mismatch = load(&[
        ("SENTINEL_TLS_CERT", &cert),
        ("SENTINEL_TLS_KEY", &other_key),
    ])
    .expect_err("mismatched key");
    assert_eq!(mismatch.name, "SENTINEL_TLS_KEY");
}

//! `sentinel health`: exit 0 when the gateway's `/readyz` answers 200, else 1. The container's
//! HEALTHCHECK runs it (distroless images have no shell or curl).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::DEFAULT_HTTP_ADDR;

/// The readiness URL: `url` when given, else `/readyz` on `SENTINEL_HTTP_ADDR`, asked on the
/// loopback address when the listener binds every interface (`0.0.0.0`, `[::]`).
pub fn readyz_url(url: Option<&str>, http_addr: Option<&str>) -> Result<String, String> {
    if let Some(url) = url {
        return Ok(url.to_string());
    }
    let raw = http_addr.unwrap_or(DEFAULT_HTTP_ADDR);
    let mut addr: SocketAddr = raw
        .parse()
        .map_err(|e| format!("SENTINEL_HTTP_ADDR: {raw:?} is not an address ({e})"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(format!("http://{addr}/readyz"))
}

pub async fn check(url: Option<&str>) -> anyhow::Result<ExitCode> {
    let http_addr = std::env::var("SENTINEL_HTTP_ADDR").ok();
    let url = match readyz_url(url, http_addr.as_deref()) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("unhealthy: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    match client.get(&url).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::OK => Ok(ExitCode::SUCCESS),
        Ok(r) => {
            eprintln!("unhealthy: {url} answered {}", r.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::readyz_url;

    #[test]
    fn every_interface_is_asked_on_loopback_and_a_url_wins() {
        assert_eq!(
            readyz_url(None, Some("0.0.0.0:8080")).unwrap(),
            "http://127.0.0.1:8080/readyz"
        );
        assert_eq!(
            readyz_url(None, Some("[::]:9090")).unwrap(),
            "http://[::1]:9090/readyz"
        );
        assert_eq!(
            readyz_url(None, None).unwrap(),
            "http://127.0.0.1:8080/readyz"
        );
        assert_eq!(
            readyz_url(Some("http://h:1/readyz"), Some("nonsense")).unwrap(),
            "http://h:1/readyz"
        );
        assert!(readyz_url(None, Some("nonsense"))
            .unwrap_err()
            .starts_with("SENTINEL_HTTP_ADDR"));
    }
}

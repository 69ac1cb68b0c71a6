//! `sentinel audit export`: the audit log of a Redis store as JSON lines.

use std::process::ExitCode;

use crate::config::Config;

fn parse_time(flag: &str, value: &str) -> anyhow::Result<crate::domain::Millis> {
    if let Ok(ms) = value.trim().parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            anyhow::anyhow!("{flag}: {value:?} is neither RFC 3339 nor epoch milliseconds")
        })
}

/// Pages through the store's audit log. Records sharing a millisecond keep a stable order, so
/// a page boundary inside one millisecond is resumed by skipping what was already written.
pub(super) async fn export(since: &str, until: Option<&str>) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    const PAGE: usize = 5000;
    let mut cursor = parse_time("--since", since)?;
    let until = match until {
        Some(u) => parse_time("--until", u)?,
        // The operator's "until now" is the wall time: the export runs outside any gateway.
        None => crate::domain::now_millis(),
    };
    let config = Config::from_env().map_err(|e| anyhow::anyhow!("configuration error: {e}"))?;
    if config.store.redis_url().is_none() {
        anyhow::bail!("SENTINEL_REDIS_URL is not set: the in-memory store lives inside `sentinel serve`; there is no log to export");
    }
    let store = crate::app::open_store(&config).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut skip = 0;
    loop {
        let records = store.audit_range(cursor, until, PAGE + skip).await?;
        for record in records.iter().skip(skip) {
            serde_json::to_writer(&mut out, record)?;
            out.write_all(b"\n")?;
        }
        let Some(last) = records.last().filter(|_| records.len() == PAGE + skip) else {
            break;
        };
        cursor = last.at;
        skip = records.iter().filter(|r| r.at == cursor).count();
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

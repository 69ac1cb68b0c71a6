//! `GET /metrics` after real traffic: every metric the dashboards and alerts query
//! (deploy/metrics-used.txt) is exposed, histograms carry buckets and counts, the scraper
//! gets OpenMetrics when it asks for it, and `SENTINEL_METRICS=off` records nothing while
//! `/metrics` still answers.
//!
//! The registry is per process, like the `SENTINEL_METRICS` switch. The apps other tests of
//! this binary start in process write the same gauges (an app that cannot load its receipt
//! key reports `sentinel_store_up 0`), so the tests that read values start their own
//! `sentinel serve` process.

use std::collections::BTreeSet;

use serde_json::json;

use crate::helpers::{spawn_app, Client};
use crate::redis_harness::Replica;

const USED: &str = include_str!("../../deploy/metrics-used.txt");

async fn scrape(addr: impl std::fmt::Display, accept: Option<&str>) -> (String, String) {
    let mut request = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("/metrics answers");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("content type")
        .to_string();
    (content_type, response.text().await.expect("body"))
}

/// Metric family names declared by `# TYPE` lines, with their type.
fn declared(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// The value of the first sample line starting with `prefix` (a name and, optionally, labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Policy approves, declines and escalates; the scorer decides one; an operator approves the
/// escalated one; an empty agent id is refused.
async fn traffic(c: &mut Client) {
    c.submit_json(
        "metrics-agent",
        "PAY_INVOICE",
        json!({"amount": 500, "vendor": "AWS"}),
    )
    .await
    .expect("policy approves");
    c.submit_json("metrics-agent", "DROP_TABLE", json!({}))
        .await
        .expect("policy declines");
    let pending = c
        .submit_json("metrics-agent", "DELETE_USER", json!({"user_id": 1}))
        .await
        .expect("escalated");
    c.submit_json(
        "metrics-agent",
        "RESTART_SERVER",
        json!({"environment": "production"}),
    )
    .await
    .expect("scored");
    c.resolve(&pending.intent_id, true, "checked")
        .await
        .expect("resolved");
    let refused = c
        .submit_json("", "PAY_INVOICE", json!({"amount": 1}))
        .await
        .expect_err("an empty agent id is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn every_used_metric_is_exposed_after_traffic() {
    let replica = Replica::start_in_memory(&[]).await;
    traffic(&mut replica.client().await).await;

    let (content_type, text) = scrape(&replica.http_addr, None).await;
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let types = declared(&text);
    let names: BTreeSet<&str> = types.iter().map(|(n, _)| n.as_str()).collect();
    for used in USED
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(names.contains(used), "{used} is not exposed:\n{text}");
    }
    for histogram in [
        "sentinel_rpc_duration_seconds",
        "sentinel_policy_eval_seconds",
        "sentinel_scorer_duration_seconds",
        "sentinel_store_op_duration_seconds",
        "sentinel_time_to_decision_seconds",
    ] {
        assert!(
            types.contains(&(histogram.to_string(), "histogram".to_string())),
            "{histogram} is a histogram:\n{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{histogram}_bucket{{"))),
            "{histogram} has buckets after traffic:\n{text}"
        );
        let count = text
            .lines()
            .filter(|l| l.starts_with(&format!("{histogram}_count")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        assert!(count >= 1.0, "{histogram} counted the traffic:\n{text}");
    }
    for gauge in [
        "sentinel_intents_pending",
        "sentinel_intents_pending_next_deadline_seconds",
        "sentinel_build_info",
        "sentinel_scorer_breaker_open",
        "sentinel_store_up",
    ] {
        assert!(
            types.contains(&(gauge.to_string(), "gauge".to_string())),
            "{gauge} is a gauge:\n{text}"
        );
    }
    let series = [
        r#"sentinel_rpc_duration_seconds_count{method="SubmitIntent",code="OK"}"#,
        r#"sentinel_rpc_duration_seconds_count{method="SubmitIntent",code="INVALID_ARGUMENT"}"#,
        r#"sentinel_rpc_duration_seconds_count{method="ResolveIntent",code="OK"}"#,
        r#"sentinel_store_op_duration_seconds_count{op="create"}"#,
        r#"sentinel_store_op_duration_seconds_count{op="transition"}"#,
        r#"sentinel_time_to_decision_seconds_count{decided_by="policy"}"#,
        r#"sentinel_time_to_decision_seconds_count{decided_by="human"}"#,
    ];
    for s in series {
        let value = sample(&text, s).unwrap_or_else(|| panic!("{s} in\n{text}"));
        assert!(value >= 1.0, "{s} = {value}");
    }
    let version = format!(
        r#"sentinel_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &version), Some(1.0), "{text}");
    // `sentinel_store_up` is process-wide and other apps in this test binary lose their
    // Redis on purpose, so its value is checked on replicas of their own (redis_faults.rs).
    assert_eq!(sample(&text, "sentinel_up "), Some(1.0), "{text}");
}

#[tokio::test]
async fn switched_off_nothing_is_recorded_and_metrics_still_answers() {
    let replica = Replica::start_in_memory(&[("SENTINEL_METRICS", "off")]).await;
    traffic(&mut replica.client().await).await;

    for accept in [None, Some("application/openmetrics-text")] {
        let (_, text) = scrape(&replica.http_addr, accept).await;
        let names: BTreeSet<String> = declared(&text).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["sentinel_build_info", "sentinel_store_up", "sentinel_up"]
                .map(String::from)
                .into(),
            "only the build and the up gauges:\n{text}"
        );
        assert_eq!(sample(&text, "sentinel_up "), Some(1.0), "{text}");
        assert_eq!(sample(&text, "sentinel_store_up "), Some(1.0), "{text}");
    }
}

#[tokio::test]
async fn openmetrics_when_the_scraper_asks() {
    let app = spawn_app().await;
    // A labelled family is encoded once it has a series: this call gives the RPC one.
    app.client()
        .await
        .submit_json("metrics-agent", "DROP_TABLE", json!({}))
        .await
        .expect("policy declines");
    let (content_type, text) = scrape(
        app.http_addr,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    // OpenMetrics names a counter family without `_total`; its samples keep the suffix.
    assert!(text.contains("# TYPE sentinel_intents counter"), "{text}");
    assert!(
        text.contains("# TYPE sentinel_rpc_duration_seconds histogram"),
        "{text}"
    );
    let (_, plain) = scrape(app.http_addr, Some("text/plain")).await;
    assert!(
        plain.contains("# TYPE sentinel_intents_total counter"),
        "{plain}"
    );
    assert!(!plain.contains("# EOF"), "{plain}");
    app.stop().await;
}

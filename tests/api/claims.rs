//! What an agent says about its own request is a claim, not a fact: through gRPC, a missing or
//! false `contains_pii` never makes a request with personal fields, or an SSN query, approvable.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::fakes::llm::{FakeLlm, Reply};
use crate::helpers::*;
use sentinel::config::{Config, Secret, DEFAULT_LLM_MODEL};
use sentinel::grpc::pb;
use sentinel::scoring::llm::{LlmOptions, LlmScorer};

fn codes(i: &pb::Intent) -> Vec<String> {
    i.reasons.iter().map(|r| r.code.clone()).collect()
}

#[tokio::test]
async fn an_export_of_ssn_and_dob_fields_without_a_pii_flag_waits_for_a_human() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    let intent = c
        .submit_json(
            "export-bot",
            "EXPORT_CSV",
            json!({"record_count": 5, "fields": ["ssn", "dob"]}),
        )
        .await
        .unwrap();
    assert_eq!(state(&intent), pb::IntentState::PendingApproval);
    assert!(intent.risk_score >= 90, "score {}", intent.risk_score);
    assert!(codes(&intent).contains(&"personal_fields".to_string()));
    app.stop().await;
}

#[tokio::test]
async fn an_ssn_query_claimed_pii_free_is_not_approved_by_a_low_llm_score() {
    let fake = FakeLlm::start(Reply::Score(5)).await;
    let options = LlmOptions::new(
        fake.base_url(),
        Secret::new("gsk_test_key"),
        DEFAULT_LLM_MODEL,
        Duration::from_secs(3),
    );
    let mut config = Config::ephemeral();
    config.llm.timeout = options.timeout;
    let app = spawn_with(Parts {
        config,
        scorer: Arc::new(LlmScorer::new(options).expect("scorer builds")),
        ..Default::default()
    })
    .await;
    let mut c = app.client().await;

    let query = c
        .submit_json(
            "lookup-bot",
            "QUERY_SSN",
            json!({"user_id": "u-1", "contains_pii": false}),
        )
        .await
        .unwrap();
    assert_eq!(state(&query), pb::IntentState::PendingApproval);
    assert!(query.risk_score >= 90, "score {}", query.risk_score);
    assert!(codes(&query).contains(&"ssn_query".to_string()));

    // The same scorer does approve what policy leaves open: the 5 was really on offer.
    let open = c
        .submit_json(
            "billing-bot",
            "PAY_INVOICE",
            json!({"amount": 2500, "vendor": "AWS", "currency": "USD"}),
        )
        .await
        .unwrap();
    assert_eq!(state(&open), pb::IntentState::Approved);
    app.stop().await;
}

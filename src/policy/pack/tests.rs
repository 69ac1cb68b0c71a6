use super::*;
use std::collections::BTreeMap;

fn draft(action: &str, payload: serde_json::Value) -> IntentDraft {
    IntentDraft {
        agent_id: "a".into(),
        action: action.into(),
        module: None,
        payload,
        reasoning: String::new(),
        labels: BTreeMap::new(),
        idempotency_key: None,
    }
}

#[test]
fn builtin_pack_compiles_and_is_versioned() {
    let pack = PolicyPack::builtin();
    assert!(pack.version().starts_with("sentinel-builtin@"));
    assert_eq!(
        pack.module_names().collect::<Vec<_>>(),
        ["VaultKeeper", "PrivacyShield", "OpsGuard"]
    );
    let same = PolicyPack::parse(BUILTIN).unwrap();
    assert_eq!(same.version(), pack.version(), "version is a content hash");
    let edited = PolicyPack::parse(&BUILTIN.replace("score = 10\n", "score = 11\n")).unwrap();
    assert_ne!(edited.version(), pack.version());
}

#[test]
fn scorer_knobs_limit_what_the_scorer_may_approve() {
    let pack = PolicyPack::parse(
        r#"
        name = "knobs"
        modules = [
            { name = "Pay", actions = ["PAY"], scorer_max_approve_amount = 2500 },
            { name = "Ops", actions = ["RESTART"], scorer_may_approve = false },
            { name = "Free", actions = ["FREE"] },
        ]
        "#,
    )
    .unwrap();
    let limit = |action: &str, payload: serde_json::Value| {
        pack.evaluate(&draft(action, payload)).unwrap().scorer_limit
    };
    assert_eq!(limit("PAY", serde_json::json!({"amount": 2500})), None);
    assert_eq!(limit("PAY", serde_json::json!({"amount": 2499.5})), None);
    for payload in [
        serde_json::json!({"amount": 2501}),
        serde_json::json!({"amount": "100"}),
        serde_json::json!({}),
    ] {
        let why = limit("PAY", payload.clone()).expect("limited");
        assert!(why.contains("payload.amount"), "{payload}: {why}");
    }
    assert!(limit("RESTART", serde_json::json!({}))
        .unwrap()
        .contains("scorer_may_approve = false"));
    assert_eq!(limit("FREE", serde_json::json!({"amount": 1e9})), None);
    let bad = "name = \"x\"\n[[modules]]\nname = \"M\"\nactions = [\"A\"]\nscorer_max_approve_amount = -1\n";
    assert!(PolicyPack::parse(bad).is_err());
}

#[test]
fn the_pack_knows_its_literals_and_fields() {
    use crate::scoring::facts::KnownValues;
    let known = KnownValues::from_sources(
        [
            r#"payload.vendor in ["AWS", 'Trusted SaaS Inc'] && labels.team == "ops" && payload["cost centre"] > 1"#,
        ],
        ["PAY_INVOICE"],
    );
    let expected = KnownValues::from_sources([], []);
    assert_ne!(known, expected);
    let d = draft(
        "PAY_INVOICE",
        serde_json::json!({"vendor": "AWS", "cost centre": 4, "team": "x"}),
    );
    let request = crate::scoring::ScoreRequest {
        draft: &d,
        module: "M",
        floor: RiskScore::MIN,
        policy_reasons: &[],
        known: &known,
    };
    let doc = crate::scoring::facts::checked_document(&request);
    assert_eq!(doc["payload"]["vendor"], "AWS");
    assert_eq!(doc["payload"]["cost centre"], 4);
    assert_eq!(doc["action"], "PAY_INVOICE");
    // "team" is a label key in the pack, not a payload key we know; still named, since
    // field names the pack reads anywhere are the pack's words.
    assert!(doc["payload"]["team"].is_object());
}

/// A pack with one module `M` (action `A`) and `rules`, each `(name, when, effect)`.
fn pack_of(rules: &[(&str, &str, &str)]) -> String {
    let mut text = String::from("name = \"t\"\n[[modules]]\nname = \"M\"\nactions = [\"A\"]\n");
    for (name, when, effect) in rules {
        text.push_str(&format!(
            "[[rules]]\nname = \"{name}\"\nwhen = '{when}'\neffect = \"{effect}\"\n"
        ));
    }
    text
}

#[test]
fn a_bad_rule_is_named_with_its_cel_error() {
    let text = pack_of(&[("broken.rule", "payload.amount >>> 3", "decline")]);
    let err = PolicyPack::parse(&text).unwrap_err().to_string();
    assert!(err.contains("broken.rule"), "{err}");
    assert!(err.contains("CEL"), "{err}");

    let typo = text.replace("payload.amount >>> 3", "paylod.amount > 3");
    let err = PolicyPack::parse(&typo).unwrap_err().to_string();
    assert!(
        err.contains("broken.rule") && err.contains("paylod"),
        "{err}"
    );

    let bad_effect = text.replace("\"decline\"", "\"explode\"");
    assert!(PolicyPack::parse(&bad_effect).is_err());
    let bad_score = text.replace("effect = \"decline\"", "effect = \"decline\"\nscore = 101");
    assert!(PolicyPack::parse(&bad_score)
        .unwrap_err()
        .to_string()
        .contains("broken.rule"));
}

#[test]
fn rule_errors_only_make_outcomes_stricter() {
    let pack = PolicyPack::parse(&pack_of(&[
        ("approve.small", "payload.amount < 10", "approve"),
        ("decline.huge", "has(payload.huge)", "decline"),
    ]))
    .unwrap();
    // A missing field in the approve rule: not approved.
    let e = pack.evaluate(&draft("A", serde_json::json!({}))).unwrap();
    assert_eq!(e.verdict, Verdict::Escalate);
    assert!(e.score.get() > 50);
    assert!(e.reasons.iter().any(|r| r.code == "policy_rule_error"));
    // An erroring rule does not stop a later decline.
    let e = pack
        .evaluate(&draft("A", serde_json::json!({"huge": true})))
        .unwrap();
    assert_eq!(e.verdict, Verdict::Decline);
    // The happy path still approves.
    let e = pack
        .evaluate(&draft("A", serde_json::json!({"amount": 3})))
        .unwrap();
    assert_eq!(e.verdict, Verdict::Approve);
}

#[test]
fn floors_accumulate_and_can_block_the_fast_path() {
    let text = r#"
        name = "t"
        approve_max_score = 40
        [[modules]]
        name = "M"
        actions = ["A"]
        approval_timeout_secs = 30
        [[rules]]
        name = "weekend"
        when = 'labels.weekend == "yes"'
        effect = "floor"
        score = 45
        [[rules]]
        name = "approve.all"
        when = 'true'
        effect = "approve"
        score = 5
    "#;
    let pack = PolicyPack::parse(text).unwrap();
    let mut d = draft("A", serde_json::json!({}));
    d.labels.insert("weekend".into(), "no".into());
    let e = pack.evaluate(&d).unwrap();
    assert_eq!((e.verdict, e.score.get()), (Verdict::Approve, 5));
    assert_eq!(e.approval_timeout, Some(Duration::from_secs(30)));
    d.labels.insert("weekend".into(), "yes".into());
    let e = pack.evaluate(&d).unwrap();
    assert_eq!((e.verdict, e.score.get()), (Verdict::Escalate, 45));
    assert!(e.reasons.iter().any(|r| r.code == "floor_above_threshold"));
}

#[test]
fn naming_a_module_never_loosens_the_pack() {
    let pack = PolicyPack::builtin();
    let evaluate = |action: &str, module: &str| {
        let mut d = draft(action, serde_json::json!({}));
        d.module = Some(module.into());
        pack.evaluate(&d)
    };
    // An unknown action stays unknown under a module's name: a human decides.
    let e = evaluate("WIRE_MONEY_ABROAD", "OpsGuard").unwrap();
    assert_eq!(e.verdict, Verdict::Escalate);
    assert!(e.reasons.iter().any(|r| r.code == "unknown_action"));
    // An agent cannot pick a laxer module than its action's own.
    assert!(matches!(
        evaluate("DROP_TABLE", "VaultKeeper"),
        Err(PolicyError::Module(_))
    ));
    let e = evaluate("DROP_TABLE", "OpsGuard").unwrap();
    assert_eq!(e.verdict, Verdict::Decline);
}

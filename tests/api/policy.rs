//! Policy packs from the outside: the shipped corpus, `sentinel policy test`, and a bad pack
//! stopping start-up.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_sentinel");
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policy/corpus/builtin.jsonl");

#[tokio::test]
async fn the_builtin_corpus_passes_in_process() {
    let text = std::fs::read_to_string(CORPUS).unwrap();
    let results =
        sentinel::decision::corpus::run_corpus(&sentinel::policy::PolicyPack::builtin(), &text)
            .await;
    assert!(results.len() >= 30);
    let failed: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn policy_test_exits_zero_on_a_passing_corpus_and_two_on_a_mismatch() {
    let ok = Command::new(BIN)
        .args(["policy", "test", CORPUS])
        .env_remove("SENTINEL_POLICY")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let table = String::from_utf8_lossy(&ok.stdout);
    assert!(
        table.contains("ops: drop table is declined at once") && table.contains("0 failed"),
        "{table}"
    );

    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.jsonl");
    std::fs::write(
        &wrong,
        r#"{"name":"drop table is approved (wrong)","intent":{"agent_id":"a","action":"DROP_TABLE","payload":{}},"expect":{"state":"APPROVED"}}"#,
    )
    .unwrap();
    let bad = Command::new(BIN)
        .args(["policy", "test"])
        .arg(&wrong)
        .env_remove("SENTINEL_POLICY")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let table = String::from_utf8_lossy(&bad.stdout);
    assert!(
        table.contains("FAIL") && table.contains("want APPROVED, got DECLINED"),
        "{table}"
    );
}

#[test]
fn a_bad_pack_stops_start_up_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let pack = dir.path().join("pack.toml");
    std::fs::write(
        &pack,
        "name = \"broken\"\n[[rules]]\nname = \"money.too_much\"\nwhen = 'payload.amount >'\neffect = \"decline\"\n",
    )
    .unwrap();
    let check = Command::new(BIN)
        .args(["policy", "check"])
        .arg(&pack)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&check.stderr).contains("money.too_much"));

    let serve = Command::new(BIN)
        .arg("serve")
        .env("SENTINEL_POLICY", &pack)
        .env("SENTINEL_GRPC_ADDR", "127.0.0.1:0")
        .env("SENTINEL_HTTP_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!serve.status.success());
    let err = String::from_utf8_lossy(&serve.stderr);
    assert!(
        err.contains("money.too_much") && err.contains("SENTINEL_POLICY"),
        "{err}"
    );
}

#[test]
fn a_bad_setting_stops_start_up_naming_the_variable() {
    let out = Command::new(BIN)
        .arg("serve")
        .env("SENTINEL_APPROVAL_TIMEOUT_SECS", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SENTINEL_APPROVAL_TIMEOUT_SECS"));
}

//! The CLI in a pipeline: a reader that stops early (`sentinel list | head -1`) ends the CLI
//! quietly, without a panic or a backtrace.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_sentinel");
/// The status a shell reports for a command stopped by SIGPIPE.
const CLOSED_STDOUT: i32 = 141;

#[tokio::test]
async fn list_into_a_pipe_closed_after_one_line_exits_quietly() {
    let app = spawn_app().await;
    let mut c = app.client().await;
    // Long agent ids make one page (about 200 x 170 bytes) more than a pipe buffers (64 KiB),
    // so the CLI is still writing when the reader goes away.
    let agent = "a".repeat(120);
    for _ in 0..400 {
        c.submit_json(&agent, "DROP_TABLE", json!({"table": "t"}))
            .await
            .unwrap();
    }
    let url = app.url();
    let (status, stderr, first) = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(BIN)
            .args(["list", "--page-size", "500"])
            .env("SENTINEL_ADDR", url)
            .env_remove("SENTINEL_API_KEY")
            .env("RUST_BACKTRACE", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sentinel list starts");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        reader.read_line(&mut first).expect("one line");
        drop(reader); // like `head -1`: the read end closes
        let out = child.wait_with_output().expect("sentinel list ends");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).to_string(),
            first,
        )
    })
    .await
    .unwrap();
    assert!(first.starts_with("INTENT"), "{first}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.trim().is_empty(), "quiet: {stderr}");
    assert_eq!(status.code(), Some(CLOSED_STDOUT), "{status:?}");

    // A pipe closed before the first byte, for every kind of writer: a JSON dump and the
    // policy tools.
    for args in [
        vec!["list".to_string(), "--json".into()],
        vec!["policy".into(), "check".into()],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        // `output()` would replace stdout with its own pipe: spawn, then wait.
        let child = tokio::process::Command::new(BIN)
            .args(&args)
            .env("SENTINEL_ADDR", app.url())
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .expect("sentinel starts");
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("ends")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.trim().is_empty(), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(CLOSED_STDOUT), "{args:?}");
    }
    app.stop().await;
}

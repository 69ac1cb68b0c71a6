use super::*;

#[test]
fn breaker_opens_after_consecutive_failures_and_probes_once() {
    let b = Breaker::new(2, Duration::from_millis(0));
    b.acquire().unwrap().record(false);
    b.acquire().unwrap().record(true); // success resets the count
    b.acquire().unwrap().record(false);
    assert_eq!(b.open_until.load(Ordering::Acquire), 0);
    b.acquire().unwrap().record(false);
    assert_ne!(b.open_until.load(Ordering::Acquire), 0);
    // Cooldown 0: one probe may go, a second must wait for it.
    let probe = b.acquire().unwrap();
    assert!(probe.probe);
    assert!(b.acquire().is_err());
    probe.record(true);
    assert_eq!(b.open_until.load(Ordering::Acquire), 0);
    assert!(!b.acquire().unwrap().probe);
}

#[test]
fn open_breaker_refuses_until_cooldown() {
    let b = Breaker::new(1, Duration::from_secs(60));
    b.acquire().unwrap().record(false);
    let wait = b.acquire().err().unwrap();
    assert!(wait > Duration::from_secs(50));
}

#[test]
fn retry_after_headers() {
    let mut h = HeaderMap::new();
    h.insert("retry-after", HeaderValue::from_static("2"));
    assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    h.insert("retry-after-ms", HeaderValue::from_static("150"));
    assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
    let mut h = HeaderMap::new();
    h.insert(
        "retry-after",
        HeaderValue::from_static("Wed, 21 Oct 2026 07:28:00 GMT"),
    );
    assert_eq!(retry_after(&h), None);
}

#[test]
fn completions_are_validated() {
    let ok = br#"{"model":"m","choices":[{"message":{"content":"{}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
    let c = parse_completion(ok, "req").unwrap();
    assert_eq!(
        (c.input_tokens, c.output_tokens, c.model.as_str()),
        (3, 4, "m")
    );
    let length = br#"{"choices":[{"message":{"content":"{\"risk"},"finish_reason":"length"}]}"#;
    assert!(matches!(
        parse_completion(length, "m"),
        Err(ScoreError::InvalidOutput(_))
    ));
    assert!(matches!(
        parse_completion(b"<html>", "m"),
        Err(ScoreError::InvalidOutput(_))
    ));
    assert!(matches!(
        parse_completion(br#"{"choices":[]}"#, "m"),
        Err(ScoreError::InvalidOutput(_))
    ));
}

#[test]
fn debug_output_has_no_key() {
    let options = LlmOptions::new(
        "http://127.0.0.1:9",
        Secret::new("gsk_topsecret"),
        "m",
        Duration::from_secs(1),
    );
    let scorer = LlmScorer::new(options.clone()).unwrap();
    assert!(!format!("{scorer:?}{options:?}").contains("topsecret"));
}

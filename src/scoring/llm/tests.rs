use super::*;

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

//! `sentinel policy test FILE.jsonl`: replays intents with expected outcomes against a pack,
//! the harness policy authors run in CI.
//!
//! Each line is `{"name": ..., "intent": {...SubmitIntentRequest fields...}, "expect": {...}}`
//! where `expect` may give `state`, `score`, `min_score`, `module` and `reason` (a code that
//! must be among the reasons). Intents are decided exactly as the server decides them with
//! the deterministic scorer (no LLM).

use serde::Deserialize;

use super::decide::{decide, Decision};
use crate::domain::validate::{Limits, SubmitInput};
use crate::domain::{IntentState, RiskScore};
use crate::policy::PolicyPack;
use crate::scoring::fallback::FallbackScorer;
use crate::scoring::{ScoreRequest, Scorer};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    intent: SubmitInput,
    #[serde(default)]
    expect: Expect,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    state: Option<String>,
    score: Option<u8>,
    min_score: Option<u8>,
    module: Option<String>,
    reason: Option<String>,
}

/// One replayed case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub line: usize,
    pub name: String,
    pub state: String,
    pub score: Option<RiskScore>,
    pub module: String,
    /// Empty when the case passed.
    pub mismatches: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Replays every line of a JSONL corpus. A line that cannot be parsed is a failed case.
pub async fn run_corpus(pack: &PolicyPack, corpus: &str) -> Vec<CaseResult> {
    let scorer = FallbackScorer;
    let limits = Limits::default();
    let mut results = Vec::new();
    for (i, line) in corpus.lines().enumerate() {
        let line_no = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("//") || trimmed.starts_with('#') {
            continue;
        }
        let case: Case = match serde_json::from_str(trimmed) {
            Ok(c) => c,
            Err(e) => {
                results.push(CaseResult {
                    line: line_no,
                    name: format!("line {line_no}"),
                    state: "-".into(),
                    score: None,
                    module: String::new(),
                    mismatches: vec![format!("not a valid case: {e}")],
                });
                continue;
            }
        };
        let outcome = match case.intent.into_draft(&limits) {
            Err(e) => Err(format!("INVALID_ARGUMENT: {e}")),
            Ok(draft) => match pack.evaluate(&draft) {
                Err(e) => Err(format!("INVALID_ARGUMENT: {e}")),
                Ok(eval) => {
                    let scored = if eval.verdict == crate::policy::Verdict::Open {
                        let req = ScoreRequest {
                            draft: &draft,
                            module: &eval.module,
                            floor: eval.score,
                            policy_reasons: &eval.reasons,
                            known: &eval.known,
                        };
                        Some(scorer.score(&req).await)
                    } else {
                        None
                    };
                    Ok(decide(&eval, scored))
                }
            },
        };
        results.push(check(line_no, case.name, &case.expect, outcome));
    }
    results
}

fn check(
    line: usize,
    name: String,
    expect: &Expect,
    outcome: Result<Decision, String>,
) -> CaseResult {
    let mut mismatches = Vec::new();
    let (state, score, module, reasons) = match &outcome {
        Ok(d) => (
            d.state.as_str().to_string(),
            Some(d.score),
            d.module.clone(),
            d.reasons.iter().map(|r| r.code.clone()).collect::<Vec<_>>(),
        ),
        Err(e) => (
            "INVALID_ARGUMENT".to_string(),
            None,
            String::new(),
            vec![e.clone()],
        ),
    };
    if let Some(want) = &expect.state {
        let want_norm = IntentState::parse(want)
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| want.to_ascii_uppercase());
        if want_norm != state {
            mismatches.push(format!("state: want {want_norm}, got {state}"));
        }
    }
    if let Some(want) = expect.score {
        if score.map(|s| s.get()) != Some(want) {
            mismatches.push(format!("score: want {want}, got {}", fmt_score(score)));
        }
    }
    if let Some(want) = expect.min_score {
        if score.is_none_or(|s| s.get() < want) {
            mismatches.push(format!("score: want >= {want}, got {}", fmt_score(score)));
        }
    }
    if let Some(want) = &expect.module {
        if *want != module {
            mismatches.push(format!("module: want {want}, got {module}"));
        }
    }
    if let Some(want) = &expect.reason {
        if !reasons.iter().any(|r| r == want) {
            mismatches.push(format!("reason: want {want}, got [{}]", reasons.join(", ")));
        }
    }
    CaseResult {
        line,
        name,
        state,
        score,
        module,
        mismatches,
    }
}

fn fmt_score(score: Option<RiskScore>) -> String {
    score.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
}

/// A plain-text table of results, one row per case, then a summary line.
pub fn render_table(results: &[CaseResult]) -> String {
    let name_w = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    let mut out = format!(
        "{:<6} {:<name_w$} {:<17} {:>5}  {:<14} {}\n",
        "RESULT", "CASE", "STATE", "SCORE", "MODULE", "MISMATCH"
    );
    for r in results {
        out.push_str(&format!(
            "{:<6} {:<name_w$} {:<17} {:>5}  {:<14} {}\n",
            if r.passed() { "ok" } else { "FAIL" },
            r.name,
            r.state,
            fmt_score(r.score),
            if r.module.is_empty() { "-" } else { &r.module },
            r.mismatches.join("; ")
        ));
    }
    let failed = results.iter().filter(|r| !r.passed()).count();
    out.push_str(&format!(
        "{} cases, {} passed, {} failed\n",
        results.len(),
        results.len() - failed,
        failed
    ));
    out
}

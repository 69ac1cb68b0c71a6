//! `sentinel policy check|test`: a pack's validity and its decisions on a corpus, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use super::args::PolicyCommand;
use super::output::{self, outln};

pub(super) async fn policy(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    use crate::policy::PolicyPack;
    let load = |path: Option<PathBuf>| -> anyhow::Result<PolicyPack> {
        Ok(match path {
            Some(p) => PolicyPack::load(&p)?,
            None => PolicyPack::builtin(),
        })
    };
    match command {
        PolicyCommand::Check { file, json } => {
            let pack = match load(file) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("invalid policy pack: {e:#}");
                    return Ok(ExitCode::from(2));
                }
            };
            if json {
                outln!(
                    "{}",
                    serde_json::json!({
                        "name": pack.name(),
                        "version": pack.version(),
                        "rules": pack.rule_count(),
                        "modules": pack.module_names().collect::<Vec<_>>(),
                    })
                );
            } else {
                outln!(
                    "ok: {} ({} rules; modules: {})",
                    pack.version(),
                    pack.rule_count(),
                    pack.module_names().collect::<Vec<_>>().join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test {
            corpus,
            policy,
            json,
        } => {
            let pack = load(policy)?;
            let text = std::fs::read_to_string(&corpus)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", corpus.display()))?;
            let results = crate::decision::corpus::run_corpus(&pack, &text).await;
            let failed = results.iter().filter(|r| !r.passed()).count();
            if json {
                for r in &results {
                    outln!(
                        "{}",
                        serde_json::json!({
                            "line": r.line, "name": r.name, "passed": r.passed(),
                            "state": r.state, "score": r.score.map(|s| s.get()),
                            "module": r.module, "mismatches": r.mismatches,
                        })
                    );
                }
            } else {
                outln!("policy {}", pack.version());
                output::write_stdout(format_args!(
                    "{}",
                    crate::decision::corpus::render_table(&results)
                ));
            }
            Ok(if failed == 0 && !results.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}

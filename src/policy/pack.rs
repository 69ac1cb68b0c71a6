use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use cel::{Context, Env, Program, Value};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Evaluation, Verdict};
use crate::domain::KnownValues;
use crate::domain::{IntentDraft, Reason, ReasonSource, RiskScore};
use crate::macros::debug_showing;

const BUILTIN: &str = include_str!("builtin.toml");

/// Names a rule may read. `facts` is the pack's own `[facts]` table: values the pack asserts
/// (its currency, patterns), as opposed to `payload`, which holds the agent's claims.
const VARIABLES: [&str; 7] = [
    "action",
    "module",
    "agent_id",
    "labels",
    "payload",
    "reasoning",
    "facts",
];
/// CEL type names, which the parser reports as identifiers.
const TYPE_NAMES: [&str; 10] = [
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];
/// Rules using these macros bind their own variables; identifiers are not checked there.
const BINDING_MACROS: [&str; 5] = [".all(", ".exists(", ".exists_one(", ".map(", ".filter("];

/// The score a rule's effect implies when the rule does not set one.
const DEFAULT_DECLINE_SCORE: u8 = 100;
const DEFAULT_ESCALATE_SCORE: u8 = 70;
const DEFAULT_APPROVE_SCORE: u8 = 10;
/// The score of an action no module owns.
const UNKNOWN_ACTION_SCORE: u8 = 60;
const DEFAULT_THRESHOLD: u8 = 50;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy pack {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("policy pack is not valid TOML: {0}")]
    Format(String),
    #[error("policy rule '{rule}': {message}")]
    Rule { rule: String, message: String },
    #[error("policy pack: {0}")]
    Invalid(String),
    /// The agent named a module the action does not belong to, or one that does not exist.
    #[error("{0}")]
    Module(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Hard block: the intent is declined at once.
    Decline,
    /// A human must decide.
    Escalate,
    /// Trusted fast path: approved without calling the scorer.
    Approve,
    /// Raises the minimum score; evaluation continues.
    Floor,
}

mod file;
mod mcp;

use file::PackFile;

#[derive(Debug)]
struct Module {
    name: String,
    threshold: RiskScore,
    approval_timeout: Option<Duration>,
    scorer_may_approve: bool,
    scorer_max_approve_amount: Option<f64>,
}

impl Module {
    /// Why the scorer may not approve this payload in this module, if it may not.
    fn scorer_limit(&self, payload: &serde_json::Value) -> Option<String> {
        if !self.scorer_may_approve {
            return Some(format!(
                "module {} does not let the scorer approve (scorer_may_approve = false): a rule or a human decides",
                self.name
            ));
        }
        let max = self.scorer_max_approve_amount?;
        match payload.get("amount").and_then(serde_json::Value::as_f64) {
            Some(amount) if amount <= max => None,
            Some(amount) => Some(format!(
                "payload.amount {amount} is above {max}, the most module {} lets the scorer approve",
                self.name
            )),
            None => Some(format!(
                "payload.amount is missing or not a number; module {} lets the scorer approve only amounts up to {max}",
                self.name
            )),
        }
    }
}

struct Rule {
    name: String,
    actions: Option<HashSet<String>>,
    modules: Option<HashSet<String>>,
    program: Program,
    effect: Effect,
    score: RiskScore,
    code: String,
    message: String,
}

debug_showing!(Rule { name, effect });

/// A compiled policy pack. Cheap to share; evaluation takes no locks.
#[derive(Debug)]
pub struct PolicyPack {
    name: String,
    description: String,
    version: String,
    modules: Vec<Module>,
    by_action: HashMap<String, usize>,
    rules: Vec<Rule>,
    default_threshold: RiskScore,
    default_timeout: Option<Duration>,
    /// Strings and field names the rules name: what the scorer's approving pass may read.
    known: Arc<KnownValues>,

    /// The `[facts]` table, converted for CEL once at load and bound to every evaluation as
    /// `facts` (a clone shares the converted maps).
    facts: cel::Value,
    /// The CEL standard environment, built once: building it per evaluation was a measurable
    /// share of a submission's CPU time.
    env: CelEnv,
    /// `[[mcp.tools]]`: tool name -> action, read by `sentinel mcp`.
    mcp: mcp::McpTools,
}

struct CelEnv(Arc<Env>);

impl std::fmt::Debug for CelEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CelEnv(stdlib)")
    }
}

fn score(value: Option<u8>, default: u8, what: &str) -> Result<RiskScore, String> {
    let v = value.unwrap_or(default);
    RiskScore::new(v).ok_or_else(|| format!("{what} {v} is above 100"))
}

fn timeout(secs: Option<u64>, what: &str) -> Result<Option<Duration>, String> {
    match secs {
        Some(0) => Err(format!("{what} must be at least 1 second")),
        other => Ok(other.map(Duration::from_secs)),
    }
}

impl PolicyPack {
    /// The pack compiled into the binary.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN).expect("the built-in policy pack compiles; a unit test checks it")
    }

    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Compiles a pack from TOML text. Any bad rule stops here with its name and the error.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: PackFile =
            toml::from_str(text).map_err(|e| PolicyError::Format(e.to_string()))?;
        let version = {
            let digest = Sha256::digest(text.as_bytes());
            format!("{}@{}", file.name, &hex::encode(digest)[..12])
        };
        let default_threshold = score(
            file.approve_max_score,
            DEFAULT_THRESHOLD,
            "approve_max_score",
        )
        .map_err(PolicyError::Invalid)?;
        let default_timeout = timeout(file.approval_timeout_secs, "approval_timeout_secs")
            .map_err(PolicyError::Invalid)?;

        let mut modules = Vec::new();
        let mut by_action = HashMap::new();
        // The pack's own facts (trusted vendors, its currency) are known values too: a payload
        // string equal to one of them is something Sentinel can check.
        let mut fact_strings = Vec::new();
        toml_strings(&toml::Value::Table(file.facts.clone()), &mut fact_strings);
        let known = Arc::new(KnownValues::from_sources(
            file.rules.iter().map(|r| r.when.as_str()),
            file.modules
                .iter()
                .flat_map(|m| m.actions.iter().map(String::as_str))
                .chain(fact_strings.iter().map(String::as_str)),
        ));
        for m in file.modules {
            if m.name.trim().is_empty() {
                return Err(PolicyError::Invalid("a module has an empty name".into()));
            }
            if modules.iter().any(|x: &Module| x.name == m.name) {
                return Err(PolicyError::Invalid(format!(
                    "module '{}' is defined twice",
                    m.name
                )));
            }
            let what = format!("module '{}'", m.name);
            let threshold = score(
                m.approve_max_score,
                default_threshold.get(),
                "approve_max_score",
            )
            .map_err(|e| PolicyError::Invalid(format!("{what}: {e}")))?;
            let approval_timeout = timeout(m.approval_timeout_secs, "approval_timeout_secs")
                .map_err(|e| PolicyError::Invalid(format!("{what}: {e}")))?
                .or(default_timeout);
            for action in &m.actions {
                if let Some(other) = by_action.insert(action.clone(), modules.len()) {
                    let other: &Module = &modules[other];
                    return Err(PolicyError::Invalid(format!(
                        "action '{action}' belongs to both '{}' and '{}'",
                        other.name, m.name
                    )));
                }
            }
            if let Some(max) = m.scorer_max_approve_amount {
                if !max.is_finite() || max < 0.0 {
                    return Err(PolicyError::Invalid(format!(
                        "{what}: scorer_max_approve_amount must be a non-negative number"
                    )));
                }
            }
            modules.push(Module {
                name: m.name,
                threshold,
                approval_timeout,
                scorer_may_approve: m.scorer_may_approve.unwrap_or(true),
                scorer_max_approve_amount: m.scorer_max_approve_amount,
            });
        }

        let mcp = mcp::compile(file.mcp)?;
        let facts = serde_json::to_value(&file.facts)
            .ok()
            .and_then(|json| cel::to_value(json).ok())
            .ok_or_else(|| PolicyError::Invalid("facts: cannot be converted for CEL".into()))?;
        // The strings extension gives rules `join` and `lowerAscii`: a rule can match one
        // regular expression against all of a payload's field names at once.
        let mut env = Env::stdlib();
        env.add_extension(cel::extensions::strings)
            .map_err(|e| PolicyError::Invalid(format!("CEL strings extension: {e}")))?;
        let env = CelEnv(Arc::new(env));
        let mut rules = Vec::new();
        let mut names = HashSet::new();
        for r in file.rules {
            let rule_err = |message: String| PolicyError::Rule {
                rule: r.name.clone(),
                message,
            };
            if r.name.trim().is_empty() {
                return Err(PolicyError::Invalid("a rule has an empty name".into()));
            }
            if !names.insert(r.name.clone()) {
                return Err(rule_err("defined twice".into()));
            }
            let program = env
                .0
                .compile(&r.when)
                .map_err(|e| rule_err(format!("CEL does not compile: {e}")))?;
            if !BINDING_MACROS.iter().any(|m| r.when.contains(m)) {
                let refs = program.references();
                let mut unknown: Vec<&str> = refs
                    .variables()
                    .into_iter()
                    .filter(|v| !VARIABLES.contains(v) && !TYPE_NAMES.contains(v))
                    .collect();
                unknown.sort_unstable();
                if !unknown.is_empty() {
                    return Err(rule_err(format!(
                        "unknown variable(s) {}; rules may use {}",
                        unknown.join(", "),
                        VARIABLES.join(", ")
                    )));
                }
            }
            if let Some(mods) = &r.modules {
                if let Some(m) = mods.iter().find(|m| !modules.iter().any(|x| x.name == **m)) {
                    return Err(rule_err(format!("unknown module '{m}'")));
                }
            }
            let default = match r.effect {
                Effect::Decline => DEFAULT_DECLINE_SCORE,
                Effect::Escalate => DEFAULT_ESCALATE_SCORE,
                Effect::Approve => DEFAULT_APPROVE_SCORE,
                Effect::Floor => 0,
            };
            let score = score(r.score, default, "score").map_err(rule_err)?;
            let code = r
                .code
                .clone()
                .unwrap_or_else(|| r.name.replace(['.', '-'], "_"));
            rules.push(Rule {
                actions: r.actions.map(|a| a.into_iter().collect()),
                modules: r.modules.map(|m| m.into_iter().collect()),
                program,
                effect: r.effect,
                score,
                code,
                message: r.message,
                name: r.name,
            });
        }

        Ok(PolicyPack {
            name: file.name,
            description: file.description,
            version,
            modules,
            by_action,
            rules,
            default_threshold,
            default_timeout,
            facts,
            env,
            known,
            mcp,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// `name@hash`: changes whenever the pack's text changes.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    pub fn module_names(&self) -> impl Iterator<Item = &str> {
        self.modules.iter().map(|m| m.name.as_str())
    }

    /// Resolves the intent's module: the one owning its action. An agent may name the module,
    /// but only the right one (or, for an action no module owns, any existing module).
    pub fn module_for(
        &self,
        action: &str,
        requested: Option<&str>,
    ) -> Result<Option<usize>, PolicyError> {
        let owner = self.by_action.get(action).copied();
        match (owner, requested) {
            (Some(i), Some(req)) if self.modules[i].name != req => {
                Err(PolicyError::Module(format!(
                    "module: action {action} belongs to module {}, not {req}",
                    self.modules[i].name
                )))
            }
            (Some(i), _) => Ok(Some(i)),
            (None, Some(req)) => match self.modules.iter().position(|m| m.name == req) {
                Some(i) => Ok(Some(i)),
                None => Err(PolicyError::Module(format!(
                    "module: unknown module {req}; known modules: {}",
                    self.modules
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            },
            (None, None) => Ok(None),
        }
    }

    /// Evaluates the pack against a submission. Deterministic and side-effect free.
    pub fn evaluate(&self, draft: &IntentDraft) -> Result<Evaluation, PolicyError> {
        let module_index = self.module_for(&draft.action, draft.module.as_deref())?;
        let module = module_index.map(|i| &self.modules[i]);
        let module_name = module.map(|m| m.name.clone()).unwrap_or_default();
        let threshold = module
            .map(|m| m.threshold)
            .unwrap_or(self.default_threshold);
        let approval_timeout = module
            .and_then(|m| m.approval_timeout)
            .or(self.default_timeout);

        let mut ctx = Context::with_env(self.env.0.clone());
        bind(&mut ctx, "action", &draft.action);
        bind(&mut ctx, "module", &module_name);
        bind(&mut ctx, "agent_id", &draft.agent_id);
        bind(&mut ctx, "labels", &draft.labels);
        bind(&mut ctx, "payload", &draft.payload);
        bind(&mut ctx, "reasoning", &draft.reasoning);
        ctx.add_variable_from_value("facts", self.facts.clone());

        let mut floor = RiskScore::MIN;
        let mut reasons = Vec::new();
        let mut errors = 0usize;
        let mut decided: Option<(&Rule, Verdict)> = None;
        for rule in &self.rules {
            if rule
                .actions
                .as_ref()
                .is_some_and(|a| !a.contains(&draft.action))
                || rule
                    .modules
                    .as_ref()
                    .is_some_and(|m| !m.contains(&module_name))
            {
                continue;
            }
            match rule.program.execute(&ctx) {
                Ok(Value::Bool(true)) => {
                    reasons.push(rule_reason(rule));
                    match rule.effect {
                        Effect::Floor => floor = floor.max(rule.score),
                        Effect::Approve => {
                            decided = Some((rule, Verdict::Approve));
                            break;
                        }
                        Effect::Escalate => {
                            decided = Some((rule, Verdict::Escalate));
                            break;
                        }
                        Effect::Decline => {
                            decided = Some((rule, Verdict::Decline));
                            break;
                        }
                    }
                }
                Ok(Value::Bool(false)) => {}
                Ok(other) => {
                    errors += 1;
                    reasons.push(error_reason(
                        rule,
                        &format!("evaluated to {other:?}, not a bool"),
                    ));
                }
                Err(e) => {
                    errors += 1;
                    reasons.push(error_reason(rule, &e.to_string()));
                }
            }
        }

        let (mut verdict, mut score) = match decided {
            Some((rule, verdict)) => (verdict, rule.score.max(floor)),
            None => (Verdict::Open, floor),
        };
        if !self.by_action.contains_key(&draft.action) && verdict != Verdict::Decline {
            // A human decides what no module covers, whatever module the agent named: naming
            // a module must not turn an unknown action into one a scorer may approve.
            verdict = Verdict::Escalate;
            score = score.max(RiskScore::new(UNKNOWN_ACTION_SCORE).expect("constant in range"));
            reasons.push(Reason::new(
                ReasonSource::Policy,
                "unknown_action",
                format!(
                    "no module of policy pack {} covers action {}",
                    self.name, draft.action
                ),
            ));
        }
        if verdict == Verdict::Approve && score > threshold {
            verdict = Verdict::Escalate;
            reasons.push(Reason::new(
                ReasonSource::Policy,
                "floor_above_threshold",
                format!("score {score} is above the approval threshold {threshold}"),
            ));
        }
        if errors > 0 && matches!(verdict, Verdict::Approve | Verdict::Open) {
            verdict = Verdict::Escalate;
            score = score
                .max(RiskScore::new(threshold.get().saturating_add(1).min(100)).expect("clamped"));
        }
        Ok(Evaluation {
            module: module_name,
            verdict,
            score,
            reasons,
            threshold,
            approval_timeout,
            scorer_limit: module.and_then(|m| m.scorer_limit(&draft.payload)),
            known: self.known.clone(),
        })
    }
}

fn bind<T: serde::Serialize + ?Sized>(ctx: &mut Context<'_, '_>, name: &str, value: &T) {
    // Serialising plain strings, maps and JSON values cannot fail.
    if let Err(e) = ctx.add_variable(name, value) {
        tracing::error!(variable = name, error = %e, "cannot bind policy variable");
    }
}

fn rule_reason(rule: &Rule) -> Reason {
    Reason {
        code: rule.code.clone(),
        source: ReasonSource::Policy,
        message: rule.message.clone(),
        rule: rule.name.clone(),
    }
}

fn error_reason(rule: &Rule, error: &str) -> Reason {
    Reason {
        code: "policy_rule_error".into(),
        source: ReasonSource::Policy,
        message: format!(
            "rule {} could not be evaluated ({error}); a human must decide",
            rule.name
        ),
        rule: rule.name.clone(),
    }
}

/// Every string value in a TOML value, depth first.
fn toml_strings(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| toml_strings(v, out)),
        toml::Value::Table(table) => table.values().for_each(|v| toml_strings(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;

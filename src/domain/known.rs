//! What a policy pack knows: the strings and field names its rules name, plus the closed sets
//! Sentinel itself knows (environment names, ISO 4217 currencies). The pack gathers it once at
//! load; the scorer uses it to tell checkable payload values from agent-chosen free text.

use std::collections::HashSet;

const ENVIRONMENTS: [&str; 12] = [
    "production",
    "prod",
    "staging",
    "stage",
    "dev",
    "development",
    "test",
    "testing",
    "qa",
    "sandbox",
    "preview",
    "local",
];

/// The most traded ISO 4217 codes; others are reduced like any short token.
const CURRENCIES: [&str; 36] = [
    "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "CNY", "HKD", "SGD", "SEK", "NOK",
    "DKK", "PLN", "CZK", "HUF", "INR", "BRL", "MXN", "ZAR", "KRW", "TWD", "THB", "ILS", "AED",
    "SAR", "TRY", "RUB", "IDR", "MYR", "PHP", "CLP", "COP", "ARS", "NGN",
];

/// Strings and keys the policy pack names, gathered once when the pack is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownValues {
    strings: HashSet<String>,
    keys: HashSet<String>,
}

static EMPTY: std::sync::LazyLock<KnownValues> = std::sync::LazyLock::new(KnownValues::default);

impl KnownValues {
    /// No pack knowledge: only Sentinel's own closed sets are known.
    pub fn empty() -> &'static KnownValues {
        &EMPTY
    }

    /// Gathers the string literals and `payload.X` / `labels.X` field names of CEL sources,
    /// plus extra known strings (module names and actions).
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = &'a str>,
        extra: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut known = KnownValues::default();
        for source in sources {
            known.read_cel(source);
        }
        known.strings.extend(extra.into_iter().map(str::to_string));
        known
    }

    fn read_cel(&mut self, source: &str) {
        let chars: Vec<char> = source.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' || c == '"' {
                let mut literal = String::new();
                let mut j = i + 1;
                while j < chars.len() && chars[j] != c {
                    if chars[j] == '\\' && j + 1 < chars.len() {
                        j += 1;
                    }
                    literal.push(chars[j]);
                    j += 1;
                }
                // A quoted name after `[` is a field name (`payload["vendor name"]`).
                let before = chars[..i].iter().rev().find(|c| !c.is_whitespace());
                if before == Some(&'[') {
                    self.keys.insert(literal.clone());
                }
                self.strings.insert(literal);
                i = j + 1;
                continue;
            }
            if c == '.' {
                let name: String = chars[i + 1..]
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || **c == '_')
                    .collect();
                if !name.is_empty() {
                    self.keys.insert(name);
                }
            }
            i += 1;
        }
    }

    /// Whether a payload string is one the pack names or one of the closed sets Sentinel
    /// knows (environments, ISO 4217 currencies).
    pub fn knows_string(&self, s: &str) -> bool {
        self.strings.contains(s)
            || ENVIRONMENTS.contains(&s.to_ascii_lowercase().as_str())
            || CURRENCIES.contains(&s)
    }

    /// Whether the pack reads this field name (`payload.amount`, `payload["cost centre"]`).
    pub fn names_key(&self, k: &str) -> bool {
        self.keys.contains(k)
    }
}

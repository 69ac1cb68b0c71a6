//! Phone and SMS escalation through Telnyx: the API credentials, the webhook signing key, the
//! roster of approvers and the ladder's knobs.

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use super::env::Env;
use super::{ConfigError, Secret};

pub const DEFAULT_TELNYX_BASE_URL: &str = "https://api.telnyx.com/v2";
pub const DEFAULT_TELNYX_VOICE: &str = "Telnyx.KokoroTTS.af";

#[derive(Debug, Clone)]
pub struct TelnyxConfig {
    pub api_key: Option<Secret>,
    /// The account's webhook signing key (`TELNYX_PUBLIC_KEY`), decoded and checked.
    pub public_key: Option<VerifyingKey>,
    pub base_url: String,
    pub connection_id: Option<String>,
    pub phone_number: Option<String>,
    pub admin_phone_number: Option<String>,
    pub public_url: Option<String>,
    /// Who is phoned, in order: the `[[approvers]]` table, else `ADMIN_PHONE_NUMBER` alone.
    pub roster: Vec<ApproverConfig>,
    pub escalation: EscalationConfig,
}

/// One approver of the roster (`[[approvers]]` in the file).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproverConfig {
    pub name: String,
    /// +E.164; also the only number whose SMS replies count for this approver.
    pub phone: String,
    /// Hex SHA-256 of the approver's PIN, required to approve at or above the PIN tier.
    #[serde(default)]
    pub pin_sha256: Option<String>,
    /// Modules this approver decides; empty means all.
    #[serde(default)]
    pub modules: Vec<String>,
    /// Only intents at or above this risk score are routed to this approver.
    #[serde(default)]
    pub min_risk: u8,
    /// Lower is called first; ties keep file order.
    #[serde(default)]
    pub order: i32,
}

impl std::fmt::Debug for ApproverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The PIN hash of a short PIN is as good as the PIN: never print it.
        f.debug_struct("ApproverConfig")
            .field("name", &self.name)
            .field("phone", &self.phone)
            .field("has_pin", &self.pin_sha256.is_some())
            .field("modules", &self.modules)
            .field("min_risk", &self.min_risk)
            .field("order", &self.order)
            .finish()
    }
}

/// Knobs of the Telnyx escalation ladder (`[escalation]` in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationConfig {
    /// How long a call may ring before the next approver is tried (`SENTINEL_RING_TIMEOUT_SECS`).
    pub ring_timeout: Duration,
    /// Intents at or above this risk score need the approver's PIN to be approved
    /// (`SENTINEL_PIN_MIN_RISK`); 101 disables the PIN step. Unset: 90 when any approver
    /// has a PIN, else off (nobody could enter one) -- see [`EscalationConfig::pin_tier`].
    pub pin_min_risk: Option<u8>,
    /// Text-to-speech voice for `speak` and `gather_using_speak`.
    pub voice: String,
    /// Whether the ladder ends with an SMS with a one-time code.
    pub sms: bool,
}

/// `[telnyx]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct FileTelnyx {
    base_url: Option<String>,
    connection_id: Option<String>,
    phone_number: Option<String>,
    admin_phone_number: Option<String>,
    public_url: Option<String>,
}

/// `[escalation]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct FileEscalation {
    ring_timeout_secs: Option<u64>,
    pin_min_risk: Option<u8>,
    voice: Option<String>,
    sms: Option<bool>,
}

/// Decodes the Base64 Ed25519 key Telnyx signs webhooks with.
fn webhook_key(raw: &str) -> Result<VerifyingKey, ConfigError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(raw)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        .ok_or_else(|| {
            ConfigError::new(
                "TELNYX_PUBLIC_KEY",
                "must be the account's Base64 Ed25519 public key (32 bytes)",
            )
        })
}

pub(super) fn load(
    env: &Env<'_>,
    file: FileTelnyx,
    escalation: FileEscalation,
    approvers: Vec<ApproverConfig>,
) -> Result<TelnyxConfig, ConfigError> {
    let mut telnyx = TelnyxConfig {
        api_key: env.get("TELNYX_API_KEY").map(Secret::new),
        public_key: env
            .get("TELNYX_PUBLIC_KEY")
            .map(|k| webhook_key(&k))
            .transpose()?,
        base_url: env
            .url(
                "SENTINEL_TELNYX_BASE_URL",
                file.base_url,
                Some(DEFAULT_TELNYX_BASE_URL),
            )?
            .unwrap_or_default(),
        connection_id: env.get("TELNYX_CONNECTION_ID").or(file.connection_id),
        phone_number: env.get("TELNYX_PHONE_NUMBER").or(file.phone_number),
        admin_phone_number: env.get("ADMIN_PHONE_NUMBER").or(file.admin_phone_number),
        public_url: env.url("SENTINEL_PUBLIC_URL", file.public_url, None)?,
        roster: Vec::new(),
        escalation: EscalationConfig {
            ring_timeout: Duration::from_secs(env.number(
                "SENTINEL_RING_TIMEOUT_SECS",
                escalation.ring_timeout_secs,
                25,
            )?),
            pin_min_risk: match env.get("SENTINEL_PIN_MIN_RISK") {
                Some(raw) => Some(raw.parse::<u8>().ok().filter(|n| *n <= 101).ok_or_else(
                    || {
                        ConfigError::new(
                            "SENTINEL_PIN_MIN_RISK",
                            format!("{raw:?} is not a risk score from 0 to 101"),
                        )
                    },
                )?),
                None => escalation.pin_min_risk,
            },
            voice: escalation
                .voice
                .unwrap_or_else(|| DEFAULT_TELNYX_VOICE.to_string()),
            sms: escalation.sms.unwrap_or(true),
        },
    };
    for (var, value) in [
        ("TELNYX_PHONE_NUMBER", &telnyx.phone_number),
        ("ADMIN_PHONE_NUMBER", &telnyx.admin_phone_number),
    ] {
        if let Some(v) = value {
            if !is_e164(v) {
                return Err(ConfigError::new(
                    var,
                    format!("{v:?} is not an E.164 number like +14155550100"),
                ));
            }
        }
    }
    telnyx.roster = roster(
        approvers,
        telnyx.admin_phone_number.as_deref(),
        env.get("ADMIN_PIN_SHA256"),
    )?;
    if !(5..=600).contains(&telnyx.escalation.ring_timeout.as_secs()) {
        return Err(ConfigError::new(
            "SENTINEL_RING_TIMEOUT_SECS",
            "must be between 5 and 600 seconds (Telnyx's dial timeout range)",
        ));
    }
    if telnyx.api_key.is_some() {
        for (var, value) in [
            ("TELNYX_CONNECTION_ID", &telnyx.connection_id),
            ("TELNYX_PHONE_NUMBER", &telnyx.phone_number),
        ] {
            if value.is_none() {
                return Err(ConfigError::new(
                    var,
                    "is required when TELNYX_API_KEY is set",
                ));
            }
        }
    }
    Ok(telnyx)
}
/// The PIN tier when none is configured and some approver has a PIN: critical risk.
pub const DEFAULT_PIN_MIN_RISK: u8 = 90;

impl EscalationConfig {
    /// The risk score from which an approval needs the approver's PIN (101: never).
    pub fn pin_tier(&self, roster: &[ApproverConfig]) -> u8 {
        match self.pin_min_risk {
            Some(tier) => tier,
            None if roster.iter().any(|a| a.pin_sha256.is_some()) => DEFAULT_PIN_MIN_RISK,
            None => 101,
        }
    }
}

/// The roster: the file's `[[approvers]]`, validated and sorted by `order`; without any,
/// `ADMIN_PHONE_NUMBER` (with `ADMIN_PIN_SHA256`) as the only approver.
pub(super) fn roster(
    approvers: Vec<ApproverConfig>,
    admin: Option<&str>,
    admin_pin: Option<String>,
) -> Result<Vec<ApproverConfig>, ConfigError> {
    let pin_ok = |p: &str| p.len() == 64 && p.chars().all(|c| c.is_ascii_hexdigit());
    if let Some(pin) = &admin_pin {
        if !pin_ok(pin) {
            return Err(ConfigError::new(
                "ADMIN_PIN_SHA256",
                "must be 64 hex characters (sha256 of the PIN)",
            ));
        }
    }
    if approvers.is_empty() {
        return Ok(admin
            .map(|phone| ApproverConfig {
                name: "admin".into(),
                phone: phone.to_string(),
                pin_sha256: admin_pin.map(|p| p.to_ascii_lowercase()),
                modules: Vec::new(),
                min_risk: 0,
                order: 0,
            })
            .into_iter()
            .collect());
    }
    let mut out = Vec::with_capacity(approvers.len());
    for (i, mut a) in approvers.into_iter().enumerate() {
        let name = |field: &str| format!("approvers[{i}].{field}");
        if a.name.trim().is_empty() {
            return Err(ConfigError::new(&name("name"), "must not be empty"));
        }
        if !is_e164(&a.phone) {
            return Err(ConfigError::new(
                &name("phone"),
                format!("{:?} is not an E.164 number like +14155550100", a.phone),
            ));
        }
        if let Some(pin) = &a.pin_sha256 {
            if !pin_ok(pin) {
                return Err(ConfigError::new(
                    &name("pin_sha256"),
                    "must be 64 hex characters (sha256 of the PIN)",
                ));
            }
        }
        if a.min_risk > 100 {
            return Err(ConfigError::new(
                &name("min_risk"),
                "must be a risk score from 0 to 100",
            ));
        }
        if out.iter().any(|o: &ApproverConfig| o.name == a.name) {
            return Err(ConfigError::new(
                &name("name"),
                format!(
                    "{:?} is used twice; progress lines and decisions name approvers",
                    a.name
                ),
            ));
        }
        if out.iter().any(|o: &ApproverConfig| o.phone == a.phone) {
            return Err(ConfigError::new(
                &name("phone"),
                "two approvers share this number; SMS replies could not be told apart",
            ));
        }
        a.pin_sha256 = a.pin_sha256.map(|p| p.to_ascii_lowercase());
        out.push(a);
    }
    out.sort_by_key(|a| a.order);
    Ok(out)
}

fn is_e164(s: &str) -> bool {
    s.len() >= 8
        && s.len() <= 16
        && s.starts_with('+')
        && s[1..].chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::super::tests::load;
    use super::*;

    #[test]
    fn roster_comes_from_the_file_or_the_admin_number() {
        let c = load(&[("ADMIN_PHONE_NUMBER", "+14155550100")]).unwrap();
        assert_eq!(c.telnyx.roster.len(), 1);
        assert_eq!(c.telnyx.roster[0].phone, "+14155550100");
        assert_eq!(c.telnyx.escalation.ring_timeout, Duration::from_secs(25));
        // Nobody has a PIN: the PIN tier is off unless configured.
        assert_eq!(c.telnyx.escalation.pin_tier(&c.telnyx.roster), 101);
        let c = load(&[
            ("ADMIN_PHONE_NUMBER", "+14155550100"),
            ("ADMIN_PIN_SHA256", &"b".repeat(64)),
        ])
        .unwrap();
        assert_eq!(
            c.telnyx.escalation.pin_tier(&c.telnyx.roster),
            DEFAULT_PIN_MIN_RISK
        );
        let c = load(&[
            ("ADMIN_PHONE_NUMBER", "+14155550100"),
            ("SENTINEL_PIN_MIN_RISK", "70"),
        ])
        .unwrap();
        assert_eq!(c.telnyx.escalation.pin_tier(&c.telnyx.roster), 70);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sentinel.toml");
        std::fs::write(
            &path,
            format!(
                "[escalation]\nring_timeout_secs = 10\n\n[[approvers]]\nname = \"bob\"\nphone = \"+14155550102\"\norder = 2\n\n[[approvers]]\nname = \"alice\"\nphone = \"+14155550101\"\npin_sha256 = \"{}\"\nmodules = [\"VaultKeeper\"]\nmin_risk = 60\norder = 1\n",
                "A".repeat(64)
            ),
        )
        .unwrap();
        let c = load(&[
            ("SENTINEL_CONFIG", path.to_str().unwrap()),
            ("ADMIN_PHONE_NUMBER", "+14155550100"),
        ])
        .unwrap();
        let names: Vec<_> = c.telnyx.roster.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(
            c.telnyx.roster[0].pin_sha256.as_deref(),
            Some("a".repeat(64).as_str())
        );
        assert_eq!(c.telnyx.escalation.ring_timeout, Duration::from_secs(10));
        assert!(!format!("{c:?}").contains(&"a".repeat(64)));

        std::fs::write(
            &path,
            "[[approvers]]\nname = \"x\"\nphone = \"+14155550101\"\n\n[[approvers]]\nname = \"x\"\nphone = \"+14155550102\"\n",
        )
        .unwrap();
        let e = load(&[("SENTINEL_CONFIG", path.to_str().unwrap())]).unwrap_err();
        assert_eq!(e.name, "approvers[1].name");
        std::fs::write(&path, "[[approvers]]\nname = \"x\"\nphone = \"555\"\n").unwrap();
        let e = load(&[("SENTINEL_CONFIG", path.to_str().unwrap())]).unwrap_err();
        assert_eq!(e.name, "approvers[0].phone");
        for (var, value) in [
            ("SENTINEL_RING_TIMEOUT_SECS", "2"),
            ("SENTINEL_PIN_MIN_RISK", "300"),
            ("ADMIN_PIN_SHA256", "1234"),
            ("TELNYX_PUBLIC_KEY", "bm90IGEga2V5"),
        ] {
            assert_eq!(load(&[(var, value)]).unwrap_err().name, var);
        }
        // A Telnyx key needs the voice app and the caller id.
        assert_eq!(
            load(&[("TELNYX_API_KEY", "KEY0123")]).unwrap_err().name,
            "TELNYX_CONNECTION_ID"
        );
    }
}

//! Phone and SMS escalation through Telnyx: the API credentials, the webhook signing key, the
//! roster of approvers and the ladder's knobs.

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;

use super::env::Env;
use super::{ConfigError, PinHash, Secret};

pub const DEFAULT_TELNYX_BASE_URL: &str = "https://api.telnyx.com/v2";
pub const DEFAULT_TELNYX_VOICE: &str = "Telnyx.KokoroTTS.af";

/// The phone and SMS channel. Present only when `TELNYX_API_KEY` is set, and then complete:
/// the voice app and the caller id are required with the key.
#[derive(Debug, Clone)]
pub struct TelnyxSettings {
    pub api_key: Secret,
    /// Without the trailing slash (`SENTINEL_TELNYX_BASE_URL`).
    pub base_url: String,
    /// The voice app (`TELNYX_CONNECTION_ID`).
    pub connection_id: String,
    /// The caller id and SMS sender (`TELNYX_PHONE_NUMBER`), E.164.
    pub phone_number: String,
    /// The base URL Telnyx posts webhooks to (`SENTINEL_PUBLIC_URL`).
    pub public_url: Option<String>,
    /// Who is phoned, in order: the `[[approvers]]` table, else `ADMIN_PHONE_NUMBER` alone.
    pub roster: Vec<ApproverConfig>,
    pub escalation: EscalationConfig,
}

impl TelnyxSettings {
    /// The channel with these credentials, an empty roster and the default ladder.
    pub fn new(
        api_key: Secret,
        base_url: impl Into<String>,
        connection_id: impl Into<String>,
        phone_number: impl Into<String>,
    ) -> Self {
        TelnyxSettings {
            api_key,
            base_url: base_url.into().trim_end_matches('/').to_string(),
            connection_id: connection_id.into(),
            phone_number: phone_number.into(),
            public_url: None,
            roster: Vec::new(),
            escalation: EscalationConfig::default(),
        }
    }
}

/// One approver of the roster (`[[approvers]]` in the file), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverConfig {
    pub name: String,
    /// +E.164; also the only number whose SMS replies count for this approver.
    pub phone: String,
    /// The approver's PIN hash, required to approve at or above the PIN tier.
    pub pin_sha256: Option<PinHash>,
    /// Modules this approver decides; empty means all.
    pub modules: Vec<String>,
    /// Only intents at or above this risk score are routed to this approver.
    pub min_risk: u8,
    /// Lower is called first; ties keep file order.
    pub order: i32,
}

/// `[[approvers]]` as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileApprover {
    name: String,
    phone: String,
    /// Hex SHA-256 of the approver's PIN.
    #[serde(default)]
    pin_sha256: Option<String>,
    #[serde(default)]
    modules: Vec<String>,
    #[serde(default)]
    min_risk: u8,
    #[serde(default)]
    order: i32,
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

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            ring_timeout: Duration::from_secs(25),
            pin_min_risk: None,
            voice: DEFAULT_TELNYX_VOICE.to_string(),
            sms: true,
        }
    }
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

/// The channel (`None` without `TELNYX_API_KEY`) and the webhook signing key. Every knob is
/// checked whether or not the channel is on, so a typo does not wait for the day a key is
/// added.
pub(super) fn load(
    env: &Env<'_>,
    file: FileTelnyx,
    escalation: FileEscalation,
    approvers: Vec<FileApprover>,
) -> Result<(Option<TelnyxSettings>, Option<VerifyingKey>), ConfigError> {
    let public_key = env
        .get("TELNYX_PUBLIC_KEY")
        .map(|k| webhook_key(&k))
        .transpose()?;
    let base_url = env
        .url(
            "SENTINEL_TELNYX_BASE_URL",
            file.base_url,
            Some(DEFAULT_TELNYX_BASE_URL),
        )?
        .unwrap_or_default();
    let public_url = env.url("SENTINEL_PUBLIC_URL", file.public_url, None)?;
    let e164 = |var: &str, value: Option<String>| match value {
        Some(v) if !is_e164(&v) => Err(ConfigError::new(
            var,
            format!("{v:?} is not an E.164 number like +14155550100"),
        )),
        other => Ok(other),
    };
    let phone_number = e164(
        "TELNYX_PHONE_NUMBER",
        env.get("TELNYX_PHONE_NUMBER").or(file.phone_number),
    )?;
    let admin = e164(
        "ADMIN_PHONE_NUMBER",
        env.get("ADMIN_PHONE_NUMBER").or(file.admin_phone_number),
    )?;
    let roster = roster(approvers, admin, env.get("ADMIN_PIN_SHA256"))?;
    let escalation =
        EscalationConfig {
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
        };
    if !(5..=600).contains(&escalation.ring_timeout.as_secs()) {
        return Err(ConfigError::new(
            "SENTINEL_RING_TIMEOUT_SECS",
            "must be between 5 and 600 seconds (Telnyx's dial timeout range)",
        ));
    }
    let connection_id = env.get("TELNYX_CONNECTION_ID").or(file.connection_id);
    let Some(api_key) = env.get("TELNYX_API_KEY").map(Secret::new) else {
        return Ok((None, public_key));
    };
    let required = |var: &str, value: Option<String>| {
        value.ok_or_else(|| ConfigError::new(var, "is required when TELNYX_API_KEY is set"))
    };
    let settings = TelnyxSettings {
        api_key,
        base_url,
        connection_id: required("TELNYX_CONNECTION_ID", connection_id)?,
        phone_number: required("TELNYX_PHONE_NUMBER", phone_number)?,
        public_url,
        roster,
        escalation,
    };
    Ok((Some(settings), public_key))
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
    approvers: Vec<FileApprover>,
    admin: Option<String>,
    admin_pin: Option<String>,
) -> Result<Vec<ApproverConfig>, ConfigError> {
    let pin = |name: &str, hex: Option<String>| {
        hex.map(|hex| {
            PinHash::from_hex(&hex).ok_or_else(|| {
                ConfigError::new(name, "must be 64 hex characters (sha256 of the PIN)")
            })
        })
        .transpose()
    };
    let admin_pin = pin("ADMIN_PIN_SHA256", admin_pin)?;
    if approvers.is_empty() {
        return Ok(admin
            .map(|phone| ApproverConfig {
                name: "admin".into(),
                phone,
                pin_sha256: admin_pin,
                modules: Vec::new(),
                min_risk: 0,
                order: 0,
            })
            .into_iter()
            .collect());
    }
    let mut out = Vec::with_capacity(approvers.len());
    for (i, a) in approvers.into_iter().enumerate() {
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
        let pin_sha256 = pin(&name("pin_sha256"), a.pin_sha256)?;
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
        out.push(ApproverConfig {
            name: a.name,
            phone: a.phone,
            pin_sha256,
            modules: a.modules,
            min_risk: a.min_risk,
            order: a.order,
        });
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
    use super::super::tests::{load, refused};
    use super::*;

    /// The channel as configured by `vars` plus a key, a voice app and a caller id.
    fn telnyx(vars: &[(&str, &str)]) -> TelnyxSettings {
        let mut all = vec![
            ("TELNYX_API_KEY", "KEY0123"),
            ("TELNYX_CONNECTION_ID", "1"),
            ("TELNYX_PHONE_NUMBER", "+14155550199"),
        ];
        all.extend_from_slice(vars);
        load(&all)
            .unwrap()
            .telnyx
            .expect("a key turns the channel on")
    }

    #[test]
    fn the_channel_is_on_only_with_a_key() {
        let c = load(&[("ADMIN_PHONE_NUMBER", "+14155550100")]).unwrap();
        assert!(c.telnyx.is_none());
        let t = telnyx(&[]);
        assert_eq!(t.api_key.expose(), "KEY0123");
        assert_eq!(t.base_url, DEFAULT_TELNYX_BASE_URL);
        assert_eq!(t.escalation, EscalationConfig::default());
    }

    #[test]
    fn roster_comes_from_the_file_or_the_admin_number() {
        let c = telnyx(&[("ADMIN_PHONE_NUMBER", "+14155550100")]);
        assert_eq!(c.roster.len(), 1);
        assert_eq!(c.roster[0].phone, "+14155550100");
        assert_eq!(c.escalation.ring_timeout, Duration::from_secs(25));
        // Nobody has a PIN: the PIN tier is off unless configured.
        assert_eq!(c.escalation.pin_tier(&c.roster), 101);
        let c = telnyx(&[
            ("ADMIN_PHONE_NUMBER", "+14155550100"),
            ("ADMIN_PIN_SHA256", &"b".repeat(64)),
        ]);
        assert_eq!(c.escalation.pin_tier(&c.roster), DEFAULT_PIN_MIN_RISK);
        assert_eq!(c.roster[0].pin_sha256, PinHash::from_hex(&"b".repeat(64)));
        let c = telnyx(&[
            ("ADMIN_PHONE_NUMBER", "+14155550100"),
            ("SENTINEL_PIN_MIN_RISK", "70"),
        ]);
        assert_eq!(c.escalation.pin_tier(&c.roster), 70);

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
        let c = telnyx(&[
            ("SENTINEL_CONFIG", path.to_str().unwrap()),
            ("ADMIN_PHONE_NUMBER", "+14155550100"),
        ]);
        let names: Vec<_> = c.roster.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(c.roster[0].pin_sha256, PinHash::from_hex(&"a".repeat(64)));
        assert_eq!(c.escalation.ring_timeout, Duration::from_secs(10));
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
        refused(&[
            ("SENTINEL_RING_TIMEOUT_SECS", "2"),
            ("SENTINEL_PIN_MIN_RISK", "300"),
            ("ADMIN_PIN_SHA256", "1234"),
            ("ADMIN_PIN_SHA256", "g".repeat(64).as_str()),
            ("TELNYX_PUBLIC_KEY", "bm90IGEga2V5"),
        ]);
        // A Telnyx key needs the voice app and the caller id.
        assert_eq!(
            load(&[("TELNYX_API_KEY", "KEY0123")]).unwrap_err().name,
            "TELNYX_CONNECTION_ID"
        );
    }
}

//! Unit-test fixtures: the Telnyx channel's settings (alice on the roster) and a gateway on
//! a memory store. Nothing here reaches the network.

use std::sync::Arc;

use crate::config::{ApproverConfig, Secret, TelnyxSettings, DEFAULT_TELNYX_BASE_URL};
use crate::gateway::{Gateway, Settings};
use crate::policy::PolicyPack;
use crate::scoring::fallback::FallbackScorer;
use crate::store::Store;

/// Sentinel's own number (`TELNYX_PHONE_NUMBER`).
pub const OUR_NUMBER: &str = "+14155550199";
pub const ALICE: &str = "+14155550101";

pub fn settings() -> TelnyxSettings {
    let mut telnyx =
        TelnyxSettings::new(Secret::new("KEY"), DEFAULT_TELNYX_BASE_URL, "1", OUR_NUMBER);
    telnyx.roster = vec![ApproverConfig {
        name: "alice".into(),
        phone: ALICE.into(),
        pin_sha256: None,
        modules: vec![],
        min_risk: 0,
        order: 0,
    }];
    telnyx
}

pub fn gateway(store: Arc<dyn Store>) -> Arc<Gateway> {
    Arc::new(Gateway::new(
        store,
        Arc::new(PolicyPack::builtin()),
        Arc::new(FallbackScorer),
        Settings::default(),
    ))
}

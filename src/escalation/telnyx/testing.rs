//! Unit-test fixtures: a configuration with Telnyx on (alice on the roster) and a gateway on
//! a memory store. Nothing here reaches the network.

use std::sync::Arc;

use crate::config::{ApproverConfig, Config, Secret};
use crate::gateway::{Gateway, Settings};
use crate::policy::PolicyPack;
use crate::scoring::fallback::FallbackScorer;
use crate::store::Store;

/// Sentinel's own number (`TELNYX_PHONE_NUMBER`).
pub const OUR_NUMBER: &str = "+14155550199";
pub const ALICE: &str = "+14155550101";

pub fn config() -> Config {
    let mut config = Config::ephemeral();
    config.telnyx.api_key = Some(Secret::new("KEY"));
    config.telnyx.connection_id = Some("1".into());
    config.telnyx.phone_number = Some(OUR_NUMBER.into());
    config.telnyx.roster = vec![ApproverConfig {
        name: "alice".into(),
        phone: ALICE.into(),
        pin_sha256: None,
        modules: vec![],
        min_risk: 0,
        order: 0,
    }];
    config
}

pub fn gateway(store: Arc<dyn Store>) -> Arc<Gateway> {
    Arc::new(Gateway::new(
        store,
        Arc::new(PolicyPack::builtin()),
        Arc::new(FallbackScorer),
        Settings::default(),
    ))
}

//! One integration binary: every test starts the real server in-process on port 0 and talks
//! gRPC/HTTP to it. Fakes of the paid external APIs live in `fakes/`.

mod fakes;
mod helpers;
mod redis_harness;

mod auth;
mod claims;
mod cli;
mod cli_pipes;
mod cluster;
mod connections;
mod console_browser;
mod console_http;
mod history;
mod injection;
mod limits;
mod mcp;
mod metrics;
mod pipeline;
mod policy;
mod receipts;
mod redis_faults;
mod redteam;
mod replicas;
mod scoring;
mod shutdown_work;
mod store_contract;
mod telemetry;
mod telnyx_ladder;
mod telnyx_replicas;
mod telnyx_sms;
mod telnyx_state;
mod telnyx_voice;
mod telnyx_webhook;
mod tls;
mod watch;

//! The `sentinel` command line: `serve`, the gRPC client subcommands, and the policy tools.
//!
//! Human-readable output by default, `--json` for scripts. Exit codes: 0 success, 1 failure,
//! 2 bad usage or a policy test mismatch.

mod args;
mod audit;
pub mod client;
mod health;
mod output;
mod policy;
mod receipt;
mod run;
mod serve;
pub use args::{
    AuditCommand, Cli, ClientOpts, Command, KeysCommand, PolicyCommand, ReceiptCommand,
};
pub use run::run;

//! Dispatch of a parsed command line, and the exit code of every failure.

use std::process::ExitCode;

use super::args::{AuditCommand, Cli, Command, KeysCommand, ReceiptCommand};
use super::output::{self, outln};
use super::{audit, client, health, policy, receipt, serve};

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve => serve::serve().await,
        Command::Policy { command } => policy::policy(command).await,
        Command::Keys {
            command: KeysCommand::Hash,
        } => {
            let mut key = String::new();
            match std::io::stdin().read_line(&mut key) {
                Ok(_) => {
                    outln!("{}", crate::auth::hash_key(key.trim()));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Health { url } => health::check(url.as_deref()).await,
        Command::Receipt {
            command: ReceiptCommand::Verify(args),
        } => receipt::verify(args).await,
        Command::Mcp(args) => crate::mcp::run(args).await,
        Command::Audit {
            command: AuditCommand::Export { since, until },
        } => audit::export(&since, until.as_deref()).await,
        other => client::run(other).await,
    };
    match result {
        Ok(code) => code,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::from(output::CLOSED_STDOUT),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

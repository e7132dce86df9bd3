//! The `theseus` command: what people and containers run.
//!
//! Every command reports failure as one line naming the file, key, field or endpoint and exits
//! non-zero; nothing here panics on bad input, and nothing writes half of what it was asked to.

mod apply;
mod dashboard;
mod delete;
mod describe;
mod diff;
mod get;
mod guest;
mod output;
mod rollout;
mod scale;
mod validate;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use output::OutputFormat;
use theseus_etcd_flags::EtcdArgs;

/// Deploy containerised services onto Marathon from Deployment specs kept in etcd.
#[derive(Debug, Parser)]
#[command(name = "theseus", version, about, long_about = None, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    etcd: EtcdArgs,

    /// Output format, for commands that list things.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check deployment files without writing anything.
    Validate(validate::ValidateArgs),
    /// Write deployment files to /desired, all of them or none.
    Apply(apply::ApplyArgs),
    /// List desired deployments with their observed status.
    Get(get::GetArgs),
    /// Show what applying files would change in /desired and Marathon, writing nothing.
    /// Exit status 0: no change; 1: changes; 2: an error.
    Diff(diff::DiffArgs),
    /// Show a deployment's spec, status, tasks, revision history and journal.
    Describe(describe::DescribeArgs),
    /// Delete deployments from /desired; the controller then deletes their apps.
    Delete(delete::DeleteArgs),
    /// Follow, list, undo, pause and resume a deployment's rollouts.
    Rollout(rollout::RolloutArgs),
    /// Set a deployment's instances in /desired.
    Scale(scale::ScaleArgs),
    /// Print the JSON schema of a Deployment spec.
    Schema,
    /// Inside a task: who it is, its ports, and where its peers are (the old guestutils).
    Guest(guest::GuestArgs),
    /// Run a command whenever the serving endpoints of services change.
    Watch(watch::WatchArgs),
    /// Serve the live web dashboard (the pages every controller serves) from here.
    Dashboard(dashboard::DashboardArgs),
}

/// Parses the command line, runs the command and returns the process's exit code.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Diff(args) => {
            // `diff`'s own convention: 1 means "differs", so a failure is 2.
            return match diff::run(args, &cli.etcd, cli.output).await {
                Ok(diff::DiffOutcome::Same) => ExitCode::SUCCESS,
                Ok(diff::DiffOutcome::Differs) => ExitCode::from(1),
                Err(failure) => {
                    failure.report();
                    ExitCode::from(2)
                }
            };
        }
        Command::Describe(args) => describe::run(args, &cli.etcd, cli.output).await,
        Command::Validate(args) => validate::run(args, cli.output),
        Command::Apply(args) => apply::run(args, &cli.etcd, cli.output).await,
        Command::Get(args) => get::run(args, &cli.etcd, cli.output).await,
        Command::Delete(args) => delete::run(args, &cli.etcd).await,
        Command::Rollout(args) => rollout::run(args, &cli.etcd, cli.output).await,
        Command::Scale(args) => scale::run(args, &cli.etcd).await,
        Command::Guest(args) => guest::run(args, &cli.etcd, cli.output).await,
        Command::Watch(args) => watch::run(args, &cli.etcd, cli.output).await,
        Command::Dashboard(args) => dashboard::run(args, &cli.etcd).await,
        Command::Schema => {
            print!("{}", theseus::api::deployment_schema_text());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed: lines for stderr. Details were already printed where useful.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// One or more problems, one line each.
    #[error("{}", .0.join("\n"))]
    Problems(Vec<String>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] theseus::store::Error),
    /// An edit of a spec in /desired wrote nothing.
    #[error(transparent)]
    Edit(#[from] theseus::edit::EditError),
    /// Writing output failed (a closed pipe, say).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl Failure {
    fn problem(line: impl Into<String>) -> Self {
        Failure::Problems(vec![line.into()])
    }

    fn report(&self) {
        match self {
            Failure::Problems(lines) => {
                for line in lines {
                    eprintln!("error: {line}");
                }
            }
            other => eprintln!("error: {other}"),
        }
    }
}

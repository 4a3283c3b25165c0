//! The command line: parse, then serve or run a one-off command. `main.rs` only calls
//! `cli::main`, so the test suite can build the very same binary.

use std::io::BufRead;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, Config, RoleArg, ServeArgs, UserCommand};
use crate::{server, store, users};

/// Logs to stderr, filtered by `RUST_LOG` (else `default`).
pub fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

pub fn main() -> ExitCode {
    init_logging("info,sqlx=warn");
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Migrate(common)) => {
            let config = Config::resolve(None, &common)?;
            let store = server::open_store(&config).await?;
            store.close().await;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::User(UserCommand::Add(args))) => {
            users::check_username(&args.username).map_err(anyhow::Error::msg)?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = line.trim_end_matches(['\n', '\r']);
            users::check_new_password(password).map_err(anyhow::Error::msg)?;
            let config = Config::resolve(None, &args.common)?;
            // Not `prepare`: the first start's `admin` is the server's to create, not this
            // command's (`user add --username admin` on a fresh install must work).
            let store = server::open_store(&config).await?;
            let mut tx = store.begin().await?;
            if store::users::by_username(&mut tx, &args.username)
                .await?
                .is_some()
            {
                anyhow::bail!("user '{}' already exists", args.username);
            }
            let hash = users::hash_password(password)?;
            let role = match args.role {
                RoleArg::Admin => users::Role::Admin,
                RoleArg::User => users::Role::User,
            };
            let new = store::users::NewUser {
                username: &args.username,
                email: &args.email,
                first_name: "",
                last_name: "",
                role,
                password_hash: &hash,
            };
            store::users::insert(&mut tx, &new, crate::time::now_ms()).await?;
            tx.commit().await?;
            store.close().await;
            println!("created user '{}' ({})", args.username, role.as_str());
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listen = args
        .listen
        .as_deref()
        .map(Config::listen_address)
        .transpose()?;
    let config = Config::resolve(listen, &args.common)?;
    server::serve(config, server::shutdown_signal()).await
}

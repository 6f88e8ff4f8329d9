//! Command line: serve (the default) or check the health of a running instance.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kafka_rest_proxy::config::{CommandLine, Settings};
use kafka_rest_proxy::startup::Application;
use kafka_rest_proxy::telemetry;

/// A Confluent REST Proxy compatible HTTP produce service for Kafka.
///
/// Without a subcommand it serves. Settings come from the --config file and the environment
/// (see config/default.toml for every key and the precedence).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML settings file.
    #[arg(long, env = "KRP_CONFIG", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on; overrides server.listen (default 0.0.0.0:8082).
    #[arg(long, value_name = "ADDR", global = true)]
    listen: Option<SocketAddr>,
    /// Produce to an embedded in-memory Kafka cluster (nothing is kept), listening on
    /// 127.0.0.1 unless --listen says otherwise: for trying the service without Kafka.
    #[arg(long, global = true)]
    dev: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Exit 0 when the service's /healthz answers 200, else 1 (for container health checks).
    ///
    /// It reads the settings as the server does (--config, the environment, --listen), so it
    /// probes the port the service listens on.
    Healthcheck {
        /// URL of the health endpoint, instead of the configured listener's.
        #[arg(long)]
        url: Option<String>,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command_line = CommandLine {
        listen: cli.listen,
        dev: cli.dev,
    };
    match cli.command {
        Some(Command::Healthcheck { url, timeout_ms }) => {
            let url = match url {
                Some(url) => url,
                None => match Settings::load(cli.config.as_deref(), &command_line) {
                    Ok(settings) => format!("http://{}/healthz", settings.server.local_address()),
                    // 1, not 2: container engines read any other nonzero status as unhealthy
                    // too, but Docker reserves 2.
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::FAILURE;
                    }
                },
            };
            healthcheck(&url, timeout_ms)
        }
        None => serve(cli.config, &command_line),
    }
}

fn serve(config: Option<PathBuf>, cli: &CommandLine) -> ExitCode {
    let settings = match Settings::load(config.as_deref(), cli) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // Held to the end of serve: dropping it writes out the log lines still queued.
    let _log_guard = match telemetry::init(&settings.log, settings.json_logs(), &settings.tracing) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "starting kafka-rest-proxy"
    );
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(&settings).map_err(|e| e.to_string())?;
        app.run().await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "kafka-rest-proxy failed");
            ExitCode::FAILURE
        }
    }
}

fn healthcheck(url: &str, timeout_ms: u64) -> ExitCode {
    let status = actix_web::rt::System::new().block_on(async {
        awc::Client::new()
            .get(url)
            .timeout(Duration::from_millis(timeout_ms))
            .send()
            .await
            .map(|r| r.status())
    });
    match status {
        Ok(s) if s.is_success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("{url} answered {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            ExitCode::FAILURE
        }
    }
}

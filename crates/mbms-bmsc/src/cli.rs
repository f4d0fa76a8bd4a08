//! The `mbms-bmsc` command line: `serve`, and `ue add` to provision a UE straight into the
//! key store (the admin API does the same on a running server).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mbms_core::{Mrk, Muk};
use mbms_keystore::{KeyStore, UeKeys};
use tokio::sync::watch;

use crate::config::{Config, hex_bytes};

/// The BM-SC key management function (3GPP TS 33.246 §6.3.1–6.3.2).
#[derive(Debug, Parser)]
#[command(
    name = "mbms-bmsc",
    version,
    after_help = "Examples:\n  \
      mbms-bmsc serve --config bmsc.toml\n  \
      mbms-bmsc serve --service urn:3gpp:mbms:service:tv1 --no-push\n  \
      mbms-bmsc ue add --state-dir bmsc-state --btid 'tid@bsf.example' --muk <64 hex> --mrk <64 hex>"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server until SIGINT/SIGTERM. Prints one JSON line with the bound addresses.
    Serve(ServeArgs),
    /// Provisions UEs in the key store.
    Ue {
        #[command(subcommand)]
        command: UeCommand,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// TOML configuration file (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// State directory (the key store `bmsc.db`).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Key store URL (`sqlite:PATH` or `postgres://user:password@host/db`).
    #[arg(long)]
    store: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// UE-facing HTTP address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Admin API address.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Never push MSKs (UEs request them).
    #[arg(long)]
    no_push: bool,
    /// UDP port MSKs are pushed to.
    #[arg(long)]
    push_port: Option<u16>,
    /// Do not ask UEs for verification messages.
    #[arg(long)]
    no_verify: bool,
    /// Retransmissions before a UE is marked for pull.
    #[arg(long)]
    retries: Option<u32>,
    /// First retransmission delay in milliseconds (doubled after each).
    #[arg(long)]
    first_retry_ms: Option<u64>,
    /// A service ID to serve (streaming, defaults); repeatable, added to the config's.
    #[arg(long = "service")]
    services: Vec<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum UeCommand {
    /// Adds (or re-keys) a UE: its B-TID with its MUK and MRK.
    Add {
        #[command(flatten)]
        common: Common,
        /// The UE's B-TID (its HTTP Digest user name).
        #[arg(long)]
        btid: String,
        /// MUK, 64 hex digits.
        #[arg(long)]
        muk: String,
        /// MRK, 64 hex digits.
        #[arg(long)]
        mrk: String,
        /// Expiry of the B-TID (Unix seconds).
        #[arg(long)]
        expires: Option<u64>,
    },
}

fn load(common: &Common) -> Result<Config, String> {
    let mut cfg = match &common.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let Some(d) = &common.state_dir {
        cfg.state_dir.clone_from(d);
    }
    if let Some(s) = &common.store {
        cfg.store.clone_from(s);
    }
    Ok(cfg)
}

/// Runs the command line; returns the process exit code (0 ok, 1 error, 2 usage).
pub fn main_with(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mbms-bmsc: error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Ue {
            command:
                UeCommand::Add {
                    common,
                    btid,
                    muk,
                    mrk,
                    expires,
                },
        } => {
            let cfg = load(&common)?;
            cfg.validate().map_err(|e| e.to_string())?;
            if btid.is_empty() || btid.len() > 255 {
                return Err("--btid must be 1..=255 bytes".into());
            }
            let keys = UeKeys {
                muk: Muk::from_bytes(hex_bytes(&muk, "--muk")?),
                mrk: Mrk::from_bytes(hex_bytes(&mrk, "--mrk")?),
                expires,
            };
            cfg.create_store_dir().map_err(|e| e.to_string())?;
            let url = cfg.store_url().map_err(|e| e.to_string())?;
            let mut store = KeyStore::open_url(&url).map_err(|e| e.to_string())?;
            store.put_ue(&btid, &keys).map_err(|e| e.to_string())?;
            println!("{}", serde_json::json!({ "provisioned": btid }));
            Ok(())
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let mut cfg = load(&args.common)?;
    if let Some(a) = args.listen {
        cfg.listen = a;
    }
    if let Some(a) = args.admin_listen {
        cfg.admin_listen = a;
    }
    if args.no_push {
        cfg.push.enabled = false;
    }
    if args.no_verify {
        cfg.push.verify = false;
    }
    if let Some(p) = args.push_port {
        cfg.push.port = p;
    }
    if let Some(r) = args.retries {
        cfg.push.retries = r;
    }
    if let Some(ms) = args.first_retry_ms {
        cfg.push.first_retry_ms = ms;
    }
    for id in args.services {
        if cfg.service(&id).is_none() {
            let svc: crate::config::ServiceConfig = toml::from_str(&format!("id = {id:?}"))
                .map_err(|e| format!("--service {id:?}: {e}"))?;
            cfg.services.push(svc);
        }
    }
    cfg.validate().map_err(|e| e.to_string())?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match args.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async move {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping (signal)");
            let _ = tx.send(true);
        });
        crate::server::serve(cfg, rx, |bound| {
            println!("{}", serde_json::json!({ "listening": bound }));
        })
        .await
        .map_err(|e| e.to_string())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, only the process's death stops the server.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

//! `ringleader driver` and `ringleader worker`: start one node by hand (for a cluster
//! across machines, or under `cluster up`). Each runs until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

/// `ringleader driver`.
#[derive(Debug, Args)]
pub struct DriverArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:7077")]
    pub listen: SocketAddr,
    /// Directory for the driver's data (Raft log and snapshots, job binaries).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// This driver's node id in its group (1, 2, …).
    #[arg(long, default_value_t = 1)]
    pub id: u64,
    /// Every driver of the group, this one included: ID=HOST:PORT,… (the same list on each).
    /// Without it the driver is a group of one.
    #[arg(long)]
    pub peers: Option<String>,
    /// A task running this many times longer than its stage's median gets a speculative
    /// copy on another worker (0: never).
    #[arg(long, default_value_t = 3.0)]
    pub speculation_multiplier: f64,
    /// The share of a stage's tasks that must be done before any of its tasks is copied.
    #[arg(long, default_value_t = 0.75)]
    pub speculation_quantile: f64,
    /// Seconds a task must have run before it may be copied.
    #[arg(long, default_value_t = 1.0)]
    pub speculation_min_seconds: f64,
    /// Seconds a task attempt may run before it fails (counting toward the task's 4
    /// attempts) and runs again (0: no limit).
    #[arg(long, default_value_t = ringleader_driver::scheduler::DEFAULT_TASK_TIMEOUT.as_secs_f64())]
    pub task_timeout: f64,
    /// Raft log entries between snapshots; the log is compacted at each.
    #[arg(long, default_value_t = ringleader_driver::raft::DEFAULT_SNAPSHOT_EVERY)]
    pub snapshot_every: u64,
    /// Where stored datasets' partitions (and their repair copies) go: ring (consistent
    /// hashing, moves little when workers come and go) or balanced (the workers holding the
    /// fewest partitions first). Give every driver of a group the same.
    #[arg(long, value_enum, default_value_t)]
    pub placement: ringleader_driver::placement::PlacementPolicy,
    /// Seconds without a heartbeat after which a worker counts as dead.
    #[arg(long, default_value_t = 3.0)]
    pub worker_timeout: f64,
    /// Seconds running jobs wait with no live worker before they fail.
    #[arg(long, default_value_t = 30.0)]
    pub no_worker_timeout: f64,
    /// Write the bound address to this file once listening (used by `cluster up`).
    #[arg(long)]
    pub address_file: Option<PathBuf>,
    /// Serve the web status page on this address (port 0 picks one; the address is written
    /// to DATA_DIR/http-address). Guarded by the cluster token: open /?token=TOKEN.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// The cluster token and TLS certificates.
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// Seconds between a worker's heartbeats, unless `--heartbeat` says otherwise.
pub const DEFAULT_HEARTBEAT_SECS: f64 = 0.5;

/// A number of seconds above zero (and below a day), for a flag.
pub fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s < 86_400.0 => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds above 0 and under a day")),
    }
}

/// The file in a node's data directory naming where its HTTP port is served (a driver's
/// status page and metrics, a worker's metrics).
pub const HTTP_ADDRESS_FILE: &str = "http-address";

/// `ringleader worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Address other nodes reach this worker at (default: the bound address).
    #[arg(long)]
    pub advertise: Option<String>,
    /// The drivers' addresses, host:port[,host:port…] (the leader is found from any of them).
    #[arg(long)]
    pub master: String,
    /// Directory for cached binaries, shuffle files and executor logs.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Tasks this worker runs at once.
    #[arg(long, default_value_t = 2)]
    pub slots: u32,
    /// Seconds between heartbeats to the driver (keep it well under the driver's
    /// --worker-timeout).
    #[arg(long, default_value_t = DEFAULT_HEARTBEAT_SECS, value_parser = positive_seconds)]
    pub heartbeat: f64,
    /// The most memory each of this worker's executors budgets for (its job may ask for less
    /// with RINGLEADER_MEMORY); suffixes K, M, G [default: min(2 GiB, RAM/4)].
    #[arg(long, value_parser = super::generate::parse_size)]
    pub memory: Option<u64>,
    /// Write the bound address to this file once registered (used by `cluster up`).
    #[arg(long)]
    pub address_file: Option<PathBuf>,
    /// Serve Prometheus metrics at /metrics on this address (port 0 picks one; the address
    /// is written to DATA_DIR/http-address). The cluster token is the bearer token.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// A directory executors may not reach (repeatable): besides the data directory, the
    /// token file and the TLS key, which are always private. `cluster up` names its directory.
    #[arg(long, value_name = "DIR")]
    pub private: Vec<PathBuf>,
    /// Start executors without the Landlock sandbox: a job's code then reaches everything
    /// this worker's user can, the token file and other jobs' files among it (for debugging,
    /// or to measure what the sandbox costs).
    #[arg(long)]
    pub no_sandbox: bool,
    /// The cluster token and TLS certificates.
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// The cluster token and TLS certificates of a node (or of every node `cluster up` starts).
#[derive(Debug, Clone, Args)]
pub struct SecurityArgs {
    /// File holding the cluster token every call must carry (default: RINGLEADER_TOKEN;
    /// `cluster up` generates one). Without a token only loopback addresses are allowed.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// A TLS certificate (PEM); with --tls-key and --tls-ca, every service speaks TLS.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// The CA certificate (PEM) that signed the nodes' certificates.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
}

impl SecurityArgs {
    /// The TLS files, all or none.
    pub fn tls(
        &self,
    ) -> Result<Option<ringleader_core::security::tls::NodeTls>, ringleader_core::security::tls::TlsError> {
        ringleader_core::security::tls::NodeTls::from_flags(
            self.tls_cert.clone(),
            self.tls_key.clone(),
            self.tls_ca.clone(),
        )
    }

    /// Makes `--token-file` this process's token and sets up TLS from the `--tls-*` files.
    fn apply(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.token_file {
            ringleader_core::security::auth::set_token(Some(ringleader_core::security::auth::read_token_file(path)?));
        }
        ringleader_core::security::tls::configure(self.tls()?.as_ref())?;
        Ok(())
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// Writes `address` to `file`, if one was asked for.
fn write_address(file: Option<&Path>, address: &str) -> anyhow::Result<()> {
    file.map_or(Ok(()), |path| crate::cluster_dir::write_whole(path, address))
}

/// What a daemon logs when `RUST_LOG` does not say: its own news, and only the warnings of
/// the libraries under it.
pub const DEFAULT_LOG: &str = "info,openraft=warn,h2=warn,hyper=warn,tower=warn,tonic=warn";

/// Logs to stderr (the node's `log` file under `cluster up`) at the levels `RUST_LOG` gives
/// (e.g. `RUST_LOG=debug`, `RUST_LOG=ringleader_driver=debug`), else [`DEFAULT_LOG`].
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a driver.
pub fn driver(args: DriverArgs) -> anyhow::Result<ExitCode> {
    init_logs();
    args.security.apply()?;
    runtime()?.block_on(async {
        let config = ringleader_driver::DriverConfig {
            listen: args.listen,
            data_dir: args.data_dir.clone(),
            worker_timeout: Duration::from_secs_f64(args.worker_timeout),
            no_worker_timeout: Duration::from_secs_f64(args.no_worker_timeout),
            id: args.id,
            snapshot_every: args.snapshot_every,
            placement: args.placement,
            speculation: ringleader_driver::scheduler::SpeculationConfig {
                task_timeout: (args.task_timeout > 0.0).then(|| Duration::from_secs_f64(args.task_timeout)),
                multiplier: args.speculation_multiplier,
                quantile: args.speculation_quantile,
                min_runtime: Duration::from_secs_f64(args.speculation_min_seconds.max(0.0)),
                ..Default::default()
            },
            peers: args
                .peers
                .as_deref()
                .map(ringleader_driver::raft::group::Peers::parse)
                .transpose()?,
            http: args.http,
        };
        let bound = ringleader_driver::bind(config).await?;
        tracing::info!("driver {} listening on {}", args.id, bound.address);
        if let Some(http) = bound.http_address {
            let scheme = ringleader_core::security::web_tls::scheme();
            tracing::info!("driver {} serving its status page on {scheme}://{http}/", args.id);
            crate::cluster_dir::write_whole(&args.data_dir.join(HTTP_ADDRESS_FILE), http.to_string())?;
        }
        write_address(args.address_file.as_deref(), &bound.address.to_string())?;
        bound.serve(shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs a worker.
pub fn worker(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    init_logs();
    args.security.apply()?;
    runtime()?.block_on(async {
        let config = ringleader_worker::WorkerConfig {
            listen: args.listen,
            advertise: args.advertise.clone(),
            masters: ringleader::client::parse_masters(&args.master)?,
            data_dir: args.data_dir.clone(),
            slots: args.slots.max(1),
            heartbeat: Duration::from_secs_f64(args.heartbeat),
            memory: args
                .memory
                .unwrap_or(ringleader::config::Config::default().memory_limit as u64),
            http: args.http,
            // The token file however it was named (flag or environment) and the TLS key are
            // private besides the directories named.
            private: args
                .private
                .iter()
                .chain(&args.security.token_file)
                .chain(&args.security.tls_key)
                .cloned()
                .chain(std::env::var_os(ringleader_core::security::auth::TOKEN_FILE_ENV).map(PathBuf::from))
                .collect(),
            sandbox: !args.no_sandbox,
        };
        let bound = ringleader_worker::bind(config).await?;
        tracing::info!(
            "worker {} listening on {}, registered with {}",
            bound.id(),
            bound.address,
            args.master
        );
        if let Some(http) = bound.http_address {
            let scheme = ringleader_core::security::web_tls::scheme();
            tracing::info!("worker {} serving /metrics on {scheme}://{http}/metrics", bound.id());
            crate::cluster_dir::write_whole(&args.data_dir.join(HTTP_ADDRESS_FILE), http.to_string())?;
        }
        write_address(
            args.address_file.as_deref(),
            &args.advertise.clone().unwrap_or_else(|| bound.address.to_string()),
        )?;
        bound.serve(shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

//! `ringleader submit`: runs a job binary against a cluster (`RINGLEADER_MASTER` set for it),
//! or builds an example first with `--example NAME`.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::Args;

use super::cluster_dir::default_dir;

/// `ringleader submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The driver(s), host:port[,host:port…] (default: RINGLEADER_MASTER, else the
    /// cluster recorded in --dir).
    #[arg(long)]
    pub master: Option<String>,
    /// The cluster directory to read the driver address from.
    #[arg(long, default_value_os_t = default_dir())]
    pub dir: PathBuf,
    /// Build this example (`cargo build --release --example NAME`) and submit it.
    #[arg(long, conflicts_with = "binary")]
    pub example: Option<String>,
    /// A job binary (a program that calls `ringleader::run`).
    #[arg(required_unless_present = "example")]
    pub binary: Option<PathBuf>,
    /// The job's own arguments (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Runs `submit`; the exit status is the job's.
pub fn run(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let master = super::cluster_dir::resolve_master(args.master, &args.dir)?;
    let binary = match (&args.example, &args.binary) {
        (Some(name), _) => build_example(name)?,
        (None, Some(path)) => path.clone(),
        (None, None) => bail!("name a job binary or --example NAME"),
    };
    if !binary.is_file() {
        bail!("{} is not a file", binary.display());
    }
    if !ringleader_core::net::binary::is_job_binary(&binary)? {
        bail!(
            "{} is not a Ringleader job binary (it never calls ringleader::run)",
            binary.display()
        );
    }
    let mut command = Command::new(&binary);
    let token = super::cluster_dir::token_path(&args.dir);
    if std::env::var_os(ringleader_core::security::auth::TOKEN_ENV).is_none()
        && std::env::var_os(ringleader_core::security::auth::TOKEN_FILE_ENV).is_none()
        && token.exists()
    {
        command.env(ringleader_core::security::auth::TOKEN_FILE_ENV, &token);
    }
    if let Some(ca) = ringleader_core::security::tls::ca_path() {
        command.env(ringleader_core::security::tls::CA_ENV, ca);
    }
    let status = command
        .args(&args.args)
        .env("RINGLEADER_MASTER", &master)
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(c.clamp(1, 255) as u8),
        None => ExitCode::FAILURE,
    })
}

fn build_example(name: &str) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["build", "--release", "--example", name, "--message-format", "short"])
        .status()
        .context("running cargo to build the example")?;
    if !out.success() {
        bail!("cargo could not build example {name}");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    Ok(target.join("release").join("examples").join(name))
}

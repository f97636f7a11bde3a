//! The command line: subcommands, their options, and what each exits with ([`crate::exit`]).

#[cfg(feature = "sim")]
mod sim;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::exit;
#[cfg(feature = "sim")]
pub use sim::{DemoArgs, SimArgs, wait_for_signal};

/// qftpd: an FTP/FTPS gateway to the file system of a Qumulo cluster.
#[derive(Debug, Parser)]
#[command(
    name = "qftpd",
    version,
    about,
    propagate_version = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to run; without a subcommand, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, the default.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve FTP in front of the Qumulo cluster named in the configuration (the default).
    Serve(ServeArgs),
    /// Check the configuration: print the effective one and exit 0, or name each problem and
    /// exit 78.
    CheckConfig(ServeArgs),
    /// Run a simulated cluster and the gateway together on loopback, with sample files.
    #[cfg(feature = "sim")]
    Demo(DemoArgs),
    /// Run a Qumulo REST API simulator backed by a local directory (for tests and demos).
    #[cfg(feature = "sim")]
    Sim(Box<SimArgs>),
    /// Print the man page qftpd(8) in roff (the packages build it with this).
    #[command(hide = true)]
    Man,
}

/// Options of `qftpd serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); default /etc/qftpd/qftpd.toml when it exists.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => crate::daemon::serve(cli.serve.config.as_deref()),
        Some(Command::Serve(args)) => crate::daemon::serve(args.config.as_deref()),
        Some(Command::CheckConfig(args)) => check_config(args.config.as_deref()),
        #[cfg(feature = "sim")]
        Some(Command::Demo(args)) => sim::with_runtime(|| sim::run_demo(args)),
        #[cfg(feature = "sim")]
        Some(Command::Sim(args)) => sim::with_runtime(|| sim::run_sim(*args)),
        Some(Command::Man) => print_man(),
    }
}

/// `qftpd check-config`: prints the effective configuration and exits 0, or names each
/// problem and exits 78. It refuses what `qftpd serve` refuses ([`crate::daemon::load`]).
fn check_config(file: Option<&Path>) -> ExitCode {
    let config = match crate::daemon::load(file) {
        Ok(loaded) => loaded.config,
        Err(e) => {
            eprintln!(
                "qftpd: invalid configuration ({}): {e}",
                crate::config::describe_source(file)
            );
            return ExitCode::from(exit::CONFIG);
        }
    };
    for warning in config.warnings() {
        eprintln!("qftpd: warning: {warning}");
    }
    let limits = crate::descriptors::current();
    if let Some(short) = crate::descriptors::shortfall(limits, config.ftp.max_connections) {
        eprintln!(
            "qftpd: warning: in this shell, {short} (`qftpd serve` raises its soft limit up to \
             the hard one; the packaged service sets LimitNOFILE=65536)"
        );
    }
    if let Some(exposed) = crate::ephemeral::warning(&config.ftp.passive_ports) {
        eprintln!("qftpd: warning: on this machine, {exposed}");
    }
    match toml::to_string_pretty(&config) {
        Ok(text) => {
            println!("# effective qftpd configuration (defaults, file, QFTPD_* environment)");
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qftpd: cannot print the configuration: {e}");
            ExitCode::from(exit::CONFIG)
        }
    }
}

/// `qftpd man`: the man page qftpd(8), generated from this command line, on stdout.
fn print_man() -> ExitCode {
    let man = clap_mangen::Man::new(Cli::command()).section("8");
    match man.render(&mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qftpd man: {e}");
            ExitCode::from(exit::OSERR)
        }
    }
}

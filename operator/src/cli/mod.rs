//! The face of `regie`: argument parsing and one module per command. Commands call the pure core
//! (inventory, desired state, SLA, billing) or the runtime; they hold no domain logic themselves.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// `eprintln!` that gives up quietly when stderr is closed or failing (`regie bill 2>&1 | head
/// -c1`): `eprintln!` panics then, and a panic's exit status says nothing of the input.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

pub mod bill;
pub mod crds;
pub mod diff;
pub mod render;
pub mod rules;
pub mod sla;
pub mod validate;

/// regie turns YAML in git — tenants, workplace packages, hosting components and service
/// levels — into running workloads, monitoring probes, metered usage and invoices.
#[derive(Parser, Debug)]
#[command(name = "regie", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator against the cluster of the current kubeconfig or service account.
    Run(crate::runtime::RunArgs),
    /// Print every regie CRD as multi-document YAML.
    Crds {
        /// Kubernetes version of the target server, e.g. 1.20: CEL rules are left out before 1.25.
        #[arg(long)]
        kube_version: Option<String>,
    },
    /// Print the least-privilege RBAC `regie run` needs (ClusterRole, Role and bindings).
    Rbac {
        #[arg(long, default_value = "regie-system")]
        namespace: String,
        #[arg(long, default_value = "regie")]
        service_account: String,
        /// ClusterRole bound to each tenant's groups in its namespace; never
        /// cluster-admin, admin or system:*.
        #[arg(long, default_value = "edit", value_parser = crate::rbac::tenant_role)]
        tenant_role: String,
        /// The Secret `regie run --billing-token-secret` names, if not `regie-billing` in
        /// --namespace: only it may be read.
        #[arg(long, value_name = "NAMESPACE/NAME")]
        billing_token_secret: Option<crate::controller::delivery::SecretRef>,
    },
    /// Check files and directories of regie YAML; one line per problem, exit 1 if any.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// As `regie run`'s: the installation's settings the tenants are judged against.
        #[command(flatten)]
        settings: crate::runtime::SettingsArgs,
    },
    /// Print every Kubernetes object the controller would create for the inputs.
    Render {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = RenderFormat::Yaml)]
        output: RenderFormat,
        #[command(flatten)]
        settings: crate::runtime::SettingsArgs,
    },
    /// Compute SLA compliance from recorded probe samples, as the operator does; without
    /// --samples, print the SlaReports found in the inputs (e.g. exported with kubectl).
    Sla {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// CSV with header time,tenant,component,success.
        #[arg(long)]
        samples: Option<PathBuf>,
        /// YYYY-MM, YYYY-Www or YYYY-MM-DD; required with --samples.
        #[arg(long)]
        period: Option<String>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = SlaFormat::Json)]
        output: SlaFormat,
    },
    /// Print the SLA's Prometheus recording and alerting rules for the ServiceLevels in the inputs.
    Rules {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = rules::RulesFormat::Rules)]
        output: rules::RulesFormat,
    },
    /// Price usage into invoices for a period (YYYY-MM, YYYY-Qn or YYYY).
    Bill {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        period: String,
        #[arg(short = 'o', long = "output", value_enum, default_value_t = BillFormat::Json)]
        output: BillFormat,
        /// Write one file per invoice into this directory instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare two directories: objects added, changed and removed, the monthly price change
    /// and the service levels changed. Exits 0 whether or not anything changes, 1 when an input
    /// is invalid.
    Diff {
        base: PathBuf,
        head: PathBuf,
        /// Month to price, YYYY-MM; the current month when absent.
        #[arg(long)]
        period: Option<String>,
        #[command(flatten)]
        settings: crate::runtime::SettingsArgs,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenderFormat {
    Yaml,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlaFormat {
    Json,
    Markdown,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BillFormat {
    Json,
    Csv,
    Ubl,
}

/// Runs a parsed command line; the exit code is the command's verdict.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(args) => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    say!("regie run: cannot start the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(crate::runtime::run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say!("regie run: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Crds { kube_version } => crds::run(kube_version.as_deref()),
        Command::Rbac {
            namespace,
            service_account,
            tenant_role,
            billing_token_secret,
        } => {
            for m in crate::rbac::manifests(
                &namespace,
                &service_account,
                &tenant_role,
                billing_token_secret.as_ref(),
            ) {
                emit(&format!(
                    "---\n{}",
                    serde_yaml::to_string(&m).expect("manifests serialize")
                ));
            }
            ExitCode::SUCCESS
        }
        Command::Validate { paths, settings } => {
            validate::run(&paths, &settings.settings().allowed_namespaces)
        }
        Command::Render {
            paths,
            output,
            settings,
        } => render::run(&paths, output, &settings.settings()),
        Command::Sla {
            paths,
            samples,
            period,
            output,
        } => sla::run(&paths, samples.as_deref(), period.as_deref(), output),
        Command::Rules { paths, output } => rules::run(&paths, output),
        Command::Bill {
            paths,
            period,
            output,
            out,
        } => bill::run(&paths, &period, output, out.as_deref()),
        Command::Diff {
            base,
            head,
            period,
            settings,
        } => diff::run(&base, &head, period.as_deref(), &settings.settings()),
    }
}

/// Writes command output to stdout. A closed pipe (`regie render | head`) ends the program
/// quietly instead of panicking, as a Unix tool should.
pub fn emit(text: &str) {
    emit_or_exit(text, 0);
}

/// [`emit`], ending the program with `status` when the pipe is closed: output that is a
/// verdict (`regie validate`'s problems) keeps it when the reader stops early.
pub fn emit_or_exit(text: &str, status: i32) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(status);
        }
        say!("regie: cannot write output: {e}");
        std::process::exit(1);
    }
}

/// Prints problems to stderr, one per line, and returns exit code 1.
pub(crate) fn fail_with(problems: &[crate::input::Problem]) -> ExitCode {
    for p in problems {
        say!("{p}");
    }
    ExitCode::from(1)
}

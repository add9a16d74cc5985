//! The command line (DESIGN §9). Each subcommand is a thin layer over library code; exit codes:
//! 0 success, 1 runtime failure, 2 invalid configuration or usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::logging::{self, LogFormat};

pub use crate::config::DEFAULT_CONFIG;
pub use crate::tools::alerts_cmd::AlertsCommand;

const LONG_ABOUT: &str = "\
Assistive-technology telemetry gateway: legacy and commercial AT devices in, one schema, durable \
journal, alerts out.

`atgw run` is the daemon (under systemd: atgw.service). It receives events from falls detectors, \
pendant alarms, bed and door sensors and pulse oximeters (MQTT, SIA DC-09), turns each into one \
documented event schema, commits it to a SQLite journal before acknowledging the device, raises \
and escalates alerts, and delivers to its sinks (MQTT, webhooks, files). The other commands check \
a configuration, try device profiles, talk to a running gateway and simulate devices.";

#[derive(Parser, Debug)]
#[command(
    name = "atgw",
    version,
    about = "Assistive-technology telemetry gateway: legacy and commercial AT devices in, one schema, durable journal, alerts out",
    long_about = LONG_ABOUT,
    after_long_help = crate::tools::manpage::after_long_help()
)]
pub struct Cli {
    /// Log line format (journald is used automatically under systemd).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway daemon.
    Run {
        /// The configuration file.
        #[arg(long, short, env = "ATGW_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the configuration and every profile it names; exit 2 naming the problem.
    CheckConfig {
        /// The configuration file.
        #[arg(long, short, env = "ATGW_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Print the JSON Schema of the normalised event (schema v1).
    Schema,
    /// Device profile tools.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Dead letters in a gateway's journal: counted by reason, listed (`--list`) or one
    /// shown whole (`--show ID`).
    DeadLetters {
        /// The configuration file.
        #[arg(long, short, env = "ATGW_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(flatten)]
        args: crate::tools::dead_letters::DeadLettersArgs,
    },
    /// List, acknowledge and resolve alerts through the running gateway's local API.
    Alerts {
        /// The configuration file.
        #[arg(long, short, env = "ATGW_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// The care-team console's accounts: add, passwd, disable, list (in the journal).
    Users {
        /// The configuration file (its data_dir holds the journal).
        #[arg(long, short, env = "ATGW_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[command(subcommand)]
        command: crate::tools::users_cmd::UsersCommand,
    },
    /// Speak a real device protocol to a running gateway (commissioning, load).
    Simulate {
        #[command(subcommand)]
        protocol: SimulateCommand,
    },
    /// Pilot evaluation from the journal: report.html (SVG charts), CSV files and a summary.
    Report(crate::tools::report::ReportArgs),
    /// Security self-check of the config and this host (ETSI EN 303 645); exit 1 on any fail.
    Audit {
        /// The configuration file to check.
        #[arg(long, short, env = "ATGW_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// Print the report as a self-contained HTML document to file with the deployment
        /// record: host, configuration digest, every provision, evidence and fix.
        #[arg(long)]
        html: bool,
    },
    /// A self-contained tour: simulated devices on every protocol, alerts escalating to the
    /// care team's phones until someone acknowledges them, and a summary.
    Demo {
        /// How long to run (e.g. 30s, 2m). The story takes about 15s and repeats every 30s.
        #[arg(long, default_value = "25s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Use and keep this directory (new or empty) for the config, secrets and journal,
        /// instead of a temporary one, to inspect them afterwards.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Leave out the MQTT devices and the private broker, as if mosquitto were not installed.
        #[arg(long)]
        no_mqtt: bool,
    },
    /// Write the manual pages (atgw.1, atgw-run.1, …) into a directory, for packaging.
    #[command(hide = true)]
    Man {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum SimulateCommand {
    /// An SIA DC-09 transmitter (Contact ID, SIA DC-03 or NULL; plain or AES; TCP or UDP).
    Dc09(crate::tools::simulate::Dc09Args),
    /// MQTT devices (BLE oximeters, zigbee2mqtt buttons, fall radars) publishing to the broker
    /// the gateway subscribes to; optionally follows the upstream sink end to end.
    Mqtt(crate::tools::simulate::MqttArgs),
    /// ESPA 4.4.4 over serial or TCP: a nurse-call control station sending calls (and resets)
    /// to the gateway's adapter, or a paging system printing what the gateway's sink pages.
    Espa(crate::tools::simulate::EspaArgs),
    /// A SCAIP (SS 91100) home unit over SIP: alarms, updates, resets and heartbeats, digest
    /// challenges answered, every `<mrs>` checked (`ref` echo, `snu`).
    Scaip(crate::tools::simulate::ScaipArgs),
    /// A vendor cloud (Netlia, PureLife/Vayyar, Novee, a Standard Webhooks hub) posting signed
    /// webhooks to the gateway's HTTP ingest adapter; every answer checked (2xx) and timed.
    Http(crate::tools::simulate::HttpArgs),
}

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Show what a sample message becomes under a profile (`PROFILE SAMPLE`), or under an
    /// adapter's whole profile list and the registry (`--config FILE --adapter NAME SAMPLE`).
    Test {
        /// Profile name (looked up in the profiles directory) or path to a .toml file; with
        /// --adapter, the sample file.
        profile: String,
        /// JSON file: a payload, or {"topic": …, "payload": …}, or JSON lines of those.
        sample: Option<PathBuf>,
        /// Run the profile list of this `[[adapter]]` of --config, and its `[[device]]`s.
        #[arg(long, requires = "config")]
        adapter: Option<String>,
        /// The configuration file (with --adapter).
        #[arg(long, short, env = "ATGW_CONFIG")]
        config: Option<PathBuf>,
        /// Topic for a bare payload.
        #[arg(long)]
        topic: Option<String>,
        /// Profiles directory (default: `config/profiles`, else /etc/atgw/profiles).
        #[arg(long)]
        profiles_dir: Option<PathBuf>,
        /// Time zone for zone-less device timestamps.
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Demo { .. } => "error",
        _ => "info",
    };
    logging::init(cli.log_format, level);
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Schema => {
            println!("{}", atgw_sdk::schema::EVENT_SCHEMA_V1);
            ExitCode::SUCCESS
        }
        Command::Profile {
            command:
                ProfileCommand::Test {
                    profile,
                    sample,
                    adapter,
                    config,
                    topic,
                    profiles_dir,
                    timezone,
                },
        } => crate::tools::profile_test::run(crate::tools::profile_test::Target {
            profile: &profile,
            sample: sample.as_deref(),
            adapter: adapter.as_deref().zip(config.as_deref()),
            topic: topic.as_deref(),
            dir: profiles_dir.as_deref(),
            tz: &timezone,
        }),
        Command::DeadLetters { config, args } => dead_letters(&config, &args),
        Command::Alerts { config, command } => {
            runtime_block_on(crate::tools::alerts_cmd::run(config, command))
        }
        Command::Users { config, command } => match load_or_exit(&config) {
            Ok(cfg) => crate::tools::users_cmd::run(
                &cfg.gateway.data_dir.join(crate::journal::FILE_NAME),
                command,
            ),
            Err(code) => code,
        },
        Command::Simulate {
            protocol: SimulateCommand::Dc09(a),
        } => runtime_block_on(crate::tools::simulate::dc09(a)),
        Command::Simulate {
            protocol: SimulateCommand::Mqtt(a),
        } => runtime_block_on(crate::tools::simulate::mqtt(a)),
        Command::Simulate {
            protocol: SimulateCommand::Espa(a),
        } => runtime_block_on(crate::tools::simulate::espa(a)),
        Command::Audit { config, json, html } => {
            let format = if json {
                crate::tools::audit::Format::Json
            } else if html {
                crate::tools::audit::Format::Html
            } else {
                crate::tools::audit::Format::Text
            };
            crate::tools::audit::main(&config, format)
        }
        Command::Simulate {
            protocol: SimulateCommand::Scaip(a),
        } => runtime_block_on(crate::tools::simulate::scaip(a)),
        Command::Simulate {
            protocol: SimulateCommand::Http(a),
        } => runtime_block_on(crate::tools::simulate::http(a)),
        Command::Report(args) => crate::tools::report::run(args),
        Command::Demo {
            duration,
            data_dir,
            no_mqtt,
        } => runtime_block_on(crate::tools::demo::run(crate::tools::demo::DemoOptions {
            duration,
            data_dir,
            no_mqtt,
        })),
        Command::Man { dir } => man_pages(&dir),
    }
}

/// Renders every visible command's manual page into `dir`.
fn man_pages(dir: &Path) -> ExitCode {
    use clap::CommandFactory;
    match crate::tools::manpage::write_all(Cli::command(), dir) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("atgw: cannot write manual pages to {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn runtime_block_on(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("atgw: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_or_exit(config: &Path) -> Result<crate::config::Config, ExitCode> {
    crate::config::load(config).map_err(|e| {
        eprintln!("atgw: invalid configuration: {e}");
        ExitCode::from(2)
    })
}

fn run(config: &Path) -> ExitCode {
    let cfg = match load_or_exit(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    runtime_block_on(crate::daemon::run(config.to_path_buf(), cfg))
}

fn check_config(config: &Path) -> ExitCode {
    let cfg = match load_or_exit(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // The same checks `run` makes before it starts: paths, profiles, TLS material, secrets.
    if let Err(e) = crate::runtime::preflight(&cfg) {
        eprintln!("atgw: invalid configuration: {}: {e}", config.display());
        return ExitCode::from(2);
    }
    for w in crate::runtime::unmatchable_device_keys(&cfg) {
        eprintln!("atgw: warning: {}: {w}", config.display());
    }
    for kind in crate::alerts::Policies::unrouted_life_safety(&cfg.policies) {
        eprintln!(
            "atgw: warning: {}: no [[policy]] routes `{kind}` (life-safety) at high priority for \
             every device; it would reach only the fail-safe ([alerts] default_route, or every \
             route). Add a policy that matches it.",
            config.display()
        );
    }
    if let Some(Err(to)) =
        crate::alerts::Policies::unregistered_destination(&cfg.routes, &cfg.alerts)
    {
        // A note, not a warning: nothing is unrouted, but nobody who commissions devices hears.
        eprintln!(
            "atgw: note: {}: [alerts] unregistered_route is not set, so alerts from devices not \
             in the registry (their location is unknown) {to}. Name the commissioning or \
             supervisor route there, so such a device is found.",
            config.display()
        );
    }
    println!(
        "{}: ok ({} adapters, {} sinks, {} devices)",
        config.display(),
        cfg.adapters.len(),
        cfg.sinks.len(),
        cfg.devices.len()
    );
    ExitCode::SUCCESS
}

fn dead_letters(config: &Path, args: &crate::tools::dead_letters::DeadLettersArgs) -> ExitCode {
    let cfg = match load_or_exit(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::tools::dead_letters::run(&cfg.gateway.data_dir.join(crate::journal::FILE_NAME), args)
}

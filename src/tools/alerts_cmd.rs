//! `atgw alerts list|ack|resolve|shelve|unshelve|shelves`: a thin client of the running gateway's local API, so the
//! command sees and changes exactly what consoles and MQTT do (one writer decides).

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// Unresolved alerts, newest first (`--all` includes resolved ones).
    List {
        /// Include resolved alerts.
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge: someone is dealing with it (stops escalation).
    Ack {
        /// The alert's id (from `atgw alerts list`).
        id: String,
        /// Who is dealing with it (a staff id or role; recorded with the alert).
        #[arg(long)]
        by: String,
        /// A free-text note for the record.
        #[arg(long)]
        note: Option<String>,
    },
    /// Resolve with an outcome: assisted, false_alarm, emergency_services, no_action, other.
    Resolve {
        /// The alert's id (from `atgw alerts list`).
        id: String,
        /// Who resolved it (a staff id or role; recorded with the alert).
        #[arg(long)]
        by: String,
        /// assisted, false_alarm, emergency_services, no_action or other.
        #[arg(long)]
        outcome: String,
        /// A free-text note for the record.
        #[arg(long)]
        note: Option<String>,
    },
    /// Hold a device's battery, offline, tamper and fault alerts for a while (a sensor waiting
    /// for a technician); its residents' alarms still page. Announced, and always ends.
    Shelve {
        /// The registered device id (`[[device]] id`).
        device: String,
        /// How long, e.g. `4h` (at most `[alerts] max_shelve`, default 24h).
        #[arg(long = "for")]
        duration: String,
        /// Why (announced and kept with the shelf).
        #[arg(long)]
        reason: String,
        /// Who shelves it (recorded and announced).
        #[arg(long)]
        by: String,
    },
    /// End a device's shelf early: its held alerts that are still open page again.
    Unshelve {
        /// The registered device id.
        device: String,
        /// Who takes it off the shelf (recorded and announced).
        #[arg(long)]
        by: String,
    },
    /// Shelves in force, soonest end first.
    Shelves {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(config: PathBuf, cmd: AlertsCommand) -> ExitCode {
    match go(config, cmd).await {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("atgw alerts: {msg}");
            ExitCode::from(code)
        }
    }
}

async fn go(config: PathBuf, cmd: AlertsCommand) -> Result<(), (u8, String)> {
    let cfg =
        crate::config::load(&config).map_err(|e| (2, format!("invalid configuration: {e}")))?;
    let api = cfg.api.ok_or((
        2,
        format!(
            "{}: no [api] section: the local API is off",
            config.display()
        ),
    ))?;
    let token = atgw_sdk::secret::read_secret_file(&api.token_file)
        .map_err(|e| (2, format!("api.token_file: {e}")))?;
    let base = format!("http://{}/api/v1", api.listen);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| (1, e.to_string()))?;
    let auth = format!("Bearer {}", token.expose());
    let (method, url, body) = match &cmd {
        AlertsCommand::List { all, .. } => (
            reqwest::Method::GET,
            format!("{base}/alerts?all={all}"),
            None,
        ),
        AlertsCommand::Ack { id, by, note } => (
            reqwest::Method::POST,
            format!("{base}/alerts/{id}/ack"),
            Some(json!({ "by": by, "note": note })),
        ),
        AlertsCommand::Resolve {
            id,
            by,
            outcome,
            note,
        } => (
            reqwest::Method::POST,
            format!("{base}/alerts/{id}/resolve"),
            Some(json!({ "by": by, "outcome": outcome, "note": note })),
        ),
        AlertsCommand::Shelve {
            device,
            duration,
            reason,
            by,
        } => (
            reqwest::Method::POST,
            format!("{base}/devices/{device}/shelve"),
            Some(json!({ "for": duration, "reason": reason, "by": by })),
        ),
        AlertsCommand::Unshelve { device, by } => (
            reqwest::Method::POST,
            format!("{base}/devices/{device}/unshelve"),
            Some(json!({ "by": by })),
        ),
        AlertsCommand::Shelves { .. } => (reqwest::Method::GET, format!("{base}/shelves"), None),
    };
    let mut req = client.request(method, &url).header("authorization", auth);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| (1, format!("cannot reach the gateway at {base}: {e}")))?;
    let status = resp.status();
    let v: Value = resp
        .json()
        .await
        .map_err(|e| (1, format!("unreadable answer: {e}")))?;
    if !status.is_success() {
        return Err((
            1,
            format!(
                "{status}: {}",
                v["error"].as_str().unwrap_or("(no reason given)")
            ),
        ));
    }
    match cmd {
        AlertsCommand::List { json: true, .. } | AlertsCommand::Shelves { json: true } => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        AlertsCommand::List { .. } => {
            let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
            if alerts.is_empty() {
                println!("no open alerts");
            }
            for a in alerts {
                println!(
                    "{}  {:<12} {:<6} {:<15} lvl {}  {}  {}",
                    a["id"].as_str().unwrap_or(""),
                    a["status"].as_str().unwrap_or(""),
                    a["priority"].as_str().unwrap_or(""),
                    a["kind"].as_str().unwrap_or(""),
                    a["level"],
                    a["raised_at"].as_str().unwrap_or(""),
                    a["message"].as_str().unwrap_or("")
                );
            }
        }
        AlertsCommand::Shelves { .. } => {
            let shelves = v["shelves"].as_array().cloned().unwrap_or_default();
            if shelves.is_empty() {
                println!("no device is shelved");
            }
            for s in shelves {
                println!(
                    "{:<20} until {}  by {}: {}",
                    s["device_id"].as_str().unwrap_or(""),
                    s["until"].as_str().unwrap_or(""),
                    s["by"].as_str().unwrap_or(""),
                    s["reason"].as_str().unwrap_or("")
                );
            }
        }
        AlertsCommand::Shelve { .. } => println!(
            "{} shelved until {}",
            v["device_id"].as_str().unwrap_or(""),
            v["until"].as_str().unwrap_or("")
        ),
        AlertsCommand::Unshelve { .. } => {
            println!("{} is off the shelf", v["device_id"].as_str().unwrap_or(""))
        }
        _ => println!(
            "{} is now {}",
            v["id"].as_str().unwrap_or(""),
            v["status"].as_str().unwrap_or("")
        ),
    }
    Ok(())
}

//! `atgw report`: the pilot evaluation a borough asks for, read from the journal. Alerts by kind
//! and day, time to acknowledge by priority and area, escalations, outcomes, test calls, device
//! uptime and battery warnings; written as a self-contained HTML page with SVG charts, CSV
//! files for spreadsheets, and a plain-text summary for the terminal.
//!
//! The journal is opened read-only (`SQLITE_OPEN_READ_ONLY` and `query_only`) and read in one
//! snapshot transaction, so the report can run beside the daemon and never changes a byte of
//! the file. All times are the gateway's own clock (`raised_ms`, `recorded_ms`): a device with a
//! wrong clock cannot move an alert into another day. Days are calendar days in the site's time
//! zone (`gateway.timezone`).
//!
//! Privacy: the report is for people outside the care team. Resident ids (pseudonymous as they
//! are) are left out of the HTML and the CSV unless `--include-residents` is given; only the
//! number of distinct residents is shown. Free text (alert notes, device messages) is never
//! copied into the report, since a carer's note can name a person.
//!
//! # Layout
//! - [`read`]: the journal → a typed [`Report`] (the only module that speaks SQL).
//! - [`stats`]: pure figures: nearest-rank percentiles, grouping, offline time.
//! - [`html`] with [`svg`]: the self-contained page and its charts.
//! - [`compare`]: the pilot period beside a baseline period (`--baseline`), per area and kind.
//! - [`standard`]: shares acknowledged within 60 s and 180 s beside the TSA call-handling target.
//! - [`csv`]: the CSV files.
//! - [`text`]: the terminal summary.

pub mod compare;
pub mod csv;
pub mod html;
pub mod read;
pub mod standard;
pub mod stats;
pub mod svg;
pub mod text;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jiff::civil::Date;
use jiff::tz::TimeZone;

/// `atgw report` flags.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Gateway config: the journal is `gateway.data_dir/atgw.db`, days follow
    /// `gateway.timezone` (default /etc/atgw/atgw.toml unless --journal is given).
    #[arg(long, short, env = "ATGW_CONFIG")]
    pub config: Option<PathBuf>,
    /// A journal file to read instead (e.g. a copy taken off the gateway).
    #[arg(long)]
    pub journal: Option<PathBuf>,
    /// First day of the report, YYYY-MM-DD in the site's time zone (default: the journal's first).
    #[arg(long)]
    pub from: Option<Date>,
    /// Last day of the report, inclusive (default: the journal's last).
    #[arg(long)]
    pub to: Option<Date>,
    /// Directory for report.html and the CSV files (created when missing).
    #[arg(long, default_value = "atgw-report")]
    pub out: PathBuf,
    /// IANA time zone for days (default: the config's `gateway.timezone`, else UTC).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Put pseudonymous resident ids in the HTML (per-resident table) and in alerts.csv.
    #[arg(long)]
    pub include_residents: bool,
    /// A baseline period FROM..TO (YYYY-MM-DD..YYYY-MM-DD, inclusive, site time zone) shown
    /// beside the report's own period, with the change between them (comparison.csv).
    #[arg(long, value_name = "FROM..TO", value_parser = parse_baseline)]
    pub baseline: Option<Baseline>,
}

/// A baseline period: first and last day, inclusive, `from <= to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Baseline {
    pub from: Date,
    pub to: Date,
}

/// `--baseline FROM..TO`: two dates, the first not after the second.
pub fn parse_baseline(s: &str) -> Result<Baseline, String> {
    let Some((from, to)) = s.split_once("..") else {
        return Err(format!(
            "`{s}` is not a period: give two days as FROM..TO, e.g. 2026-03-01..2026-03-31"
        ));
    };
    let day = |d: &str| {
        d.trim()
            .parse::<Date>()
            .map_err(|e| format!("`{d}` is not a day (YYYY-MM-DD): {e}"))
    };
    let (from, to) = (day(from)?, day(to)?);
    if from > to {
        return Err(format!(
            "the baseline starts ({from}) after it ends ({to}): give FROM..TO with FROM on or before TO"
        ));
    }
    Ok(Baseline { from, to })
}

/// What to report on.
#[derive(Clone, Debug)]
pub struct Options {
    pub from: Option<Date>,
    pub to: Option<Date>,
    pub timezone: TimeZone,
    /// The zone's name as configured, for people.
    pub timezone_name: String,
    /// Site name for the title; the journal's own when absent.
    pub site: Option<String>,
    pub include_residents: bool,
    /// A baseline period to read beside this one.
    pub baseline: Option<Baseline>,
}

impl Options {
    /// Options with the site's zone and no period (the whole journal).
    pub fn new(timezone_name: &str) -> Result<Options, ReportError> {
        let timezone = TimeZone::get(timezone_name).map_err(|e| ReportError::Usage {
            what: format!("time zone `{timezone_name}`: {e}"),
        })?;
        Ok(Options {
            from: None,
            to: None,
            timezone,
            timezone_name: timezone_name.to_owned(),
            site: None,
            include_residents: false,
            baseline: None,
        })
    }
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{what}")]
    Usage { what: String },
    #[error(
        "journal {}: no such file (is `gateway.data_dir` right, or pass --journal)",
        path.display()
    )]
    NoJournal { path: PathBuf },
    #[error("journal {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "journal {}: schema version {found} has no alerts table (needs 2 or later: run this gateway version once on it)",
        path.display()
    )]
    TooOld { path: PathBuf, found: u32 },
    #[error("cannot write {}: {what}", path.display())]
    Write { path: PathBuf, what: String },
}

/// One alert as the evaluation sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRecord {
    pub id: String,
    pub kind: String,
    pub priority: String,
    pub area: Option<String>,
    pub room: Option<String>,
    pub device: String,
    /// Pseudonymous resident id; used only with `--include-residents` or for a count.
    pub resident: Option<String>,
    /// When the alert was first raised (gateway clock, ms since the epoch). A re-raise after a
    /// device restore does not move it, so waits are never under-stated.
    pub raised_ms: i64,
    /// `raised_ms`' calendar day in the site's zone.
    pub day: Date,
    pub acked_ms: Option<i64>,
    pub acked_by: Option<String>,
    pub resolved_ms: Option<i64>,
    pub outcome: Option<String>,
    /// `open`, `acknowledged`, `cleared` or `resolved` now.
    pub status: String,
    /// Escalation tiers fired because nobody acknowledged (`ack_timeout`).
    pub escalations: u32,
    /// Re-notifications to everyone told so far while unacknowledged.
    pub repeats: u32,
    /// Reminders after an acknowledgement without a resolution.
    pub reminders: u32,
    /// Times it was acknowledged and not resolved within `attend_within`, so reopened.
    pub not_attended: u32,
    pub test: bool,
}

impl AlertRecord {
    /// Acknowledgement minus first raise; `None` when nobody acknowledged.
    pub fn time_to_ack_ms(&self) -> Option<i64> {
        self.acked_ms.map(|a| (a - self.raised_ms).max(0))
    }
}

/// A test call: a device event flagged `test = true` that begins or happens (raised, point).
#[derive(Clone, Debug, PartialEq)]
pub struct TestCall {
    pub device: String,
    pub kind: String,
    pub at_ms: i64,
    pub day: Date,
}

/// One device's record over the period.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceRecord {
    pub id: String,
    pub adapter: String,
    pub registered: bool,
    /// The device's area: from its messages in the period, else from its latest alert (a
    /// baseline whose telemetry retention pruned keeps its alerts); `None` when neither says.
    pub area: Option<String>,
    /// First and last message from the device within the period (its own messages only: a
    /// gateway-raised `device_offline` is not the device being heard).
    pub first_seen_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    /// Its events within the period.
    pub events: u64,
    /// How long the device was watched: from the period's start (or its first message ever,
    /// if later) to the period's end (or the journal's last event, if earlier).
    pub monitored_ms: i64,
    /// Time within `monitored_ms` between a `device_offline` raise and its clear.
    pub offline_ms: i64,
    /// Offline episodes overlapping the period.
    pub offline_episodes: u32,
    /// `low_battery` conditions raised in the period.
    pub low_battery_raised: u32,
    /// Messages in the period that reported `battery.low = true`.
    pub low_battery_readings: u32,
    /// Lowest `battery.percent` reported in the period.
    pub min_battery_percent: Option<f64>,
    pub test_calls: u32,
}

impl DeviceRecord {
    /// Share of the monitored time the device was not offline, in percent.
    pub fn uptime_percent(&self) -> Option<f64> {
        (self.monitored_ms > 0).then(|| {
            100.0 * (self.monitored_ms - self.offline_ms.min(self.monitored_ms)) as f64
                / self.monitored_ms as f64
        })
    }

    /// Whether the device warned of its battery in the period.
    pub fn battery_warning(&self) -> bool {
        self.low_battery_raised > 0 || self.low_battery_readings > 0
    }
}

/// Everything the renderers need, read once from one journal snapshot.
#[derive(Clone, Debug)]
pub struct Report {
    pub site: String,
    pub timezone: String,
    /// First and last day, inclusive, in the site's zone.
    pub from: Date,
    pub to: Date,
    /// The period as instants: `[start_ms, end_ms)`.
    pub start_ms: i64,
    pub end_ms: i64,
    /// The journal's newest event (gateway clock), if any.
    pub as_of_ms: Option<i64>,
    pub generated_ms: i64,
    pub include_residents: bool,
    /// Alerts first raised within the period, oldest first.
    pub alerts: Vec<AlertRecord>,
    pub test_calls: Vec<TestCall>,
    /// Devices heard in, or supervised during, the period, by id.
    pub devices: Vec<DeviceRecord>,
    /// The site's zone, for rendering instants as local times.
    pub tz: TimeZone,
    /// The baseline period read the same way (`--baseline`), with no baseline of its own.
    pub baseline: Option<Box<Report>>,
}

impl Report {
    /// Every day of the period, in order.
    pub fn days(&self) -> Vec<Date> {
        let mut out = Vec::new();
        let mut d = self.from;
        while d <= self.to {
            out.push(d);
            match d.tomorrow() {
                Ok(n) => d = n,
                Err(_) => break,
            }
        }
        out
    }

    /// An instant as local time with its offset (`2026-04-17T16:33:22.000+01:00`).
    pub fn local(&self, ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| {
                t.to_zoned_datetime(self.tz.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// An instant as a short local time for people (`2026-04-17 16:33`); see [`for_people`].
    pub fn local_short(&self, ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| for_people(t, &self.tz))
            .unwrap_or_default()
    }
}

/// A short local time for people (`2026-04-17 16:33`). In the hour the clocks go back every
/// local time happens twice, so there it carries its zone's abbreviation ("01:30 BST", then
/// "01:30 GMT"), or its offset where the zone has none.
pub fn for_people(t: jiff::Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned_datetime(tz.clone());
    let short = z.strftime("%Y-%m-%d %H:%M").to_string();
    let fold = matches!(
        tz.to_ambiguous_timestamp(z.datetime()).offset(),
        jiff::tz::AmbiguousOffset::Fold { .. }
    );
    if !fold {
        return short;
    }
    let abbreviation = z.strftime("%Z").to_string();
    if abbreviation.starts_with(['+', '-']) || abbreviation.is_empty() {
        format!("{short} ({})", z.strftime("%:z"))
    } else {
        format!("{short} {abbreviation}")
    }
}

/// The report of `opts`' period and, with `opts.baseline`, of the baseline period beside it:
/// both through [`read::build`], so the two periods are measured by the same code. Each is read
/// in its own snapshot; a baseline in the past is not changed by what the daemon writes now.
pub fn build_with_baseline(
    conn: &mut rusqlite::Connection,
    journal: &Path,
    opts: &Options,
) -> Result<Report, ReportError> {
    let mut report = read::build(conn, journal, opts)?;
    if let Some(b) = opts.baseline {
        let base_opts = Options {
            from: Some(b.from),
            to: Some(b.to),
            baseline: None,
            ..opts.clone()
        };
        report.baseline = Some(Box::new(read::build(conn, journal, &base_opts)?));
    }
    Ok(report)
}

/// Reads the journal and writes `report.html` and the CSV files into `out`; returns the report
/// and the files written.
pub fn generate(
    journal: &Path,
    opts: &Options,
    out: &Path,
) -> Result<(Report, Vec<PathBuf>), ReportError> {
    let mut conn = read::open(journal)?;
    let report = build_with_baseline(&mut conn, journal, opts)?;
    drop(conn);
    std::fs::create_dir_all(out).map_err(|e| ReportError::Write {
        path: out.to_path_buf(),
        what: e.to_string(),
    })?;
    let html_path = out.join("report.html");
    crate::paths::write_file(&html_path, 0o644, html::render(&report).as_bytes()).map_err(|e| {
        ReportError::Write {
            path: html_path.clone(),
            what: e.to_string(),
        }
    })?;
    let mut written = vec![html_path];
    written.extend(csv::write_all(&report, out)?);
    Ok((report, written))
}

/// `atgw report`: exit 0 when written, 1 when the journal or the output failed, 2 for usage
/// and configuration errors.
pub fn run(args: ReportArgs) -> ExitCode {
    let config = args.config.clone().or_else(|| {
        args.journal
            .is_none()
            .then(|| PathBuf::from(crate::config::DEFAULT_CONFIG))
    });
    let cfg = match config.as_deref().map(crate::config::load).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("atgw report: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let journal = match args.journal.clone().or_else(|| {
        cfg.as_ref()
            .map(|c| c.gateway.data_dir.join(crate::journal::FILE_NAME))
    }) {
        Some(j) => j,
        None => {
            eprintln!("atgw report: give --config or --journal");
            return ExitCode::from(2);
        }
    };
    let zone = args
        .timezone
        .clone()
        .or_else(|| cfg.as_ref().map(|c| c.gateway.timezone.clone()))
        .unwrap_or_else(|| "UTC".into());
    let mut opts = match Options::new(&zone) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("atgw report: {e}");
            return ExitCode::from(2);
        }
    };
    opts.from = args.from;
    opts.to = args.to;
    opts.site = cfg.as_ref().map(|c| c.gateway.site.clone());
    opts.include_residents = args.include_residents;
    opts.baseline = args.baseline;
    match generate(&journal, &opts, &args.out) {
        Ok((report, written)) => {
            print!("{}", text::summary(&report));
            println!("written:");
            for p in written {
                println!("  {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e @ ReportError::Usage { .. }) => {
            eprintln!("atgw report: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("atgw report: {e}");
            ExitCode::FAILURE
        }
    }
}

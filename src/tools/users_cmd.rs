//! `atgw users`: the console's accounts in the journal (`add`, `passwd`, `disable`, `list`).
//!
//! A password is never an argument (argv is visible to every user of the box in `ps` and
//! lands in shell history): it is read from `--password-file` or from the first line of
//! standard input. The journal is opened directly, with a busy timeout, so this works with the
//! daemon running or stopped (see [`crate::console::accounts`]).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::console::accounts::{self, AccountError, Role};

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Add a console account. The password comes from --password-file or standard input's
    /// first line (at least 12 characters), never from the command line.
    Add {
        /// The name the person logs in with, e.g. `amy.k`.
        name: String,
        /// What they may do: carer sees and acts on alerts; senior also sees devices and
        /// shelves them; manager also sees the pilot report; integrator devices, health and
        /// shelves only.
        #[arg(long, value_enum)]
        role: Role,
        /// Read the password from this file (its first line) instead of standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Set a new password (this also lifts a lockout and re-enables a disabled account).
    Passwd {
        /// The account's name.
        name: String,
        /// Read the password from this file (its first line) instead of standard input.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Disable an account: no more logins, and its open sessions end at their next action.
    Disable {
        /// The account's name.
        name: String,
    },
    /// List the accounts (names, roles, state; never a hash).
    List {
        /// JSON (one object per line) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("cannot read the password from {from}: {error}")]
    Password { from: String, error: String },
    #[error("journal {path}: {error}")]
    Journal { path: PathBuf, error: String },
}

pub fn run(journal: &Path, cmd: UsersCommand) -> ExitCode {
    match run_inner(journal, cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ UsersError::Account(AccountError::Journal(_) | AccountError::Hash(_)))
        | Err(e @ UsersError::Journal { .. }) => {
            eprintln!("atgw users: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("atgw users: {e}");
            ExitCode::from(2)
        }
    }
}

/// The journal for a short account transaction (created as the daemon would when missing).
pub fn open(path: &Path) -> Result<rusqlite::Connection, UsersError> {
    let err = |error: String| UsersError::Journal {
        path: path.to_path_buf(),
        error,
    };
    if !path.exists() {
        // A first account before the first start: create the journal as the daemon would.
        return crate::journal::open(path)
            .map(|o| o.conn)
            .map_err(|e| err(e.to_string()));
    }
    let mut c = rusqlite::Connection::open(path).map_err(|e| err(e.to_string()))?;
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| err(e.to_string()))?;
    crate::journal::schema::migrate(&mut c).map_err(|e| err(e.to_string()))?;
    Ok(c)
}

fn password(file: Option<&Path>) -> Result<String, UsersError> {
    let (from, line) = match file {
        Some(f) => (
            f.display().to_string(),
            std::fs::read_to_string(f).map(|t| t.lines().next().unwrap_or_default().to_owned()),
        ),
        None => {
            let mut line = String::new();
            (
                "standard input".to_owned(),
                std::io::stdin().lock().read_line(&mut line).map(|_| line),
            )
        }
    };
    let line = line.map_err(|e| UsersError::Password {
        from: from.clone(),
        error: e.to_string(),
    })?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn run_inner(journal: &Path, cmd: UsersCommand) -> Result<(), UsersError> {
    let now = crate::console::now_ms();
    match cmd {
        UsersCommand::Add {
            name,
            role,
            password_file,
        } => {
            accounts::check_name(&name)?;
            let pw = password(password_file.as_deref())?;
            accounts::add(&open(journal)?, &name, role, &pw, now)?;
            println!("added {name} ({})", role.as_str());
        }
        UsersCommand::Passwd {
            name,
            password_file,
        } => {
            let pw = password(password_file.as_deref())?;
            accounts::set_password(&open(journal)?, &name, &pw, now)?;
            println!("password set for {name}");
        }
        UsersCommand::Disable { name } => {
            accounts::disable(&open(journal)?, &name, now)?;
            println!("disabled {name}");
        }
        UsersCommand::List { json } => {
            let list = accounts::list(&open(journal)?).map_err(AccountError::from)?;
            for u in list {
                if json {
                    println!("{}", serde_json::to_string(&u).unwrap_or_default());
                } else {
                    let last = u
                        .last_login_ms
                        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                        .map(|t| format!("last login {}", t.strftime("%Y-%m-%d %H:%M UTC")))
                        .unwrap_or_else(|| "never logged in".to_owned());
                    println!(
                        "{:<20} {:<11} {}{}, {last}",
                        u.name,
                        u.role,
                        if u.disabled { "disabled" } else { "enabled" },
                        if u.failed_logins > 0 {
                            format!(", {} failed logins", u.failed_logins)
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
    }
    Ok(())
}

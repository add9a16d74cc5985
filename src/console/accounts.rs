//! Console accounts: the `users` table (migration 10), roles and what each may do, Argon2id
//! password hashes, and the `user_audit` trail of what each person did.
//!
//! The daemon only reads accounts and, through the journal's writer, records logins, refusals
//! and actions ([`record`]). `atgw users` ([`crate::tools::users_cmd`]) writes accounts with a
//! short transaction of its own, since it runs while the daemon may not: SQLite's WAL and a
//! busy timeout let that one statement wait for the writer's batch, never corrupt it.
//!
//! There are no default accounts: a console without users refuses every login.

use rusqlite::{Connection, OptionalExtension, params};

/// Shortest password accepted; NCSC guidance favours length over composition rules.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest password accepted (Argon2 takes any length; this bounds the work a login can ask).
pub const MAX_PASSWORD_LEN: usize = 256;

/// What a person may do on the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees and acts on alerts.
    Carer,
    /// A senior carer: as a carer, and also sees devices and shelves their technical alerts.
    Senior,
    /// As a senior, and also sees the pilot report.
    Manager,
    /// Sees devices and the gateway's health and shelves devices; does not act on residents'
    /// alerts.
    Integrator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Carer => "carer",
            Role::Senior => "senior",
            Role::Manager => "manager",
            Role::Integrator => "integrator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "carer" => Some(Role::Carer),
            "senior" => Some(Role::Senior),
            "manager" => Some(Role::Manager),
            "integrator" => Some(Role::Integrator),
            _ => None,
        }
    }

    /// Sees the open alerts, acknowledges and resolves them.
    pub fn acts_on_alerts(self) -> bool {
        !matches!(self, Role::Integrator)
    }

    /// Sees devices (battery, signal, supervision, offline episodes, shelves).
    pub fn sees_devices(self) -> bool {
        matches!(self, Role::Senior | Role::Manager | Role::Integrator)
    }

    /// Shelves a device's technical alerts and takes them off early: the people who decide
    /// a sensor is waiting for a technician (senior carers on shift, managers, integrators),
    /// not every carer (a shelf quietens pages for the whole home).
    pub fn shelves(self) -> bool {
        matches!(self, Role::Senior | Role::Manager | Role::Integrator)
    }

    /// Sees the pilot report (`atgw report`'s figures): managers only.
    pub fn sees_report(self) -> bool {
        matches!(self, Role::Manager)
    }
}

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("user `{0}` already exists (use `atgw users passwd` to change the password)")]
    Exists(String),
    #[error("no user `{0}`")]
    NoSuchUser(String),
    #[error(
        "a user name is 1 to 64 letters, digits, `.`, `-` or `_` (got {0:?}); use a name people recognise, e.g. `amy.k`"
    )]
    BadName(String),
    #[error(
        "the password is {0} characters; use at least {MIN_PASSWORD_LEN} (a short phrase is easy to type)"
    )]
    ShortPassword(usize),
    #[error("the password is longer than {MAX_PASSWORD_LEN} characters")]
    LongPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("journal: {0}")]
    Journal(#[from] rusqlite::Error),
}

/// An account as the login check needs it.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub hash: String,
    pub disabled: bool,
    pub failed_logins: u32,
    pub last_failed_ms: Option<i64>,
}

/// An account as `atgw users list` shows it (no hash).
#[derive(Clone, Debug, serde::Serialize)]
pub struct UserSummary {
    pub name: String,
    pub role: String,
    pub disabled: bool,
    pub failed_logins: u32,
    pub last_login_ms: Option<i64>,
}

pub fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::BadName(name.to_owned()))
    }
}

pub fn check_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        Err(AccountError::ShortPassword(n))
    } else if n > MAX_PASSWORD_LEN {
        Err(AccountError::LongPassword)
    } else {
        Ok(())
    }
}

/// An Argon2id PHC string (the crate's default parameters: 19 MiB, 2 passes, the OWASP
/// minimum) with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    // rand's thread generator is a CSPRNG seeded from the OS.
    let bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&bytes).map_err(|e| AccountError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches `hash`; a malformed hash matches nothing. The comparison inside
/// the crate is constant-time.
pub fn verify_password(hash: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password is known for: an unknown user's login verifies against it, so a wrong
/// name takes as long as a wrong password and does not reveal which names exist.
pub fn decoy_hash() -> String {
    let random: [u8; 24] = rand::random();
    hash_password(&base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        random,
    ))
    .unwrap_or_default()
}

pub fn load(conn: &Connection, name: &str) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(
        "SELECT name, role, hash, disabled, failed_logins, last_failed_ms FROM users WHERE name = ?1",
    )?
    .query_row([name], |r| {
        let role: String = r.get(1)?;
        Ok(User {
            name: r.get(0)?,
            // An unknown role (a newer atgw's) grants nothing an integrator could not do.
            role: Role::parse(&role).unwrap_or(Role::Integrator),
            hash: r.get(2)?,
            disabled: r.get(3)?,
            failed_logins: r.get(4)?,
            last_failed_ms: r.get(5)?,
        })
    })
    .optional()
}

pub fn add(
    conn: &Connection,
    name: &str,
    role: Role,
    password: &str,
    now_ms: i64,
) -> Result<(), AccountError> {
    check_name(name)?;
    check_password(password)?;
    let hash = hash_password(password)?;
    let n = conn.execute(
        "INSERT INTO users (name, role, hash, created_ms, changed_ms) VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT(name) DO NOTHING",
        params![name, role.as_str(), hash, now_ms],
    )?;
    if n == 0 {
        return Err(AccountError::Exists(name.to_owned()));
    }
    audit(conn, now_ms, name, "account_added", role.as_str())?;
    Ok(())
}

/// Sets a new password, and lifts a lockout and a disable (a new password is how a manager
/// lets a locked-out carer back in).
pub fn set_password(
    conn: &Connection,
    name: &str,
    password: &str,
    now_ms: i64,
) -> Result<(), AccountError> {
    check_password(password)?;
    let hash = hash_password(password)?;
    let n = conn.execute(
        "UPDATE users SET hash = ?2, disabled = 0, failed_logins = 0, changed_ms = ?3 WHERE name = ?1",
        params![name, hash, now_ms],
    )?;
    if n == 0 {
        return Err(AccountError::NoSuchUser(name.to_owned()));
    }
    audit(conn, now_ms, name, "password_set", "")?;
    Ok(())
}

/// The user can no longer log in, and a running console ends their sessions at their next
/// request.
pub fn disable(conn: &Connection, name: &str, now_ms: i64) -> Result<(), AccountError> {
    let n = conn.execute(
        "UPDATE users SET disabled = 1, changed_ms = ?2 WHERE name = ?1",
        params![name, now_ms],
    )?;
    if n == 0 {
        return Err(AccountError::NoSuchUser(name.to_owned()));
    }
    audit(conn, now_ms, name, "account_disabled", "")?;
    Ok(())
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<UserSummary>> {
    let mut stmt = conn.prepare(
        "SELECT name, role, disabled, failed_logins, last_login_ms FROM users ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(UserSummary {
            name: r.get(0)?,
            role: r.get(1)?,
            disabled: r.get(2)?,
            failed_logins: r.get(3)?,
            last_login_ms: r.get(4)?,
        })
    })?;
    rows.collect()
}

fn audit(
    conn: &Connection,
    at_ms: i64,
    user: &str,
    action: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO user_audit (at_ms, user, action, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![at_ms, user, action, detail])?;
    Ok(())
}

/// Something a person did on the console, for the journal's writer to record.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountEvent {
    pub user: String,
    pub at_ms: i64,
    pub action: AccountAction,
}

#[derive(Clone, Debug, PartialEq)]
pub enum AccountAction {
    /// Logged in: the session to journal.
    LoggedIn(Box<super::sessions::Stored>),
    /// A wrong password for an existing account (counted towards its lockout).
    LoginFailed,
    /// A login refused without checking the password (locked out, disabled).
    LoginRefused {
        why: &'static str,
    },
    /// Logged out, or the session was found expired or its user disabled.
    SessionEnded {
        id: String,
        why: &'static str,
    },
    Acknowledged {
        alert: String,
    },
    Resolved {
        alert: String,
        outcome: String,
    },
    /// Shelved a device's technical alerts (the shelf's own row says why and until when).
    Shelved {
        device: String,
        until: String,
    },
    /// Took a device off the shelf early.
    Unshelved {
        device: String,
    },
}

/// Applies `ev` inside the writer's transaction.
pub fn record(conn: &Connection, ev: &AccountEvent) -> rusqlite::Result<()> {
    let (action, detail) = match &ev.action {
        AccountAction::LoggedIn(s) => {
            conn.prepare_cached(
                "UPDATE users SET failed_logins = 0, last_login_ms = ?2 WHERE name = ?1",
            )?
            .execute(params![ev.user, ev.at_ms])?;
            conn.prepare_cached(
                "INSERT OR REPLACE INTO console_sessions (id, secret_hash, user, role, csrf, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                s.view.id,
                s.secret_hash,
                s.view.user,
                s.view.role.as_str(),
                s.view.csrf,
                s.created_ms
            ])?;
            ("login", String::new())
        }
        AccountAction::LoginFailed => {
            conn.prepare_cached(
                "UPDATE users SET failed_logins = failed_logins + 1, last_failed_ms = ?2 WHERE name = ?1",
            )?
            .execute(params![ev.user, ev.at_ms])?;
            ("login_failed", "wrong password".to_owned())
        }
        AccountAction::LoginRefused { why } => ("login_refused", (*why).to_owned()),
        AccountAction::SessionEnded { id, why } => {
            conn.prepare_cached("DELETE FROM console_sessions WHERE id = ?1")?
                .execute([id])?;
            ("session_ended", (*why).to_owned())
        }
        AccountAction::Acknowledged { alert } => ("acknowledged", alert.clone()),
        AccountAction::Resolved { alert, outcome } => ("resolved", format!("{alert} {outcome}")),
        AccountAction::Shelved { device, until } => ("shelved", format!("{device} until {until}")),
        AccountAction::Unshelved { device } => ("unshelved", device.clone()),
    };
    audit(conn, ev.at_ms, &ev.user, action, &detail)
}

/// Sessions journaled at or after `since_ms` (older ones are past any absolute expiry), and
/// older ones deleted.
pub fn stored_sessions(
    conn: &Connection,
    since_ms: i64,
) -> rusqlite::Result<Vec<super::sessions::Stored>> {
    let mut stmt = conn.prepare(
        "SELECT id, secret_hash, user, role, csrf, created_ms FROM console_sessions
         WHERE created_ms >= ?1",
    )?;
    let rows = stmt.query_map([since_ms], |r| {
        let role: String = r.get(3)?;
        Ok(super::sessions::Stored {
            view: super::sessions::SessionView {
                id: r.get(0)?,
                user: r.get(2)?,
                role: Role::parse(&role).unwrap_or(Role::Integrator),
                csrf: r.get(4)?,
            },
            secret_hash: r.get(1)?,
            created_ms: r.get(5)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::journal::schema::migrate(&mut c).unwrap();
        c
    }

    #[test]
    fn a_password_verifies_against_its_argon2id_hash_and_nothing_else_does() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse battery "));
        assert!(!verify_password("not a hash", "correct horse battery"));
        assert!(!verify_password(&decoy_hash(), ""));
    }

    #[test]
    fn an_account_is_added_once_and_a_new_password_lifts_a_lockout() {
        let c = journal();
        add(&c, "amy.k", Role::Carer, "a long enough phrase", 1).unwrap();
        assert!(matches!(
            add(&c, "amy.k", Role::Manager, "a long enough phrase", 2),
            Err(AccountError::Exists(_))
        ));
        record(
            &c,
            &AccountEvent {
                user: "amy.k".into(),
                at_ms: 3,
                action: AccountAction::LoginFailed,
            },
        )
        .unwrap();
        assert_eq!(load(&c, "amy.k").unwrap().unwrap().failed_logins, 1);
        set_password(&c, "amy.k", "another long phrase", 4).unwrap();
        let u = load(&c, "amy.k").unwrap().unwrap();
        assert_eq!((u.failed_logins, u.role), (0, Role::Carer));
        assert!(verify_password(&u.hash, "another long phrase"));
        let actions: Vec<String> = c
            .prepare("SELECT action FROM user_audit ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(actions, ["account_added", "login_failed", "password_set"]);
    }

    #[test]
    fn short_passwords_and_odd_names_are_refused() {
        let c = journal();
        assert!(matches!(
            add(&c, "amy", Role::Carer, "short", 1),
            Err(AccountError::ShortPassword(5))
        ));
        assert!(matches!(
            add(&c, "amy k", Role::Carer, "a long enough phrase", 1),
            Err(AccountError::BadName(_))
        ));
        assert!(matches!(
            disable(&c, "nobody", 1),
            Err(AccountError::NoSuchUser(_))
        ));
    }
}

//! Rotas and time windows: who of a team is on shift at an instant, and whether an instant
//! falls in a policy's hours. Pure: no I/O, no clock — every answer is a function of the
//! instant and the site's time zone passed in.
//!
//! # Layout
//! - `wall`: `"HH:MM"` and the one rule turning a wall time on a date into an instant across
//!   daylight-saving changes (skipped → first instant after the gap; repeated → first occurrence).
//! - `window`: [`Window`], a daily local-time span on some weekdays; a policy's
//!   `match.hours`/`match.days` and every shift are one.
//! - `config`: `[[person]]` and `[[team]]` as configured, and [`validate`].
//! - `on_shift`: [`Rota`], who is on shift now and when that may next change.

mod config;
mod on_shift;
mod wall;
mod window;

pub use config::{
    ExceptionConfig, MAX_NAME, PersonConfig, Role, ShiftConfig, TeamConfig, validate,
};
pub use on_shift::{OnShift, Rota};
pub use window::{Day, Window};

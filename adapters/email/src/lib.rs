//! atgw-email: atgw's email output, the `email` sink (DESIGN §7): each committed event routed
//! to it becomes one plain-text email over SMTP (STARTTLS or implicit TLS, optional AUTH),
//! with a subject a carer can act on ("HIGH: Fall – Room 9, West wing"), threaded per alert,
//! and one outbox row released per `250` answer to the end of DATA.
//!
//! # Layout
//! - [`config`]: `[[sink]] type = "email"`, field by field, and its validation.
//! - [`notice`]: what one delivery's CloudEvents JSON says, read leniently and cleaned (pure).
//! - [`compose`]: subject, body, `Message-ID` and threading headers from a notice (pure).
//! - [`bundle`]: one message for several notifications to the same people (pure).
//! - [`reply`]: what the server's answer means for the outbox (pure).
//! - [`sink`]: the task that turns `Delivery`s into messages and answers `Outcome`s.
//! - [`component`]: the sink under atgw-sdk's component contract.
//! - [`audit`]: `atgw audit`'s checks of the link and the account.
//! - [`error`]: why an email sink cannot start.
//!
//! # What reaches a carer
//! The subject says what changed, what, and where: `HIGH: Fall – Room 9, West wing`, then
//! `ESCALATED (not acknowledged): …`, `Acknowledged by Sam: …`, `Resolved: …`. The body adds
//! when (the event time in the site's time zone, and in UTC), the device, the resident's
//! pseudonymous id, readings, who is told (how many addresses; escalation tiers), and what to
//! do: acknowledge on the console or on the handset. Email has no way back: replying does not
//! acknowledge, and the body says so.
//!
//! Recipients live in the config only. Logs, health and outcome reasons name how many there
//! are, never who; a server's reply text has its addresses replaced by `<address>`.
//!
//! # Threading and duplicates
//! The alert's first message has the alert's thread id as its `Message-ID`; every later one
//! has its own id (from the event id) and `In-Reply-To`/`References` to the thread id, so mail
//! clients show one conversation per alert. Ids come from stable event and alert ids, so a
//! retry carries the same `Message-ID` and a receiver can drop the copy. See [`compose`].
//!
//! # Bundling
//! With `bundle_window` set, notifications of the bundled priorities (default medium and low)
//! to the same people are held up to that long after the first and sent as one message; a
//! high-priority one goes at once and takes that audience's pending bundle with it. Held rows
//! stay owed in the outbox until the bundle's `250`, and each member row gets the bundle's
//! outcome. See [`atgw_sdk::bundle`] and [`bundle`].
//!
//! # Outcomes, and why a `5xx` does not disable the sink
//! - `250` to the end of DATA: `Delivered`. Nothing else is.
//! - A `4xx` answer, a connection, TLS or AUTH failure, a timeout: `Retry`, on the core's
//!   backoff.
//! - A `5xx` answer: also `Retry`, but after a longer wait ([`reply::permanent_backoff`]:
//!   5 s, doubling, at most 15 min), counted in the sink's health errors and logged at error
//!   level. Not `Disabled`: an SMTP `5xx` speaks of one message or one transaction (a
//!   recipient the server does not know, a message it will not take, a quota), not of the
//!   receiver wanting nothing more the way HTTP 410 does. Disabling would stop every later
//!   alert to every carer on this sink because of one refusal; the outbox instead keeps
//!   counting the failed attempts, tells the alert's next escalation tier after
//!   `escalate_after_failed_attempts`, and raises a gateway alert when the sink's oldest row
//!   waits past `sink_failing_alert_after`, so people learn the mail route is failing while
//!   the other routes keep paging. Once someone fixes the cause (the address, the account),
//!   the waiting messages go out without anyone re-enabling anything.
//!
//! One message goes to all recipients in one SMTP transaction, so a server that refuses one
//! recipient refuses the delivery: fix or remove the address (the reason says which reply
//! code; the log does not say which address).
//!
//! TLS is rustls with the crypto provider the process installed (atgw installs ring at
//! startup; ring is also lettre's fallback); no OpenSSL, no aws-lc.
#![forbid(unsafe_code)]

pub mod audit;
pub mod bundle;
pub mod component;
pub mod compose;
pub mod config;
pub mod error;
pub mod notice;
pub mod reply;
pub mod sink;

pub use component::EmailSink;
pub use config::{EmailConfig, TlsMode};
pub use error::EmailError;
pub use sink::run;

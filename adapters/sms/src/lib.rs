//! atgw-sms: atgw's SMS output, the `sms` sink (DESIGN §7). Alerts become text messages a
//! carer can act on, sent over SMPP 3.4 to the site's SMSC; an outbox row is released only when
//! the SMSC accepted the message for every recipient.
//!
//! # Layout
//! - [`pdu`]: SMPP 3.4 PDUs, decode and encode (pure; property-tested and fuzzed).
//! - [`gsm7`]: the GSM 03.38 default alphabet: transliteration, septet counting, the cut.
//! - [`text`]: the message from an event's CloudEvents JSON (pure, time zone passed in).
//! - [`bundle_text`]: one text for several notifications to the same numbers (pure).
//! - [`ledger`]: which delivery waits on which `submit_sm`, and what a response means.
//! - [`connection`]: PDUs on a TCP or TLS socket.
//! - [`sink`]: the task: bind, keepalive, reconnect, submits, receipts, outcomes.
//! - [`config`]: `[[sink]] type = "sms"`, field by field, and its validation.
//! - [`component`]: the sink under atgw-sdk's component contract.
//! - [`audit`]: `atgw audit`'s check of the SMSC link.
//! - [`error`]: why a sink cannot start, why a session ended.
//!
//! # How SMPP is used
//! atgw is an ESME client. It binds as a transceiver (`bind = "transmitter"` when the SMSC
//! account only allows that; then no delivery receipts arrive) with `system_id`, the password
//! from `password_file` and an optional `system_type`, keeps the session up with
//! `enquire_link` after `enquire_link` idle time, and rebuilds it with back-off (1 s doubling to
//! 60 s, jittered) when it breaks or a response is late. Each delivery is one `submit_sm` per
//! recipient in `to`, at most `window` awaiting their `submit_sm_resp`, matched by sequence
//! number. Each requests a delivery receipt (`registered_delivery = 1`); receipts arrive as
//! `deliver_sm`, are answered `deliver_sm_resp` and recorded in the sink's health and the log
//! (by the SMSC's message id; phone numbers are never logged, only counted or masked).
//!
//! Outcomes: `Delivered` when every recipient was accepted (status 0). Throttling
//! (`ESME_RTHROTTLED`), a full queue (`ESME_RMSGQFUL`), a temporary SMSC error or a lost
//! session: `Retry`, on the outbox's schedule. A refusal for good (a bad number, a barred
//! sender): `Retry` after `permanent_retry_after` and a health error; SMPP has no "this
//! receiver is gone", so never `Disabled`, and the outbox escalates a failing alert to its next
//! tier. Recipients already accepted are not texted again on a retry (within the process
//! lifetime; see [`ledger`]).
//!
//! # Bundling
//! With `bundle_window` set, notifications of the bundled priorities (default medium and low)
//! to the same numbers are held up to that long after the first and sent as one 160-septet
//! text (`3 alerts: …; +1 more.`); a high one goes at once and takes the pending bundle with
//! it. The bundle is one ledger delivery under its lead row; every member row gets its
//! outcome, so held and refused rows stay owed in the outbox. See [`atgw_sdk::bundle`].
//!
//! # Why GSM-7, unpacked
//! Texts are written in the GSM 03.38 default alphabet, `data_coding = 0`, so one SMS holds 160
//! characters on every handset and network (UCS-2 would halve that to 70). Characters outside
//! it are transliterated or become `?`; extension characters (`€`, `[`, …) count as two. The
//! septets go one per octet, unpacked, which is how SMPP carries the default alphabet: the
//! SMSC packs them for the radio. See [`gsm7`].
//!
//! TLS is rustls with the ring provider; plain TCP only with an explicit `tls = false`
//! (`atgw audit` warns unless the SMSC is on this machine).
#![forbid(unsafe_code)]

pub mod audit;
pub mod bundle_text;
pub mod component;
pub mod config;
pub mod connection;
pub mod error;
pub mod gsm7;
pub mod ledger;
pub mod pdu;
pub mod sink;
pub mod text;

pub use component::SmsSink;
pub use config::SmsConfig;

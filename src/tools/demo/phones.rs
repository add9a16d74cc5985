//! The care team's phones: a local HTTP server that the gateway's two webhook sinks POST to
//! (`/carers`, `/senior`). Each request's Standard Webhooks signature is verified with that
//! sink's own secret before anything else; then the phones play people, acting on alerts
//! through the gateway's local API with its bearer token, as a real console would.
//!
//! The rota is deterministic so every run tells the same story: carers answer pendant calls,
//! leaks and device alerts; fall alerts ring unanswered (the carers are busy with the pendant
//! calls), escalate to the senior, and the senior answers, also when the fall detector
//! restored on its own first (a restore is recorded on a resident's alarm, never closes it). A
//! device condition the device restored before anyone answered is checked and closed.

use super::team::Team;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atgw_http::signing::{self, WebhookKey};
use atgw_sdk::Shutdown;
use atgw_sdk::event::{Event, Kind};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use super::timeline::{Timeline, short_id};

/// How long a carer takes to pick up the phone and acknowledge.
pub const CARERS_ANSWER_AFTER: Duration = Duration::from_millis(1500);
/// How long the senior takes once the escalation reaches them.
pub const SENIOR_ANSWERS_AFTER: Duration = Duration::from_secs(1);
/// Who the senior is.
const SENIOR: &str = "senior-dee";

/// What people do with an alert of one kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// Whether a carer answers it (otherwise it escalates to the senior).
    pub carers_answer: bool,
    /// From acknowledging to resolving: going there and helping. Ten seconds for a pendant
    /// call, longer than the policy's reminder, so the reminder shows.
    pub visit: Duration,
    pub outcome: &'static str,
}

/// The rota.
pub fn plan(kind: Kind) -> Plan {
    let (carers_answer, visit_s, outcome) = match kind {
        Kind::PendantPress => (true, 10, "assisted"),
        Kind::Fall => (false, 3, "assisted"),
        // The nurse-call path's pull cord: rings unanswered, so the senior's DECT is paged.
        Kind::AssistanceCall => (false, 3, "assisted"),
        Kind::WaterLeak => (true, 3, "other"),
        Kind::DeviceOffline => (true, 3, "no_action"),
        _ => (true, 3, "other"),
    };
    Plan {
        carers_answer,
        visit: Duration::from_secs(visit_s),
        outcome,
    }
}

/// Which carer covers an area.
fn carer_for(area: Option<&str>) -> &'static str {
    match area {
        Some("west") => "carer-ben",
        _ => "carer-ana",
    }
}

/// The shared secrets and the API the phones need.
pub struct PhonesSetup {
    /// `http://127.0.0.1:PORT/api/v1`
    pub api_base: String,
    pub token: String,
    pub carers_secret: String,
    pub senior_secret: String,
}

/// The running phones.
pub struct Phones {
    pub addr: SocketAddr,
    /// Cancels people's pending actions; the server keeps answering until [`Phones::stop`].
    people: Shutdown,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct PhoneState {
    carers_key: WebhookKey,
    senior_key: WebhookKey,
    api: Api,
    timeline: Arc<Timeline>,
    /// Alert id → who has taken it, so a redelivered or repeated webhook is not acted on twice.
    taken: Arc<Mutex<HashMap<String, Taken>>>,
    people: Shutdown,
}

#[derive(Default)]
struct Taken {
    carers: bool,
    senior: bool,
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    auth: String,
}

/// One person's handling of one alert.
struct Act {
    id: String,
    who: &'static str,
    after: Duration,
    /// Acknowledge first, then resolve after `visit`; otherwise resolve straight away.
    ack: bool,
    visit: Duration,
    outcome: &'static str,
}

impl Phones {
    /// Starts answering on `listener` (bound by the caller, whose config names its port).
    pub fn start(
        listener: tokio::net::TcpListener,
        setup: PhonesSetup,
        timeline: Arc<Timeline>,
    ) -> Result<Phones, String> {
        let key = |team: Team, secret: &str| {
            WebhookKey::parse(secret).map_err(|e| format!("{} secret: {e}", team.sink()))
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the phones' HTTP client: {e}"))?;
        let people = Shutdown::new();
        let state = PhoneState {
            carers_key: key(Team::Carers, &setup.carers_secret)?,
            senior_key: key(Team::Senior, &setup.senior_secret)?,
            api: Api {
                client,
                base: setup.api_base,
                auth: format!("Bearer {}", setup.token),
            },
            timeline,
            taken: Arc::default(),
            people: people.clone(),
        };
        let app = axum::Router::new()
            .route(
                "/carers",
                post(
                    |State(s): State<PhoneState>, h: HeaderMap, b: Bytes| async move {
                        s.receive(Team::Carers, &h, &b)
                    },
                ),
            )
            .route(
                "/senior",
                post(
                    |State(s): State<PhoneState>, h: HeaderMap, b: Bytes| async move {
                        s.receive(Team::Senior, &h, &b)
                    },
                ),
            )
            .with_state(state);
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen for the phones' webhooks: {e}"))?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Phones {
            addr,
            people,
            server,
        })
    }

    /// People stop acting (pending acknowledgements are dropped); webhooks are still answered so
    /// the gateway can drain.
    pub fn hang_up(&self) {
        self.people.cancel();
    }

    pub fn stop(self) {
        self.people.cancel();
        self.server.abort();
    }
}

impl PhoneState {
    fn receive(&self, team: Team, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let h = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let key = match team {
            Team::Carers => &self.carers_key,
            Team::Senior => &self.senior_key,
        };
        if let Err(e) = signing::verify(
            key,
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
            body,
            jiff::Timestamp::now().as_second(),
            signing::TOLERANCE,
        ) {
            self.timeline.signature_checked(false);
            self.timeline.problem(format!(
                "{}: webhook signature check FAILED ({e}); request refused",
                team.phones()
            ));
            return StatusCode::UNAUTHORIZED;
        }
        self.timeline.signature_checked(true);
        let event: Event = match serde_json::from_slice(body) {
            Ok(e) => e,
            Err(e) => {
                self.timeline.problem(format!(
                    "{}: a signed webhook is not a readable event: {e}",
                    team.phones()
                ));
                return StatusCode::BAD_REQUEST;
            }
        };
        self.timeline.notified(team, &event);
        self.react(team, &event);
        StatusCode::OK
    }

    /// Decides what a person does about this notification, at most once per person and alert.
    fn react(&self, team: Team, e: &Event) {
        let Some(a) = &e.data.alert else { return };
        let plan = plan(e.data.kind);
        let carer = carer_for(e.data.location.area.as_deref());
        let act = {
            let Ok(mut taken) = self.taken.lock() else {
                return;
            };
            let t = taken.entry(a.id.clone()).or_default();
            let nobody = !t.carers && !t.senior;
            match (team, a.reason.as_str()) {
                (Team::Carers, "raised" | "raised_again" | "upgraded" | "repeated" | "repeat")
                    if plan.carers_answer && nobody =>
                {
                    t.carers = true;
                    Act {
                        id: a.id.clone(),
                        who: carer,
                        after: CARERS_ANSWER_AFTER,
                        ack: true,
                        visit: plan.visit,
                        outcome: plan.outcome,
                    }
                }
                (Team::Senior, "ack_timeout" | "delivery_failed") if nobody => {
                    t.senior = true;
                    Act {
                        id: a.id.clone(),
                        who: SENIOR,
                        after: SENIOR_ANSWERS_AFTER,
                        ack: true,
                        visit: plan.visit,
                        outcome: plan.outcome,
                    }
                }
                // Nobody answered and the device says it is over: a carer checks and closes it.
                (Team::Carers, "device_cleared") if nobody => {
                    t.carers = true;
                    Act {
                        id: a.id.clone(),
                        who: carer,
                        after: CARERS_ANSWER_AFTER,
                        ack: false,
                        visit: Duration::ZERO,
                        outcome: "false_alarm",
                    }
                }
                _ => return,
            }
        };
        let (api, timeline, people) =
            (self.api.clone(), self.timeline.clone(), self.people.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = people.cancelled() => {}
                _ = act.run(&api, &timeline) => {}
            }
        });
    }
}

impl Act {
    async fn run(self, api: &Api, timeline: &Timeline) {
        let who = self.who;
        tokio::time::sleep(self.after).await;
        if self.ack {
            if let Err(e) = api.post(&self.id, "ack", json!({ "by": who })).await {
                timeline.problem(format!(
                    "{who} could not acknowledge {}: {e}",
                    short_id(&self.id)
                ));
                return;
            }
            tokio::time::sleep(self.visit).await;
        }
        let body = json!({ "by": who, "outcome": self.outcome });
        if let Err(e) = api.post(&self.id, "resolve", body).await {
            timeline.problem(format!(
                "{who} could not resolve {}: {e}",
                short_id(&self.id)
            ));
        }
    }
}

impl Api {
    async fn post(&self, id: &str, action: &str, body: Value) -> Result<(), String> {
        let resp = self
            .client
            .post(format!("{}/alerts/{id}/{action}", self.base))
            .header("authorization", &self.auth)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("the local API did not answer: {e}"))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let v: Value = resp.json().await.unwrap_or_default();
        Err(format!(
            "{status}: {}",
            v["error"].as_str().unwrap_or("(no reason given)")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::demo::timeline::PolicyTimes;

    const CARERS: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const SENIOR: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    async fn post(addr: SocketAddr, path: &str, secret: &str, body: &[u8]) -> u16 {
        let key = WebhookKey::parse(secret).unwrap();
        let ts = jiff::Timestamp::now().as_second();
        reqwest::Client::new()
            .post(format!("http://{addr}{path}"))
            .header("webhook-id", "msg_1")
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signing::sign(&key, "msg_1", ts, body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn a_webhook_signed_with_the_other_teams_secret_is_refused_and_shown() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tl = Timeline::new(
            jiff::Timestamp::now(),
            false,
            PolicyTimes {
                escalate_after: Duration::from_secs(5),
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let phones = Phones::start(
            listener,
            PhonesSetup {
                api_base: "http://127.0.0.1:9/api/v1".into(),
                token: "unused".into(),
                carers_secret: CARERS.into(),
                senior_secret: SENIOR.into(),
            },
            tl.clone(),
        )
        .unwrap();
        assert_eq!(post(addr, "/senior", CARERS, b"{}").await, 401);
        let s = tl.stats();
        assert_eq!(
            (s.signatures_ok, s.signatures_failed, s.problems),
            (0, 1, 1)
        );
        // Its own secret passes the check; the body is then judged (not an event here).
        assert_eq!(post(addr, "/senior", SENIOR, b"{}").await, 400);
        let s = tl.stats();
        assert_eq!(
            (s.signatures_ok, s.signatures_failed, s.problems),
            (1, 1, 2)
        );
        phones.stop();
    }

    #[test]
    fn falls_ring_unanswered_and_pendant_calls_outlast_the_reminder() {
        assert!(!plan(Kind::Fall).carers_answer);
        assert!(plan(Kind::PendantPress).carers_answer);
        assert!(plan(Kind::PendantPress).visit > super::super::REMIND_AFTER);
        assert!(plan(Kind::WaterLeak).visit < super::super::REMIND_AFTER);
    }
}

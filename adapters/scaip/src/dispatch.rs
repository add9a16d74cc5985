//! One SIP request in, its final response out (and, for a SCAIP `MESSAGE`, the `<mrs>`
//! MESSAGE to send after it): method dispatch, digest authentication, registrations, and the
//! commit that must come before any answer. Transport-free: the server gives it the message
//! and says where it came from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atgw_sdk::clock::SharedClock;
use atgw_sdk::ratelimit::LogLimiter;
use atgw_sdk::secret::Secret;
use atgw_sdk::{Committed, Health, Ingest};

use crate::handler::Handler;
use crate::sip::digest::{AuthError, DigestServer, Verified};
use crate::sip::message::param;
use crate::sip::registrar::Registrar;
use crate::sip::uri::Uri;
use crate::sip::{Message, StartLine};

/// Content types a SCAIP body may come as (the standard's, and what some units send).
const SCAIP_TYPES: &[&str] = &["application/scaip+xml", "application/xml", "text/xml"];
/// Methods we answer.
const ALLOW: &str = "MESSAGE, REGISTER, OPTIONS";

/// Which transport a request came on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS (`sips:`): handled as TCP; `TLS` in our `Via`.
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

/// Where a request came from and reached us.
#[derive(Clone, Copy, Debug)]
pub struct Origin {
    pub transport: Transport,
    pub peer: SocketAddr,
    /// Our address as the unit reached it (for `Via` and `From` of our MESSAGE).
    pub local: SocketAddr,
}

impl Origin {
    pub fn label(&self) -> String {
        format!(
            "{}:{}",
            self.transport.as_str().to_ascii_lowercase(),
            self.peer
        )
    }
}

/// What to send for one request.
#[derive(Debug)]
pub struct Outcome {
    /// The final response (cached by the UDP transaction table).
    pub response: Vec<u8>,
    /// The `<mrs>` MESSAGE, sent after the response: to this address over UDP, or on the
    /// unit's connection over TCP.
    pub mrs: Option<(SocketAddr, Message)>,
}

/// Everything one adapter instance's listeners share.
pub struct Dispatcher {
    pub handler: Handler,
    digest: DigestServer,
    accounts: HashMap<String, Secret>,
    allow_unauthenticated: bool,
    registrar: Mutex<Registrar>,
    ingest: Ingest,
    pub health: Arc<Health>,
    clock: SharedClock,
    /// Our `To` tag on every response (one per instance is enough for MESSAGE, which makes no
    /// dialog).
    to_tag: String,
    warnings: LogLimiter,
}

impl Dispatcher {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        handler: Handler,
        digest: DigestServer,
        accounts: HashMap<String, Secret>,
        allow_unauthenticated: bool,
        ingest: Ingest,
        health: Arc<Health>,
        clock: SharedClock,
    ) -> Dispatcher {
        Dispatcher {
            handler,
            digest,
            accounts,
            allow_unauthenticated,
            registrar: Mutex::new(Registrar::default()),
            ingest,
            health,
            clock,
            to_tag: format!("{:08x}", rand::random::<u32>()),
            warnings: LogLimiter::new(Duration::from_secs(60)),
        }
    }

    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    fn reply(&self, req: &Message, code: u16, reason: &str) -> Message {
        let mut r = req.response(code, reason, &self.to_tag);
        r.push("Server", "atgw");
        r
    }

    /// Handles a request; `None` means "answer nothing" (the commit failed: the unit must
    /// retry, and over UDP its retransmission is handled afresh).
    pub async fn request(&self, req: &Message, origin: Origin) -> Option<Outcome> {
        let StartLine::Request { method, .. } = &req.start else {
            return None;
        };
        let missing = ["Via", "From", "To", "Call-ID", "CSeq"]
            .into_iter()
            .find(|h| req.header(h).is_none());
        if let Some(h) = missing {
            // Without Via we cannot route a response; the server drops those before us.
            return Some(self.plain(req, 400, &format!("Missing {h}")));
        }
        if req.cseq().is_none_or(|(_, m)| m != method) {
            return Some(self.plain(req, 400, "Bad CSeq"));
        }
        match method.as_str() {
            "MESSAGE" => self.message(req, origin).await,
            "REGISTER" => Some(self.register(req, origin)),
            "OPTIONS" => {
                let mut r = self.reply(req, 200, "OK");
                r.push("Allow", ALLOW);
                Some(Outcome {
                    response: r.encode(),
                    mrs: None,
                })
            }
            "ACK" => None,
            _ => {
                let mut r = self.reply(req, 405, "Method Not Allowed");
                r.push("Allow", ALLOW);
                Some(Outcome {
                    response: r.encode(),
                    mrs: None,
                })
            }
        }
    }

    fn plain(&self, req: &Message, code: u16, reason: &str) -> Outcome {
        Outcome {
            response: self.reply(req, code, reason).encode(),
            mrs: None,
        }
    }

    /// `Ok(Some(verified))` when authenticated, `Ok(None)` when allowed without, else the
    /// response to send.
    fn authenticate(
        &self,
        req: &Message,
        method: &str,
        origin: Origin,
    ) -> Result<Option<Verified>, Box<Outcome>> {
        let Some(auth) = req.header("Authorization") else {
            if self.allow_unauthenticated {
                return Ok(None);
            }
            self.health.rejected("unauthenticated");
            return Err(Box::new(self.challenge(req, false)));
        };
        let request_uri = match &req.start {
            StartLine::Request { uri, .. } => uri.as_str(),
            StartLine::Response { .. } => "",
        };
        match self
            .digest
            .verify(auth, method, request_uri, self.now_ms(), |u| {
                self.accounts.get(u)
            }) {
            Ok(v) => {
                for _ in 0..v.evicted {
                    self.health.rejected("nonce_table_full");
                }
                Ok(Some(v))
            }
            Err(AuthError::Stale) => Err(Box::new(self.challenge(req, true))),
            Err(e @ AuthError::Replay { .. }) => {
                // A fresh challenge, not a 403: a unit whose stack resent its Authorization
                // recomputes it and gets through; a replayer without the password cannot.
                self.health.rejected("auth_replay");
                if let Some(skipped) = self.warnings.allow(&format!("replay:{}", origin.peer.ip()))
                {
                    tracing::warn!(
                        adapter = %self.handler.adapter(),
                        peer = %origin.peer,
                        skipped,
                        "SCAIP request refused: {e}; a captured request sent again, or a unit that reuses its digest"
                    );
                }
                Err(Box::new(self.challenge(req, true)))
            }
            Err(e) if e.is_refusal() => {
                self.health.rejected("auth_failed");
                if let Some(skipped) = self.warnings.allow(&format!("auth:{}", origin.peer.ip())) {
                    tracing::warn!(
                        adapter = %self.handler.adapter(),
                        peer = %origin.peer,
                        skipped,
                        "SCAIP unit refused: {e}; check the unit's SIP account and its password file"
                    );
                }
                Err(Box::new(self.plain(req, 403, "Forbidden")))
            }
            Err(_) => {
                self.health.rejected("auth_failed");
                Err(Box::new(self.challenge(req, false)))
            }
        }
    }

    fn challenge(&self, req: &Message, stale: bool) -> Outcome {
        let mut r = self.reply(req, 401, "Unauthorized");
        for c in self.digest.challenges(self.now_ms(), stale) {
            r.push("WWW-Authenticate", c);
        }
        Outcome {
            response: r.encode(),
            mrs: None,
        }
    }

    fn register(&self, req: &Message, origin: Origin) -> Outcome {
        let user = match self.authenticate(req, "REGISTER", origin) {
            Ok(u) => u,
            Err(out) => return *out,
        };
        let to_user = req.header("To").and_then(Uri::parse).and_then(|u| u.user);
        let Some(aor) = to_user.or(user.map(|v| v.user)) else {
            return self.plain(req, 400, "No user in To");
        };
        let contact = req.header("Contact");
        let expires = contact
            .and_then(|c| param(c, "expires"))
            .or_else(|| req.header("Expires"))
            .and_then(|e| e.parse::<u64>().ok())
            .map(Duration::from_secs);
        let expires = if contact == Some("*") {
            Some(Duration::ZERO)
        } else {
            expires
        };
        let at = contact
            .and_then(Uri::parse)
            .and_then(|u| u.socket_addr(5060))
            .unwrap_or(origin.peer);
        let granted = match self.registrar.lock() {
            Ok(mut r) => r.register(&aor, at, expires, Instant::now()),
            Err(_) => return self.plain(req, 500, "Server Internal Error"),
        };
        match granted {
            Ok(granted) => {
                let mut r = self.reply(req, 200, "OK");
                if let Some(c) = contact.filter(|c| *c != "*" && !granted.is_zero()) {
                    let uri = c.split(';').next().unwrap_or(c);
                    r.push("Contact", format!("{uri};expires={}", granted.as_secs()));
                }
                r.push("Expires", granted.as_secs().to_string());
                Outcome {
                    response: r.encode(),
                    mrs: None,
                }
            }
            Err(_) => self.plain(req, 503, "Service Unavailable"),
        }
    }

    async fn message(&self, req: &Message, origin: Origin) -> Option<Outcome> {
        let verified = match self.authenticate(req, "MESSAGE", origin) {
            Ok(v) => v,
            Err(out) => return Some(*out),
        };
        let out = self.authenticated_message(req, origin).await;
        if out.is_none()
            && let Some(v) = &verified
        {
            // Unanswered: the unit's retransmission carries the same nc and must pass.
            self.digest.release(v);
        }
        out
    }

    async fn authenticated_message(&self, req: &Message, origin: Origin) -> Option<Outcome> {
        let ctype = req
            .header("Content-Type")
            .map(|c| c.split(';').next().unwrap_or(c).trim().to_ascii_lowercase());
        if !ctype.as_deref().is_some_and(|c| SCAIP_TYPES.contains(&c)) {
            let mut r = self.reply(req, 415, "Unsupported Media Type");
            r.push("Accept", "application/scaip+xml");
            return Some(Outcome {
                response: r.encode(),
                mrs: None,
            });
        }
        self.health.received(1);
        let label = origin.label();
        let decision = self.handler.handle(&req.body, &label);
        if let Some(letter) = decision.dead_letter {
            let reason = letter.reason.clone();
            if let Err(e) = self.ingest.reject(letter).await {
                self.health.error(format!("dead letter not committed: {e}"));
                return self.failed(req, origin);
            }
            self.health.rejected(&reason);
        }
        if let Some(sub) = decision.commit {
            match self.ingest.submit(sub).await {
                Ok(Committed::Stored { ids }) => self.health.committed(ids.len() as u64),
                Ok(Committed::Duplicate) => self.health.duplicate(),
                Err(e) => {
                    self.health.error(format!("commit failed: {e}"));
                    if let Some(skipped) = self.warnings.allow("commit") {
                        tracing::warn!(
                            adapter = %self.handler.adapter(),
                            skipped,
                            "SCAIP request not answered: the journal could not commit it ({e}); the unit will retry"
                        );
                    }
                    return self.failed(req, origin);
                }
            }
        }
        // Committed: now, and only now, the unit hears from us.
        let response = self.reply(req, 200, "OK").encode();
        let target = self.mrs_target(req, origin);
        let mrs = outgoing_mrs(req, origin, &decision.reply.encode());
        Some(Outcome {
            response,
            mrs: Some((target, mrs)),
        })
    }

    /// A failed commit: nothing over UDP (the retransmission retries it), `503` with
    /// `Retry-After` over TCP (a stream has no retransmissions; the unit's SCAIP layer resends).
    fn failed(&self, req: &Message, origin: Origin) -> Option<Outcome> {
        match origin.transport {
            Transport::Udp => None,
            Transport::Tcp | Transport::Tls => {
                let mut r = self.reply(req, 503, "Service Unavailable");
                r.push("Retry-After", "5");
                Some(Outcome {
                    response: r.encode(),
                    mrs: None,
                })
            }
        }
    }

    /// Where the `<mrs>` goes over UDP: the sender's registered contact, else its `Contact`
    /// (an address literal), else the datagram's source.
    fn mrs_target(&self, req: &Message, origin: Origin) -> SocketAddr {
        let user = req.header("From").and_then(Uri::parse).and_then(|u| u.user);
        let registered = user.and_then(|u| {
            self.registrar
                .lock()
                .ok()
                .and_then(|r| r.contact(&u, Instant::now()))
        });
        registered
            .or_else(|| {
                req.header("Contact")
                    .and_then(Uri::parse)
                    .and_then(|u| u.socket_addr(5060))
            })
            .unwrap_or(origin.peer)
    }
}

/// Our `MESSAGE` carrying the `<mrs>`, addressed to the unit. It reuses the request's Call-ID,
/// so a unit (and SIPp) can tie it to its request without reading the body; SCAIP ties them by
/// `ref`.
pub fn outgoing_mrs(req: &Message, origin: Origin, body: &str) -> Message {
    let from = req.header("From").unwrap_or_default();
    let to_uri = match (from.find('<'), from.find('>')) {
        (Some(a), Some(b)) if a < b => from[a..=b].to_owned(),
        _ => from.split(';').next().unwrap_or(from).to_owned(),
    };
    let target_uri = req
        .header("Contact")
        .and_then(|c| match (c.find('<'), c.find('>')) {
            (Some(a), Some(b)) if a < b => Some(c[a + 1..b].to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| to_uri.trim_matches(['<', '>']).to_owned());
    let local = origin.local;
    let mut m = Message::request("MESSAGE", &target_uri);
    m.push(
        "Via",
        format!(
            "SIP/2.0/{} {local};branch=z9hG4bK{:016x};rport",
            origin.transport.as_str(),
            rand::random::<u64>()
        ),
    );
    m.push("Max-Forwards", "70");
    let scheme = if origin.transport == Transport::Tls {
        "sips"
    } else {
        "sip"
    };
    m.push(
        "From",
        format!("<{scheme}:arc@{local}>;tag={:08x}", rand::random::<u32>()),
    );
    m.push("To", to_uri);
    m.push("Call-ID", req.header("Call-ID").unwrap_or_default());
    m.push("CSeq", "1 MESSAGE");
    m.push("Content-Type", "application/scaip+xml");
    m.body = body.as_bytes().to_vec();
    m
}

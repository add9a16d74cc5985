//! SIP digest authentication as a server (RFC 3261 §22, RFC 2617, RFC 8760 for SHA-256):
//! the challenges we send in a `401`, and the check of a unit's `Authorization`.
//!
//! Nonces are stateless: `<issued ms, hex>.<tag>`, the tag a SHA-256 over a per-process random
//! key and the time, so a nonce we did not mint fails, and one older than its lifetime is
//! answered with a fresh challenge marked `stale=true` (the unit retries without asking its
//! user). Nothing is stored when we challenge, so a flood of `401`s costs no memory. Once a
//! response verifies, its nonce's count (`nc`) is recorded ([`super::nonce_counts`]): a
//! replayed or lower `nc` is refused. The digest `uri` must be the request's Request-URI
//! (RFC 3261 §22.4), so a response captured for one request cannot vouch for another.
//! Responses are compared in constant time.

use std::sync::Mutex;

use atgw_sdk::secret::Secret;
use md5::Md5;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::message::param;
use super::nonce_counts::{Count, MAX_NONCES, NonceCounts};
use super::uri::Uri;

/// A digest algorithm we offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub enum Algorithm {
    /// What the SCAIP guideline (TR 91102) requires units to support.
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, text: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(text.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(text.as_bytes())),
        }
    }

    fn parse(s: &str) -> Option<Algorithm> {
        match s.trim_matches('"').to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }
}

/// Why an `Authorization` was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the Authorization header is not a digest response we can read")]
    Malformed,
    #[error("digest algorithm `{0}` is not one we offered")]
    Algorithm(String),
    #[error("the nonce was not issued by this gateway")]
    BadNonce,
    #[error("the nonce has expired")]
    Stale,
    #[error("realm `{0}` is not ours")]
    Realm(String),
    #[error("user `{0}` has no account here")]
    UnknownUser(String),
    #[error("wrong password for user `{0}`")]
    WrongCredentials(String),
    #[error("digest uri `{0}` is not the Request-URI")]
    UriMismatch(String),
    #[error("replayed Authorization: nc {nc} not above {highest} already used with this nonce")]
    Replay { nc: u32, highest: u32 },
}

impl AuthError {
    /// Wrong credentials (counted, answered 403) rather than a stale or missing challenge
    /// (answered with a new 401).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            AuthError::UnknownUser(_)
                | AuthError::WrongCredentials(_)
                | AuthError::BadNonce
                | AuthError::UriMismatch(_)
        )
    }
}

/// An `Authorization` that passed: who, and the count recorded for it (to release when the
/// request goes unanswered, see [`DigestServer::release`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user: String,
    nonce: (i64, String),
    nc: u32,
    /// Nonce counts forgotten to make room (the table was full; see `nonce_counts`).
    pub evicted: usize,
}

/// The server side of digest authentication for one adapter.
pub struct DigestServer {
    realm: String,
    algorithms: Vec<Algorithm>,
    key: [u8; 32],
    nonce_lifetime_ms: i64,
    counts: Mutex<NonceCounts>,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    pub fn new(realm: &str, algorithms: Vec<Algorithm>, nonce_lifetime_ms: i64) -> DigestServer {
        DigestServer {
            realm: realm.to_owned(),
            algorithms,
            key: rand::random(),
            nonce_lifetime_ms,
            counts: Mutex::new(NonceCounts::new(MAX_NONCES, nonce_lifetime_ms)),
        }
    }

    /// Nonces whose count is tracked now.
    pub fn tracked_nonces(&self) -> usize {
        self.counts.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Forgets the count of a verified request that was not answered (its commit failed), so
    /// the unit's retransmission, which carries the same `nc`, is not taken for a replay.
    pub fn release(&self, v: &Verified) {
        if let Ok(mut c) = self.counts.lock() {
            c.release(v.nonce.0, &v.nonce.1, v.nc);
        }
    }

    fn tag(&self, issued: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(issued.as_bytes());
        hex::encode(&h.finalize()[..16])
    }

    fn nonce(&self, now_ms: i64) -> String {
        let issued = format!("{now_ms:x}");
        let tag = self.tag(&issued);
        format!("{issued}.{tag}")
    }

    /// `WWW-Authenticate` values, one per algorithm in the configured order (a client takes
    /// the first it supports, RFC 8760 §2.4).
    pub fn challenges(&self, now_ms: i64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now_ms);
        self.algorithms
            .iter()
            .map(|a| {
                let mut c = format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    self.realm,
                    a.as_str()
                );
                if stale {
                    c.push_str(", stale=true");
                }
                c
            })
            .collect()
    }

    /// Checks an `Authorization` value for `method` on `request_uri`, and records its `nc`;
    /// returns the authenticated user.
    pub fn verify<'s>(
        &self,
        header: &str,
        method: &str,
        request_uri: &str,
        now_ms: i64,
        password: impl Fn(&str) -> Option<&'s Secret>,
    ) -> Result<Verified, AuthError> {
        let params = parse_params(header).ok_or(AuthError::Malformed)?;
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let user = get("username").ok_or(AuthError::Malformed)?;
        let realm = get("realm").ok_or(AuthError::Malformed)?;
        let nonce = get("nonce").ok_or(AuthError::Malformed)?;
        let uri = get("uri").ok_or(AuthError::Malformed)?;
        let response = get("response").ok_or(AuthError::Malformed)?;
        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or_else(|| AuthError::Algorithm(a.into()))?,
        };
        if !self.algorithms.contains(&algorithm) {
            return Err(AuthError::Algorithm(algorithm.as_str().into()));
        }
        if realm != self.realm {
            return Err(AuthError::Realm(realm.into()));
        }
        let (issued, tag) = nonce.split_once('.').ok_or(AuthError::BadNonce)?;
        let expected = self.tag(issued);
        if !bool::from(expected.as_bytes().ct_eq(tag.as_bytes())) {
            return Err(AuthError::BadNonce);
        }
        let issued_ms = i64::from_str_radix(issued, 16).map_err(|_| AuthError::BadNonce)?;
        if now_ms.saturating_sub(issued_ms) > self.nonce_lifetime_ms || issued_ms > now_ms + 1000 {
            return Err(AuthError::Stale);
        }
        let secret = password(user).ok_or_else(|| AuthError::UnknownUser(user.into()))?;
        let qop = match get("qop") {
            Some(q) if q.eq_ignore_ascii_case("auth") => Some((
                get("nc").ok_or(AuthError::Malformed)?,
                get("cnonce").ok_or(AuthError::Malformed)?,
            )),
            Some(_) => return Err(AuthError::Malformed),
            None => None,
        };
        let want = compute(
            algorithm,
            [user, realm, secret.expose()],
            [method, uri],
            nonce,
            qop,
        );
        let got = response.to_ascii_lowercase();
        if !bool::from(want.as_bytes().ct_eq(got.as_bytes())) {
            return Err(AuthError::WrongCredentials(user.into()));
        }
        // The response is genuine; now whether it is for this request, and not a replay.
        if !same_uri(uri, request_uri) {
            return Err(AuthError::UriMismatch(uri.into()));
        }
        // Without qop there is no count: such a nonce is good for one request.
        let nc = match qop {
            Some((nc, _)) if nc.len() == 8 => {
                u32::from_str_radix(nc, 16).map_err(|_| AuthError::Malformed)?
            }
            Some(_) => return Err(AuthError::Malformed),
            None => 1,
        };
        let counted = match self.counts.lock() {
            Ok(mut c) => c.record(issued_ms, nonce, nc, now_ms),
            Err(_) => Count::Forgotten,
        };
        match counted {
            Count::Fresh { evicted } => Ok(Verified {
                user: user.to_owned(),
                nonce: (issued_ms, nonce.to_owned()),
                nc,
                evicted,
            }),
            Count::Replay { highest } => Err(AuthError::Replay { nc, highest }),
            Count::Forgotten => Err(AuthError::Stale),
        }
    }
}

/// RFC 3261 §19.1.4 comparison of the digest `uri` with the Request-URI: identical text, or
/// the same scheme, user, host (case-insensitive), port and transport. A digest `uri` without
/// a user part is taken for the receiver itself when all else matches: SIPp (and stacks like
/// it) answer with `sip:host:port` by default, and refusing them would lose their alarms; the
/// binding that matters, to this receiver's address, still holds.
fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    match (Uri::parse(digest_uri), Uri::parse(request_uri)) {
        (Some(a), Some(b)) => {
            a.secure == b.secure
                && (a.user == b.user || a.user.is_none())
                && a.host.eq_ignore_ascii_case(&b.host)
                && a.port == b.port
                && a.transport == b.transport
        }
        _ => false,
    }
}

/// The digest `response`: `H(H(user:realm:password):nonce[:nc:cnonce:auth]:H(method:uri))`.
fn compute(
    algorithm: Algorithm,
    [user, realm, password]: [&str; 3],
    [method, uri]: [&str; 2],
    nonce: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha1 = algorithm.hash(&format!("{user}:{realm}:{password}"));
    let ha2 = algorithm.hash(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => algorithm.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => algorithm.hash(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// A client's answer to one challenge (the simulator's side), for `method` on `uri`, as the
/// first request with its nonce.
pub fn answer(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> Option<String> {
    answer_nc(challenge, user, password, method, uri, 1)
}

/// [`answer`] as the `nc`-th request with the challenge's nonce.
pub fn answer_nc(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> Option<String> {
    let params = parse_params(challenge)?;
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let realm = get("realm")?;
    let nonce = get("nonce")?;
    let algorithm = match get("algorithm") {
        Some(a) => Algorithm::parse(&a)?,
        None => Algorithm::Md5,
    };
    let cnonce = format!("{:016x}", rand::random::<u64>());
    let nc = format!("{nc:08x}");
    let response = compute(
        algorithm,
        [user, &realm, password],
        [method, uri],
        &nonce,
        Some((&nc, &cnonce)),
    );
    Some(format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
        algorithm.as_str()
    ))
}

/// Whether a challenge says `stale=true`.
pub fn is_stale(challenge: &str) -> bool {
    param(&format!(";{}", challenge.replace(',', ";")), "stale")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `Digest a=b, c="d, e"` → [(a, b), (c, "d, e")]; `None` when not a digest value.
fn parse_params(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.trim();
    let (scheme, rest) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if out.len() >= 32 || name.len() > 64 || value.len() > 512 {
            return None;
        }
        out.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> DigestServer {
        DigestServer::new("gw-test", vec![Algorithm::Sha256, Algorithm::Md5], 300_000)
    }

    #[test]
    fn the_rfc_2617_and_rfc_7616_vectors_hash_as_published() {
        // RFC 2617 §3.5.
        let r = compute(
            Algorithm::Md5,
            ["Mufasa", "testrealm@host.com", "Circle Of Life"],
            ["GET", "/dir/index.html"],
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
        // RFC 7616 §3.9.1, SHA-256.
        let r = compute(
            Algorithm::Sha256,
            ["Mufasa", "http-auth@example.org", "Circle of Life"],
            ["GET", "/dir/index.html"],
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
        );
        assert_eq!(
            r,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn a_response_from_the_client_side_is_accepted() {
        let s = DigestServer::new("testrealm@host.com", vec![Algorithm::Md5], 300_000);
        let challenge = &s.challenges(1000, false)[0];
        let auth = answer(
            challenge,
            "Mufasa",
            "Circle Of Life",
            "MESSAGE",
            "sip:arc@h",
        )
        .unwrap();
        let pw = Secret::from("Circle Of Life".to_owned());
        assert_eq!(
            s.verify(&auth, "MESSAGE", "sip:arc@h", 2000, |u| (u == "Mufasa")
                .then_some(&pw))
                .map(|v| v.user),
            Ok("Mufasa".into())
        );
    }

    #[test]
    fn md5_and_sha256_pass_and_wrong_passwords_stale_and_foreign_nonces_do_not() {
        let s = server();
        let pw = Secret::from("s3cret-pass".to_owned());
        let lookup = |u: &str| (u == "678").then_some(&pw);
        // One 401's challenges share a nonce: each answer here is its next request.
        for (nc, c) in (1..).zip(s.challenges(10_000, false)) {
            let ok = answer_nc(&c, "678", "s3cret-pass", "MESSAGE", "sip:arc@x", nc).unwrap();
            assert_eq!(
                s.verify(&ok, "MESSAGE", "sip:arc@x", 11_000, lookup)
                    .map(|v| v.user),
                Ok("678".into())
            );
            let wrong = answer(&c, "678", "guess", "MESSAGE", "sip:arc@x").unwrap();
            assert_eq!(
                s.verify(&wrong, "MESSAGE", "sip:arc@x", 11_000, lookup),
                Err(AuthError::WrongCredentials("678".into()))
            );
            assert_eq!(
                s.verify(&ok, "MESSAGE", "sip:arc@x", 10_000 + 300_001, lookup),
                Err(AuthError::Stale)
            );
            let other = answer(&c, "999", "x", "MESSAGE", "sip:arc@x").unwrap();
            assert!(
                s.verify(&other, "MESSAGE", "sip:arc@x", 11_000, lookup)
                    .unwrap_err()
                    .is_refusal()
            );
        }
        let foreign = answer(
            &server().challenges(10_000, false)[0],
            "678",
            "s3cret-pass",
            "MESSAGE",
            "u",
        )
        .unwrap();
        assert_eq!(
            s.verify(&foreign, "MESSAGE", "u", 11_000, lookup),
            Err(AuthError::BadNonce)
        );
        assert_eq!(
            s.verify("Basic abc", "MESSAGE", "u", 0, lookup),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn a_replayed_or_lower_nc_is_refused_and_a_released_one_passes_again() {
        let s = server();
        let pw = Secret::from("pw".to_owned());
        let lookup = |u: &str| (u == "678").then_some(&pw);
        let c = &s.challenges(10_000, false)[0];
        let first = answer(c, "678", "pw", "MESSAGE", "sip:arc@x").unwrap();
        let v = s
            .verify(&first, "MESSAGE", "sip:arc@x", 11_000, lookup)
            .unwrap();
        assert_eq!(
            s.verify(&first, "MESSAGE", "sip:arc@x", 11_500, lookup),
            Err(AuthError::Replay { nc: 1, highest: 1 })
        );
        s.release(&v);
        assert!(
            s.verify(&first, "MESSAGE", "sip:arc@x", 11_600, lookup)
                .is_ok()
        );
        let second = answer_nc(c, "678", "pw", "MESSAGE", "sip:arc@x", 2).unwrap();
        assert!(
            s.verify(&second, "MESSAGE", "sip:arc@x", 12_000, lookup)
                .is_ok()
        );
        let lower = answer_nc(c, "678", "pw", "MESSAGE", "sip:arc@x", 1).unwrap();
        assert_eq!(
            s.verify(&lower, "MESSAGE", "sip:arc@x", 12_000, lookup),
            Err(AuthError::Replay { nc: 1, highest: 2 })
        );
        // Only verified responses count: a forged high nc leaves the real count alone.
        let forged = answer_nc(c, "678", "guess", "MESSAGE", "sip:arc@x", 0xffff_ffff).unwrap();
        assert!(
            s.verify(&forged, "MESSAGE", "sip:arc@x", 12_000, lookup)
                .is_err()
        );
        let third = answer_nc(c, "678", "pw", "MESSAGE", "sip:arc@x", 3).unwrap();
        assert!(
            s.verify(&third, "MESSAGE", "sip:arc@x", 12_000, lookup)
                .is_ok()
        );
        assert_eq!(s.tracked_nonces(), 1);
    }

    #[test]
    fn a_digest_uri_other_than_the_request_uri_is_refused() {
        let s = server();
        let pw = Secret::from("pw".to_owned());
        let lookup = |u: &str| (u == "678").then_some(&pw);
        let c = &s.challenges(10_000, false)[0];
        let auth = answer(c, "678", "pw", "MESSAGE", "sip:arc@10.0.0.1:5060").unwrap();
        let e = s
            .verify(&auth, "MESSAGE", "sip:arc@10.0.0.2:5060", 11_000, lookup)
            .unwrap_err();
        assert_eq!(e, AuthError::UriMismatch("sip:arc@10.0.0.1:5060".into()));
        assert!(e.is_refusal());
        // Another user at the same receiver is another resource.
        let auth = answer_nc(c, "678", "pw", "MESSAGE", "sip:other@10.0.0.1:5060", 3).unwrap();
        assert!(
            s.verify(&auth, "MESSAGE", "sip:arc@10.0.0.1:5060", 11_000, lookup)
                .is_err()
        );
        // SIPp's default digest uri names the receiver without a user: taken.
        let auth = answer_nc(c, "678", "pw", "MESSAGE", "sip:10.0.0.1:5060", 4).unwrap();
        assert!(
            s.verify(&auth, "MESSAGE", "sip:arc@10.0.0.1:5060", 11_000, lookup)
                .is_ok()
        );
        // The same URI with its host in other case is the same URI (RFC 3261 §19.1.4).
        let auth = answer_nc(c, "678", "pw", "MESSAGE", "sip:arc@GW.example", 5).unwrap();
        assert!(
            s.verify(&auth, "MESSAGE", "sip:arc@gw.example", 11_000, lookup)
                .is_ok()
        );
    }

    #[test]
    fn quoted_commas_stay_in_their_value() {
        let p = parse_params("Digest realm=\"a, b\", nonce=x").unwrap();
        assert_eq!(p[0], ("realm".into(), "a, b".into()));
        assert_eq!(p[1], ("nonce".into(), "x".into()));
        assert!(is_stale("Digest realm=\"r\", stale=true"));
    }
}

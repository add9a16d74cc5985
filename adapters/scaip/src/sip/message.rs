//! A SIP message (RFC 3261 §7) as far as SCAIP needs it: the start line, the headers in order
//! (compact forms expanded, folded lines joined) and the body. Parse and encode, no I/O.
//!
//! Deliberately small: no multipart bodies, no header-specific grammar beyond what the
//! receiver reads (`Via` branch, `From`/`To` tags and URIs, `CSeq`, `Content-Length`,
//! `Authorization`). Caps bound everything a stranger can make us hold.

/// Largest start line plus headers we read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest body (a SCAIP `<mrq>` is at most 4 KiB; see [`crate::codec::MAX_MESSAGE`]).
pub const MAX_BODY: usize = 16 * 1024;
/// Most headers in one message.
const MAX_HEADERS: usize = 64;

/// Why bytes are not a SIP message we take.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error("the header section is not complete")]
    Incomplete,
    #[error("the header section is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("the body is larger than {MAX_BODY} bytes")]
    BodyTooLarge,
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("bad start line: {0}")]
    StartLine(String),
    #[error("bad header line: {0}")]
    Header(String),
    #[error("Content-Length {declared} does not match the {actual} bytes of body")]
    Length { declared: usize, actual: usize },
    #[error("not UTF-8 in the header section")]
    Encoding,
}

/// Request line or status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

/// One SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    /// (canonical name, value) in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Compact forms (RFC 3261 §7.3.3) and their full names.
fn canonical(name: &str) -> String {
    let full = match name.to_ascii_lowercase().as_str() {
        "v" | "via" => "Via",
        "f" | "from" => "From",
        "t" | "to" => "To",
        "i" | "call-id" => "Call-ID",
        "m" | "contact" => "Contact",
        "l" | "content-length" => "Content-Length",
        "c" | "content-type" => "Content-Type",
        "cseq" => "CSeq",
        "authorization" => "Authorization",
        "www-authenticate" => "WWW-Authenticate",
        "expires" => "Expires",
        "max-forwards" => "Max-Forwards",
        _ => return name.to_owned(),
    };
    full.to_owned()
}

/// Where the header section ends: the index after the blank line, and its length.
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Message {
    /// A request with the given headers (Content-Length is added by [`Message::encode`]).
    pub fn request(method: &str, uri: &str) -> Message {
        Message {
            start: StartLine::Request {
                method: method.into(),
                uri: uri.into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Parses a whole message (a UDP datagram, or one framed off a TCP stream). Leading blank
    /// lines (keep-alives) are skipped. A `Content-Length` shorter than the rest cuts the body;
    /// a longer one is an error. Without one, the rest is the body (UDP, RFC 3261 §18.3).
    pub fn parse(bytes: &[u8]) -> Result<Message, SipError> {
        let start = bytes
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .unwrap_or(bytes.len());
        let bytes = &bytes[start..];
        let end = match head_end(bytes) {
            Some(e) => e,
            None if bytes.len() > MAX_HEAD => return Err(SipError::HeadTooLarge),
            None => return Err(SipError::Incomplete),
        };
        if end > MAX_HEAD {
            return Err(SipError::HeadTooLarge);
        }
        let head = std::str::from_utf8(&bytes[..end]).map_err(|_| SipError::Encoding)?;
        let mut lines: Vec<String> = Vec::new();
        for raw in head.split('\n') {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                // A folded continuation of the previous header (RFC 3261 §7.3.1).
                let has_header = lines.len() > 1;
                match lines.last_mut() {
                    Some(prev) if has_header => {
                        prev.push(' ');
                        prev.push_str(line.trim());
                    }
                    _ => return Err(SipError::Header(line.chars().take(60).collect())),
                }
                continue;
            }
            lines.push(line.to_owned());
        }
        let mut it = lines.into_iter();
        let first = it.next().ok_or(SipError::StartLine(String::new()))?;
        let start = parse_start(&first)?;
        let mut headers = Vec::new();
        for line in it {
            if headers.len() >= MAX_HEADERS {
                return Err(SipError::TooManyHeaders);
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| SipError::Header(line.chars().take(60).collect()))?;
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(SipError::Header(line.chars().take(60).collect()));
            }
            headers.push((canonical(name), value.trim().to_owned()));
        }
        let rest = &bytes[end..];
        let mut msg = Message {
            start,
            headers,
            body: Vec::new(),
        };
        let body = match msg.content_length()? {
            Some(n) if n > MAX_BODY => return Err(SipError::BodyTooLarge),
            Some(n) if n > rest.len() => {
                return Err(SipError::Length {
                    declared: n,
                    actual: rest.len(),
                });
            }
            Some(n) => &rest[..n],
            None if rest.len() > MAX_BODY => return Err(SipError::BodyTooLarge),
            None => rest,
        };
        msg.body = body.to_vec();
        Ok(msg)
    }

    /// `Content-Length`, when present.
    pub fn content_length(&self) -> Result<Option<usize>, SipError> {
        match self.header("Content-Length") {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| SipError::Header(format!("Content-Length: {v}"))),
        }
    }

    /// The first value of a header (names as [`canonical`] spells them, any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = canonical(name);
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn headers_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let name = canonical(name);
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_owned(), value.into()));
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// `CSeq` as (number, method).
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let v = self.header("CSeq")?;
        let (n, m) = v.split_once(char::is_whitespace)?;
        Some((n.trim().parse().ok()?, m.trim()))
    }

    /// The top `Via`'s `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        let via = self.header("Via")?;
        let top = via.split(',').next()?;
        param(top, "branch")
    }

    /// A response to this request, with the headers RFC 3261 §8.2.6 copies (every `Via`,
    /// `From`, `To` with `to_tag` added when it has none, `Call-ID`, `CSeq`).
    pub fn response(&self, code: u16, reason: &str, to_tag: &str) -> Message {
        let mut r = Message {
            start: StartLine::Response {
                code,
                reason: reason.into(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        for v in self.headers_named("Via") {
            r.push("Via", v);
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            if let Some(v) = self.header(name) {
                let v = if name == "To" && param(v, "tag").is_none() && code != 100 {
                    format!("{v};tag={to_tag}")
                } else {
                    v.to_owned()
                };
                r.push(name, v);
            }
        }
        r
    }

    /// Wire bytes; `Content-Length` is written from the body (any set one is replaced).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        match &self.start {
            StartLine::Request { method, uri } => {
                out.push_str(&format!("{method} {uri} SIP/2.0\r\n"))
            }
            StartLine::Response { code, reason } => {
                out.push_str(&format!("SIP/2.0 {code} {reason}\r\n"))
            }
        }
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn parse_start(line: &str) -> Result<StartLine, SipError> {
    let bad = || SipError::StartLine(line.chars().take(80).collect());
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let code: u16 = code.parse().map_err(|_| bad())?;
        if !(100..700).contains(&code) {
            return Err(bad());
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_owned(),
        });
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if version != "SIP/2.0"
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || uri.is_empty()
    {
        return Err(bad());
    }
    Ok(StartLine::Request {
        method: method.into(),
        uri: uri.into(),
    })
}

/// A `;name=value` parameter of a header value (outside any `<…>`), case-insensitive name.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let after = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `raw` with every line that mentions authorization replaced, for dead letters: a digest
/// response can be replayed within its nonce's lifetime, and a broken client may have put
/// worse there (SIPp, misconfigured, writes its password into the message).
pub fn redact(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for line in raw.split_inclusive(|b| *b == b'\n') {
        let lower = line.to_ascii_lowercase();
        if lower.windows(13).any(|w| w == b"authorization")
            || lower.windows(14).any(|w| w == b"authentication")
        {
            out.extend_from_slice(b"(a line about authorization, redacted)\r\n");
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_lines_are_redacted_from_dead_letters() {
        let raw = b"MESSAGE sip:a SIP/2.0\r\nAuthorization: Digest username=\"678\", response=\"abc\"\r\nTo: x\r\n";
        let out = String::from_utf8(redact(raw)).unwrap();
        assert!(
            !out.contains("abc") && out.contains("To: x") && out.starts_with("MESSAGE"),
            "{out}"
        );
    }

    const MSG: &[u8] = b"MESSAGE sip:arc@127.0.0.1:5060 SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1:15061;branch=z9hG4bK-1\r\nFrom: <sip:678@127.0.0.1:15061>;tag=a\r\nTo: <sip:arc@127.0.0.1:5060>\r\ni: c1\r\nCSeq: 1 MESSAGE\r\nContent-Type: application/scaip+xml\r\nContent-Length: 5\r\n\r\n<mrq>";

    #[test]
    fn a_message_parses_with_compact_names_expanded() {
        let m = Message::parse(MSG).unwrap();
        assert_eq!(m.method(), Some("MESSAGE"));
        assert_eq!(m.branch(), Some("z9hG4bK-1"));
        assert_eq!(m.header("call-id"), Some("c1"));
        assert_eq!(m.cseq(), Some((1, "MESSAGE")));
        assert_eq!(m.body, b"<mrq>");
    }

    #[test]
    fn a_response_copies_the_transaction_headers_and_tags_to() {
        let m = Message::parse(MSG).unwrap();
        let r = Message::parse(&m.response(200, "OK", "xyz").encode()).unwrap();
        assert_eq!(
            r.start,
            StartLine::Response {
                code: 200,
                reason: "OK".into()
            }
        );
        assert_eq!(r.header("To"), Some("<sip:arc@127.0.0.1:5060>;tag=xyz"));
        assert_eq!(r.branch(), Some("z9hG4bK-1"));
        assert_eq!(r.header("Content-Length"), Some("0"));
    }

    #[test]
    fn bad_lengths_and_lines_are_errors() {
        let mut long = MSG.to_vec();
        long.truncate(long.len() - 1);
        assert!(matches!(
            Message::parse(&long),
            Err(SipError::Length { .. })
        ));
        assert!(Message::parse(b"HELLO\r\n\r\n").is_err());
        assert!(Message::parse(b"MESSAGE sip:a SIP/3.0\r\n\r\n").is_err());
        assert_eq!(
            Message::parse(b"MESSAGE sip:a SIP/2.0\r\nVia: x"),
            Err(SipError::Incomplete)
        );
    }

    #[test]
    fn params_are_read_outside_angle_brackets() {
        assert_eq!(param("<sip:a;tag=no>;tag=yes", "tag"), Some("yes"));
        assert_eq!(param("SIP/2.0/UDP h;rport;branch=b", "branch"), Some("b"));
    }
}

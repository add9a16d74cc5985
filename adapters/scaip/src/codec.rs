//! The SCAIP XML codec (SS 91100 §5, legacy.md §5.3): a `<mrq>` request's bytes → a typed
//! [`Request`] or a typed [`DecodeError`] that says which `snu` to answer; a [`Response`]
//! (`<mrs>`) → bytes. No I/O: the fuzzer and the property tests hit this file.
//!
//! Parsing rules, from real units rather than the informative XSD:
//! - the root is `<mrq>` whatever its namespace prefix (device messages carry none; the XSD's
//!   target namespace is `http://www.hi.se/2012/XScaipXML`), so names compare by local name;
//! - codes are compared numerically (`<dty>2</dty>` is `0002`), so they are kept as numbers;
//! - every element's length and character class is checked against §5.3; text around values is
//!   trimmed; elements this version does not know are skipped (CLC/TS 50134-9 adds some) but
//!   must still be well-formed;
//! - a request is at most [`MAX_MESSAGE`] bytes (SCAIP splits above 1300 with `<ame>`).

use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// The largest `<mrq>` we read; larger is `snu 1` (too long).
pub const MAX_MESSAGE: usize = 4096;
/// Elements nested deeper than this are malformed (only `<lge>` has children).
const MAX_DEPTH: usize = 4;
/// `<crd>` elements in one request (one per medium: no-voice, gsm, sip, sip-pp).
const MAX_CRD: usize = 8;

/// `mty`: what the request is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MessageType {
    /// `ME` (or omitted): an alarm or status message.
    #[default]
    Message,
    /// `RE`: the sender resets (aborts) the event of this `ref`.
    Reset,
    /// `IN`: new information about the event of this `ref`.
    Information,
    /// `PI`: heartbeat.
    Heartbeat,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Message => "ME",
            MessageType::Reset => "RE",
            MessageType::Information => "IN",
            MessageType::Heartbeat => "PI",
        }
    }
}

/// `<lge>`: a geographic position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Geo {
    /// WGS-84 `lat,lon`.
    pub geo: Option<String>,
    /// When the fix was taken, ISO 8601 with zone.
    pub tim: Option<String>,
    /// An NMEA GGA sentence.
    pub gga: Option<String>,
}

/// One `<mrq>`, its fields checked. Codes are numbers (leading zeros carry no meaning).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `ref`: `[0-9A-Za-z]{1,16}`, echoed in the `<mrs>`.
    pub reference: String,
    /// `ver` `NN.NN`.
    pub version: Option<String>,
    /// `sco`: 0 local unit, 1–3 grouped scheme states.
    pub sco: Option<u8>,
    /// `cha`: 1 = callback requested.
    pub cha: Option<u8>,
    pub mty: MessageType,
    /// `hbo`: 1 = the sender accepts a heartbeat interval (`hbi`) from us.
    pub hbo: Option<u16>,
    /// `cid`: controller id / account, digits.
    pub cid: String,
    /// `dty`: device type, Annex A.
    pub dty: u16,
    /// `did`: device id, printable ASCII.
    pub did: Option<String>,
    /// `dco`: device component.
    pub dco: Option<u16>,
    pub dte: Option<String>,
    /// `crd`: caller ids, one per medium.
    pub crd: Vec<String>,
    /// `stc`: status code, Annex C; omitted = alarm.
    pub stc: Option<u16>,
    pub stt: Option<String>,
    /// `pri`: 0 lowest … 9 highest.
    pub pri: Option<u8>,
    /// `lco`: location code, Annex D.
    pub lco: Option<u16>,
    pub lva: Option<String>,
    pub lge: Option<Geo>,
    pub lte: Option<String>,
    pub ico: Option<u16>,
    pub ite: Option<String>,
    /// `ame`: further messages follow (0 = last).
    pub ame: Option<u16>,
}

/// Why a request was refused, as the `snu` the `<mrs>` answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("message is {0} bytes, more than the {MAX_MESSAGE} this receiver reads")]
    MessageTooLong(usize),
    #[error("<{tag}> is longer than {max} characters")]
    TooLong { tag: &'static str, max: usize },
    #[error("not a SCAIP request: {0}")]
    Malformed(String),
    #[error("<{tag}>: {why}")]
    BadContent { tag: &'static str, why: String },
    #[error("mandatory <{0}> is missing")]
    Missing(&'static str),
    #[error("<ref> is missing")]
    MissingRef,
}

impl ErrorKind {
    /// The `snu` SS 91100 gives this fault.
    pub fn snu(&self) -> u8 {
        match self {
            ErrorKind::MessageTooLong(_) | ErrorKind::TooLong { .. } => 1,
            ErrorKind::Malformed(_) => 2,
            ErrorKind::BadContent { .. } => 3,
            ErrorKind::Missing(_) => 7,
            ErrorKind::MissingRef => 10,
        }
    }

    /// Machine-readable dead-letter reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ErrorKind::MessageTooLong(_) | ErrorKind::TooLong { .. } => "too_long",
            ErrorKind::Malformed(_) => "invalid_format",
            ErrorKind::BadContent { .. } => "wrong_content",
            ErrorKind::Missing(_) => "missing_tag",
            ErrorKind::MissingRef => "missing_ref",
        }
    }
}

/// A refused request: what was wrong, and the `ref` when one could be read (to echo).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    pub kind: ErrorKind,
    pub reference: Option<String>,
}

/// What characters an element may hold.
#[derive(Clone, Copy)]
enum Class {
    /// `[0-9A-Za-z]`.
    Alnum,
    /// `[0-9]`.
    Digits,
    /// Printable ASCII, space included.
    Printable,
    /// Any UTF-8 text without control characters (lengths count characters).
    Text,
    /// `NN.NN`.
    Version,
    /// `ME`, `RE`, `IN` or `PI`.
    Mty,
    /// `[0-9.,+-]` (and `;` for RFC 5870 parameters).
    Geo,
    /// ISO 8601 characters `[0-9T:+-Z.]`.
    Time,
}

/// One element's rule: its name, length range and class.
struct Rule {
    tag: &'static str,
    min: usize,
    max: usize,
    class: Class,
}

const fn rule(tag: &'static str, min: usize, max: usize, class: Class) -> Rule {
    Rule {
        tag,
        min,
        max,
        class,
    }
}

/// SS 91100 §5.3, as legacy.md records it. `cid` takes the standard's 32 (the XSD says 16);
/// `did` its 16 (the XSD says 8); `crd` and `ico` have no length there, so 64 and 4.
const RULES: &[Rule] = &[
    rule("ref", 1, 16, Class::Alnum),
    rule("ver", 4, 5, Class::Version),
    rule("sco", 1, 1, Class::Digits),
    rule("cha", 1, 1, Class::Digits),
    rule("mty", 2, 2, Class::Mty),
    rule("hbo", 1, 3, Class::Digits),
    rule("cid", 1, 32, Class::Digits),
    rule("dty", 1, 4, Class::Digits),
    rule("did", 1, 16, Class::Printable),
    rule("dco", 1, 3, Class::Digits),
    rule("dte", 1, 32, Class::Text),
    rule("crd", 1, 64, Class::Printable),
    rule("stc", 1, 4, Class::Digits),
    rule("stt", 1, 32, Class::Text),
    rule("pri", 1, 1, Class::Digits),
    rule("lco", 1, 3, Class::Digits),
    rule("lva", 1, 2, Class::Printable),
    rule("geo", 1, 23, Class::Geo),
    rule("tim", 1, 25, Class::Time),
    rule("gga", 1, 81, Class::Printable),
    rule("lte", 1, 32, Class::Text),
    rule("ico", 1, 4, Class::Digits),
    rule("ite", 1, 128, Class::Text),
    rule("ame", 1, 3, Class::Digits),
];

fn rule_for(tag: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.tag == tag)
}

fn class_ok(class: Class, s: &str) -> bool {
    match class {
        Class::Alnum => s.bytes().all(|b| b.is_ascii_alphanumeric()),
        Class::Digits => s.bytes().all(|b| b.is_ascii_digit()),
        Class::Printable => s.bytes().all(|b| (0x20..0x7f).contains(&b)),
        Class::Text => !s.chars().any(char::is_control),
        Class::Version => match s.split_once('.') {
            Some((a, b)) => {
                (1..=2).contains(&a.len())
                    && b.len() == 2
                    && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            }
            None => false,
        },
        Class::Mty => matches!(s, "ME" | "RE" | "IN" | "PI"),
        Class::Geo => s
            .bytes()
            .all(|b| b.is_ascii_digit() || b".,+-;".contains(&b)),
        Class::Time => s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"T:+-Z.".contains(&b)),
    }
}

/// Checks one value against its rule; `Ok(None)` for an element this codec does not know.
fn check(tag: &str, value: &str) -> Result<Option<&'static Rule>, ErrorKind> {
    let Some(r) = rule_for(tag) else {
        return Ok(None);
    };
    let len = value.chars().count();
    if len > r.max {
        return Err(ErrorKind::TooLong {
            tag: r.tag,
            max: r.max,
        });
    }
    if len < r.min {
        return Err(ErrorKind::BadContent {
            tag: r.tag,
            why: "is empty".into(),
        });
    }
    if !class_ok(r.class, value) {
        return Err(ErrorKind::BadContent {
            tag: r.tag,
            why: "holds characters it may not".into(),
        });
    }
    Ok(Some(r))
}

fn number<T: std::str::FromStr>(tag: &'static str, s: &str) -> Result<T, ErrorKind> {
    s.parse().map_err(|_| ErrorKind::BadContent {
        tag,
        why: "is not a number".into(),
    })
}

fn in_range(tag: &'static str, v: u16, max: u16) -> Result<u16, ErrorKind> {
    if v > max {
        return Err(ErrorKind::BadContent {
            tag,
            why: format!("{v} is out of range 0–{max}"),
        });
    }
    Ok(v)
}

/// Local name as text (namespace prefix dropped), or malformed.
fn local(name: &[u8]) -> Result<String, ErrorKind> {
    let local = match name.iter().rposition(|&b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    std::str::from_utf8(local)
        .map(str::to_owned)
        .map_err(|_| ErrorKind::Malformed("element name is not UTF-8".into()))
}

/// A document read into (path, text) leaves under a given root, without interpretation.
struct Leaves {
    /// (parent element, element, text): parent is the root's name for top-level elements.
    items: Vec<(String, String, String)>,
}

fn read_leaves(bytes: &[u8], root: &str) -> Result<Leaves, ErrorKind> {
    if bytes.len() > MAX_MESSAGE {
        return Err(ErrorKind::MessageTooLong(bytes.len()));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ErrorKind::Malformed("the body is not UTF-8".into()))?;
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<String> = Vec::new();
    // Text of the innermost open element, when it has no children.
    let mut current = String::new();
    let mut has_children: Vec<bool> = Vec::new();
    let mut items = Vec::new();
    let mut seen_root = false;
    let mut root_closed = false;
    let bad = |e: quick_xml::Error| ErrorKind::Malformed(format!("XML error: {e}"));
    loop {
        let event = reader.read_event().map_err(bad)?;
        match event {
            Event::Start(e) => {
                if root_closed {
                    return Err(ErrorKind::Malformed(
                        "content after the root element".into(),
                    ));
                }
                let name = local(e.name().as_ref())?;
                if stack.is_empty() {
                    if name != root {
                        return Err(ErrorKind::Malformed(format!(
                            "root element is <{name}>, not <{root}>"
                        )));
                    }
                    seen_root = true;
                } else if let Some(h) = has_children.last_mut() {
                    *h = true;
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(ErrorKind::Malformed("elements nested too deep".into()));
                }
                stack.push(name);
                has_children.push(false);
                current.clear();
            }
            Event::Empty(e) => {
                let name = local(e.name().as_ref())?;
                if stack.is_empty() {
                    return Err(ErrorKind::Malformed(format!(
                        "root element is an empty <{name}/>"
                    )));
                }
                if let Some(h) = has_children.last_mut() {
                    *h = true;
                }
                let parent = stack.last().cloned().unwrap_or_default();
                items.push((parent, name, String::new()));
            }
            Event::End(e) => {
                let name = local(e.name().as_ref())?;
                let Some(open) = stack.pop() else {
                    return Err(ErrorKind::Malformed(format!("unexpected </{name}>")));
                };
                if open != name {
                    return Err(ErrorKind::Malformed(format!("</{name}> closes <{open}>")));
                }
                let leaf = !has_children.pop().unwrap_or(true);
                if let Some(parent) = stack.last() {
                    if leaf {
                        items.push((parent.clone(), name, current.trim().to_owned()));
                    }
                } else {
                    root_closed = true;
                }
                current.clear();
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(bad)?;
                if stack.is_empty() {
                    if !s.trim().is_empty() {
                        return Err(ErrorKind::Malformed("text outside the root element".into()));
                    }
                } else {
                    current.push_str(&s);
                }
            }
            Event::CData(c) => {
                let s = std::str::from_utf8(c.as_ref())
                    .map_err(|_| ErrorKind::Malformed("CDATA is not UTF-8".into()))?;
                current.push_str(s);
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::DocType(_) => {
                // No DTDs: nothing a unit sends needs one, and entities are a known hazard.
                return Err(ErrorKind::Malformed("a DOCTYPE is not allowed".into()));
            }
            Event::Eof => break,
        }
        // Bound text of one element by the message cap (already bounded by input size).
    }
    if !seen_root {
        return Err(ErrorKind::Malformed(format!("no <{root}> element")));
    }
    if !stack.is_empty() {
        return Err(ErrorKind::Malformed(format!("<{root}> is not closed")));
    }
    Ok(Leaves { items })
}

/// Finds the `ref` in the leaves if it is valid, to echo it even when something else fails.
fn salvage_ref(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find("<ref>")? + 5;
    let end = start + text[start..].find("</ref>")?;
    let r = text[start..end].trim();
    (check("ref", r).is_ok()).then(|| r.to_owned())
}

impl Request {
    /// Decodes one `<mrq>` body.
    pub fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
        let leaves = match read_leaves(bytes, "mrq") {
            Ok(l) => l,
            Err(kind) => {
                let reference = if bytes.len() > MAX_MESSAGE {
                    None
                } else {
                    salvage_ref(bytes)
                };
                return Err(DecodeError { kind, reference });
            }
        };
        // The ref first, so every later error can echo it.
        let reference = leaves
            .items
            .iter()
            .find(|(p, n, _)| p == "mrq" && n == "ref")
            .map(|(_, _, v)| v.clone());
        let valid_ref = reference
            .as_deref()
            .filter(|r| check("ref", r).is_ok())
            .map(str::to_owned);
        let fail = |kind| DecodeError {
            kind,
            reference: valid_ref.clone(),
        };
        let mut req = Request::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for (parent, name, value) in &leaves.items {
            let in_lge = parent == "lge";
            if parent != "mrq" && !in_lge {
                continue; // inside an element this codec does not know
            }
            let Some(r) = check(name, value).map_err(fail)? else {
                continue;
            };
            let geo_tag = matches!(r.tag, "geo" | "tim" | "gga");
            if geo_tag != in_lge {
                continue; // `geo` outside `lge`, or a top-level tag inside it: not ours
            }
            if r.tag != "crd" {
                if seen.contains(&r.tag) {
                    return Err(fail(ErrorKind::Malformed(format!("<{}> twice", r.tag))));
                }
                seen.push(r.tag);
            }
            let v = value.clone();
            match r.tag {
                "ref" => req.reference = v,
                "ver" => req.version = Some(v),
                "sco" => {
                    req.sco = Some(
                        in_range("sco", number("sco", &v).map_err(fail)?, 3).map_err(fail)? as u8,
                    )
                }
                "cha" => {
                    req.cha = Some(
                        in_range("cha", number("cha", &v).map_err(fail)?, 1).map_err(fail)? as u8,
                    )
                }
                "mty" => {
                    req.mty = match v.as_str() {
                        "RE" => MessageType::Reset,
                        "IN" => MessageType::Information,
                        "PI" => MessageType::Heartbeat,
                        _ => MessageType::Message,
                    }
                }
                "hbo" => {
                    req.hbo =
                        Some(in_range("hbo", number("hbo", &v).map_err(fail)?, 1).map_err(fail)?)
                }
                "cid" => req.cid = v,
                "dty" => req.dty = number("dty", &v).map_err(fail)?,
                "did" => req.did = Some(v),
                "dco" => req.dco = Some(number("dco", &v).map_err(fail)?),
                "dte" => req.dte = Some(v),
                "crd" => {
                    if req.crd.len() >= MAX_CRD {
                        return Err(fail(ErrorKind::BadContent {
                            tag: "crd",
                            why: format!("more than {MAX_CRD} of them"),
                        }));
                    }
                    req.crd.push(v)
                }
                "stc" => req.stc = Some(number("stc", &v).map_err(fail)?),
                "stt" => req.stt = Some(v),
                "pri" => req.pri = Some(number("pri", &v).map_err(fail)?),
                "lco" => req.lco = Some(number("lco", &v).map_err(fail)?),
                "lva" => req.lva = Some(v),
                "geo" => req.lge.get_or_insert_with(Geo::default).geo = Some(v),
                "tim" => req.lge.get_or_insert_with(Geo::default).tim = Some(v),
                "gga" => req.lge.get_or_insert_with(Geo::default).gga = Some(v),
                "lte" => req.lte = Some(v),
                "ico" => req.ico = Some(number("ico", &v).map_err(fail)?),
                "ite" => req.ite = Some(v),
                "ame" => req.ame = Some(number("ame", &v).map_err(fail)?),
                _ => {}
            }
        }
        if valid_ref.is_none() {
            return Err(fail(ErrorKind::MissingRef));
        }
        for tag in ["cid", "dty"] {
            if !seen.contains(&tag) {
                return Err(fail(ErrorKind::Missing(tag)));
            }
        }
        // Annex D: codes 034/035 say a position is attached.
        if matches!(req.lco, Some(34 | 35))
            && req
                .lge
                .as_ref()
                .is_none_or(|g| g.geo.is_none() && g.gga.is_none())
        {
            return Err(fail(ErrorKind::Missing("lge")));
        }
        Ok(req)
    }

    /// The request as a unit would send it (the simulator's, and the round trip's).
    pub fn encode(&self) -> String {
        let mut out = String::from("<mrq>");
        el(&mut out, "ref", Some(&self.reference));
        el(&mut out, "ver", self.version.as_deref());
        num(&mut out, "sco", self.sco.map(u16::from), 1);
        num(&mut out, "cha", self.cha.map(u16::from), 1);
        if self.mty != MessageType::Message {
            el(&mut out, "mty", Some(self.mty.as_str()));
        }
        num(&mut out, "hbo", self.hbo, 3);
        el(&mut out, "cid", Some(&self.cid));
        num(&mut out, "dty", Some(self.dty), 4);
        el(&mut out, "did", self.did.as_deref());
        num(&mut out, "dco", self.dco, 3);
        el(&mut out, "dte", self.dte.as_deref());
        for c in &self.crd {
            el(&mut out, "crd", Some(c));
        }
        num(&mut out, "stc", self.stc, 4);
        el(&mut out, "stt", self.stt.as_deref());
        num(&mut out, "pri", self.pri.map(u16::from), 1);
        num(&mut out, "lco", self.lco, 3);
        el(&mut out, "lva", self.lva.as_deref());
        if let Some(g) = &self.lge {
            out.push_str("<lge>");
            el(&mut out, "geo", g.geo.as_deref());
            el(&mut out, "tim", g.tim.as_deref());
            el(&mut out, "gga", g.gga.as_deref());
            out.push_str("</lge>");
        }
        el(&mut out, "lte", self.lte.as_deref());
        num(&mut out, "ico", self.ico, 4);
        el(&mut out, "ite", self.ite.as_deref());
        num(&mut out, "ame", self.ame, 1);
        out.push_str("</mrq>");
        out
    }
}

fn el(out: &mut String, tag: &str, value: Option<&str>) {
    if let Some(v) = value {
        out.push('<');
        out.push_str(tag);
        out.push('>');
        out.push_str(&quick_xml::escape::escape(v));
        out.push_str("</");
        out.push_str(tag);
        out.push('>');
    }
}

/// A code zero-padded to its standard width (`dty` 0005), as the standard writes them.
fn num(out: &mut String, tag: &str, value: Option<u16>, width: usize) {
    if let Some(v) = value {
        el(out, tag, Some(&format!("{v:0width$}")));
    }
}

/// One `<mrs>`: our answer to a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The request's `ref`; `None` only when the request had none we could read (`snu 10`).
    pub reference: Option<String>,
    /// Status number: 0 handled, 1 too long, 2 invalid format, 3 wrong content, 4 hold,
    /// 5 not treated, 6 busy, 7 mandatory tag missing, 10 reference missing, 99 undefined.
    pub snu: u8,
    /// Status text, at most 128 characters.
    pub ste: Option<String>,
    /// Common version (at most the request's `ver`).
    pub cve: Option<String>,
    /// Media reply: 0 = no voice.
    pub mre: Option<u8>,
    /// Heartbeat interval in minutes, 1–1440, when the sender offered `hbo`.
    pub hbi: Option<u16>,
}

impl Response {
    /// `<mrs>` as bytes; `ste` is cut to its 128 characters.
    pub fn encode(&self) -> String {
        let mut out = String::from("<mrs>");
        el(&mut out, "ref", self.reference.as_deref());
        el(&mut out, "snu", Some(&self.snu.to_string()));
        let ste: Option<String> = self.ste.as_ref().map(|s| s.chars().take(128).collect());
        el(&mut out, "ste", ste.as_deref());
        el(&mut out, "cve", self.cve.as_deref());
        el(&mut out, "mre", self.mre.map(|m| m.to_string()).as_deref());
        el(&mut out, "hbi", self.hbi.map(|h| h.to_string()).as_deref());
        out.push_str("</mrs>");
        out
    }

    /// Reads an `<mrs>` (the simulator checks every answer with it).
    pub fn decode(bytes: &[u8]) -> Result<Response, ErrorKind> {
        let leaves = read_leaves(bytes, "mrs")?;
        let mut r = Response::default();
        let mut snu = None;
        for (parent, name, v) in leaves.items {
            if parent != "mrs" {
                continue;
            }
            let bad = |tag| ErrorKind::BadContent {
                tag,
                why: format!("`{v}` is not valid"),
            };
            match name.as_str() {
                "ref" => {
                    check("ref", &v)?;
                    r.reference = Some(v)
                }
                "snu" => snu = Some(v.parse::<u8>().map_err(|_| bad("snu"))?),
                "ste" => r.ste = Some(v),
                "cve" => r.cve = Some(v),
                "mre" => r.mre = Some(v.parse().map_err(|_| bad("mre"))?),
                "hbi" => {
                    let h: u16 = v.parse().map_err(|_| bad("hbi"))?;
                    if !(1..=1440).contains(&h) {
                        return Err(bad("hbi"));
                    }
                    r.hbi = Some(h)
                }
                _ => {}
            }
        }
        r.snu = snu.ok_or(ErrorKind::Missing("snu"))?;
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> DecodeError {
        Request::decode(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn the_guideline_example_decodes_with_codes_compared_numerically() {
        let r =
            Request::decode(b"<mrq><ref>1242</ref><cid>678</cid><dty>27</dty><stc>16</stc></mrq>")
                .unwrap();
        assert_eq!(r.reference, "1242");
        assert_eq!(r.cid, "678");
        assert_eq!(r.dty, 27);
        assert_eq!(r.stc, Some(16));
        assert_eq!(r.mty, MessageType::Message);
        let padded = Request::decode(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><mrq><ref>1242</ref><cid>678</cid><dty>0027</dty><stc>0016</stc></mrq>",
        )
        .unwrap();
        assert_eq!((padded.dty, padded.stc), (r.dty, r.stc));
    }

    #[test]
    fn the_fonoster_simulator_body_and_a_heartbeat_decode() {
        let r = Request::decode(b"<mrq><ref>00020486</ref><cha>0</cha><mty>ME</mty><cid>111111</cid><dty>02</dty><did>00</did><crd>no-voice:</crd><stc>102</stc></mrq>").unwrap();
        assert_eq!(r.crd, vec!["no-voice:".to_owned()]);
        assert_eq!(r.did.as_deref(), Some("00"));
        assert_eq!(r.stc, Some(102));
        let hb =
            Request::decode(b"<mrq><ref>1244</ref><mty>PI</mty><cid>678</cid><dty>2</dty></mrq>")
                .unwrap();
        assert_eq!(hb.mty, MessageType::Heartbeat);
    }

    #[test]
    fn a_namespaced_root_is_read_by_its_local_name() {
        let r = Request::decode(
            b"<s:mrq xmlns:s=\"http://www.hi.se/2012/XScaipXML\"><s:ref>9</s:ref><s:cid>1</s:cid><s:dty>3</s:dty></s:mrq>",
        )
        .unwrap();
        assert_eq!(r.dty, 3);
    }

    #[test]
    fn each_fault_gets_its_snu_and_echoes_the_ref_when_it_can() {
        let e = err("<mrq><ref>77</ref><cid>678</cid></mrq>");
        assert_eq!((e.kind.snu(), e.reference.as_deref()), (7, Some("77")));
        assert_eq!(err("<mrq><cid>678</cid><dty>2</dty></mrq>").kind.snu(), 10);
        let e = err(
            "<mrq><ref>78</ref><cid>678</cid><dty>2</dty><stt>0123456789012345678901234567890123</stt></mrq>",
        );
        assert_eq!((e.kind.snu(), e.reference.as_deref()), (1, Some("78")));
        let e = err("<mrq><ref>79</ref><cid>67a</cid><dty>2</dty></mrq>");
        assert_eq!((e.kind.snu(), e.reference.as_deref()), (3, Some("79")));
        let e = err("<mrq><ref>80</ref><cid>678</cid><dty>2</dty>");
        assert_eq!((e.kind.snu(), e.reference.as_deref()), (2, Some("80")));
        assert_eq!(err("<mrs><ref>1</ref></mrs>").kind.snu(), 2);
        assert_eq!(err("not xml at all").kind.snu(), 2);
        let big = format!("<mrq><ref>1</ref>{}</mrq>", " ".repeat(MAX_MESSAGE));
        assert_eq!(err(&big).kind.snu(), 1);
        assert_eq!(
            err("<mrq><ref>1</ref><ref>2</ref><cid>1</cid><dty>1</dty></mrq>")
                .kind
                .snu(),
            2
        );
        assert_eq!(
            err("<mrq><ref>1</ref><cid>1</cid><dty>1</dty><mty>XX</mty></mrq>")
                .kind
                .snu(),
            3
        );
        assert_eq!(
            err("<mrq><ref>12345678901234567</ref><cid>1</cid><dty>1</dty></mrq>")
                .kind
                .snu(),
            1
        );
        assert_eq!(
            err("<mrq><ref>1</ref><cid>1</cid><dty>1</dty><lco>34</lco></mrq>")
                .kind
                .snu(),
            7
        );
    }

    #[test]
    fn a_doctype_is_refused() {
        let e = err(
            "<!DOCTYPE mrq [<!ENTITY x \"y\">]><mrq><ref>1</ref><cid>1</cid><dty>1</dty></mrq>",
        );
        assert_eq!(e.kind.snu(), 2);
    }

    #[test]
    fn unknown_elements_are_skipped() {
        let r =
            Request::decode(b"<mrq><ref>1</ref><xyz><a>b</a></xyz><cid>1</cid><dty>1</dty></mrq>")
                .unwrap();
        assert_eq!(r.cid, "1");
    }

    #[test]
    fn a_response_encodes_and_decodes() {
        let r = Response {
            reference: Some("1242".into()),
            snu: 0,
            mre: Some(0),
            hbi: Some(60),
            ..Response::default()
        };
        assert_eq!(
            r.encode(),
            "<mrs><ref>1242</ref><snu>0</snu><mre>0</mre><hbi>60</hbi></mrs>"
        );
        assert_eq!(Response::decode(r.encode().as_bytes()).unwrap(), r);
    }
}

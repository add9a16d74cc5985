//! The LINE/1 codec: one line in, a typed [`Line`] or a typed [`LineError`] out. Pure, no I/O,
//! so it is property-tested and fuzzed on its own.

use atgw_sdk::{Kind, Phase};

/// One device line, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The device's sequence number (its retransmissions repeat it).
    pub seq: u32,
    /// The device's own id: letters, digits, `-`, `_`, `.`; at most 64 characters.
    pub device: String,
    pub kind: Kind,
    pub phase: Phase,
}

/// Why a line was not understood; [`LineError::reason`] is the dead letter's reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("not UTF-8 text")]
    NotText,
    #[error("expected `<seq> <device> <kind> [<phase>]`, got {0} fields")]
    Fields(usize),
    #[error("sequence `{0}` is not a number from 0 to 4294967295")]
    Seq(String),
    #[error("device id must be 1–64 letters, digits, `-`, `_` or `.`")]
    Device,
    #[error("`{0}` is not a schema v1 kind")]
    Kind(String),
    #[error("`{0}` is not a phase (raised, cleared, point)")]
    Phase(String),
}

impl LineError {
    pub fn reason(&self) -> &'static str {
        match self {
            LineError::NotText => "not_text",
            LineError::Fields(_) => "bad_fields",
            LineError::Seq(_) => "bad_seq",
            LineError::Device => "bad_device",
            LineError::Kind(_) => "unknown_kind",
            LineError::Phase(_) => "bad_phase",
        }
    }
}

/// Parses one line (without its `\n`; a trailing `\r` is allowed).
pub fn parse(bytes: &[u8]) -> Result<Line, LineError> {
    let text = std::str::from_utf8(bytes).map_err(|_| LineError::NotText)?;
    let fields: Vec<&str> = text
        .trim_end_matches('\r')
        .split_ascii_whitespace()
        .collect();
    let [seq, device, kind, rest @ ..] = fields.as_slice() else {
        return Err(LineError::Fields(fields.len()));
    };
    if rest.len() > 1 {
        return Err(LineError::Fields(fields.len()));
    }
    let seq = seq
        .parse::<u32>()
        .map_err(|_| LineError::Seq(printable(seq)))?;
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if device.len() > 64 || !device.chars().all(valid) {
        return Err(LineError::Device);
    }
    let kind = kind
        .parse::<Kind>()
        .map_err(|_| LineError::Kind(printable(kind)))?;
    let phase = match rest.first() {
        None | Some(&"raised") => Phase::Raised,
        Some(&"cleared") => Phase::Cleared,
        Some(&"point") => Phase::Point,
        Some(other) => return Err(LineError::Phase(printable(other))),
    };
    Ok(Line {
        seq,
        device: (*device).to_owned(),
        kind,
        phase,
    })
}

/// Device text quoted in an error: short, and without control characters.
fn printable(s: &str) -> String {
    s.chars()
        .take(32)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_press_parses() {
        let l = parse(b"17 pendant-3 pendant_press\r").unwrap();
        assert_eq!(
            (l.seq, l.device.as_str(), l.kind, l.phase),
            (17, "pendant-3", Kind::PendantPress, Phase::Raised)
        );
        assert_eq!(
            parse(b"1 bed-9 bed_exit cleared").unwrap().phase,
            Phase::Cleared
        );
    }

    #[test]
    fn bad_lines_say_why() {
        assert_eq!(parse(b"").unwrap_err(), LineError::Fields(0));
        assert_eq!(parse(b"x p fall").unwrap_err().reason(), "bad_seq");
        assert_eq!(parse(b"1 p/q fall").unwrap_err(), LineError::Device);
        assert_eq!(parse(b"1 p falls").unwrap_err().reason(), "unknown_kind");
        assert_eq!(parse(b"1 p fall soon").unwrap_err().reason(), "bad_phase");
        assert_eq!(
            parse(b"1 p fall point x").unwrap_err(),
            LineError::Fields(5)
        );
        assert_eq!(parse(b"1 p \xff").unwrap_err(), LineError::NotText);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_errors_are_printable(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            if let Err(e) = parse(&bytes) {
                proptest::prop_assert!(!e.to_string().chars().any(|c| c.is_control()));
            }
        }

        #[test]
        fn what_it_accepts_it_reads_back(seq in 0u32.., device in "[a-z0-9_.-]{1,64}", k in 0usize..Kind::ALL.len()) {
            let kind = Kind::ALL[k];
            let line = format!("{seq} {device} {}", kind.as_str());
            let l = parse(line.as_bytes()).unwrap();
            proptest::prop_assert_eq!((l.seq, l.device, l.kind), (seq, device, kind));
        }
    }
}

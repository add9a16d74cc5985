//! The GSM 03.38 (3GPP TS 23.038) 7-bit default alphabet: text in, septets out. Pure.
//!
//! A single SMS holds 160 septets. Characters of the basic table take one septet; those of the
//! extension table (`€ [ ] { } \ ^ ~ |` and form feed) take two, an escape (0x1B) and their code.
//! Anything else is first transliterated (curly quotes to straight ones, `á` to `a`, `°` to
//! `deg`) and otherwise replaced by `?`, so the message never needs UCS-2 (which would cut it to
//! 70 characters) and never arrives as boxes on a carer's handset.
//!
//! Septets are returned **unpacked, one per octet**: with `data_coding = 0` SMPP carries the
//! SMSC default alphabet that way, the SMSC packs them for the air interface. That is what the
//! SMSCs in common use and the npm `smpp` package (our test peer) expect: its decoder maps each
//! octet of `short_message` through the GSM table. Packing 8 septets into 7 octets is only for
//! the air interface and for UDH-carrying messages, neither of which this sink sends.

/// Septets in one SMS.
pub const MAX_SEPTETS: usize = 160;

/// The escape to the extension table.
const ESCAPE: u8 = 0x1B;

/// The basic table, by code (0x1B, the escape, is never produced from text).
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table: character and its code after the escape.
const EXTENSION: [(char, u8); 10] = [
    ('\u{0C}', 0x0A),
    ('^', 0x14),
    ('{', 0x28),
    ('}', 0x29),
    ('\\', 0x2F),
    ('[', 0x3C),
    ('~', 0x3D),
    (']', 0x3E),
    ('|', 0x40),
    ('€', 0x65),
];

/// A character's septets: one from the basic table, or the escape and an extension code.
fn septets(c: char) -> Option<&'static [u8]> {
    // Every septet value, so a character's code can be lent out as a one-element slice.
    const CODES: [u8; 128] = {
        let mut t = [0u8; 128];
        let mut i = 0;
        while i < 128 {
            t[i] = i as u8;
            i += 1;
        }
        t
    };
    const EXT: [[u8; 2]; 10] = {
        let mut t = [[0u8; 2]; 10];
        let mut i = 0;
        while i < 10 {
            t[i] = [ESCAPE, EXTENSION[i].1];
            i += 1;
        }
        t
    };
    if c == '\u{1B}' {
        return None;
    }
    if let Some(i) = BASIC.iter().position(|&b| b == c) {
        return Some(&CODES[i..=i]);
    }
    EXTENSION
        .iter()
        .position(|&(e, _)| e == c)
        .map(|i| EXT[i].as_slice())
}

/// A stand-in in GSM characters for one outside the alphabet, where a reader would expect one.
fn transliterate(c: char) -> Option<&'static str> {
    Some(match c {
        '‘' | '’' | '‚' | '′' | '`' | '´' => "'",
        '“' | '”' | '„' | '″' => "\"",
        '–' | '—' | '‑' | '−' | '•' => "-",
        '…' => "...",
        '·' => ".",
        '\u{A0}' | '\u{2002}'..='\u{200A}' | '\u{202F}' => " ",
        '°' => "deg",
        '×' => "x",
        '²' | '₂' => "2",
        'µ' => "u",
        'á' | 'â' | 'ã' | 'ā' | 'ą' => "a",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ā' | 'Ą' => "A",
        'ç' | 'ć' | 'č' => "c",
        'Ć' | 'Č' => "C",
        'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'È' | 'Ê' | 'Ë' | 'Ē' | 'Ę' | 'Ě' => "E",
        'í' | 'î' | 'ï' | 'ī' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' => "I",
        'ó' | 'ô' | 'õ' | 'ō' | 'ő' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ō' | 'Ő' => "O",
        'ú' | 'û' | 'ū' | 'ű' | 'ů' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ū' | 'Ű' | 'Ů' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' | 'Ÿ' => "Y",
        'ł' => "l",
        'Ł' => "L",
        'ń' | 'ň' => "n",
        'Ń' | 'Ň' => "N",
        'ś' | 'š' => "s",
        'Ś' | 'Š' => "S",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ř' => "r",
        'Ř' => "R",
        'ď' => "d",
        'ť' => "t",
        'œ' => "oe",
        'Œ' => "OE",
        _ => return None,
    })
}

/// Text ready for `short_message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gsm7 {
    /// Unpacked septets, one per octet, extension characters as escape + code.
    pub septets: Vec<u8>,
    /// The text as the handset will show it (after transliteration and cutting).
    pub text: String,
    /// Characters that had no GSM form nor a transliteration and became `?`.
    pub replaced: usize,
    /// True when the text was cut to fit.
    pub cut: bool,
}

/// Encodes `text` in at most `max` septets: control characters and runs of white space become
/// one space, characters outside the alphabet are transliterated or replaced with `?`, and a
/// text too long is cut at the last word boundary that fits (or mid-word when a single word
/// would leave less than half the room).
pub fn encode(text: &str, max: usize) -> Gsm7 {
    // (char shown, its septets) for each character after normalising.
    let mut units: Vec<(char, &'static [u8])> = Vec::with_capacity(text.len());
    let mut replaced = 0;
    let mut push = |units: &mut Vec<(char, &'static [u8])>, c: char| {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && units.last().is_none_or(|&(l, _)| l == ' ') {
            return;
        }
        if let Some(s) = septets(c) {
            units.push((c, s));
        } else if let Some(t) = transliterate(c) {
            for tc in t.chars() {
                if let Some(s) = septets(tc) {
                    units.push((tc, s));
                }
            }
        } else if let Some(s) = septets('?') {
            replaced += 1;
            units.push(('?', s));
        }
    };
    for c in text.chars() {
        push(&mut units, c);
    }
    while units.last().is_some_and(|&(c, _)| c == ' ') {
        units.pop();
    }
    let total: usize = units.iter().map(|(_, s)| s.len()).sum();
    let mut cut = false;
    if total > max {
        cut = true;
        // The longest prefix that fits, then back to the last space within it.
        let mut used = 0;
        let mut fit = 0;
        for (i, (_, s)) in units.iter().enumerate() {
            if used + s.len() > max {
                break;
            }
            used += s.len();
            fit = i + 1;
        }
        let boundary = if units.get(fit).is_some_and(|&(c, _)| c == ' ') {
            Some(fit)
        } else {
            units[..fit].iter().rposition(|&(c, _)| c == ' ')
        };
        let end = match boundary {
            Some(b) if b * 2 >= fit => b,
            _ => fit,
        };
        units.truncate(end);
        while units
            .last()
            .is_some_and(|&(c, _)| matches!(c, ' ' | ',' | '-' | ':' | ';'))
        {
            units.pop();
        }
    }
    Gsm7 {
        septets: units.iter().flat_map(|(_, s)| s.iter().copied()).collect(),
        text: units.iter().map(|(c, _)| *c).collect(),
        replaced,
        cut,
    }
}

/// Reads unpacked septets back into text (for receipts' echoed text and tests): `None` on an
/// octet above 0x7F, an escape at the end, or an escape before a code the extension table lacks.
pub fn decode(septets: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(septets.len());
    let mut it = septets.iter();
    while let Some(&b) = it.next() {
        if b == ESCAPE {
            let &code = it.next()?;
            let &(c, _) = EXTENSION.iter().find(|&&(_, e)| e == code)?;
            out.push(c);
        } else {
            out.push(*BASIC.get(usize::from(b))?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_letters_are_their_own_codes_and_at_is_zero() {
        let g = encode("Room 9 @ West", 160);
        assert_eq!(g.septets, b"Room 9 \0 West");
        assert_eq!(g.text, "Room 9 @ West");
        assert!(!g.cut);
    }

    #[test]
    fn extension_characters_take_two_septets() {
        let g = encode("€5 [x]", 160);
        assert_eq!(
            g.septets,
            [0x1B, 0x65, b'5', b' ', 0x1B, 0x3C, b'x', 0x1B, 0x3E]
        );
        assert_eq!(decode(&g.septets).as_deref(), Some("€5 [x]"));
        // 80 euro signs fill the message exactly; 81 do not.
        assert_eq!(encode(&"€".repeat(80), 160).septets.len(), 160);
        let g = encode(&"€".repeat(81), 160);
        assert!(g.cut && g.septets.len() == 160, "{}", g.septets.len());
    }

    #[test]
    fn characters_outside_the_alphabet_are_transliterated_or_replaced() {
        let g = encode("“Zoë’s” room – 38°C 🙂", 160);
        assert_eq!(g.text, "\"Zoe's\" room - 38degC ?");
        assert_eq!(g.replaced, 1);
        // Accented letters the table has stay as they are.
        assert_eq!(encode("é à Ä ñ", 160).text, "é à Ä ñ");
    }

    #[test]
    fn white_space_and_control_characters_collapse_to_one_space() {
        assert_eq!(encode("  a\n\n\tb\r\n c  ", 160).text, "a b c");
        assert_eq!(encode("a\u{1B}b", 160).text, "a b");
    }

    #[test]
    fn a_long_text_is_cut_on_a_word_boundary() {
        let text = format!("{} tail-word", "word ".repeat(31)); // 155 + 10
        let g = encode(&text, 160);
        assert!(g.cut);
        assert!(g.septets.len() <= 160);
        assert!(g.text.ends_with("word"), "{}", g.text);
        assert!(!g.text.contains("tail"));
    }

    #[test]
    fn a_single_long_word_is_cut_mid_word() {
        let g = encode(&format!("ab {}", "x".repeat(200)), 160);
        assert_eq!(g.septets.len(), 160);
        assert!(g.cut);
    }

    #[test]
    fn an_extension_character_is_never_split_at_the_limit() {
        let g = encode(&format!("{}€", "x".repeat(159)), 160);
        assert_eq!(g.text, "x".repeat(159));
        assert_eq!(decode(&g.septets).as_deref(), Some(g.text.as_str()));
    }

    #[test]
    fn decode_refuses_what_is_not_gsm() {
        assert_eq!(decode(&[0x80]), None);
        assert_eq!(decode(&[0x1B]), None);
        assert_eq!(decode(&[0x1B, 0x41]), None);
    }

    proptest::proptest! {
        #[test]
        fn any_text_fits_and_reads_back(s in "\\PC{0,400}") {
            let g = encode(&s, MAX_SEPTETS);
            proptest::prop_assert!(g.septets.len() <= MAX_SEPTETS);
            proptest::prop_assert!(g.septets.iter().all(|&b| b < 0x80));
            proptest::prop_assert_eq!(decode(&g.septets), Some(g.text.clone()));
        }
    }
}

//! DC-09 encryption: AES-128/192/256-CBC with a zero IV and no padding scheme; the cleartext
//! starts with a random pad ended by `|` (legacy.md §1.7), and the result travels as hex.
//!
//! CBC without authentication is malleable, so nothing decrypted here is trusted until the
//! caller has parsed it and checked its timestamp against the window.

use aes::{Aes128, Aes192, Aes256};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use rand::Rng;
use serde::Deserialize;

const BLOCK: usize = 16;
const ZERO_IV: [u8; BLOCK] = [0; BLOCK];

/// How a key file spells the key. A 32-character string is ambiguous (AES-128 in hex or AES-256
/// in ASCII), so the config says which.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyFormat {
    /// 32/48/64 hex digits are the key bytes (the standard's convention).
    #[default]
    Hex,
    /// 16/24/32 characters whose ASCII codes are the key bytes (Ajax hubs, pysiaalarm).
    Ascii,
}

/// An AES key of 16, 24 or 32 bytes. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey(Vec<u8>);

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AesKey(AES-{}, ***)", self.0.len() * 8)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "a hex key must be 32, 48 or 64 hex digits (AES-128/192/256); this one has {0} characters"
    )]
    HexLength(usize),
    #[error("the hex key contains a character that is not 0-9 or A-F")]
    NotHex,
    #[error("an ASCII key must be 16, 24 or 32 characters (AES-128/192/256); this one has {0}")]
    AsciiLength(usize),
    #[error("a key must be 16, 24 or 32 bytes; got {0}")]
    BinaryLength(usize),
}

impl AesKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<AesKey, KeyError> {
        match bytes.len() {
            16 | 24 | 32 => Ok(AesKey(bytes.to_vec())),
            n => Err(KeyError::BinaryLength(n)),
        }
    }

    /// Parses key text as read from a key file (surrounding whitespace ignored).
    pub fn parse(text: &str, format: KeyFormat) -> Result<AesKey, KeyError> {
        let text = text.trim();
        match format {
            KeyFormat::Hex => {
                if !matches!(text.len(), 32 | 48 | 64) {
                    return Err(KeyError::HexLength(text.len()));
                }
                let bytes = hex::decode(text).map_err(|_| KeyError::NotHex)?;
                AesKey::from_bytes(&bytes)
            }
            KeyFormat::Ascii => {
                if !matches!(text.len(), 16 | 24 | 32) {
                    return Err(KeyError::AsciiLength(text.len()));
                }
                AesKey::from_bytes(text.as_bytes())
            }
        }
    }

    /// AES-128, -192 or -256.
    pub fn bits(&self) -> usize {
        self.0.len() * 8
    }
}

/// Why ciphertext could not become a payload. All of them mean "wrong key or not DC-09" to the
/// transmitter (NAK), and `decrypt_failed` to the dead-letter table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("ciphertext is not hex")]
    NotHex,
    #[error("ciphertext is {0} bytes, not a positive multiple of 16")]
    BadLength(usize),
    #[error("decrypted text has no `|` or `]` after the pad: wrong key?")]
    NoPadEnd,
}

/// AES-CBC, zero IV, no padding. `data.len()` must be a multiple of 16.
pub fn decrypt_blocks(key: &AesKey, data: &[u8]) -> Result<Vec<u8>, DecryptError> {
    if data.is_empty() || !data.len().is_multiple_of(BLOCK) {
        return Err(DecryptError::BadLength(data.len()));
    }
    let mut buf = data.to_vec();
    let bad = |_| DecryptError::BadLength(data.len());
    let len = match key.0.len() {
        16 => cbc::Decryptor::<Aes128>::new_from_slices(&key.0, &ZERO_IV)
            .map_err(|_| DecryptError::BadLength(data.len()))?
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(bad)?
            .len(),
        24 => cbc::Decryptor::<Aes192>::new_from_slices(&key.0, &ZERO_IV)
            .map_err(|_| DecryptError::BadLength(data.len()))?
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(bad)?
            .len(),
        _ => cbc::Decryptor::<Aes256>::new_from_slices(&key.0, &ZERO_IV)
            .map_err(|_| DecryptError::BadLength(data.len()))?
            .decrypt_padded::<NoPadding>(&mut buf)
            .map_err(bad)?
            .len(),
    };
    buf.truncate(len);
    Ok(buf)
}

/// AES-CBC, zero IV, no padding. Returns `None` unless `data.len()` is a multiple of 16.
pub fn encrypt_blocks(key: &AesKey, data: &[u8]) -> Option<Vec<u8>> {
    if !data.len().is_multiple_of(BLOCK) {
        return None;
    }
    let mut buf = data.to_vec();
    let n = data.len();
    let len = match key.0.len() {
        16 => cbc::Encryptor::<Aes128>::new_from_slices(&key.0, &ZERO_IV)
            .ok()?
            .encrypt_padded::<NoPadding>(&mut buf, n)
            .ok()?
            .len(),
        24 => cbc::Encryptor::<Aes192>::new_from_slices(&key.0, &ZERO_IV)
            .ok()?
            .encrypt_padded::<NoPadding>(&mut buf, n)
            .ok()?
            .len(),
        _ => cbc::Encryptor::<Aes256>::new_from_slices(&key.0, &ZERO_IV)
            .ok()?
            .encrypt_padded::<NoPadding>(&mut buf, n)
            .ok()?
            .len(),
    };
    buf.truncate(len);
    Some(buf)
}

/// Hex ciphertext → the text after the pad (`data ] {xdata} _timestamp`). The pad ends at the
/// first `|` when that comes before the first `]`; otherwise the data is empty and the text
/// starts at that `]` (both forms are in use for NULL and ACK).
pub fn open(key: &AesKey, hex_text: &str) -> Result<Vec<u8>, DecryptError> {
    let data = hex::decode(hex_text).map_err(|_| DecryptError::NotHex)?;
    let clear = decrypt_blocks(key, &data)?;
    let pipe = clear.iter().position(|&b| b == b'|');
    let close = clear.iter().position(|&b| b == b']');
    match (pipe, close) {
        (Some(p), Some(c)) if p < c => Ok(clear[p + 1..].to_vec()),
        (_, Some(c)) => Ok(clear[c..].to_vec()),
        _ => Err(DecryptError::NoPadEnd),
    }
}

/// The text after the pad → uppercase hex ciphertext, with 16–31 random pad bytes (never `|`,
/// `[` or `]`) and the `|` always present: the 2013 form every receiver we know accepts.
pub fn seal(key: &AesKey, text: &[u8], rng: &mut impl Rng) -> String {
    let rest = text.len() + 1;
    let pad_len = BLOCK + (BLOCK - rest % BLOCK) % BLOCK;
    let mut clear = Vec::with_capacity(pad_len + rest);
    while clear.len() < pad_len {
        let b: u8 = rng.random();
        if !matches!(b, b'|' | b'[' | b']') {
            clear.push(b);
        }
    }
    clear.push(b'|');
    clear.extend_from_slice(text);
    // Length is a multiple of 16 by construction, so this cannot fail.
    let cipher = encrypt_blocks(key, &clear).unwrap_or_default();
    hex::encode_upper(cipher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const K128: &str = "000102030405060708090A0B0C0D0E0F";

    #[test]
    fn key_formats_are_explicit_and_lengths_checked() {
        assert_eq!(AesKey::parse(K128, KeyFormat::Hex).unwrap().bits(), 128);
        assert_eq!(AesKey::parse(K128, KeyFormat::Ascii).unwrap().bits(), 256);
        assert_eq!(
            AesKey::parse("0123456789ABCDEF", KeyFormat::Ascii).unwrap(),
            AesKey::from_bytes(b"0123456789ABCDEF").unwrap()
        );
        assert_eq!(
            AesKey::parse("abc", KeyFormat::Hex),
            Err(KeyError::HexLength(3))
        );
        assert_eq!(
            AesKey::parse(&"G".repeat(32), KeyFormat::Hex),
            Err(KeyError::NotHex)
        );
    }

    #[test]
    fn key_debug_never_shows_the_key() {
        let k = AesKey::parse(K128, KeyFormat::Hex).unwrap();
        assert_eq!(format!("{k:?}"), "AesKey(AES-128, ***)");
    }

    #[test]
    fn seal_then_open_round_trips_with_a_16_to_31_byte_pad() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for hex_key in [K128, &format!("{K128}0011223344556677"), &K128.repeat(2)] {
            let key = AesKey::parse(hex_key, KeyFormat::Hex).unwrap();
            for text in [
                &b"]_12:00:00,06-01-2024"[..],
                b"#1234|Nri1/MA001]_12:00:00,06-01-2024",
            ] {
                let hex = seal(&key, text, &mut rng);
                assert_eq!(open(&key, &hex).unwrap(), text);
                let clear = decrypt_blocks(&key, &hex::decode(&hex).unwrap()).unwrap();
                let pad = clear.iter().position(|&b| b == b'|').unwrap();
                assert!((16..=31).contains(&pad), "pad {pad}");
            }
        }
    }

    #[test]
    fn ciphertext_of_the_wrong_length_is_an_error_not_a_panic() {
        let key = AesKey::parse(K128, KeyFormat::Hex).unwrap();
        assert_eq!(open(&key, "00"), Err(DecryptError::BadLength(1)));
        assert_eq!(open(&key, ""), Err(DecryptError::BadLength(0)));
        assert_eq!(open(&key, "0g"), Err(DecryptError::NotHex));
    }
}

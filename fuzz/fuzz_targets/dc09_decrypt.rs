//! Decryption and the post-decryption parse on arbitrary ciphertext (as hex text and as raw
//! blocks) with AES-128/192/256 keys: never a panic, whatever the key or length.
#![no_main]

use atgw_sia_dc09::crypto::{self, AesKey};
use atgw_sia_dc09::frame::parse_payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let key_len = [16, 24, 32][usize::from(selector % 3)];
    let key_bytes: Vec<u8> = (0..key_len)
        .map(|i| selector.wrapping_add(i as u8))
        .collect();
    let Ok(key) = AesKey::from_bytes(&key_bytes) else {
        return;
    };
    if let Ok(text) = crypto::open(&key, &String::from_utf8_lossy(rest)) {
        let _ = parse_payload(&text);
    }
    if let Ok(text) = crypto::open(&key, &hex::encode(rest)) {
        let _ = parse_payload(&text);
    }
    let _ = crypto::decrypt_blocks(&key, rest);
});

//! The ESPA 4.4.4 block codec on arbitrary bytes: no panic, errors printable on one line, and a
//! block it accepts encodes back to exactly the bytes it came from (a stray `RS ETX` aside,
//! which encoding drops).
#![no_main]

use atgw_espa444::block::Block;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Block::decode(data) {
        Ok(b) => {
            let again = b.encode();
            assert_eq!(Block::decode(&again).as_ref(), Ok(&b), "{data:?} -> {again:?}");
            let stray_rs = data.len() >= 3 && data[data.len() - 3] == 0x1E;
            assert!(stray_rs || again == data, "{data:?} -> {again:?}");
        }
        Err(e) => assert!(!e.to_string().chars().any(char::is_control), "{e}"),
    }
});

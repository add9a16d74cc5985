//! The DC-09 stream decoder and frame parser on arbitrary bytes, split at an arbitrary point:
//! no panic, bounded buffer, and every decoded frame re-encodes to something that parses.
#![no_main]

use atgw_sia_dc09::codec::FrameDecoder;
use atgw_sia_dc09::frame::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    let mut decoder = FrameDecoder::new(512);
    for chunk in [a, b] {
        decoder.extend(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(raw)) => {
                    if let Ok((frame, _)) = Frame::decode(&raw) {
                        let again = Frame::decode(&frame.encode());
                        assert!(again.is_ok(), "re-encoded frame must parse: {again:?}");
                    }
                }
                Ok(None) => break,
                Err(_) => {}
            }
        }
        assert!(decoder.buffered() <= 512 + chunk.len());
    }
    let _ = Frame::decode(data);
    let _ = atgw_sia_dc09::contact_id::parse(&String::from_utf8_lossy(data));
    let _ = atgw_sia_dc09::sia::parse(&String::from_utf8_lossy(data));
});

//! The SCAIP `<mrq>`/`<mrs>` codec and the request handler on arbitrary bytes: no panic, every
//! refusal carries an `snu` the standard defines, what decodes re-encodes to itself, and the
//! handler's answer is always a `<mrs>` that parses back.
#![no_main]

use atgw_scaip::codec::{Request, Response};
use atgw_scaip::handler::Handler;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Request::decode(data) {
        Ok(r) => {
            let again = r.encode();
            assert_eq!(Request::decode(again.as_bytes()).as_ref(), Ok(&r), "{again}");
        }
        Err(e) => assert!(matches!(e.kind.snu(), 1 | 2 | 3 | 7 | 10), "{e}"),
    }
    let _ = Response::decode(data);
    let d = Handler::new("fuzz", std::time::Duration::from_secs(60), Some(60)).handle(data, "fuzz");
    let mrs = d.reply.encode();
    assert_eq!(Response::decode(mrs.as_bytes()).map(|r| r.snu), Ok(d.reply.snu), "{mrs}");
});

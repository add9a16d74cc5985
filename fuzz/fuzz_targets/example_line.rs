//! The example adapter's LINE/1 parser on arbitrary bytes: no panic, errors printable on one
//! line, and what it accepts reads back the same when written out again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match atgw_example_line::line::parse(data) {
        Ok(l) => {
            let again = format!("{} {} {}", l.seq, l.device, l.kind.as_str());
            let back = atgw_example_line::line::parse(again.as_bytes());
            assert!(
                back.as_ref()
                    .is_ok_and(|b| (b.seq, &b.device, b.kind) == (l.seq, &l.device, l.kind)),
                "{again:?} -> {back:?}"
            );
        }
        Err(e) => assert!(!e.to_string().chars().any(char::is_control), "{e}"),
    }
});

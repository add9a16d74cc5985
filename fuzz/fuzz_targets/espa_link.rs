//! The ESPA 4.4.4 link fed arbitrary byte streams in arbitrary chunks: the reassembler and both
//! link state machines never panic, never answer a block they were not selected for, and the
//! receiving side ACKs only what it delivered (here every delivery "commits" when the fuzzer's
//! next byte is even).
#![no_main]

use std::time::Duration;

use atgw_espa444::receive::{Action, Receiver, State};
use atgw_espa444::send::{Sender, Timing};
use atgw_espa444::wire::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new();
    let mut rx = Receiver::new(b'2', Duration::from_millis(50));
    let (mut tx, _) = Sender::start(b'1', b'2', Timing::default(), vec![1, b'1', 2, b'1', 0x1F, b'A', 3, 0x5F], Duration::ZERO);
    let mut now = Duration::ZERO;
    for (i, chunk) in data.chunks(7).enumerate() {
        now += Duration::from_millis(u64::from(chunk[0] % 64));
        rx.tick(now);
        let _ = tx.tick(now);
        for t in reader.feed(chunk) {
            let selected = matches!(rx.state(), State::Selected { .. });
            let _ = tx.on(t.clone(), now);
            for a in rx.on(t, now) {
                match a {
                    Action::Deliver { .. } => {
                        assert!(selected, "delivered a block while not selected");
                        let commit = data.get(i + 1).is_some_and(|b| b % 2 == 0);
                        let answer = rx.answered(commit, now);
                        assert_eq!(answer.len(), 1);
                    }
                    Action::Reject { .. } => assert!(selected),
                    Action::Send(_) => {}
                }
            }
        }
    }
});

//! Property tests of the codec, the reassembler and the receiving link: what is encoded decodes
//! to itself, and no byte string panics or desynchronises them.

use std::time::Duration;

use atgw_espa444::block::{Block, Field, Header, Record};
use atgw_espa444::receive::{Action, Receiver, State};
use atgw_espa444::send::{Sender, Timing};
use atgw_espa444::wire::{Reader, Token};
use proptest::prelude::*;

fn header() -> impl Strategy<Value = Header> {
    prop_oneof![
        Just(Header::CallToPager),
        Just(Header::StatusInformation),
        Just(Header::StatusRequest),
        Just(Header::CallToSubscriber),
        Just(Header::Other),
    ]
}

/// A block with distinct fields and Latin-1 text without control characters.
fn block() -> impl Strategy<Value = Block> {
    (
        header(),
        proptest::sample::subsequence(Field::ALL.to_vec(), 1..=8),
        proptest::collection::vec("[ -~\u{a0}-\u{ff}]{0,40}", 8),
    )
        .prop_map(|(header, fields, texts)| Block {
            header,
            records: fields
                .into_iter()
                .zip(texts)
                .map(|(field, data)| Record { field, data })
                .collect(),
        })
}

proptest! {
    #[test]
    fn what_is_encoded_decodes_to_itself(b in block()) {
        let bytes = b.encode();
        prop_assert_eq!(Block::decode(&bytes), Ok(b));
        let mut r = Reader::new();
        prop_assert_eq!(r.feed(&bytes), vec![Token::Block(bytes.clone())]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Block::decode(&bytes);
        let mut r = Reader::new();
        let mut rx = Receiver::new(b'2', Duration::from_secs(3));
        for (i, t) in r.feed(&bytes).into_iter().enumerate() {
            let now = Duration::from_millis(i as u64);
            for a in rx.on(t, now) {
                if let Action::Deliver { .. } = a {
                    rx.answered(true, now);
                }
            }
        }
    }

    #[test]
    fn noise_between_blocks_does_not_lose_the_next_select_and_block(
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        b in block(),
    ) {
        // Whatever came before (a half block, a dangling ETX whose BCC the EOT becomes), a
        // select and a block after an EOT are read as themselves.
        let mut r = Reader::new();
        r.feed(&noise);
        let bytes = b.encode();
        let mut tail = vec![0x04];
        tail.extend_from_slice(b"2\x05");
        tail.extend_from_slice(&bytes);
        let tokens = r.feed(&tail);
        let n = tokens.len();
        prop_assert!(n >= 2);
        prop_assert_eq!(&tokens[n - 2..], &[Token::Enq(b'2'), Token::Block(bytes)][..]);
    }

    /// The fuzz target `espa_link` as a property: arbitrary streams in arbitrary chunks through
    /// the reassembler and both state machines, with time passing.
    #[test]
    fn arbitrary_streams_never_break_the_link_machines(
        chunks in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..40), 0u64..200), 0..40),
        commits in any::<u64>(),
    ) {
        let mut reader = Reader::new();
        let mut rx = Receiver::new(b'2', Duration::from_millis(100));
        let block = Block::new(Header::CallToPager, [(Field::CallAddress, "1".to_owned())]).encode();
        let (mut tx, _) = Sender::start(b'1', b'2', Timing::default(), block, Duration::ZERO);
        let mut now = Duration::ZERO;
        for (i, (bytes, ms)) in chunks.into_iter().enumerate() {
            now += Duration::from_millis(ms);
            rx.tick(now);
            let _ = tx.tick(now);
            for t in reader.feed(&bytes) {
                let selected = matches!(rx.state(), State::Selected { .. });
                let _ = tx.on(t.clone(), now);
                for a in rx.on(t, now) {
                    match a {
                        Action::Deliver { .. } => {
                            prop_assert!(selected);
                            let ok = (commits >> (i % 64)) & 1 == 1;
                            prop_assert_eq!(rx.answered(ok, now).len(), 1);
                        }
                        Action::Reject { .. } => prop_assert!(selected),
                        Action::Send(_) => {}
                    }
                }
            }
        }
    }
}

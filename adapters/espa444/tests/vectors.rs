//! The published ESPA 4.4.4 vectors (legacy.md §4.5), byte for byte, both ways.

use atgw_espa444::block::{Block, Field, Header, bcc};

/// Zenitel's example: `SOH 1 STX 1 US 550 RS 2 US CALL ME 101 RS 3 US 3 RS 4 US 3 RS 5 US 3
/// RS 6 US 3 ETX`, BCC 0x23.
const ZENITEL: &[u8] = &[
    0x01, 0x31, 0x02, 0x31, 0x1F, 0x35, 0x35, 0x30, 0x1E, 0x32, 0x1F, 0x43, 0x41, 0x4C, 0x4C, 0x20,
    0x4D, 0x45, 0x20, 0x31, 0x30, 0x31, 0x1E, 0x33, 0x1F, 0x33, 0x1E, 0x34, 0x1F, 0x33, 0x1E, 0x35,
    0x1F, 0x33, 0x1E, 0x36, 0x1F, 0x33, 0x03, 0x23,
];

/// northplane's minimal block: `SOH '1' STX '1' US 'A' ETX`, BCC 0x5F.
const MINIMAL: &[u8] = &[0x01, 0x31, 0x02, 0x31, 0x1F, 0x41, 0x03, 0x5F];

fn zenitel() -> Block {
    Block::new(
        Header::CallToPager,
        [
            (Field::CallAddress, "550"),
            (Field::Message, "CALL ME 101"),
            (Field::BeepCoding, "3"),
            (Field::CallType, "3"),
            (Field::Transmissions, "3"),
            (Field::Priority, "3"),
        ]
        .map(|(f, d)| (f, d.to_owned())),
    )
}

#[test]
fn zenitel_example_decodes_and_encodes_byte_for_byte() {
    assert_eq!(Block::decode(ZENITEL).unwrap(), zenitel());
    assert_eq!(zenitel().encode(), ZENITEL);
    assert_eq!(bcc(&ZENITEL[1..ZENITEL.len() - 1]), 0x23);
}

#[test]
fn minimal_block_decodes_and_encodes_byte_for_byte() {
    let b = Block::new(Header::CallToPager, [(Field::CallAddress, "A".to_owned())]);
    assert_eq!(Block::decode(MINIMAL).unwrap(), b);
    assert_eq!(b.encode(), MINIMAL);
    assert_eq!(bcc(&MINIMAL[1..MINIMAL.len() - 1]), 0x5F);
}

#[test]
fn the_wikis_typo_with_a_stray_space_fails_its_printed_bcc() {
    // The wiki prints a `20` after `02`; with it the XOR is 0x03, not the printed 0x23.
    let mut typo = ZENITEL[..3].to_vec();
    typo.push(0x20);
    typo.extend_from_slice(&ZENITEL[3..]);
    assert_eq!(bcc(&typo[1..typo.len() - 1]), 0x03);
    assert!(Block::decode(&typo).is_err());
}

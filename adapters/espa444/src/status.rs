//! Header 2 blocks (status information) from the paging system about a page it took: which
//! call address, and what became of the call (legacy.md §4.4, record 7). Pure.
//!
//! The sink journals each against the alert it last paged to that address, in the words below;
//! "acknowledged by called party" (`6`) may acknowledge the alert (`ack_on_called_party`).

use crate::block::{Block, Field, Header};

/// Record 7 of a header 2 block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallStatus {
    Busy,
    InQueue,
    Paged,
    Absent,
    Terminated,
    /// The carer acknowledged the call on the handset.
    AcknowledgedByCalledParty,
    SpeechChannelOpen,
    /// `71`: speech channel, paged.
    SpeechPaged,
    /// `72`: speech channel, absent.
    SpeechAbsent,
    Fault,
    /// A value the spec does not list, kept for the record.
    Other(String),
}

impl CallStatus {
    pub fn parse(v: &str) -> CallStatus {
        match v.trim() {
            "1" => CallStatus::Busy,
            "2" => CallStatus::InQueue,
            "3" => CallStatus::Paged,
            "4" => CallStatus::Absent,
            "5" => CallStatus::Terminated,
            "6" => CallStatus::AcknowledgedByCalledParty,
            "7" => CallStatus::SpeechChannelOpen,
            "71" => CallStatus::SpeechPaged,
            "72" => CallStatus::SpeechAbsent,
            "8" => CallStatus::Fault,
            other => CallStatus::Other(other.chars().take(16).collect()),
        }
    }

    /// What the alert's history says, before the alert's own text.
    pub fn words(&self) -> String {
        match self {
            CallStatus::Busy => "Handset busy".into(),
            CallStatus::InQueue => "Page queued".into(),
            CallStatus::Paged => "Paged".into(),
            CallStatus::Absent => "Handset ABSENT (not reached)".into(),
            CallStatus::Terminated => "Page ended".into(),
            CallStatus::AcknowledgedByCalledParty => "Acknowledged on the handset".into(),
            CallStatus::SpeechChannelOpen => "Speech channel open".into(),
            CallStatus::SpeechPaged => "Speech call paged".into(),
            CallStatus::SpeechAbsent => "Speech call: handset ABSENT".into(),
            CallStatus::Fault => "Paging system FAULT".into(),
            CallStatus::Other(v) => format!("Paging status {v}"),
        }
    }
}

/// One status report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The call address the report is about.
    pub address: String,
    pub status: CallStatus,
}

/// Why a block is not a status report this sink can use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotStatus {
    #[error("transaction type {0:?} is not status information (2)")]
    Header(Header),
    #[error("status information without a call address (record 1)")]
    NoAddress,
    #[error("status information without a call status (record 7)")]
    NoStatus,
}

/// Reads a header 2 block.
pub fn read(block: &Block) -> Result<Status, NotStatus> {
    if block.header != Header::StatusInformation {
        return Err(NotStatus::Header(block.header));
    }
    let address = block
        .get(Field::CallAddress)
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .ok_or(NotStatus::NoAddress)?;
    let status = block.get(Field::CallStatus).ok_or(NotStatus::NoStatus)?;
    Ok(Status {
        address: address.chars().take(16).collect(),
        status: CallStatus::parse(status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_vector_is_paged_for_1234() {
        // legacy.md §4.5: header 2, 1/1234, 7/3.
        let raw = [
            0x01, 0x32, 0x02, 0x31, 0x1F, 0x31, 0x32, 0x33, 0x34, 0x1E, 0x37, 0x1F, 0x33, 0x03,
            0x1C,
        ];
        let block = Block::decode(&raw).unwrap();
        assert_eq!(
            read(&block),
            Ok(Status {
                address: "1234".into(),
                status: CallStatus::Paged
            })
        );
    }

    #[test]
    fn codes_map_to_their_meaning() {
        assert_eq!(CallStatus::parse("4"), CallStatus::Absent);
        assert_eq!(
            CallStatus::parse("6"),
            CallStatus::AcknowledgedByCalledParty
        );
        assert_eq!(CallStatus::parse("72"), CallStatus::SpeechAbsent);
        assert_eq!(CallStatus::parse("9"), CallStatus::Other("9".into()));
    }

    #[test]
    fn a_call_block_or_a_status_without_address_is_not_a_status() {
        let call = Block::new(Header::CallToPager, [(Field::CallAddress, "1".into())]);
        assert!(matches!(read(&call), Err(NotStatus::Header(_))));
        let bare = Block::new(Header::StatusInformation, [(Field::CallStatus, "3".into())]);
        assert_eq!(read(&bare), Err(NotStatus::NoAddress));
    }
}

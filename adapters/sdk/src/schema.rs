//! The JSON Schema document for schema v1. It ships inside the binary (`atgw schema` prints it)
//! and every test that sees an event validates it against this document.

/// JSON Schema (draft 2020-12) of one normalised event.
pub const EVENT_SCHEMA_V1: &str = include_str!("../schema/event-v1.json");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    fn validator() -> jsonschema::Validator {
        let schema: serde_json::Value = serde_json::from_str(EVENT_SCHEMA_V1).unwrap();
        jsonschema::validator_for(&schema).unwrap()
    }

    fn sample() -> Event {
        let mut d = EventDraft::new(Kind::PendantPress, Phase::Point, "zigbee:0xa4", "zigbee");
        d.data.location.site = "oakview".into();
        d.data.battery = Some(Battery {
            percent: Some(100.0),
            ..Default::default()
        });
        Event {
            specversion: SPEC_VERSION.into(),
            id: "0196484e-3a10-7c44-9f0e-6f7f0b2d9a01".into(),
            source: "urn:atgw:gw-1:zigbee".into(),
            event_type: Event::device_type(Kind::PendantPress),
            time: "2026-04-17T15:33:22Z".parse().unwrap(),
            recordedtime: "2026-04-17T15:33:22.184Z".parse().unwrap(),
            sequence: format_sequence(1),
            correlationid: None,
            causationid: None,
            subject: Some(d.data.location.subject()),
            datacontenttype: DATA_CONTENT_TYPE.into(),
            dataschema: DATA_SCHEMA_V1.into(),
            data: d.data,
        }
    }

    #[test]
    fn schema_is_valid_json_schema_and_accepts_a_serialized_event() {
        let v = validator();
        let json = serde_json::to_value(sample()).unwrap();
        let errors: Vec<String> = v.iter_errors(&json).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn schema_rejects_an_unknown_kind_and_a_missing_site() {
        let v = validator();
        let mut json = serde_json::to_value(sample()).unwrap();
        json["data"]["kind"] = "falls".into();
        assert!(!v.is_valid(&json));
        let mut json = serde_json::to_value(sample()).unwrap();
        json["data"]["location"]
            .as_object_mut()
            .unwrap()
            .remove("site");
        assert!(!v.is_valid(&json));
    }

    #[test]
    fn schema_lists_exactly_the_kinds_the_types_know() {
        let schema: serde_json::Value = serde_json::from_str(EVENT_SCHEMA_V1).unwrap();
        let listed: Vec<&str> = schema["$defs"]["data"]["properties"]["kind"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(listed, known);
    }
}

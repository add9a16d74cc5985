//! The one table of vital signs atgw exchanges as FHIR R4 Observations: our observation name,
//! its LOINC code (the one the HL7 vital-signs profile fixes), the extra codings we send and
//! accept, its UCUM unit, the specific profile, and the range a reading must fall in to be
//! believed. Both directions read it, so inbound and outbound cannot drift apart.

/// `Coding.system` of LOINC.
pub const LOINC: &str = "http://loinc.org";
/// `Coding.system` of ISO/IEEE 11073-10101 (MDC) codes.
pub const MDC: &str = "urn:iso:std:iso:11073:10101";
/// `Quantity.system` of UCUM.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// The base vital-signs profile every one of ours also claims.
pub const VITAL_SIGNS_PROFILE: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";
/// `Observation.category` code system, and the code the profile requires.
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
pub const VITAL_SIGNS_CATEGORY: &str = "vital-signs";
/// `dataAbsentReason` code system.
pub const DATA_ABSENT_REASON: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";

/// One vital sign and how it is coded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vital {
    /// Our `Observation.name` (event schema v1).
    pub name: &'static str,
    /// The LOINC code the vital-signs profile fixes for it.
    pub loinc: &'static str,
    pub display: &'static str,
    /// Further LOINC codes sent beside `loinc`, and accepted alone inbound.
    pub extra_loinc: &'static [&'static str],
    /// The MDC code sent as a third coding, where we are sure of it (devices-and-schema §2.2).
    pub mdc: Option<u32>,
    /// UCUM code (and, as the human `unit`, the text beside it).
    pub ucum: &'static str,
    pub unit_text: &'static str,
    /// The specific HL7 vital-signs profile.
    pub profile: &'static str,
    /// Inclusive range of believable values. Wider than any clinical band on purpose: it
    /// refuses a unit mix-up (a temperature in °F sent as Cel, a fraction sent as %) or a
    /// sensor glitch, not a very ill resident.
    pub range: (f64, f64),
}

/// The vitals we exchange. Ranges: SpO2 is a percentage (0–100); heart rate 0–300/min covers
/// infant and tachycardic rates, respiratory rate 0–120/min likewise (0 = apnoea, a real and
/// urgent reading); body temperature 25–45 °C spans severe hypothermia to the survivable limit
/// of hyperthermia.
pub const VITALS: &[Vital] = &[
    Vital {
        name: "spo2",
        loinc: "2708-6",
        display: "Oxygen saturation in Arterial blood",
        extra_loinc: &["59408-5"],
        mdc: Some(150456),
        ucum: "%",
        unit_text: "%",
        profile: "http://hl7.org/fhir/StructureDefinition/oxygensat",
        range: (0.0, 100.0),
    },
    Vital {
        name: "respiratory_rate",
        loinc: "9279-1",
        display: "Respiratory rate",
        extra_loinc: &[],
        mdc: None,
        ucum: "/min",
        unit_text: "breaths/minute",
        profile: "http://hl7.org/fhir/StructureDefinition/resprate",
        range: (0.0, 120.0),
    },
    Vital {
        name: "heart_rate",
        loinc: "8867-4",
        display: "Heart rate",
        extra_loinc: &[],
        mdc: None,
        ucum: "/min",
        unit_text: "beats/minute",
        profile: "http://hl7.org/fhir/StructureDefinition/heartrate",
        range: (0.0, 300.0),
    },
    Vital {
        name: "body_temperature",
        loinc: "8310-5",
        display: "Body temperature",
        extra_loinc: &[],
        mdc: None,
        ucum: "Cel",
        unit_text: "Cel",
        profile: "http://hl7.org/fhir/StructureDefinition/bodytemp",
        range: (25.0, 45.0),
    },
];

/// The vital named `name` in our schema.
pub fn by_name(name: &str) -> Option<&'static Vital> {
    VITALS.iter().find(|v| v.name == name)
}

/// The vital a LOINC code means: its profile code or one of its extra codes.
pub fn by_loinc(code: &str) -> Option<&'static Vital> {
    VITALS
        .iter()
        .find(|v| v.loinc == code || v.extra_loinc.contains(&code))
}

impl Vital {
    /// True when `value` (in this vital's UCUM unit) is believable.
    pub fn plausible(&self, value: f64) -> bool {
        value.is_finite() && value >= self.range.0 && value <= self.range.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spo2_codes_mean_spo2_and_names_round_trip() {
        assert_eq!(by_loinc("2708-6").map(|v| v.name), Some("spo2"));
        assert_eq!(by_loinc("59408-5").map(|v| v.name), Some("spo2"));
        for v in VITALS {
            assert_eq!(by_name(v.name), Some(v));
            assert_eq!(by_loinc(v.loinc), Some(v));
        }
        assert_eq!(
            by_loinc("8480-6"),
            None,
            "blood pressure is not one of ours"
        );
    }

    #[test]
    fn plausibility_refuses_non_finite_and_out_of_range() {
        let spo2 = by_name("spo2").unwrap();
        assert!(spo2.plausible(0.0) && spo2.plausible(100.0));
        assert!(!spo2.plausible(100.5) && !spo2.plausible(f64::NAN));
        let t = by_name("body_temperature").unwrap();
        assert!(t.plausible(36.8) && !t.plausible(98.6));
    }
}

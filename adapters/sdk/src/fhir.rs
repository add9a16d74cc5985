//! The FHIR ids the device registry assigns (`[[device]] fhir_patient`, `fhir_device`), as the
//! core hands them to sinks through [`Site`](crate::component::Site): a FHIR sink needs the
//! Patient an event is about and the Device that measured it, and events carry only our own
//! pseudonymous resident and device ids.

use std::collections::BTreeMap;

/// Resident id → `Patient/<id>`, device id → `Device/<id>`. Empty when no device names one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FhirIds {
    pub patients: BTreeMap<String, String>,
    pub devices: BTreeMap<String, String>,
}

impl FhirIds {
    /// The Patient reference of resident `resident`.
    pub fn patient(&self, resident: &str) -> Option<&str> {
        self.patients.get(resident).map(String::as_str)
    }

    /// The Device reference of device `device`.
    pub fn device(&self, device: &str) -> Option<&str> {
        self.devices.get(device).map(String::as_str)
    }
}

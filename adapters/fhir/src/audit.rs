//! `atgw audit`'s checks of a FHIR sink: is the link encrypted, and does the server
//! authenticate atgw (the bearer token's file itself is audited by the core, as a secret).

use atgw_sdk::audit::Finding;
use atgw_sdk::audit::Provision::*;

use crate::FhirConfig;

/// 5.5: the FHIR server link. The config already refuses plain http to anything but loopback.
pub fn fhir(subject: &str, c: &FhirConfig) -> Vec<Finding> {
    let shown = atgw_http::config::redact(&c.base_url);
    let tls = if c.base_url.starts_with("https://") {
        Finding::pass(
            SecureCommunication,
            "fhir-tls",
            subject,
            format!(
                "HTTPS to {shown} with a bearer token from token_file{}",
                if c.ca_only {
                    "; server pinned to its private CA"
                } else {
                    ""
                }
            ),
        )
    } else {
        Finding::warn(
            SecureCommunication,
            "fhir-tls",
            subject,
            format!(
                "allow_http: plain HTTP to {shown} (a relay on this machine); health data and the bearer token cross it in clear, and whatever it forwards to must use HTTPS"
            ),
            "point base_url at the server's https:// address and remove allow_http",
        )
    };
    let test = if c.send_test {
        Finding::warn(
            PersonalData,
            "fhir-test-data",
            subject,
            "send_test: test and simulated readings go to the care record (labelled HTEST)",
            "set send_test = false unless this server is a test system",
        )
    } else {
        Finding::pass(
            PersonalData,
            "fhir-test-data",
            subject,
            "test and simulated data are kept out of the care record; resources carry pseudonymous FHIR ids from the registry, never names",
        )
    };
    vec![tls, test]
}

#[cfg(test)]
mod tests {
    use atgw_sdk::audit::Status;

    use super::*;

    #[test]
    fn https_passes_and_loopback_http_or_test_data_warn() {
        let mut c = FhirConfig::new("ehr", "https://ehr.example/fhir", "t".into());
        let f = fhir("sink `ehr`", &c);
        assert!(f.iter().all(|f| f.status == Status::Pass), "{f:?}");
        c.base_url = "http://127.0.0.1:8080/fhir".into();
        c.allow_http = true;
        c.send_test = true;
        let f = fhir("sink `ehr`", &c);
        assert!(f.iter().all(|f| f.status == Status::Warn), "{f:?}");
    }
}

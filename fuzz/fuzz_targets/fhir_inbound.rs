//! The FHIR R4 reader on arbitrary bytes: no panic; entries answered in order; whatever it
//! accepts is a plausible value of one of our vitals; the answers it builds are JSON.
#![no_main]

use atgw_fhir::inbound::{self, EntryOutcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let read = match inbound::read(data) {
        Ok(r) => r,
        Err(e) => {
            let _ = inbound::operation_outcome(&[e]).to_string();
            return;
        }
    };
    let mut outcomes = Vec::new();
    for (i, r) in read.readings.into_iter().enumerate() {
        match r {
            Ok(r) => {
                assert_eq!(r.entry, i);
                let vital = atgw_fhir::vitals::by_name(&r.observation.name)
                    .expect("a reading names one of our vitals");
                assert!(r.observation.value.is_none_or(|v| vital.plausible(v)));
                assert!(r.observation.value.is_some() != r.observation.absent_reason.is_some());
                outcomes.push(EntryOutcome::Created {
                    location: format!("Observation/{i}"),
                });
            }
            Err(e) => {
                assert_eq!(e.entry, i);
                outcomes.push(EntryOutcome::Failed(e));
            }
        }
    }
    let _ = inbound::response_bundle(&read.posted, &outcomes).to_string();
});

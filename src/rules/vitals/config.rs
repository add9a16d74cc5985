//! `[vitals]` and `[[resident]]`: the configuration the vital-sign rules read, its defaults,
//! and the checks serde cannot make ([`Invalid`] names the key at fault).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::bands::{Side, Vital, limits};

/// `[vitals]`: how long a breach must persist before it raises an alert, for every resident.
///
/// A breach raises after `persistence_readings` consecutive valid breaching readings **or**
/// once breaching readings have persisted for `persistence_window` (from the first breaching
/// reading to the current one, with at least two readings), whichever comes first. Both are
/// needed because devices sample at very different rates. The count alone would make a
/// spot-check oximeter read every five minutes wait a quarter of an hour before anyone is told;
/// the window caps that delay at the second reading after `persistence_window`. The window
/// alone would make a device that reports every few seconds wait the whole window even when
/// every reading agrees; the count lets it raise sooner. Requiring two readings for the window
/// means one reading never raises by itself, however long it stands (unless
/// `persistence_readings = 1`).
///
/// For a continuous monitor (a PLX oximeter notifying once a second) three readings are three
/// seconds: set `persistence_readings` to cover the artefacts you expect (e.g. 15).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitalsConfig {
    /// Consecutive valid breaching readings that raise an alert (default 3, at least 1).
    /// Readings without a value do not count and do not break the run.
    #[serde(default = "default_persistence_readings")]
    pub persistence_readings: u32,
    /// How long breaching readings must have persisted to raise even before
    /// `persistence_readings` is reached, as a duration such as `"60s"` or `"2m"` (default
    /// 60 s, above zero). Reported as `threshold.window_s`.
    #[serde(default = "default_persistence_window", with = "humantime_serde")]
    pub persistence_window: Duration,
    /// A device that keeps reporting vital signs none of which can be measured ("finger out",
    /// not worn, impossible values) for this long raises a low-priority `device_fault` ("Oximeter
    /// not reading - Room 16"), cleared by its next valid reading; see
    /// [`not_reading`](mod@crate::rules::not_reading). Receipt time. Default 5 minutes; `"0s"`
    /// turns it off; `[[device]] not_reading_after` replaces it for one device.
    #[serde(default = "default_not_reading_after", with = "humantime_serde")]
    pub not_reading_after: Duration,
}

fn default_not_reading_after() -> Duration {
    Duration::from_secs(300)
}

fn default_persistence_readings() -> u32 {
    3
}

fn default_persistence_window() -> Duration {
    Duration::from_secs(60)
}

impl Default for VitalsConfig {
    fn default() -> Self {
        VitalsConfig {
            persistence_readings: default_persistence_readings(),
            persistence_window: default_persistence_window(),
            not_reading_after: default_not_reading_after(),
        }
    }
}

impl VitalsConfig {
    /// Checks what serde cannot. [`evaluate`](super::evaluate) still behaves sensibly on an
    /// unchecked config (zero readings acts as one), but a person should hear about it at
    /// `check-config` time.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.persistence_readings == 0 {
            return Err(Invalid {
                key: "persistence_readings",
                problem: "must be at least 1 (1 raises on the first breaching reading)".into(),
            });
        }
        if self.persistence_window.is_zero() {
            return Err(Invalid {
                key: "persistence_window",
                problem: "must be above zero, e.g. \"60s\"; to raise on two readings set \
                          persistence_readings = 2"
                    .into(),
            });
        }
        Ok(())
    }
}

/// `[[resident]]`: one resident's vital-sign plan. Residents without an entry get NEWS2 scale 1
/// and the default bands.
///
/// An explicit limit replaces the NEWS2 bands on that side of that observation (both the
/// score-3 and the score-2 band) with a single `high`-priority limit, because a clinician who
/// writes a limit into a care plan means "tell us when it gets there", not "grade it for us".
/// It wins over `spo2_scale`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidentVitals {
    /// Pseudonymous resident id, as in `[[device]] resident` (never a name or NHS number).
    pub id: String,
    /// NEWS2 SpO2 scale: 1 for most residents (default); 2 only when a clinician has
    /// prescribed a target of 88–92 % for hypercapnic respiratory failure, because scale 1
    /// would alarm all day on their normal saturation.
    #[serde(default = "default_spo2_scale")]
    pub spo2_scale: u8,
    /// SpO2 (%) at or below which to raise `spo2_low`, replacing the NEWS2 bands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spo2_low: Option<f64>,
    /// Breaths per minute at or below which to raise, replacing NEWS2's ≤ 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respiratory_rate_low: Option<f64>,
    /// Breaths per minute at or above which to raise, replacing NEWS2's 21–24 and ≥ 25.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respiratory_rate_high: Option<f64>,
    /// Beats per minute at or below which to raise, replacing NEWS2's ≤ 40.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heart_rate_low: Option<f64>,
    /// Beats per minute at or above which to raise, replacing NEWS2's 111–130 and ≥ 131.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heart_rate_high: Option<f64>,
}

fn default_spo2_scale() -> u8 {
    1
}

impl ResidentVitals {
    /// NEWS2 defaults for a resident: scale 1, no overrides.
    pub fn new(id: impl Into<String>) -> Self {
        ResidentVitals {
            id: id.into(),
            spo2_scale: default_spo2_scale(),
            spo2_low: None,
            respiratory_rate_low: None,
            respiratory_rate_high: None,
            heart_rate_low: None,
            heart_rate_high: None,
        }
    }

    /// Checks what serde cannot, naming the key at fault. Limits must be whole numbers
    /// because readings are compared as whole numbers (see [`evaluate`](super::evaluate)), and
    /// a low limit must lie below every limit on the high side (the resident's or NEWS2's),
    /// otherwise one reading would breach both sides.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.id.trim().is_empty() {
            return Err(Invalid {
                key: "id",
                problem: "must not be empty; use the resident's pseudonymous id".into(),
            });
        }
        if !matches!(self.spo2_scale, 1 | 2) {
            return Err(Invalid {
                key: "spo2_scale",
                problem: format!(
                    "is {} for resident `{}`; must be 1 (most residents) or 2 (prescribed \
                     target 88–92 %, hypercapnic respiratory failure)",
                    self.spo2_scale, self.id
                ),
            });
        }
        let checks: [(&'static str, Option<f64>, f64); 5] = [
            ("spo2_low", self.spo2_low, 100.0),
            ("respiratory_rate_low", self.respiratory_rate_low, 100.0),
            ("respiratory_rate_high", self.respiratory_rate_high, 100.0),
            ("heart_rate_low", self.heart_rate_low, 300.0),
            ("heart_rate_high", self.heart_rate_high, 300.0),
        ];
        for (key, limit, max) in checks {
            let Some(v) = limit else { continue };
            if !(v.is_finite() && v > 0.0 && v < max && v.fract() == 0.0) {
                return Err(Invalid {
                    key,
                    problem: format!(
                        "is {v} for resident `{}`; must be a whole number above 0 and below \
                         {max}",
                        self.id
                    ),
                });
            }
        }
        for vital in [Vital::RespiratoryRate, Vital::HeartRate] {
            let limits = limits(vital, Some(self));
            let highest_low = limits
                .iter()
                .filter(|l| l.side == Side::Low)
                .map(|l| l.value)
                .fold(f64::NEG_INFINITY, f64::max);
            let lowest_high = limits
                .iter()
                .filter(|l| l.side == Side::High)
                .map(|l| l.value)
                .fold(f64::INFINITY, f64::min);
            if highest_low >= lowest_high {
                let (low_key, high_key, low_set) = match vital {
                    Vital::RespiratoryRate => (
                        "respiratory_rate_low",
                        "respiratory_rate_high",
                        self.respiratory_rate_low.is_some(),
                    ),
                    _ => (
                        "heart_rate_low",
                        "heart_rate_high",
                        self.heart_rate_low.is_some(),
                    ),
                };
                // Blame the key the resident set: a `_high` alone can only clash with NEWS2's
                // low side.
                let (key, problem) = if low_set {
                    (
                        low_key,
                        format!(
                            "is {highest_low} for resident `{}`, not below the high-side limit \
                             {lowest_high} (`{high_key}` or NEWS2's); lower it or raise \
                             `{high_key}`",
                            self.id
                        ),
                    )
                } else {
                    (
                        high_key,
                        format!(
                            "is {lowest_high} for resident `{}`, not above NEWS2's low-side \
                             limit {highest_low}; raise it, or set `{low_key}` below it",
                            self.id
                        ),
                    )
                };
                return Err(Invalid { key, problem });
            }
        }
        Ok(())
    }
}

/// A setting that cannot work, named by its key (the caller prefixes `vitals.` or
/// `resident[<n>].`).
#[derive(Clone, Debug, PartialEq)]
pub struct Invalid {
    /// The key within its table.
    pub key: &'static str,
    /// What is wrong and what to do, for a person.
    pub problem: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for Invalid {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vitals_config_defaults_and_humantime_window() {
        let cfg: VitalsConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, VitalsConfig::default());
        assert_eq!(cfg.persistence_readings, 3);
        assert_eq!(cfg.persistence_window, Duration::from_secs(60));
        cfg.validate().unwrap();
        let cfg: VitalsConfig =
            toml::from_str("persistence_readings = 5\npersistence_window = \"2m 30s\"").unwrap();
        assert_eq!(cfg.persistence_window, Duration::from_secs(150));
        assert!(toml::from_str::<VitalsConfig>("persistence = 3").is_err());
        assert!(toml::from_str::<VitalsConfig>("persistence_window = 60").is_err());
        let zero = VitalsConfig {
            persistence_window: Duration::ZERO,
            ..VitalsConfig::default()
        };
        assert_eq!(zero.validate().unwrap_err().key, "persistence_window");
    }

    #[test]
    fn resident_config_parses_and_rejects_unknown_keys() {
        let r: ResidentVitals = toml::from_str(
            "id = \"res-0057\"\nspo2_scale = 2\nrespiratory_rate_high = 28\nheart_rate_low = 45",
        )
        .unwrap();
        assert_eq!(r.spo2_scale, 2);
        assert_eq!(r.respiratory_rate_high, Some(28.0));
        r.validate().unwrap();
        let plain: ResidentVitals = toml::from_str("id = \"res-1\"").unwrap();
        assert_eq!(plain, ResidentVitals::new("res-1"));
        assert!(toml::from_str::<ResidentVitals>("id = \"r\"\nspo2_high = 99").is_err());
    }

    #[test]
    fn resident_validation_names_the_key() {
        let key = |r: ResidentVitals| r.validate().unwrap_err().key;
        let base = || ResidentVitals::new("res-0042");
        assert_eq!(
            key(ResidentVitals {
                spo2_scale: 3,
                ..base()
            }),
            "spo2_scale"
        );
        assert_eq!(
            key(ResidentVitals {
                spo2_scale: 0,
                ..base()
            }),
            "spo2_scale"
        );
        assert_eq!(key(ResidentVitals::new(" ")), "id");
        assert_eq!(
            key(ResidentVitals {
                spo2_low: Some(100.0),
                ..base()
            }),
            "spo2_low"
        );
        assert_eq!(
            key(ResidentVitals {
                spo2_low: Some(88.5),
                ..base()
            }),
            "spo2_low"
        );
        assert_eq!(
            key(ResidentVitals {
                spo2_low: Some(f64::NAN),
                ..base()
            }),
            "spo2_low"
        );
        assert_eq!(
            key(ResidentVitals {
                heart_rate_low: Some(-5.0),
                ..base()
            }),
            "heart_rate_low"
        );
        let crossed = ResidentVitals {
            respiratory_rate_low: Some(12.0),
            respiratory_rate_high: Some(12.0),
            ..base()
        };
        let err = crossed.validate().unwrap_err();
        assert_eq!(err.key, "respiratory_rate_low");
        assert!(err.to_string().contains("respiratory_rate_high"), "{err}");
        // A low limit above NEWS2's high side (≥ 111 for pulse) cannot work either.
        assert_eq!(
            key(ResidentVitals {
                heart_rate_low: Some(115.0),
                ..base()
            }),
            "heart_rate_low"
        );
        // A high limit alone that reaches NEWS2's low side is blamed on itself.
        assert_eq!(
            key(ResidentVitals {
                heart_rate_high: Some(40.0),
                ..base()
            }),
            "heart_rate_high"
        );
        // But a low limit above NEWS2's high side can work once the high side is raised.
        ResidentVitals {
            heart_rate_low: Some(115.0),
            heart_rate_high: Some(150.0),
            ..base()
        }
        .validate()
        .unwrap();
    }
}

/// The vital-sign configuration the writer applies.
#[derive(Clone, Debug, Default)]
pub struct VitalRules {
    pub config: VitalsConfig,
    pub residents: std::collections::HashMap<String, ResidentVitals>,
    /// `[[device]] not_reading_after`, by registry device id: replaces the `[vitals]` one.
    pub not_reading_after: std::collections::HashMap<String, std::time::Duration>,
}

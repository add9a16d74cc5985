//! Arbitrary text through atgw's config loader (TOML, then `ATGW_SECTION__KEY` overrides,
//! paths, validation) without touching the filesystem: an error for a person or a config,
//! never a panic. A config that loads then builds its device registry, as the daemon does next.
//! Reading a registry entry by entry must agree with parsing the whole document.
//!
//! Input: the TOML text, optionally followed by `\0` and override lines `KEY=VALUE`.
#![no_main]

use std::collections::HashMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, overrides) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    assert!(
        atgw::config::registry_cut_agrees(&text),
        "the registry read entry by entry differs from the whole parse"
    );
    let env: HashMap<String, String> = String::from_utf8_lossy(overrides)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Ok(cfg) = atgw::config::parse_with_env(&text, Path::new("/fuzz/atgw.toml"), env) {
        let _ = atgw::registry::Registry::new(&cfg.gateway.site, &cfg.devices);
    }
});

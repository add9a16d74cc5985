//! What the .deb ships stays true to the code: the committed manual pages are what the binary
//! renders, `--help` documents every argument, the shipped `/etc/atgw/atgw.toml` loads and names
//! shipped profiles, and the unit passes the credential that configuration reads.
//! (`packaging/check-deb.sh` checks the built package itself.)

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use common::*;

fn pages(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_committed_manual_pages_are_what_the_binary_renders() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_atgw"))
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rendered = pages(dir.path());
    let committed = pages(&repo().join("packaging/man"));
    assert!(rendered.contains_key("atgw.1") && rendered.contains_key("atgw-run.1"));
    assert!(rendered["atgw.1"].contains(".SH FILES"));
    assert!(
        rendered == committed,
        "packaging/man is stale: run `cargo run -- man --dir packaging/man` and commit it"
    );
}

#[test]
fn help_describes_every_command_and_argument() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        let path = format!("{path} {}", cmd.get_name());
        if cmd.get_about().is_none() {
            missing.push(format!("{path}: no description"));
        }
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if a.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                missing.push(format!("{path} <{id}>: no help text"));
            }
        }
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, &path, missing);
        }
    }
    let mut missing = Vec::new();
    walk(&atgw::cli::Cli::command(), "", &mut missing);
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn the_shipped_configuration_loads_for_a_gateway_and_names_shipped_profiles() {
    let path = repo().join("packaging/atgw.toml");
    let cfg = atgw::config::load_with_env(&path, HashMap::new()).unwrap();
    assert_eq!(cfg.gateway.data_dir, Path::new("/var/lib/atgw"));
    assert_eq!(cfg.gateway.profiles_dir, Path::new("/etc/atgw/profiles"));
    for a in &cfg.adapters {
        if let atgw::config::AdapterConfig::Mqtt(m) = a {
            atgw_profile::ProfileSet::load(&profiles_dir(), &m.profiles)
                .unwrap_or_else(|e| panic!("adapter {}: {e}", m.name));
        }
    }
    for s in &cfg.sinks {
        if let atgw::config::SinkConfig::File(f) = s {
            assert!(
                f.path.starts_with("/var/lib/atgw"),
                "the unit lets atgw write only under /var/lib/atgw: {}",
                f.path.display()
            );
        }
    }
    // Outside systemd the token is the file beside the configuration: /etc/atgw/api-token, the
    // root-only file the package generates.
    let api = cfg.api.expect("the shipped config enables the local API");
    assert_eq!(api.token_file, repo().join("packaging/api-token"));
}

#[test]
fn the_unit_runs_the_packaged_binary_and_passes_the_credential_the_config_reads() {
    let unit = std::fs::read_to_string(repo().join("systemd/atgw.service")).unwrap();
    let shipped = std::fs::read_to_string(repo().join("packaging/atgw.toml")).unwrap();
    let lines: Vec<&str> = unit.lines().filter(|l| !l.starts_with('#')).collect();
    let has = |l: &str| lines.contains(&l);
    assert!(has(
        "ExecStart=/usr/bin/atgw run --config /etc/atgw/atgw.toml"
    ));
    assert!(has("Type=notify"));
    assert!(lines.iter().any(|l| l.starts_with("WatchdogSec=")));
    assert!(has("StateDirectory=atgw"));
    assert!(has("LoadCredential=api-token:/etc/atgw/api-token"));
    assert!(shipped.contains("token_file = \"api-token\""));
}

//! The worked example adapter (`adapters/example-line`), added by its crate and one registry
//! line, runs in the real daemon like any other: configured, checked, and its device's event
//! journaled with the registry's room and resident before the device hears `ACK`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use common::*;

#[test]
fn a_line_device_is_journaled_with_its_room_before_it_is_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = free_tcp_udp_port();
    let text = format!(
        r#"
[gateway]
id = "gw-test"
site = "oakview"
data_dir = "{data}"
profiles_dir = "{profiles}"

[[sink]]
name = "audit"
type = "file"
path = "{audit}"

[[adapter]]
name = "line"
type = "example-line"
listen = "127.0.0.1:{port}"

[[device]]
id = "pendant-room-7"
adapter = "line"
match = {{ device = "pendant-7" }}
resident = "res-0007"
location = {{ area = "east", room = "7" }}
"#,
        data = dir.join("state").display(),
        profiles = profiles_dir().display(),
        audit = dir.join("events.jsonl").display(),
    );
    let gw = Gateway::start(dir, &text);
    let mut stream = None;
    wait_until(Duration::from_secs(20), || {
        stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        stream.is_some()
    })
    .unwrap_or_else(|_| panic!("the example adapter never listened:\n{}", gw.log_text()));
    let mut stream = stream.unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"41 pendant-7 pendant_press\n").unwrap();
    let mut answer = String::new();
    BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut answer)
        .unwrap();
    assert_eq!(answer, "ACK 41\n", "{}", gw.log_text());
    // The ACK came after the commit: the row is there now, with the registry's view.
    let rows: Vec<(String, String, String)> = {
        let c = gw.journal();
        let mut s = c
            .prepare("SELECT kind, device_id, json FROM events WHERE kind = 'pendant_press'")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(rows.len(), 1, "{rows:?}");
    let event: serde_json::Value = serde_json::from_str(&rows[0].2).unwrap();
    assert_eq!(rows[0].1, "pendant-room-7");
    assert_eq!(event["data"]["location"]["room"], "7");
    assert_eq!(event["data"]["resident"]["id"], "res-0007");
    assert_schema_valid(&schema(), &event);
    // A bad line is a NAK and a dead letter, and the daemon serves on.
    stream.write_all(b"forty-two pendant-7 fall\n").unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut nak = String::new();
    reader.read_line(&mut nak).unwrap();
    assert_eq!(nak, "NAK - bad_seq\n");
    assert_eq!(dead_letters(&gw).get("bad_seq"), Some(&1));
}

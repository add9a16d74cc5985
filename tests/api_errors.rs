//! The local API's errors, through the real binary: every error is JSON `{"error": …}` (an
//! unknown path, a wrong method, a bad query, a bad or over-size body), an over-size body is 413,
//! failed authentications are counted and logged (rate-limited), and a request without `Host`
//! is refused.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A gateway with no adapters or sinks, only the API.
fn start(dir: &std::path::Path) -> (Gateway, String, String) {
    let (api, base, token) = api_block(dir);
    let text = format!(
        "[gateway]\nid = \"gw-api\"\nsite = \"oakview\"\ndata_dir = \"{}\"\nprofiles_dir = \"{}\"\ntimezone = \"UTC\"\n{api}",
        dir.join("state").display(),
        profiles_dir().display()
    );
    (Gateway::start(dir, &text), base, token)
}

/// Status and body, which must be a JSON object with a non-empty `error` string.
async fn json_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text:?} ({ctype})"));
    let msg = v["error"].as_str().unwrap_or("").to_owned();
    assert!(!msg.is_empty(), "{status}: no `error` in {text}");
    assert!(ctype.starts_with("application/json"), "{status}: {ctype}");
    (status, msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_error_is_json_and_an_oversize_body_is_413() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, base, token) = start(dir.path());
    let c = client();

    let r = c
        .get(format!("{base}/no-such-thing"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 404);

    let r = c
        .get(format!("{base}/events?since=yesterday"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, msg) = json_error(r).await;
    assert_eq!(status, 400, "{msg}");
    assert!(msg.contains("since"), "{msg}");

    let r = c
        .get(format!("{base}/alerts/a1/ack"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 405);

    let r = c
        .post(format!("{base}/alerts/a1/ack"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{ not json")
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 400);

    let big = format!(r#"{{"by":"{}"}}"#, "x".repeat(3 << 20));
    let r = c
        .post(format!("{base}/alerts/a1/ack"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 413);

    let r = c
        .get(format!("{base}/alerts"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(r).await.0, 401);
    gw.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_counted_and_logged_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, base, token) = start(dir.path());
    let c = client();
    for _ in 0..5 {
        let r = c
            .get(format!("{base}/alerts"))
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let root = base.trim_end_matches("/api/v1");
    let r = c.get(format!("{root}/metrics")).send().await.unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "a scrape without the token fails too"
    );
    let metrics = c
        .get(format!("{root}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.trim() == "atgw_api_auth_failures_total 6"),
        "{metrics}"
    );
    wait_until_async(Duration::from_secs(5), || {
        gw.log_text().contains("API authentication failed")
    })
    .await
    .unwrap_or_else(|_| panic!("not logged:\n{}", gw.log_text()));
    let log = gw.log_text();
    assert_eq!(
        log.matches("API authentication failed").count(),
        1,
        "rate-limited to one line:\n{log}"
    );
    assert!(!log.contains("guess"), "the token tried is never logged");
    gw.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut gw, base, _) = start(dir.path());
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches("/api/v1")
        .to_owned();
    for request in [
        "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.0\r\n\r\n",
    ] {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.0 400"),
            "{request:?} → {answer}"
        );
    }
    // With a Host it is served.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    gw.terminate();
}

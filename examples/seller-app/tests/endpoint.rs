//! The example app as a process: it answers a signed `newInstance`, refuses a bad signature and a
//! replayed nonce, and keeps the tenant in its SQLite file.

use souk_protocol::signature::{signed_url, SignedParams};
use souk_protocol::{Activity, SellerAnswer};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn answers_signed_calls_and_refuses_forged_or_replayed_ones() {
    let dir = std::env::temp_dir().join(format!("seller-app-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _app = Kill(
        Command::new(env!("CARGO_BIN_EXE_seller-app"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--signing-key",
                "example-key-0123456789",
                "--database",
            ])
            .arg(dir.join("tenants.db"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let body = Activity::NewInstance {
        order_id: "ord_1".into(),
        order_line_id: "ord_1-000001".into(),
        business_id: "ins_1".into(),
    }
    .body(false);
    let call = |params: SignedParams| {
        http.post(signed_url(&format!("{base}/souk"), &params))
            .body(body.clone())
            .send()
    };
    let params = SignedParams::new("example-key-0123456789", &body, now_ms());
    let first: SellerAnswer = call(params.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(first.result_code, "000000");
    let replay: SellerAnswer = call(params).await.unwrap().json().await.unwrap();
    assert_eq!(replay.result_code, "000001");
    let forged: SellerAnswer = call(SignedParams::new("not-the-key-0000000", &body, now_ms()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(forged.result_code, "000001");
    // The same businessId again (a retry with a fresh nonce) answers the same tenant.
    let again: SellerAnswer = call(SignedParams::new("example-key-0123456789", &body, now_ms()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again.instance_id, first.instance_id);
    let tenants: Vec<serde_json::Value> = http
        .get(format!("{base}/admin/tenants"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tenants.len(), 1);
    let page = http
        .get(format!("{base}/t/{}", first.instance_id.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    std::fs::remove_dir_all(dir).ok();
}

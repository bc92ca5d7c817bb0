//! Running souk's own binaries from tests: the command line, `souk serve`, the example seller.
#![allow(dead_code)]

use reqwest::Client;
use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::Duration;

/// A child process, killed when dropped.
pub struct Process(pub Child);
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory for a `souk serve`'s e-mail outbox, so no test writes into the source tree.
pub fn outbox_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "souk-test-outbox-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn souk_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_souk"))
}

pub fn seller_app_bin() -> PathBuf {
    let path = souk_bin().with_file_name(format!("seller-app{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the workspace's tests (cargo test --workspace), which build it",
        path.display()
    );
    path
}

pub fn souk(args: &[&str], db: &str, key: &str) -> Output {
    Command::new(souk_bin())
        .args(args)
        .env("SOUK_DATABASE_URL", db)
        .env("SOUK_SECRET_KEY", key)
        .env("SOUK_CONFIG", "/dev/null")
        .output()
        .unwrap()
}

pub async fn wait_until_up(url: &str) {
    let http = Client::new();
    for _ in 0..400 {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} did not come up");
}

//! The real server binary as a child process, for tests that kill it (`kill -9`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ProcessServer {
    pub child: Child,
    pub base: String,
}

impl Drop for ProcessServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ProcessServer {
    /// Starts `binary serve` (see `magpie_binary!`) and waits until `/healthz` answers.
    pub async fn start(
        binary: PathBuf,
        data_dir: &Path,
        database_url: &str,
        config: &Path,
        admin_password: &str,
    ) -> ProcessServer {
        let port = free_port();
        let child = Command::new(binary)
            .arg("serve")
            .env("MAGPIE_DATA_DIR", data_dir)
            .env("MAGPIE_DATABASE_URL", database_url)
            .env("MAGPIE_CONFIG", config)
            .env("MAGPIE_LISTEN", format!("127.0.0.1:{port}"))
            .env("MAGPIE_ADMIN_PASSWORD", admin_password)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn magpie");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "server did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ProcessServer { child, base }
    }

    /// `kill -9`, and waits for the process to be gone.
    pub fn kill_nine(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

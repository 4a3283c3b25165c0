//! An import survives `kill -9`: the real binary is killed in the middle of an import,
//! started again on the same database, and the import finishes from its checkpoint with
//! the right counts and no contact written twice. On SQLite and on PostgreSQL.

use std::process::Command;
use std::time::{Duration, Instant};

use magpie_tests::process::ProcessServer;
use magpie_tests::{Backend, json, magpie_binary};
use serde_json::Value;

const PASSWORD: &str = "kill-test-password";

async fn serve(
    data_dir: &std::path::Path,
    database_url: &str,
    config: &std::path::Path,
) -> ProcessServer {
    ProcessServer::start(magpie_binary!(), data_dir, database_url, config, PASSWORD).await
}

async fn api(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut req = client
        .request(method, url)
        .basic_auth("admin", Some(PASSWORD));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn kill_nine_in_the_middle_of_an_import(backend: Backend) {
    interrupt_in_the_middle_of_an_import(backend, false).await
}

/// `graceful`: SIGTERM (the batch in hand is committed, the job queued again, exit 0)
/// instead of SIGKILL.
async fn interrupt_in_the_middle_of_an_import(backend: Backend, graceful: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (database_url, pg) = magpie_tests::scratch_database(backend, dir.path()).await;
    let config = dir.path().join("magpie.toml");
    // Small batches (many checkpoints) and a short lease (PostgreSQL waits for it).
    std::fs::write(
        &config,
        "[import]\nbatch_rows = 100\n[jobs]\nlease_seconds = 2\n",
    )
    .unwrap();
    let client = reqwest::Client::new();

    let server = serve(dir.path(), &database_url, &config).await;
    // 200 contacts exist; the file updates them and adds 6,000 more.
    let existing = 200;
    let fresh = 6_000;
    let batch: Vec<Value> = (0..existing)
        .map(|k| json!({"email": format!("c{k}@x.org"), "firstname": "Before"}))
        .collect();
    api(
        &client,
        reqwest::Method::POST,
        format!("{}/api/contacts/batch/new", server.base),
        Some(json!(batch)),
    )
    .await;
    let mut csv = String::from("email,firstname,lastname,city\n");
    for k in 0..(existing + fresh) {
        let kk = (k * 7919) % (existing + fresh); // existing contacts spread through the file
        csv.push_str(&format!("c{kk}@x.org,First{kk},Last{kk},City{}\n", kk % 50));
    }
    let r = client
        .post(format!("{}/api/imports?filename=big.csv", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["import"]["id"]
        .as_i64()
        .unwrap();
    api(
        &client,
        reqwest::Method::POST,
        format!("{}/api/imports/{id}/start", server.base),
        Some(json!({})),
    )
    .await;

    // Wait until part of it is written, then kill -9.
    let started = Instant::now();
    let mut server = server;
    let done_before_kill = loop {
        let r = api(
            &client,
            reqwest::Method::GET,
            format!("{}/api/imports/{id}?preview=0", server.base),
            None,
        )
        .await;
        let done = r["import"]["progress"]["rowsDone"].as_i64().unwrap();
        assert_ne!(
            r["import"]["status"], "done",
            "the import ended before it could be interrupted: {r}"
        );
        if done >= 500 {
            break done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no progress: {r}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    if graceful {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(server.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
        let started = Instant::now();
        let status = loop {
            if let Some(s) = server.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no clean exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "exit 0 after SIGTERM, got {status:?}");
    } else {
        server.child.kill().expect("kill -9");
    }
    eprintln!(
        "{backend:?}: stopped (graceful: {graceful}) after {done_before_kill} of {} rows",
        existing + fresh
    );
    let _ = server.child.wait();
    drop(server);

    // Start again on the same data: the import continues from its checkpoint.
    let server = serve(dir.path(), &database_url, &config).await;
    let started = Instant::now();
    let final_state = loop {
        let r = api(
            &client,
            reqwest::Method::GET,
            format!("{}/api/imports/{id}?preview=0", server.base),
            None,
        )
        .await;
        if r["import"]["status"] == "done" {
            break r["import"].clone();
        }
        assert_ne!(r["import"]["status"], "failed", "{r}");
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "import did not finish after the restart: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let p = &final_state["progress"];
    assert_eq!(p["rowsDone"], existing + fresh, "{final_state}");
    assert_eq!(p["created"], fresh, "{final_state}");
    assert_eq!(p["updated"], existing, "{final_state}");
    assert_eq!(p["failed"], 0);

    // No contact twice: exactly existing + fresh contacts, each email once.
    let all = api(
        &client,
        reqwest::Method::GET,
        format!("{}/api/contacts?limit=1", server.base),
        None,
    )
    .await;
    assert_eq!(
        all["total"],
        (existing + fresh).to_string(),
        "no duplicates after the crash"
    );
    for k in [0, 1, 99, 150, 199, 250, 1000, 5999, existing + fresh - 1] {
        let r = api(
            &client,
            reqwest::Method::GET,
            format!("{}/api/contacts?search=email:%2Bc{k}@x.org", server.base),
            None,
        )
        .await;
        assert_eq!(r["total"], "1", "c{k}@x.org once");
        let (cid, c) = r["contacts"].as_object().unwrap().iter().next().unwrap();
        assert_eq!(c["fields"]["all"]["firstname"], format!("First{k}"));
        let ev = api(
            &client,
            reqwest::Method::GET,
            format!(
                "{}/api/contacts/{cid}/activity?filters[includeEvents][]=lead.imported",
                server.base
            ),
            None,
        )
        .await;
        assert_eq!(ev["total"], 1, "one import event for c{k}: {ev}");
    }
    drop(server);
    if let Some((admin, name)) = pg {
        magpie_tests::drop_pg_database(&admin, &name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_nine_in_the_middle_of_an_import() {
    kill_nine_in_the_middle_of_an_import(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_nine_in_the_middle_of_an_import() {
    if magpie_tests::skip_postgres() {
        return;
    }
    kill_nine_in_the_middle_of_an_import(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigterm_in_the_middle_of_an_import() {
    interrupt_in_the_middle_of_an_import(Backend::Sqlite, true).await;
}

//! Tracking hits survive `kill -9`: every pixel answered before the real binary is killed
//! is recorded exactly once after it starts again (the hits wait in the tracking journal),
//! and a second restart replays nothing. On SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use magpie::store::{Exec, Store};
use magpie_tests::process::ProcessServer;
use magpie_tests::{Backend, magpie_binary};

const PASSWORD: &str = "journal-test-password";
const VISITORS: usize = 40;
const VIEWS: usize = 50;

async fn count(database_url: &str, sql: &str) -> i64 {
    let store = Store::connect(database_url).await.unwrap();
    let n = store
        .read()
        .await
        .unwrap()
        .fetch_i64(sql, vec![])
        .await
        .unwrap()
        .unwrap_or(0);
    store.close().await;
    n
}

async fn page_hits(database_url: &str) -> i64 {
    count(
        database_url,
        "SELECT COUNT(*) FROM contact_events WHERE event_type = 'page.hit'",
    )
    .await
}

/// A pixel hit; the device cookie it was answered with, if it was tracked.
async fn pixel(
    client: &reqwest::Client,
    base: &str,
    view: usize,
    device: Option<&str>,
) -> Option<String> {
    let mut req = client
        .get(format!(
            "{base}/mtracking.gif?page_url=https%3A%2F%2Fshop.example%2Fp{view}&page_title=P{view}"
        ))
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
        );
    if let Some(d) = device {
        req = req.header("cookie", format!("mautic_device_id={d}"));
    }
    let r = req.send().await.ok()?;
    if r.status() != 200 {
        return None;
    }
    let cookie = r.headers().get("set-cookie")?.to_str().ok()?.to_owned();
    Some(
        cookie
            .split(';')
            .next()?
            .trim_start_matches("mautic_device_id=")
            .to_owned(),
    )
}

async fn wait_for_hits(database_url: &str, want: i64) -> i64 {
    let started = Instant::now();
    loop {
        let n = page_hits(database_url).await;
        if n >= want || started.elapsed() > Duration::from_secs(60) {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The real binary on `dir`, tracking loopback visitors.
async fn start_tracking(dir: &std::path::Path, database_url: &str) -> ProcessServer {
    let config = dir.join("magpie.toml");
    std::fs::write(&config, "[tracking]\ntrack_private_ip_ranges = true\n").unwrap();
    ProcessServer::start(magpie_binary!(), dir, database_url, &config, PASSWORD).await
}

async fn kill_nine_loses_no_answered_hit(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (database_url, pg) = magpie_tests::scratch_database(backend, dir.path()).await;
    let start = || start_tracking(dir.path(), &database_url);

    let mut server = start().await;
    let client = reqwest::Client::new();
    // Each visitor's first view hands out its device; the rest come back with the cookie,
    // all visitors at once.
    let mut tasks = Vec::new();
    for _ in 0..VISITORS {
        let client = client.clone();
        let base = server.base.clone();
        tasks.push(tokio::spawn(async move {
            let device = pixel(&client, &base, 0, None)
                .await
                .expect("first view tracked");
            let mut answered = 1;
            for view in 1..VIEWS {
                let got = pixel(&client, &base, view, Some(&device)).await;
                assert_eq!(got.as_deref(), Some(device.as_str()), "the same device");
                answered += 1;
            }
            answered
        }));
    }
    let mut answered = 0i64;
    for t in tasks {
        answered += t.await.unwrap();
    }
    server.kill_nine();
    let applied_before_kill = page_hits(&database_url).await;
    eprintln!(
        "{backend:?}: {applied_before_kill} of {answered} answered hits were applied before kill -9"
    );

    // The rest is applied after the restart, each hit once.
    let mut server = start().await;
    assert_eq!(
        wait_for_hits(&database_url, answered).await,
        answered,
        "every answered hit is recorded"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(page_hits(&database_url).await, answered, "and only once");
    assert_eq!(
        count(&database_url, "SELECT COUNT(*) FROM devices").await,
        VISITORS as i64,
        "one device per visitor"
    );
    assert_eq!(
        count(&database_url, "SELECT COUNT(*) FROM contacts").await,
        VISITORS as i64,
        "one contact per visitor"
    );
    server.kill_nine();

    // Nothing is replayed by a later start.
    let server = start().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(page_hits(&database_url).await, answered);
    drop(server);
    if let Some((admin, name)) = pg {
        magpie_tests::drop_pg_database(&admin, &name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_nine_loses_no_answered_hit() {
    kill_nine_loses_no_answered_hit(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_nine_loses_no_answered_hit() {
    if magpie_tests::skip_postgres() {
        return;
    }
    kill_nine_loses_no_answered_hit(Backend::Postgres).await;
}

/// Hits that an earlier version left in its SQLite journal (`tracking-journal.db`) are
/// applied by the next start, each once, and the old file is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_left_in_the_old_sqlite_journal_are_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let (database_url, _) = magpie_tests::scratch_database(Backend::Sqlite, dir.path()).await;
    let start = || start_tracking(dir.path(), &database_url);
    // The database exists (migrated) before the old journal is found beside it.
    let mut server = start().await;
    server.kill_nine();
    for leftover in ["tracking-journal", "tracking-journal.lock"] {
        let p = dir.path().join(leftover);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
    }

    let old = dir.path().join("tracking-journal.db");
    let journal = Store::connect(&format!("sqlite://{}", old.display()))
        .await
        .unwrap();
    let mut conn = journal.write_conn().await.unwrap();
    conn.execute_script(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE hits (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL,
                            new_device INTEGER NOT NULL, body TEXT NOT NULL);
         CREATE TABLE failed (id INTEGER PRIMARY KEY, body TEXT NOT NULL,
                              error TEXT NOT NULL, failed_at INTEGER NOT NULL);
         INSERT INTO meta VALUES ('journal_id', 'the-old-journal');",
    )
    .await
    .unwrap();
    let device = "0123456789abcdef0123456789abcdef";
    for view in 1..=3i64 {
        let hit = magpie::tracking::ParsedHit {
            params: magpie::tracking::params::HitParams {
                page_url: Some(format!("https://shop.example/old{view}")),
                device_id: Some(device.into()),
                ..Default::default()
            },
            ip: Some("203.0.113.9".into()),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0".into(),
            at: 1_700_000_000_000 + view,
            ct_contact: None,
        };
        conn.execute(
            "INSERT INTO hits (id, device_id, new_device, body) VALUES ($1, $2, $3, $4)",
            magpie::params![
                view,
                device,
                (view == 1) as i64,
                serde_json::to_string(&hit).unwrap()
            ],
        )
        .await
        .unwrap();
    }
    drop(conn);
    journal.close().await;

    let mut server = start().await;
    assert_eq!(
        wait_for_hits(&database_url, 3).await,
        3,
        "the old hits are applied"
    );
    assert!(!old.exists(), "the old journal is removed");
    assert_eq!(
        count(&database_url, "SELECT COUNT(*) FROM devices").await,
        1,
        "one device for the three hits"
    );
    server.kill_nine();
    let server = start().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        page_hits(&database_url).await,
        3,
        "nothing is applied twice"
    );
    drop(server);
}

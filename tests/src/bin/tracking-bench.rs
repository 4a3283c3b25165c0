//! The tracking load benchmark: `wrk` against `/mtracking.gif` with new and returning
//! visitors, compared in the same run with a bare axum handler serving the same GIF, and
//! a check that every answered hit is in the database. Also times a merge of two
//! contacts with 10,000 events each.
//!
//! ```sh
//! cargo run --release -p magpie-tests --bin tracking-bench -- --data /var/tmp/bench-1m --seconds 20
//! ```
//!
//! `--data DIR` reuses a database seeded by `magpie-bench --keep DIR` (1,000,000 contacts).
//! Needs `wrk` (Debian package).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::Command;
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use magpie::store::Exec;

const PIXEL_QUERY: &str = "page_url=https%3A%2F%2Fshop.example%2Fproducts%2Fwidget%3Futm_source%3Dnews&page_title=Widget&page_language=en-GB&page_referrer=search.example&resolution=1920x1080&timezone_offset=-60";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

struct WrkResult {
    requests: u64,
    errors: u64,
    rps: f64,
    p50: String,
    p99: String,
}

fn wrk(url: &str, script: &std::path::Path, seconds: u64, connections: u64) -> WrkResult {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let find = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.trim().to_owned())
            .unwrap_or_default()
    };
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let rps = find("Requests/sec:")
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    let p50 = find("50%")
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_owned();
    let p99 = find("99%")
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_owned();
    WrkResult {
        requests,
        errors,
        rps,
        p50,
        p99,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    magpie::cli::init_logging("off");
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(20);
    let connections: u64 = arg("--connections")
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let dir = match arg("--data") {
        Some(d) => std::path::PathBuf::from(d),
        None => tempfile::tempdir().unwrap().keep(),
    };
    let work = tempfile::tempdir().unwrap();

    // The bare handler: the same GIF, nothing else.
    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_addr = bare.local_addr().unwrap();
    let app = Router::new().route(
        "/mtracking.gif",
        get(|| async {
            (
                [
                    (axum::http::header::CONTENT_TYPE, "image/gif"),
                    (axum::http::header::CACHE_CONTROL, "no-store"),
                ],
                magpie::http::tracking::PIXEL.as_slice(),
            )
        }),
    );
    tokio::spawn(async move { axum::serve(bare, app).await.unwrap() });

    let mut config = magpie::config::Config::for_data_dir(&dir, None);
    config.file =
        magpie::config::FileConfig::parse("[tracking]\ntrack_private_ip_ranges = true\n").unwrap();
    config.admin_password = Some(magpie_tests::ADMIN_PASSWORD.into());
    let running = magpie::server::start(config).await.expect("server starts");
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

    // A pool of returning visitors.
    println!("creating 2,000 returning visitors…");
    let mut devices = Vec::new();
    for _ in 0..2000 {
        let r = client
            .get(format!("{base}/mtracking.gif?{PIXEL_QUERY}"))
            .header("user-agent", ua)
            .send()
            .await
            .unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        devices.push(
            cookie
                .split(';')
                .next()
                .unwrap()
                .trim_start_matches("mautic_device_id=")
                .to_owned(),
        );
    }
    let script = work.path().join("hits.lua");
    let list = devices
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(
        &script,
        format!(
            r#"local ids = {{{list}}}
local n = 0
request = function()
  n = n + 1
  local q = "{PIXEL_QUERY}&counter=" .. n
  if n % 5 ~= 0 then q = q .. "&mautic_device_id=" .. ids[(n % #ids) + 1] end
  return wrk.format("GET", "/mtracking.gif?" .. q, {{["User-Agent"] = "{ua}"}})
end
"#
        ),
    )
    .unwrap();

    let count = |sql: &'static str| async {
        let mut db = running.state.store.read().await.unwrap();
        db.fetch_i64(sql, vec![]).await.unwrap().unwrap_or(0)
    };
    let count_hits = || count("SELECT COUNT(*) FROM contact_events WHERE event_type = 'page.hit'");
    let contacts = count("SELECT COUNT(*) FROM contacts").await;
    println!(
        "contacts in the database: {contacts}; {seconds}s per run, {connections} connections, 2 wrk threads, 80% returning visitors"
    );

    let bare_result = wrk(
        &format!("http://{bare_addr}/mtracking.gif"),
        &script,
        seconds,
        connections,
    );
    running.state.tracker.settled().await;
    let before = count_hits().await;
    let magpie_result = wrk(
        &format!("{base}/mtracking.gif"),
        &script,
        seconds,
        connections,
    );
    // Answered hits are journaled; the applier may still be recording the last of them.
    let at_end = count_hits().await;
    let drain = Instant::now();
    running.state.tracker.settled().await;
    let drain = drain.elapsed().as_secs_f64();
    let after = count_hits().await;
    println!("\n| handler | requests/s | p50 | p99 | non-2xx |\n|---|---|---|---|---|");
    println!(
        "| bare axum GIF | {:.0} | {} | {} | {} |",
        bare_result.rps, bare_result.p50, bare_result.p99, bare_result.errors
    );
    println!(
        "| Magpie /mtracking.gif | {:.0} | {} | {} | {} |",
        magpie_result.rps, magpie_result.p50, magpie_result.p99, magpie_result.errors
    );
    println!(
        "\nMagpie/bare throughput: {:.1}%; answered hits: {}, page.hit rows added: {} ({})",
        100.0 * magpie_result.rps / bare_result.rps.max(1.0),
        magpie_result.requests - magpie_result.errors,
        after - before,
        if after - before >= (magpie_result.requests - magpie_result.errors) as i64 {
            "every answered hit is stored"
        } else {
            "HITS MISSING"
        }
    );
    println!(
        "applied while the load ran: {} hits; the rest ({}) was applied {drain:.1} s after it ended: {:.0} hits/s applied overall",
        at_end - before,
        after - at_end,
        (after - before) as f64 / (seconds as f64 + drain)
    );

    // A merge of two contacts with 10,000 events each.
    let fields = {
        let mut db = running.state.store.read().await.unwrap();
        running.state.fields(&mut db).await.unwrap()
    };
    let mut ids = Vec::new();
    for name in ["winner", "loser"] {
        let r: serde_json::Value = client
            .post(format!("{base}/api/contacts/new"))
            .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
            .json(&serde_json::json!({"email": format!("{name}-{}@merge.example", magpie::time::now_ms())}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["contact"]["id"].as_i64().unwrap();
        let events: Vec<magpie::timeline::NewEvent> = (0..10_000)
            .map(|i| {
                magpie::timeline::NewEvent::new(
                    id,
                    "page.hit",
                    1_700_000_000_000 + i,
                    serde_json::json!({"url": format!("https://x.example/{i}")}),
                )
            })
            .collect();
        let mut tx = running.state.store.begin().await.unwrap();
        magpie::store::events::insert(&mut tx, &events)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        ids.push(id);
    }
    let started = Instant::now();
    magpie::contacts::merge::merge(
        &running.state.store,
        &fields,
        (ids[0], ids[1]),
        magpie::contacts::service::Source::Api,
        None,
        magpie::time::now_ms(),
        Default::default(),
    )
    .await
    .unwrap();
    println!(
        "merge of two contacts with 10,000 events each: {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    // Every contact's activity over all these events, through the API (p50 of 5 after 1).
    let events = count("SELECT COUNT(*) FROM contact_events").await;
    println!(
        "\nGET /api/contacts/activity over {events} stored events:\n\n| query | p50 |\n|---|---:|"
    );
    for (name, query) in [
        ("first page, newest first", "limit=25"),
        ("oldest first", "order[0]=timestamp&order[1]=ASC"),
        ("page 1,000", "page=1000"),
        (
            "one common type (page.hit)",
            "filters[includeEvents][]=page.hit",
        ),
        (
            "one rare type (lead.merged)",
            "filters[includeEvents][]=lead.merged",
        ),
        (
            "two types, page 100",
            "filters[includeEvents][]=lead.merged&filters[includeEvents][]=page.hit&page=100",
        ),
        ("one type excluded", "filters[excludeEvents][]=page.hit"),
        ("ordered by label", "order[0]=eventLabel&order[1]=ASC"),
        ("free-text search", "filters[search]=shop.example"),
    ] {
        let mut times = Vec::new();
        for _ in 0..6 {
            let started = Instant::now();
            let r = client
                .get(format!("{base}/api/contacts/activity?{query}"))
                .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{query}: {}", r.status());
            r.bytes().await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let mut measured = times[1..].to_vec();
        measured.sort_by(f64::total_cmp);
        println!("| {name} | {:.1} ms |", measured[measured.len() / 2]);
    }
    running.shutdown().await.unwrap();
}

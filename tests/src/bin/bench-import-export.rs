//! Import and export figures (not a test): run in release mode.
//!
//! ```sh
//! cargo run --release -p magpie-tests --bin bench-import-export -- --rows 1000000
//! MAGPIE_TEST_DATABASE_URL=postgres://… cargo run --release -p magpie-tests --bin bench-import-export -- --rows 1000000 --postgres
//! ```
//!
//! SQLite: imports a generated CSV of `--rows` rows (10 columns, 10% of them matching
//! contacts that exist before), end to end through the HTTP API (upload, start, poll
//! until done), and times `sqlite3`'s own `.import` of the same file into a bare table
//! for comparison. Then exports every contact to CSV and to XLSX, timing each and
//! measuring the peak growth of the process's resident memory. With `--postgres`, the
//! same import on PostgreSQL.
//!
//! `--keep DIR` keeps the imported SQLite database: the first run copies it to
//! `DIR/magpie.db` at the end (SQLite's backup, page for page, so the layout is the
//! import's); later runs with the same `DIR` skip the file and the import, start the
//! server on `DIR`, wait for the free-text queue to drain, and time the exports alone.
//! `--formats csv` (or `xlsx`, `csv,xlsx`: the default) picks the exports; `--save DIR`
//! keeps each export's file in DIR (copied after the timing), to compare versions.

use std::io::Write;
use std::time::{Duration, Instant};

use magpie_tests::{Backend, TestServer, json};

// The allocator of the `magpie` binary, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Linus", "Margaret", "Dennis", "Barbara", "Ken", "Frances", "John",
    "Radia", "Tim", "Hedy", "Edsger", "Karen", "Donald", "Sophie", "Niklaus", "Jean", "Guido",
    "Anita", "Bjarne", "Shafi", "Leslie", "Zoë", "José", "Chloé", "Jürgen",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "McCarthy",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Dijkstra",
    "Spärck Jones",
    "Knuth",
    "Wilson",
    "Wirth",
    "Sammet",
    "van Rossum",
    "Borg",
    "Stroustrup",
    "Goldwasser",
    "Lamport",
    "Müller",
    "O'Brien",
    "García",
    "Nguyen",
];
const COMPANIES: &[&str] = &[
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Wonka Ltd",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture Science",
    "Black Mesa",
    "Vandelay Industries",
    "Pied Piper",
    "Massive Dynamic",
];
const POSITIONS: &[&str] = &[
    "Engineer",
    "Manager",
    "Director",
    "Analyst",
    "Designer",
    "Consultant",
    "CTO",
    "Sales",
    "Support",
    "Founder",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Berlin", "10115", "Germany"),
    ("Paris", "75001", "France"),
    ("Dublin", "D02 X285", "Ireland"),
    ("Zürich", "8001", "Switzerland"),
    ("Madrid", "28001", "Spain"),
    ("Lyon", "69001", "France"),
    ("München", "80331", "Germany"),
    ("New York", "10001", "United States"),
    ("Toronto", "M5H 2N2", "Canada"),
    ("Amsterdam", "1011", "Netherlands"),
];

fn row(k: usize, seed: bool) -> String {
    let f = FIRST[k % FIRST.len()];
    let l = LAST[(k / 7) % LAST.len()];
    let c = COMPANIES[(k / 3) % COMPANIES.len()];
    let (city, zip, country) = CITIES[(k / 11) % CITIES.len()];
    let email = format!(
        "{}.{}{k}@example{}.com",
        f.to_lowercase().replace(['ë', 'é'], "e").replace('ü', "u"),
        l.to_lowercase()
            .replace([' ', '\''], "")
            .replace(['ä', 'ü'], "a")
            .replace('í', "i"),
        k % 97
    );
    let phone = format!("+49 30 {:07}", (k * 7919) % 10_000_000);
    let position = if seed {
        "Unknown"
    } else {
        POSITIONS[k % POSITIONS.len()]
    };
    let website = format!("https://www.{}.example", c.to_lowercase().replace(' ', "-"));
    let quote = |s: &str| {
        if s.contains([',', '"']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    format!(
        "{email},{},{},{},{position},{phone},{},{zip},{country},{website}\n",
        quote(f),
        quote(l),
        quote(c),
        quote(city)
    )
}

const HEADER: &str =
    "email,firstname,lastname,company,position,phone,city,zipcode,country,website\n";

/// The file to import: `rows` rows; every tenth is a contact that exists already.
fn write_files(dir: &std::path::Path, rows: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let main = dir.join("contacts.csv");
    let seed = dir.join("existing.csv");
    let mut m = std::io::BufWriter::new(std::fs::File::create(&main).unwrap());
    let mut s = std::io::BufWriter::new(std::fs::File::create(&seed).unwrap());
    m.write_all(HEADER.as_bytes()).unwrap();
    s.write_all(HEADER.as_bytes()).unwrap();
    for k in 0..rows {
        m.write_all(row(k, false).as_bytes()).unwrap();
        if k % 10 == 0 {
            s.write_all(row(k, true).as_bytes()).unwrap();
        }
    }
    m.flush().unwrap();
    s.flush().unwrap();
    (main, seed)
}

/// Uploads and imports `path`; answers (upload seconds, import seconds, CPU seconds the
/// whole process used during the import, the finished import).
async fn import_file(s: &TestServer, path: &std::path::Path) -> (f64, f64, f64, serde_json::Value) {
    let bytes = std::fs::read(path).unwrap();
    let t = Instant::now();
    let r = s
        .raw(
            reqwest::Method::POST,
            "/api/imports?filename=contacts.csv",
            "text/csv",
            bytes,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let upload = t.elapsed().as_secs_f64();
    let id = r.body["import"]["id"].as_i64().unwrap();
    let t = Instant::now();
    let cpu = magpie_tests::process_cpu_seconds();
    s.post(&format!("/api/imports/{id}/start"), json!({}))
        .await
        .expect(202);
    loop {
        let r = s
            .get(&format!("/api/imports/{id}?preview=0"))
            .await
            .expect(200);
        let status = r["import"]["status"].as_str().unwrap().to_owned();
        if status == "done" || status == "failed" {
            let cpu = magpie_tests::process_cpu_seconds() - cpu;
            return (upload, t.elapsed().as_secs_f64(), cpu, r["import"].clone());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the import cost this process's CPU: cores kept busy on average, and CPU time per
/// row. On two cores, N rows/s leaves at most 2,000,000 / N µs of CPU per row.
fn cpu_line(cpu: f64, secs: f64, rows: usize) -> String {
    format!(
        "  CPU during the import: {cpu:.1} s = {:.2} cores on average, {:.1} µs per row",
        cpu / secs,
        cpu * 1e6 / rows as f64
    )
}

fn status_kb(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs `f` and reports (seconds, peak growth of RSS in MB, peak growth of anonymous RSS
/// in MB) — the latter sampled every 10 ms; file-backed pages are SQLite's mmap of the
/// database file, i.e. page cache.
async fn measure<F, T>(f: F) -> (T, f64, f64, f64)
where
    F: std::future::Future<Output = T>,
{
    let _ = std::fs::write("/proc/self/clear_refs", "5"); // resets VmHWM
    let rss0 = status_kb("VmRSS:");
    let anon0 = status_kb("RssAnon:");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let peak_anon = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(anon0));
    let sampler = {
        let stop = stop.clone();
        let peak = peak_anon.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(status_kb("RssAnon:"), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let t = Instant::now();
    let out = f.await;
    let secs = t.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let hwm = status_kb("VmHWM:");
    let peak = peak_anon.load(std::sync::atomic::Ordering::Relaxed);
    (
        out,
        secs,
        (hwm.saturating_sub(rss0)) as f64 / 1024.0,
        (peak.saturating_sub(anon0)) as f64 / 1024.0,
    )
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Exports every contact in each format, timing it and measuring memory.
async fn exports(
    state: &magpie::state::SharedState,
    formats: &[magpie::exports::Format],
    save: Option<&std::path::Path>,
) {
    let me = {
        let mut db = state.store.read().await.unwrap();
        magpie::store::users::by_username(&mut db, "admin")
            .await
            .unwrap()
            .unwrap()
    };
    let total = {
        use magpie::store::Exec;
        let mut db = state.store.read().await.unwrap();
        // What an export without a search covers: the known contacts.
        db.fetch_i64(
            "SELECT COUNT(*) FROM contacts WHERE date_identified IS NOT NULL",
            vec![],
        )
        .await
        .unwrap()
        .unwrap_or(0) as f64
    };
    for format in formats.iter().copied() {
        let state = state.clone();
        let me = me.clone();
        let (result, secs, rss, anon) = measure(async move {
            magpie::exports::direct(&state, &me, format, &magpie::exports::Query::default()).await
        })
        .await;
        let (mut file, size) = result.expect("export");
        println!(
            "export {} of {total} contacts: {secs:.2} s = {:.0} rows/s, {:.1} MB; peak RSS growth {rss:.1} MB (anonymous memory {anon:.1} MB); load {}",
            format.as_str(),
            total / secs,
            size as f64 / 1e6,
            load()
        );
        if let Some(dir) = save {
            std::fs::create_dir_all(dir).unwrap();
            let path = dir.join(format!("contacts.{}", format.as_str()));
            let mut out = tokio::fs::File::create(&path).await.unwrap();
            tokio::io::copy(&mut file, &mut out).await.unwrap();
            println!("saved {}", path.display());
        }
    }
}

/// Exports from a database kept by an earlier run (`--keep`), once its free-text queue
/// is drained (the indexer would otherwise compete for the CPU).
async fn exports_of_kept(
    dir: &std::path::Path,
    formats: &[magpie::exports::Format],
    save: Option<&std::path::Path>,
) {
    use magpie::store::Exec;
    let config = magpie::config::Config::for_data_dir(dir, None);
    let running = magpie::server::start(config).await.expect("server starts");
    let state = running.state.clone();
    loop {
        let mut db = state.store.read().await.unwrap();
        let pending = db
            .fetch_i64("SELECT COUNT(*) FROM contacts_fts_pending", vec![])
            .await
            .unwrap()
            .unwrap_or(0);
        if pending == 0 {
            break;
        }
        println!("waiting for the free-text queue: {pending} contacts");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    println!("kept database {}; load before: {}", dir.display(), load());
    exports(&state, formats, save).await;
    drop(state);
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    magpie::cli::init_logging("off");
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let postgres = args.iter().any(|a| a == "--postgres");
    let skip_sqlite = args.iter().any(|a| a == "--only-postgres");
    let skip_export = args.iter().any(|a| a == "--no-export");
    let batch: Option<usize> = args
        .iter()
        .position(|a| a == "--batch")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok());
    let config = batch.map_or(String::new(), |b| format!("[import]\nbatch_rows = {b}\n"));
    let keep: Option<std::path::PathBuf> = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(Into::into);
    let formats: Vec<magpie::exports::Format> = args
        .iter()
        .position(|a| a == "--formats")
        .and_then(|i| args.get(i + 1))
        .map_or("csv,xlsx", String::as_str)
        .split(',')
        .map(|f| magpie::exports::Format::parse(f).expect("--formats csv,xlsx"))
        .collect();
    let save: Option<std::path::PathBuf> = args
        .iter()
        .position(|a| a == "--save")
        .and_then(|i| args.get(i + 1))
        .map(Into::into);
    if let Some(kept) = keep.as_ref().filter(|k| k.join("magpie.db").exists()) {
        exports_of_kept(kept, &formats, save.as_deref()).await;
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("magpie-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let (main_file, seed_file) = write_files(dir.path(), rows);
    let size_mb = std::fs::metadata(&main_file).unwrap().len() as f64 / 1e6;
    println!(
        "file: {rows} rows, 10 columns, {size_mb:.1} MB; {} of them match existing contacts",
        rows / 10
    );
    println!("load before: {}", load());

    if !skip_sqlite {
        // sqlite3's own .import into a bare table, for scale.
        let bare = dir.path().join("bare.db");
        let t = Instant::now();
        let status = std::process::Command::new("sqlite3")
            .arg(&bare)
            .arg("CREATE TABLE t (email TEXT, firstname TEXT, lastname TEXT, company TEXT, position TEXT, phone TEXT, city TEXT, zipcode TEXT, country TEXT, website TEXT);")
            .arg(".mode csv")
            .arg(format!(".import --skip 1 {} t", main_file.display()))
            .status()
            .expect("sqlite3 CLI");
        assert!(status.success());
        let sqlite3_secs = t.elapsed().as_secs_f64();
        let sqlite3_rate = rows as f64 / sqlite3_secs;
        println!(
            "sqlite3 .import (bare table, no indexes): {sqlite3_secs:.2} s, {sqlite3_rate:.0} rows/s"
        );

        let s = TestServer::start_with(Backend::Sqlite, &config).await;
        let (_, seed_secs, _, seeded) = import_file(&s, &seed_file).await;
        println!(
            "seeded {} existing contacts in {seed_secs:.1} s",
            seeded["progress"]["created"]
        );
        let (upload, secs, cpu, done) = import_file(&s, &main_file).await;
        let p = &done["progress"];
        let rate = rows as f64 / secs;
        println!(
            "SQLite import: upload {upload:.2} s; import {secs:.2} s = {rate:.0} rows/s (created {}, updated {}, failed {}); end to end {:.0} rows/s; load {}",
            p["created"],
            p["updated"],
            p["failed"],
            rows as f64 / (upload + secs),
            load()
        );
        println!("{}", cpu_line(cpu, secs, rows));
        println!(
            "ratio to sqlite3 .import: {:.1}x slower",
            sqlite3_rate / rate
        );

        // Exports of every contact.
        if !skip_export {
            exports(s.state(), &formats, save.as_deref()).await;
        }
        if let Some(kept) = &keep {
            std::fs::create_dir_all(kept).unwrap();
            let status = std::process::Command::new("sqlite3")
                .arg(s.data_dir.join("magpie.db"))
                .arg(format!(".backup {}", kept.join("magpie.db").display()))
                .status()
                .expect("sqlite3 CLI");
            assert!(status.success());
            println!("kept the database in {}", kept.display());
        }
        s.stop().await;
    }

    if postgres {
        let s = TestServer::start_with(Backend::Postgres, &config).await;
        let (_, seed_secs, _, seeded) = import_file(&s, &seed_file).await;
        println!(
            "PostgreSQL: seeded {} existing contacts in {seed_secs:.1} s",
            seeded["progress"]["created"]
        );
        let (upload, secs, cpu, done) = import_file(&s, &main_file).await;
        let p = &done["progress"];
        println!(
            "PostgreSQL import: upload {upload:.2} s; import {secs:.2} s = {:.0} rows/s (created {}, updated {}, failed {}); load {}",
            rows as f64 / secs,
            p["created"],
            p["updated"],
            p["failed"],
            load()
        );
        println!(
            "{} (Magpie's process only: PostgreSQL's own work is in its processes)",
            cpu_line(cpu, secs, rows)
        );
        s.stop().await;
    }
}

//! The contacts benchmark: seeds contacts through the batch API and measures the list API.
//!
//! ```sh
//! cargo run --release -p magpie-tests --bin magpie-bench -- --contacts 1000000 --backend sqlite
//! cargo run --release -p magpie-tests --bin magpie-bench -- --contacts 1000000 --backend postgres
//! ```
//!
//! PostgreSQL needs `MAGPIE_TEST_DATABASE_URL` (as for the tests). `--keep DIR` keeps the
//! seeded SQLite database in DIR and reuses it on the next run (skipping the seeding).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use magpie_tests::{Backend, json};
use serde_json::Value;

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Edsger",
    "Frances",
    "Tim",
    "Radia",
    "Guido",
    "Anita",
    "Bjarne",
    "Katherine",
    "Niklaus",
    "Sophie",
    "Lucas",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Mia",
    "Hugo",
    "Chloé",
    "Léa",
    "Jürgen",
    "Zoë",
    "Mateo",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Müller",
    "Schmidt",
    "Dubois",
    "Lefèvre",
    "Rossi",
    "Bianchi",
    "Novak",
    "Kowalski",
    "Smithson",
    "Goldsmith",
];
const DOMAINS: &[&str] = &[
    "gmail.com",
    "yahoo.com",
    "outlook.com",
    "hotmail.com",
    "example.org",
    "example.com",
    "acme.io",
    "mail.de",
    "proton.me",
    "fastmail.fm",
];
const CITIES: &[(&str, &str)] = &[
    ("London", "United Kingdom"),
    ("Paris", "France"),
    ("Berlin", "Germany"),
    ("Madrid", "Spain"),
    ("Rome", "Italy"),
    ("New York", "United States"),
    ("Chicago", "United States"),
    ("Toronto", "Canada"),
    ("Sydney", "Australia"),
    ("Lyon", "France"),
    ("Munich", "Germany"),
    ("Boston", "United States"),
    ("Dublin", "Ireland"),
    ("Amsterdam", "Netherlands"),
    ("Vienna", "Austria"),
];
const COMPANIES: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Soylent",
    "Vandelay",
    "Wonka",
];

/// A small deterministic generator so every run seeds the same data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn contact(i: u64, rng: &mut Rng) -> Value {
    // 3% anonymous visitors: no name, no email.
    if rng.chance(3) {
        let (city, country) = rng.pick(CITIES);
        return json!({"city": city, "country": country, "lastActive": format!("2024-{:02}-{:02} 12:00:00", 1 + i % 12, 1 + i % 28)});
    }
    let first = rng.pick(FIRST);
    let last = rng.pick(LAST);
    let domain = rng.pick(DOMAINS);
    let (city, country) = rng.pick(CITIES);
    let mut tags = vec![];
    if rng.chance(5) {
        tags.push("vip");
    }
    if rng.chance(20) {
        tags.push("newsletter");
    }
    let mut c = json!({
        "firstname": first,
        "lastname": last,
        "email": format!("{}.{}{}@{}", first.to_lowercase(), last.to_lowercase(), i, domain),
        "city": city,
        "country": country,
        "points": rng.next() % 200,
        "lastActive": format!("2024-{:02}-{:02} {:02}:{:02}:00", 1 + rng.next() % 12, 1 + rng.next() % 28, rng.next() % 24, rng.next() % 60),
        "tags": tags,
    });
    if rng.chance(30) {
        c["company"] = json!(rng.pick(COMPANIES));
    }
    if rng.chance(10) {
        c["owner"] = json!(1);
    }
    c
}

struct Args {
    contacts: u64,
    backend: Backend,
    keep: Option<std::path::PathBuf>,
    samples: usize,
    clients: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        contacts: 1_000_000,
        backend: Backend::Sqlite,
        keep: None,
        samples: 200,
        clients: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--contacts" => a.contacts = value().parse().expect("--contacts N"),
            "--backend" => {
                a.backend = if value() == "postgres" {
                    Backend::Postgres
                } else {
                    Backend::Sqlite
                }
            }
            "--keep" => a.keep = Some(value().into()),
            "--samples" => a.samples = value().parse().expect("--samples N"),
            "--clients" => a.clients = value().parse().expect("--clients N"),
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).unwrap();
            d.clone()
        }
        None => tempfile::tempdir().unwrap().keep(),
    };
    let (database_url, pg) = match args.backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.join("magpie.db").display()),
            None,
        ),
        Backend::Postgres => match &args.keep {
            // `--keep NAME` with PostgreSQL: a database of that name, kept (and reused).
            Some(name) => {
                let name = name
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("magpie_bench")
                    .replace('-', "_");
                let admin =
                    std::env::var("MAGPIE_TEST_DATABASE_URL").expect("MAGPIE_TEST_DATABASE_URL");
                let base = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(b, _)| b)
                    .to_owned();
                {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .execute(&mut conn)
                        .await;
                }
                (format!("{base}/{name}"), None)
            }
            None => {
                let (url, admin, name) = magpie_tests::create_pg_database().await;
                (url, Some((admin, name)))
            }
        },
    };
    let mut config = magpie::config::Config::for_data_dir(&dir, Some(database_url));
    config.admin_password = Some(magpie_tests::ADMIN_PASSWORD.into());
    let running = magpie::server::start(config).await.expect("server starts");
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let auth =
        |r: reqwest::RequestBuilder| r.basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD));

    let existing: u64 = {
        let r: Value = auth(client.get(format!(
            "{base}/api/contacts?search=is:anonymous%20OR%20!is:anonymous&limit=1"
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        r["total"].as_str().unwrap().parse().unwrap()
    };
    println!("backend: {:?}, data: {}", args.backend, dir.display());
    if existing < args.contacts {
        let todo = args.contacts - existing;
        println!(
            "seeding {todo} contacts through POST /api/contacts/batch/new (200 per request, {} clients)…",
            args.clients
        );
        let started = Instant::now();
        let cpu = magpie_tests::process_cpu_seconds();
        let batches = todo.div_ceil(200);
        let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..args.clients {
            let (client, base, next) = (client.clone(), base.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if b >= batches {
                        break;
                    }
                    let sent = Instant::now();
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (existing + b));
                    let from = existing + b * 200;
                    let to = (from + 200).min(existing + todo);
                    let body: Vec<Value> = (from..to).map(|i| contact(i, &mut rng)).collect();
                    let r = client
                        .post(format!("{base}/api/contacts/batch/new"))
                        .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    // The server rendered every contact; the client only checks for refusals:
                    // the contacts are a list only when every item was saved (else an object
                    // keyed by index, beside `errors`). Scanning the whole 1.3 MB answer took
                    // ~5% of the two cores the server shares with this client.
                    let answer = r.bytes().await.unwrap();
                    latencies.push(sent.elapsed());
                    if !answer.starts_with(b"{\"contacts\":[") {
                        panic!(
                            "seeding: items refused: {}",
                            String::from_utf8_lossy(&answer)
                        );
                    }
                    if b % 500 == 0 {
                        eprintln!("  … batch {b}/{batches}");
                    }
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.unwrap());
        }
        let secs = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let at =
            |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        println!(
            "batch create: {todo} contacts in {secs:.1} s = {:.0} contacts/s; per request of 200: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
            todo as f64 / secs,
            at(0.5),
            at(0.99),
            at(0.999),
            at(1.0)
        );
        // The benchmark's clients run in this process too: the figure is the server's
        // cost plus theirs (building and sending each body, reading each answer).
        let cpu = magpie_tests::process_cpu_seconds() - cpu;
        println!(
            "  CPU during the seeding (server and clients): {cpu:.1} s = {:.2} cores on average, {:.1} µs per contact",
            cpu / secs,
            cpu * 1e6 / todo as f64
        );
    }
    // Let SQLite/PostgreSQL settle their statistics for the planner.
    {
        let mut conn = running.state.store.write_conn().await.unwrap();
        use magpie::store::Exec;
        let _ = conn.execute_script("ANALYZE").await;
    }

    let queries: &[(&str, &str)] = &[
        ("first page, unfiltered", ""),
        ("email:someone@ (prefix)", "email:james.smith1"),
        ("email:%@example.org (suffix)", "email:%@example.org"),
        ("free text: smith", "smith"),
        ("tag:vip", "tag:vip"),
        ("!is:anonymous owner:admin", "!is:anonymous owner:admin"),
    ];
    println!("\n| query | total | p50 ms | p95 ms |\n|---|---|---|---|");
    for (label, q) in queries {
        let url = format!("{base}/api/contacts?limit=30&search={}", urlencode(q));
        let mut times = Vec::with_capacity(args.samples);
        let mut total = String::new();
        for i in 0..args.samples + 10 {
            let t = Instant::now();
            let r = auth(client.get(&url)).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            if i >= 10 {
                times.push(t.elapsed());
            }
            total = body["total"].as_str().unwrap_or("?").to_owned();
        }
        times.sort();
        println!(
            "| {label} | {total} | {:.1} | {:.1} |",
            percentile(&times, 0.5),
            percentile(&times, 0.95)
        );
    }
    running.shutdown().await.unwrap();
    if let Some((admin, name)) = pg {
        magpie_tests::drop_pg_database(&admin, &name).await;
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

//! Benchmark of the web admin's heavy pages (not a test: it reports figures).
//!
//! Seeds a fresh database directly through the store — N contacts (default 1,000,000)
//! and one contact with M events (default 50,000) — starts the server, logs in, and
//! measures the server-rendered pages over HTTP, one request at a time:
//! the contacts list (first page), the list with prefix searches, and the contact page
//! of the busy contact (first history page + engagement chart).
//!
//! ```sh
//! cargo run --release -p magpie-tests --bin bench-admin -- [--contacts N] [--events M]
//!     [--requests R] [--backend sqlite|postgres] [--keep]
//! ```
//! PostgreSQL needs `MAGPIE_TEST_DATABASE_URL` (as the tests do).

use std::collections::HashMap;
use std::time::Instant;

use magpie::store::Value;
use magpie::store::contacts::NewContact;
use magpie::timeline::NewEvent;
use magpie_tests::{ADMIN_PASSWORD, Backend, TestServer, json};

/// Syllables for names: 900 first names and 27,000 last names, so that prefixes are as
/// selective as in real data (a uniform handful of names would make every prefix match
/// a tenth of the table).
const SYL: &[&str] = &[
    "ka", "lo", "mi", "ra", "te", "no", "su", "vi", "da", "re", "an", "el", "is", "or", "un", "ba",
    "co", "fe", "gi", "ha", "jo", "ki", "le", "ma", "ne", "pa", "qu", "ri", "sa", "to",
];
const CITIES: &[&str] = &[
    "Berlin", "Paris", "London", "Lyon", "Madrid", "Oslo", "Vienna", "Prague", "Lisbon", "Dublin",
];
const COUNTRIES: &[&str] = &[
    "Germany",
    "France",
    "United Kingdom",
    "France",
    "Spain",
    "Norway",
    "Austria",
    "Czechia",
    "Portugal",
    "Ireland",
];

/// A deterministic scramble of `i` (so names do not follow ids).
fn mix(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

fn capitalize(s: String) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn name_of(i: usize) -> (String, String) {
    let h = mix(i as u64) as usize;
    let n = SYL.len();
    let first = format!("{}{}", SYL[h % n], SYL[(h / n) % n]);
    let last = format!(
        "{}{}{}",
        SYL[(h / n / n) % n],
        SYL[(h / n / n / n) % n],
        SYL[(h / n / n / n / n) % n]
    );
    (capitalize(first), capitalize(last))
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn seed_contacts(s: &TestServer, n: usize) {
    let state = s.state();
    let fields = {
        let mut db = state.store.read().await.unwrap();
        state.fields(&mut db).await.unwrap()
    };
    let now = magpie::time::now_ms();
    let started = Instant::now();
    let batch = 20_000;
    let mut done = 0;
    while done < n {
        let end = (done + batch).min(n);
        let rows: Vec<NewContact> = (done..end)
            .map(|i| {
                let (first, last) = name_of(i);
                let mut values = HashMap::new();
                values.insert(
                    "email".to_owned(),
                    Value::Text(format!(
                        "{}.{}{}@example{}.org",
                        first.to_lowercase(),
                        last.to_lowercase(),
                        i % 1000,
                        i % 50
                    )),
                );
                values.insert("firstname".to_owned(), Value::Text(first));
                values.insert("lastname".to_owned(), Value::Text(last));
                values.insert(
                    "city".to_owned(),
                    Value::Text(CITIES[i % CITIES.len()].to_owned()),
                );
                values.insert(
                    "country".to_owned(),
                    Value::Text(COUNTRIES[i % COUNTRIES.len()].to_owned()),
                );
                NewContact {
                    date_added: now - (n - i) as i64 * 1000,
                    date_identified: Some(now - (n - i) as i64 * 1000),
                    last_active: if i % 3 == 0 {
                        None
                    } else {
                        Some(now - (i as i64 * 7919) % (200 * 86_400_000))
                    },
                    created_by: None,
                    owner_id: None,
                    stage_id: None,
                    points: (i % 500) as i64,
                    preferred_profile_image: None,
                    values,
                    source: "import",
                }
            })
            .collect();
        let mut tx = state.store.begin().await.unwrap();
        magpie::store::contacts::insert(&mut tx, &fields, &rows)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        done = end;
        if done % 200_000 == 0 || done == n {
            eprintln!(
                "  {done} contacts ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
}

async fn seed_events(s: &TestServer, contact: i64, m: usize) {
    let now = magpie::time::now_ms();
    let span = 240 * 86_400_000i64; // eight months
    let events: Vec<NewEvent> = (0..m)
        .map(|i| {
            let at = now - (i as i64 * span / m as i64);
            match i % 10 {
                0 => NewEvent::new(contact, "point.gained", at, json!({"delta": 5, "points": i, "action": "page"})),
                1 => NewEvent::new(contact, "form.submitted", at, json!({"form": "Newsletter", "fields": {"email": "x@example.org"}})),
                _ => NewEvent::new(contact, "page.hit", at, json!({"url": format!("https://shop.example/p/{i}"), "title": format!("Product {i}"), "referrer": "https://search.example/"})),
            }
        })
        .collect();
    for chunk in events.chunks(10_000) {
        let mut tx = s.state().store.begin().await.unwrap();
        magpie::store::events::insert(&mut tx, chunk).await.unwrap();
        tx.commit().await.unwrap();
    }
}

async fn login(s: &TestServer) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(s.url("/login")).send().await.unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("magpie_login_csrf="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body = page.text().await.unwrap();
    let marker = "name=\"_csrf\" value=\"";
    let start = body.find(marker).unwrap() + marker.len();
    let token = &body[start..start + body[start..].find('"').unwrap()];
    let r = http
        .post(s.url("/login"))
        .header("cookie", cookie)
        .form(&[
            ("_csrf", token),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("magpie_session="))
        .expect("logged in")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (http, session)
}

async fn measure(
    http: &reqwest::Client,
    session: &str,
    url: &str,
    requests: usize,
) -> (f64, f64, f64, usize) {
    let mut times = Vec::with_capacity(requests);
    let mut size = 0;
    for i in 0..requests + 10 {
        let t = Instant::now();
        let r = http
            .get(url)
            .header("cookie", session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
        size = r.bytes().await.unwrap().len();
        if i >= 10 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    (
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        *times.last().unwrap(),
        size,
    )
}

#[tokio::main]
async fn main() {
    let contacts: usize = arg("--contacts", "1000000").parse().expect("--contacts N");
    let events: usize = arg("--events", "50000").parse().expect("--events M");
    let requests: usize = arg("--requests", "200").parse().expect("--requests R");
    let backend = match arg("--backend", "sqlite").as_str() {
        "postgres" => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    eprintln!("seeding {contacts} contacts and {events} events on {backend:?} …");
    let s = TestServer::start(backend).await;
    seed_contacts(&s, contacts).await;
    let busy = s.create_contact(json!({"firstname": "Busy", "lastname": "Bee", "email": "busy@example.org", "points": 42})).await;
    seed_events(&s, busy, events).await;
    if backend == Backend::Sqlite {
        let mut c = s.state().store.write_conn().await.unwrap();
        use magpie::store::Exec;
        c.execute_script("ANALYZE").await.unwrap();
    } else {
        let mut c = s.state().store.write_conn().await.unwrap();
        use magpie::store::Exec;
        c.execute_script("VACUUM ANALYZE").await.unwrap();
    }
    {
        // The contact page's queries, directly, so a failure names its query.
        let mut db = s.state().store.read().await.unwrap();
        let now = magpie::time::now_ms();
        let bounds: Vec<i64> = (0..=6).map(|i| now - (6 - i) * 30 * 86_400_000).collect();
        magpie::store::events::monthly_totals(&mut db, busy, &bounds)
            .await
            .expect("monthly totals");
        magpie::store::events::page(
            &mut db,
            busy,
            &Default::default(),
            0,
            25,
            &Default::default(),
        )
        .await
        .expect("events page");
        magpie::store::events::type_counts(&mut db, busy)
            .await
            .expect("type counts");
    }
    let (http, session) = login(&s).await;
    let pages: Vec<(String, String)> = vec![
        (
            "list, first page (25, by last active)".into(),
            "/contacts".into(),
        ),
        (
            "list, prefix search `email:kalo.mi` (~40 matches)".into(),
            "/contacts?q=email%3Akalo.mi".into(),
        ),
        (
            "list, prefix search `name:kalo` (~1,100 matches)".into(),
            "/contacts?q=name%3Akalo".into(),
        ),
        (
            "list, free text `lomira` (trigram, contains)".into(),
            "/contacts?q=lomira".into(),
        ),
        (
            "list, by points, page 2 of 100".into(),
            "/contacts?sort=points&dir=desc&limit=100&page=2".into(),
        ),
        (
            format!("contact page, {events} events"),
            format!("/contacts/{busy}"),
        ),
        (
            "contact page, history filtered by text".into(),
            format!("/contacts/{busy}?eq=Product+4999"),
        ),
    ];
    println!(
        "\n{backend:?}, {contacts} contacts, {events} events on one contact, {requests} sequential requests per page after 10 warm-up requests\n"
    );
    println!("| page | p50 ms | p95 ms | max ms | bytes |");
    println!("|---|---:|---:|---:|---:|");
    for (name, path) in &pages {
        let (p50, p95, max, size) = measure(&http, &session, &s.url(path), requests).await;
        println!("| {name} | {p50:.1} | {p95:.1} | {max:.1} | {size} |");
    }
    if std::env::args().any(|a| a == "--keep") {
        eprintln!("kept the database: {}", s.database_url);
        std::process::exit(0);
    }
    s.stop().await;
}

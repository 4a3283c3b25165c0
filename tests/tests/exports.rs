//! Exports end to end, on both databases: CSV by an emailed link (a local SMTP receiver
//! gets the mail; the link works for the right user only, and not after expiry), the
//! outbox without SMTP, XLSX read back with calamine, formula injection, the round
//! trip (an exported CSV imported into an empty Magpie exports the same again), and the
//! exact cells of tricky values on SQLite's fast path and on the cell path alike.

mod common;

use std::time::Duration;

use common::*;
use magpie_tests::{Backend, TestServer, both_backends, json};

both_backends!(
    csv_export_by_emailed_link,
    export_without_smtp_goes_to_the_outbox,
    xlsx_export,
    csv_round_trip,
    exact_cells_on_every_path,
    an_abandoned_direct_export_leaves_no_file,
    refusals_selections_and_failures
);

async fn seed(s: &TestServer) {
    s.post("/api/stages/new", json!({"name": "Lead"}))
        .await
        .expect(201);
    s.create_contact(json!({"email": "vip1@x.org", "firstname": "=1+1", "lastname": "Formula", "tags": ["vip"], "points": 7, "stage": 1, "owner": 1})).await;
    s.create_contact(json!({"email": "vip2@x.org", "firstname": "Ann, \"the\" one", "lastname": "@cmd", "company": "-2+3", "tags": ["vip", "b"], "city": "Zürich"})).await;
    s.create_contact(json!({"email": "plain@x.org", "firstname": "Plain"}))
        .await;
}

async fn csv_export_by_emailed_link(backend: Backend) {
    let (port, mut mail) = smtp_receiver().await;
    let config =
        format!("[smtp]\nurl = \"smtp://127.0.0.1:{port}\"\nfrom = \"magpie@example.com\"\n");
    let s = TestServer::start_with(backend, &config).await;
    add_user(&s, "alice", "alice-password", "alice@example.org", false).await;
    add_user(&s, "bob", "bob-password-1", "bob@example.org", false).await;
    seed(&s).await;

    let r = post_as(
        &s,
        "alice",
        "alice-password",
        "/api/exports",
        json!({"format": "csv", "search": "tag:vip"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let export_id = r.body["export"]["id"].as_i64().unwrap();
    let message = tokio::time::timeout(Duration::from_secs(60), mail.recv())
        .await
        .expect("the email arrives")
        .unwrap();
    assert!(
        message.contains("To: alice@example.org") || message.contains("To: <alice@example.org>"),
        "{message}"
    );
    assert!(
        message.contains("Subject: Your Magpie export is ready"),
        "{message}"
    );
    // Mail clients need MIME-Version to read the encoded body (and the link in it).
    assert!(message.contains("MIME-Version: 1.0"), "{message}");
    assert!(message.contains("Message-ID: <"), "{message}");
    assert!(
        message.contains("@example.com>"),
        "the sender's domain: {message}"
    );
    let link = find_link(&message).expect("a download link in the email");
    assert!(
        path_of(&link).starts_with(&format!("/exports/{export_id}/download?token=")),
        "the link is the admin's: {link}"
    );
    let path = api_path_of(&link);

    let started = std::time::Instant::now();
    let status = loop {
        let status = get_as(
            &s,
            "alice",
            "alice-password",
            &format!("/api/exports/{export_id}"),
        )
        .await
        .expect(200);
        if status["export"]["email"]["status"] != "sending"
            || started.elapsed() > Duration::from_secs(30)
        {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        status["export"]["status"], "done",
        "the link works when the email arrives"
    );
    assert_eq!(status["export"]["rows"], 2);
    assert_eq!(status["export"]["email"]["status"], "sent");

    // The right user downloads it.
    let r = get_as(&s, "alice", "alice-password", &path).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    let disposition = r.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"contacts-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let rows = parse_csv(&r.text);
    let header = &rows[0];
    assert_eq!(header[0], "id");
    for col in [
        "email",
        "firstname",
        "points",
        "last_active",
        "tags",
        "owner",
        "stage",
        "date_added",
        "date_modified",
        "date_identified",
    ] {
        assert!(header.contains(&col.to_owned()), "{col} in {header:?}");
    }
    let recs = records(&rows);
    assert_eq!(recs.len(), 2);
    let v1 = recs.iter().find(|r| r["email"] == "vip1@x.org").unwrap();
    assert_eq!(v1["firstname"], "'=1+1", "formula neutralised");
    assert_eq!(v1["points"], "7");
    assert_eq!(v1["tags"], "vip");
    assert_eq!(v1["owner"], "admin");
    assert_eq!(v1["stage"], "Lead");
    let v2 = recs.iter().find(|r| r["email"] == "vip2@x.org").unwrap();
    assert_eq!(v2["firstname"], "Ann, \"the\" one");
    assert_eq!(v2["lastname"], "'@cmd");
    assert_eq!(v2["company"], "'-2+3");
    assert_eq!(v2["city"], "Zürich");
    assert_eq!(v2["tags"], "b|vip");

    // Another user, a wrong token: refused.
    let r = get_as(&s, "bob", "bob-password-1", &path).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error_message().contains("another user"), "{}", r.text);
    let r = get_as(
        &s,
        "bob",
        "bob-password-1",
        &format!("/api/exports/{export_id}"),
    )
    .await;
    assert_eq!(r.status, 404, "exports are private");
    let r = get_as(
        &s,
        "alice",
        "alice-password",
        &format!("/api/exports/{export_id}/download?token=nope"),
    )
    .await;
    assert_eq!(r.status, 403);
    // Without the link, another user cannot tell an export that exists from one that
    // does not.
    let guess = get_as(
        &s,
        "bob",
        "bob-password-1",
        &format!("/api/exports/{export_id}/download?token=nope"),
    )
    .await;
    let nothing = get_as(
        &s,
        "bob",
        "bob-password-1",
        "/api/exports/987654/download?token=nope",
    )
    .await;
    assert_eq!((guess.status.as_u16(), nothing.status.as_u16()), (403, 403));
    assert_eq!(guess.text, nothing.text);
    let r = s.send(s.client.get(s.url(&path))).await;
    assert_eq!(r.status, 401, "no credentials, no file");

    // A notification with the link.
    let n = get_as(&s, "alice", "alice-password", "/api/notifications")
        .await
        .expect(200);
    assert_eq!(n["unread"], 1);
    assert_eq!(n["notifications"][0]["link"], link.as_str());

    // After expiry: refused.
    {
        use magpie::store::Exec;
        let mut tx = s.state().store.begin().await.unwrap();
        tx.execute(
            "UPDATE exports SET expires_at = 1 WHERE id = $1",
            vec![magpie::store::Value::Int(export_id)],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let r = get_as(&s, "alice", "alice-password", &path).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error_message().contains("expired"), "{}", r.text);

    // Selected ids; a bad search is a 400 at once.
    let ids = s.get("/api/contacts?search=email:plain").await.expect(200)["contacts"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let r = post_as(
        &s,
        "alice",
        "alice-password",
        "/api/exports",
        json!({"ids": [ids.parse::<i64>().unwrap()]}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let message = tokio::time::timeout(Duration::from_secs(60), mail.recv())
        .await
        .expect("second email")
        .unwrap();
    let r = get_as(
        &s,
        "alice",
        "alice-password",
        &api_path_of(&find_link(&message).unwrap()),
    )
    .await;
    let recs = records(&parse_csv(&r.text));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["email"], "plain@x.org");
    let r = post_as(
        &s,
        "alice",
        "alice-password",
        "/api/exports",
        json!({"search": "(unclosed"}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    s.stop().await;
}

async fn export_without_smtp_goes_to_the_outbox(backend: Backend) {
    let s = TestServer::start(backend).await;
    add_user(&s, "carol", "carol-password", "carol@example.org", false).await;
    seed(&s).await;
    let r = post_as(
        &s,
        "carol",
        "carol-password",
        "/api/exports",
        json!({"format": "xlsx"}),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["export"]["id"].as_i64().unwrap();
    let started = std::time::Instant::now();
    let export = loop {
        let e = get_as(&s, "carol", "carol-password", &format!("/api/exports/{id}"))
            .await
            .expect(200);
        if e["export"]["status"] == "done" && e["export"]["email"]["status"] != "sending" {
            break e["export"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(export["rows"], 3);
    assert!(
        export["email"]["status"]
            .as_str()
            .unwrap()
            .contains("outbox"),
        "{export}"
    );
    let eml: Vec<_> = std::fs::read_dir(s.data_dir.join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(eml.len(), 1);
    assert_eq!(eml[0].extension().unwrap(), "eml");
    let text = std::fs::read_to_string(&eml[0]).unwrap();
    assert!(text.contains("carol@example.org"));
    let link = find_link(&text).unwrap_or_else(|| panic!("link in the .eml: {text}"));
    let r = get_as(&s, "carol", "carol-password", &api_path_of(&link)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    s.stop().await;
}

async fn xlsx_export(backend: Backend) {
    use calamine::{Data, Reader, Xlsx};
    let s = TestServer::start(backend).await;
    seed(&s).await;
    let r = s
        .client
        .get(s.url("/api/exports/direct?format=xlsx&search=tag:vip"))
        .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .ends_with(".xlsx\"")
    );
    let bytes = r.bytes().await.unwrap();
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec()))
        .expect("a valid xlsx");
    let sheets = book.sheet_names();
    assert_eq!(sheets, vec!["Contacts 1".to_owned()]);
    let range = book.worksheet_range(&sheets[0]).unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(|r| r.to_vec()).collect();
    assert_eq!(rows.len(), 3, "header + 2 contacts");
    let header: Vec<String> = rows[0].iter().map(|c| c.to_string()).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let vip1 = rows
        .iter()
        .find(|r| r[col("email")] == Data::String("vip1@x.org".into()))
        .unwrap();
    assert_eq!(
        vip1[col("firstname")],
        Data::String("'=1+1".into()),
        "no formula runs"
    );
    assert_eq!(vip1[col("points")], Data::Float(7.0));
    assert!(matches!(vip1[col("id")], Data::Float(_)));
    assert_eq!(vip1[col("stage")], Data::String("Lead".into()));
    assert!(
        matches!(vip1[col("date_added")], Data::DateTime(_)),
        "dates are date cells: {:?}",
        vip1[col("date_added")]
    );
    let vip2 = rows
        .iter()
        .find(|r| r[col("email")] == Data::String("vip2@x.org".into()))
        .unwrap();
    assert_eq!(vip2[col("lastname")], Data::String("'@cmd".into()));
    assert_eq!(vip2[col("city")], Data::String("Zürich".into()));
    assert_eq!(vip2[col("tags")], Data::String("b|vip".into()));

    // CSV directly too; a bad filter is a 400.
    let r = s.get("/api/exports/direct?format=csv&where[0][col]=email&where[0][expr]=eq&where[0][val]=plain@x.org").await;
    assert_eq!(r.status, 200);
    let recs = records(&parse_csv(&r.text));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["firstname"], "Plain");
    let r = s
        .get("/api/exports/direct?format=csv&where[0][col]=nope&where[0][expr]=eq&where[0][val]=1")
        .await;
    assert_eq!(r.status, 400);
    let r = s.get("/api/exports/direct?format[]=csv").await;
    assert_eq!(r.status, 400, "a list is not a format: {}", r.text);
    s.stop().await;
}

async fn csv_round_trip(backend: Backend) {
    let fields = [
        json!({"label": "Shoe size", "alias": "shoe_size", "type": "number", "properties": {"scale": 1}}),
        json!({"label": "Newsletter", "alias": "newsletter", "type": "boolean"}),
        json!({"label": "Colours", "alias": "colours", "type": "multiselect", "properties": {"list": "red|green|blue"}}),
        json!({"label": "Birthday", "alias": "birthday", "type": "date"}),
        json!({"label": "Bio", "alias": "bio", "type": "textarea"}),
        json!({"label": "Met at", "alias": "met_at", "type": "datetime"}),
    ];
    let a = TestServer::start(backend).await;
    for f in &fields {
        a.post("/api/fields/contact/new", f.clone())
            .await
            .expect(201);
    }
    a.post("/api/stages/new", json!({"name": "Customer"}))
        .await
        .expect(201);
    a.create_contact(json!({
        "email": "ada@example.org", "firstname": "Ada", "lastname": "Lovelace", "company": "Analytical, \"Engines\"",
        "shoe_size": 38.5, "newsletter": true, "colours": ["red", "blue"], "birthday": "1815-12-10",
        "bio": "Line one\nLine two, with \"quotes\"", "met_at": "2024-05-01 12:30:00", "points": 42,
        "lastActive": "2024-06-01 08:00:00", "tags": ["math", "vip"], "owner": 1, "stage": 1, "website": "https://ada.example.org",
    }))
    .await;
    a.create_contact(json!({"email": "formula@example.org", "firstname": "=HYPERLINK(\"x\")", "lastname": "+1 (555) 0100", "city": "-", "phone": "+44 20 7946 0000", "newsletter": false, "shoe_size": -3}))
        .await;
    a.create_contact(json!({"email": "uni@example.org", "firstname": "Zoë", "lastname": "Ørsted", "city": "Zürich", "country": "Switzerland", "timezone": "Europe/Zurich"})).await;
    // Texts an import would read otherwise: NULL (which clears), tags holding the
    // separators.
    a.create_contact(json!({"email": "null@example.org", "firstname": "NULL", "lastname": "'NULL", "tags": ["x,y"]}))
        .await;
    a.create_contact(json!({"email": "pipes@example.org", "tags": ["a|b", "c\\d", "e"]}))
        .await;
    let exported = a.get("/api/exports/direct?format=csv").await;
    assert_eq!(exported.status, 200);
    a.stop().await;

    let b = TestServer::start(backend).await;
    for f in &fields {
        b.post("/api/fields/contact/new", f.clone())
            .await
            .expect(201);
    }
    let import = upload(&b, "export.csv", exported.text.clone()).await;
    let unmapped: Vec<&str> = import["preview"]["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["field"].is_null())
        .map(|m| m["header"].as_str().unwrap())
        .collect();
    assert_eq!(
        unmapped,
        vec!["date_modified"],
        "every other column maps back by itself"
    );
    let done = run_import(&b, import["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(done["progress"]["created"], 5, "{done}");
    assert_eq!(done["progress"]["failed"], 0, "{done}");
    let again = b.get("/api/exports/direct?format=csv").await;
    b.stop().await;

    // Everything but the ids and the modification dates is the same.
    let normalise = |text: &str| {
        let rows = parse_csv(text);
        let header = rows[0].clone();
        let keep: Vec<usize> = (0..header.len())
            .filter(|i| !["id", "date_modified"].contains(&header[*i].as_str()))
            .collect();
        let mut body: Vec<Vec<String>> = rows
            .iter()
            .map(|r| keep.iter().map(|i| r[*i].clone()).collect())
            .collect();
        let head = body.remove(0);
        body.sort();
        (head, body)
    };
    let (h1, r1) = normalise(&exported.text);
    let (h2, r2) = normalise(&again.text);
    assert_eq!(h1, h2);
    assert_eq!(r1.len(), 5);
    let cell = |email: &str, column: &str| {
        let at = h1.iter().position(|h| h == column).unwrap();
        let email_at = h1.iter().position(|h| h == "email").unwrap();
        r1.iter().find(|r| r[email_at] == email).unwrap()[at].clone()
    };
    assert_eq!(cell("null@example.org", "firstname"), "'NULL");
    assert_eq!(cell("null@example.org", "lastname"), "''NULL");
    assert_eq!(cell("null@example.org", "tags"), "x\\,y");
    assert_eq!(cell("pipes@example.org", "tags"), "a\\|b|c\\\\d|e");
    for (x, y) in r1.iter().zip(&r2) {
        for ((h, v1), v2) in h1.iter().zip(x).zip(y) {
            assert_eq!(v1, v2, "column {h} changed in the round trip");
        }
    }
}

/// The `admin` user, for calling `exports::*` directly.
async fn admin(s: &TestServer) -> magpie::users::User {
    let mut db = s.state().store.read().await.unwrap();
    magpie::store::users::by_username(&mut db, "admin")
        .await
        .unwrap()
        .unwrap()
}

/// The whole export file, as `exports::direct` writes it (`cells`: read as cells, as on
/// PostgreSQL, instead of SQLite's lines).
async fn export_bytes(
    s: &TestServer,
    format: magpie::exports::Format,
    q: &magpie::exports::Query,
    cells: bool,
) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let me = admin(s).await;
    let (mut file, size) = if cells {
        magpie::exports::direct_as_cells(s.state(), &me, format, q).await
    } else {
        magpie::exports::direct(s.state(), &me, format, q).await
    }
    .expect("export");
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    bytes
}

/// Every sheet's cells of an XLSX file.
fn xlsx_cells(bytes: Vec<u8>) -> Vec<Vec<Vec<calamine::Data>>> {
    use calamine::{Reader, Xlsx};
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("a valid xlsx");
    book.sheet_names()
        .iter()
        .map(|name| {
            let range = book.worksheet_range(name).unwrap();
            range.rows().map(|r| r.to_vec()).collect()
        })
        .collect()
}

/// SQLite builds each page of an export as text (one value per page for sqlx); the
/// cells must be exactly those of the usual path (PostgreSQL's): quoting, formula
/// neutralising, unicode, NULLs, dates (before 1970 too), numbers, tags, owner, stage,
/// over several pages, for a plain export, a search and selected ids — and values the
/// text cannot carry (separators, a REAL where an integer belongs) still come out right.
async fn exact_cells_on_every_path(backend: Backend) {
    use magpie::exports::{Format, Query};
    let s = TestServer::start(backend).await;
    for f in [
        json!({"label": "Shoe size", "alias": "shoe_size", "type": "number"}),
        json!({"label": "Newsletter", "alias": "newsletter", "type": "boolean"}),
        json!({"label": "Bio", "alias": "bio", "type": "textarea"}),
        json!({"label": "Birthday", "alias": "birthday", "type": "date"}),
        json!({"label": "Met at", "alias": "met_at", "type": "datetime"}),
    ] {
        s.post("/api/fields/contact/new", f).await.expect(201);
    }
    let stage = s
        .post("/api/stages/new", json!({"name": "=Stage, \"one\""}))
        .await
        .expect(201)["stage"]["id"]
        .as_i64()
        .unwrap();
    let tricky = s
        .create_contact(json!({
            "email": "tricky@example.org",
            "firstname": "Ann, \"the\" one",
            "lastname": "=HYPERLINK(\"x\")",
            "company": "+1 (555) 0100",
            "position": "-",
            "city": "@home",
            "state": "-5",
            "zipcode": "'=x",
            "address1": "'-5",
            "address2": "Zoë Ørsted 日本 🎉",
            "bio": "\tfirst\r\nsecond, \"third\"",
            "shoe_size": 38.5,
            "newsletter": true,
            "birthday": "1815-12-10",
            "met_at": "2024-05-01 12:30:00",
            "attribution": 0.1,
            "points": -5,
            "lastActive": "1969-12-31 23:59:59",
            "tags": ["vip", "alpha"],
            "owner": 1,
            "stage": stage,
        }))
        .await;
    let nulls = s
        .create_contact(json!({"email": "nulls@example.org", "tags": ["=evil"]}))
        .await;
    // Several pages (2,000 rows each), some tagged, some with numbers.
    for chunk in 0..3 {
        let batch: Vec<serde_json::Value> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| {
                let mut c = json!({"email": format!("bulk{i}@example.org"), "firstname": format!("Bulk {i}"), "phone": format!("+49 30 {i:07}")});
                if i % 7 == 0 {
                    c["tags"] = json!(["vip", format!("t{}", i % 3)]);
                }
                if i % 5 == 0 {
                    c["shoe_size"] = json!(f64::from(i) / 8.0);
                    c["newsletter"] = json!(i % 2 == 0);
                }
                c
            })
            .collect();
        for part in batch.chunks(200) {
            s.post("/api/contacts/batch/new", json!(part))
                .await
                .expect(201);
        }
    }

    // The cells of the tricky contacts, on every backend and path.
    for cells in [false, true] {
        let text = String::from_utf8(export_bytes(&s, Format::Csv, &Query::default(), cells).await)
            .unwrap();
        assert!(
            text.contains("\"Ann, \"\"the\"\" one\""),
            "RFC 4180 quoting"
        );
        let rows = parse_csv(&text);
        let recs = records(&rows);
        assert_eq!(recs.len(), 3002);
        let t = recs.iter().find(|r| r["id"] == tricky.to_string()).unwrap();
        for (col, want) in [
            ("email", "tricky@example.org"),
            ("firstname", "Ann, \"the\" one"),
            ("lastname", "'=HYPERLINK(\"x\")"),
            ("company", "'+1 (555) 0100"),
            ("position", "'-"),
            ("city", "'@home"),
            ("state", "-5"),
            ("zipcode", "''=x"),
            ("address1", "'-5"),
            ("address2", "Zoë Ørsted 日本 🎉"),
            ("bio", "'\tfirst\r\nsecond, \"third\""),
            ("shoe_size", "38.5"),
            ("newsletter", "1"),
            ("birthday", "1815-12-10"),
            ("met_at", "2024-05-01 12:30:00"),
            ("attribution", "0.1"),
            ("points", "-5"),
            ("last_active", "1969-12-31 23:59:59"),
            ("tags", "alpha|vip"),
            ("owner", "admin"),
            ("stage", "'=Stage, \"one\""),
            ("mobile", ""),
        ] {
            assert_eq!(t[col], want, "{col} (cells: {cells})");
        }
        let n = recs.iter().find(|r| r["id"] == nulls.to_string()).unwrap();
        for (col, value) in n {
            let want = match col.as_str() {
                "id" => nulls.to_string(),
                "email" => "nulls@example.org".to_owned(),
                "tags" => "'=evil".to_owned(),
                "points" => "0".to_owned(),
                "date_added" | "date_modified" | "date_identified" => {
                    assert!(
                        chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S").is_ok(),
                        "{col}: {value}"
                    );
                    continue;
                }
                _ => String::new(),
            };
            assert_eq!(value, &want, "{col} (cells: {cells})");
        }
    }

    // Values Magpie never writes itself, put there behind its back one at a time (each
    // must make its page fall back on its own): separators inside a value, a REAL where
    // an integer belongs, text in a date or number column.
    if backend == Backend::Sqlite {
        use magpie::store::Exec;
        let cases = [
            ("city", "'a' || char(31) || 'b'", "bulk10", "a\u{1f}b"),
            ("city", "'c' || char(30) || 'd'", "bulk2500", "c\u{1e}d"),
            ("city", "char(30)", "bulk2999", "\u{1e}"),
            ("points", "2.75", "bulk11", "2"),
            ("points", "'many'", "bulk11", "0"),
            ("last_active", "'soon'", "bulk12", ""),
            ("last_active", "1.5e12", "bulk12", "2017-07-14 02:40:00"),
            ("owner_id", "1.0", "bulk12", "admin"),
            (
                "last_active",
                "1500000000000.5",
                "bulk16",
                "2017-07-14 02:40:00",
            ),
            ("newsletter", "0.5", "bulk13", "0.5"),
            ("shoe_size", "'big'", "bulk14", "big"),
            (
                "shoe_size",
                "0.30000000000000004",
                "bulk15",
                "0.30000000000000004",
            ),
        ];
        for (col, value, who, want) in cases {
            let email = format!("{who}@example.org");
            let set = |value: &str| {
                format!("UPDATE contacts SET {col} = {value} WHERE email = '{email}'")
            };
            let mut tx = s.state().store.begin().await.unwrap();
            let old = tx
                .fetch_optional(
                    &format!("SELECT quote({col}) FROM contacts WHERE email = '{email}'"),
                    vec![],
                )
                .await
                .unwrap()
                .unwrap()
                .at(0)
                .as_str()
                .unwrap()
                .to_owned();
            tx.execute(&set(value), vec![]).await.unwrap();
            tx.commit().await.unwrap();
            let fast = export_bytes(&s, Format::Csv, &Query::default(), false).await;
            let slow = export_bytes(&s, Format::Csv, &Query::default(), true).await;
            let recs = records(&parse_csv(std::str::from_utf8(&fast).unwrap()));
            let got = recs.iter().find(|r| r["email"] == email).unwrap();
            assert_eq!(got[col.trim_end_matches("_id")], want, "{col} = {value}");
            assert!(fast == slow, "{col} = {value}: the paths differ");
            let mut tx = s.state().store.begin().await.unwrap();
            tx.execute(&set(&old), vec![]).await.unwrap();
            tx.commit().await.unwrap();
        }
    }

    // Byte for byte (CSV) and cell for cell (XLSX), the two paths agree.
    let some: Vec<i64> = (tricky - 5..tricky + 2600)
        .step_by(3)
        .chain([tricky, 999_999])
        .collect();
    let queries = [
        Query::default(),
        Query {
            search: "tag:vip".into(),
            ..Query::default()
        },
        Query {
            search: "bulk1".into(),
            ..Query::default()
        },
        Query {
            ids: Some(some),
            ..Query::default()
        },
    ];
    for q in &queries {
        let fast = export_bytes(&s, Format::Csv, q, false).await;
        let slow = export_bytes(&s, Format::Csv, q, true).await;
        assert!(
            parse_csv(std::str::from_utf8(&fast).unwrap()).len() > 1,
            "{q:?}"
        );
        assert!(fast == slow, "CSV of {q:?} differs between the paths");
        let fast = xlsx_cells(export_bytes(&s, Format::Xlsx, q, false).await);
        let slow = xlsx_cells(export_bytes(&s, Format::Xlsx, q, true).await);
        assert_eq!(fast, slow, "XLSX of {q:?}");
    }
    s.stop().await;
}

/// A direct download whose client goes away while the file is written (its future is
/// dropped) leaves no file in the data directory: the writer removes it rather than
/// finishing it.
async fn an_abandoned_direct_export_leaves_no_file(backend: Backend) {
    use magpie::exports::{Format, Query};
    let s = TestServer::start(backend).await;
    let contacts: Vec<serde_json::Value> = (0..4000)
        .map(|i| json!({"email": format!("abandon{i}@x.org"), "firstname": "Abandoned", "city": "Nowhere"}))
        .collect();
    for part in contacts.chunks(200) {
        s.post("/api/contacts/batch/new", json!(part))
            .await
            .expect(201);
    }
    let me = admin(&s).await;
    let dir = s.data_dir.join("exports");
    let direct_files = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.starts_with("direct-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // XLSX: the file appears only when finished, so abandon exports after delays spread
    // over a warm run's length, some while rows are written or compressed, then give
    // their writers time to end.
    let q = Query::default();
    magpie::exports::direct(s.state(), &me, Format::Xlsx, &q)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    magpie::exports::direct(s.state(), &me, Format::Xlsx, &q)
        .await
        .unwrap();
    let whole = started.elapsed();
    let mut abandoned = 0;
    for eighth in 1..8 {
        let export = magpie::exports::direct(s.state(), &me, Format::Xlsx, &q);
        if tokio::time::timeout(whole * eighth / 8, export)
            .await
            .is_err()
        {
            abandoned += 1;
        }
    }
    assert!(abandoned >= 1, "none abandoned ({whole:?} for one)");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(direct_files(), Vec::<String>::new());
    // Both formats: abandoned once the file is there.
    for format in [Format::Xlsx, Format::Csv] {
        let q = Query::default();
        let mut export = Box::pin(magpie::exports::direct(s.state(), &me, format, &q));
        // Until the writer has a file, then abandon the download.
        let started = std::time::Instant::now();
        loop {
            tokio::select! {
                r = &mut export => panic!("the export finished before it was abandoned: {:?}", r.map(|(_, n)| n)),
                _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => {}
            }
            if !direct_files().is_empty() {
                break;
            }
            assert!(started.elapsed().as_secs() < 30, "no file was written");
        }
        drop(export);
        let started = std::time::Instant::now();
        while !direct_files().is_empty() {
            assert!(
                started.elapsed().as_secs() < 20,
                "{}: left {:?}",
                format.as_str(),
                direct_files()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    s.stop().await;
}

/// Bad export requests change nothing; selected ids with a search export the selected
/// contacts that match it; the outbox is named without the server's paths; an export
/// that fails tells its user.
async fn refusals_selections_and_failures(backend: Backend) {
    let mut s = TestServer::start_with(backend, "[jobs]\nworkers = 0\n").await;
    {
        use magpie::store::Exec;
        let mut tx = s.state().store.begin().await.unwrap();
        tx.execute(
            "UPDATE users SET email = 'admin@example.org' WHERE username = 'admin'",
            vec![],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    seed(&s).await;
    let ids: Vec<String> = s
        .get("/api/contacts?search=is:anonymous%20OR%20!is:anonymous")
        .await
        .expect(200)["contacts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(ids.len(), 3);
    for body in [
        json!({"serach": "tag:vip"}),
        json!({"ids": ""}),
        json!({"ids": " "}),
        json!({"ids": {"a": 1, "b": "x"}}),
        json!({"format": 5}),
        json!({"format": "pdf"}),
    ] {
        let r = s.post("/api/exports", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    // A large selection's status shows its first 100 ids and how many there are.
    let many: Vec<i64> = (1..=150).collect();
    let r = s
        .post("/api/exports", json!({"ids": many}))
        .await
        .expect(202);
    let query = &r["export"]["query"];
    assert_eq!(query["ids"].as_array().unwrap().len(), 100, "{query}");
    assert_eq!(query["idsTotal"], 150);
    let listed = s.get("/api/exports").await.expect(200);
    assert_eq!(listed["exports"][0]["query"]["idsTotal"], 150);
    for query in ["ids=&format=csv", "format=csv&serach=tag:vip"] {
        let r = s.get(&format!("/api/exports/direct?{query}")).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text);
    }
    assert_eq!(
        s.get("/api/exports").await.expect(200)["total"],
        1,
        "no refused request left an export"
    );

    // A field's deletion waits while the columns' lock is held (exports hold it for
    // as long as they read: `exports::Reader`); a refused deletion does not wait.
    let temp = s
        .post(
            "/api/fields/contact/new",
            json!({"label": "Temp", "alias": "temp", "type": "text"}),
        )
        .await
        .expect(201)["field"]["id"]
        .as_i64()
        .unwrap();
    {
        let reading = s.state().fields.reading_columns().await;
        let path = format!("/api/fields/contact/{temp}/delete");
        let delete = s.delete(&path);
        tokio::pin!(delete);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut delete)
                .await
                .is_err(),
            "the deletion waits while an export reads"
        );
        let fixed = field_id(&s, "email").await;
        let refused = tokio::time::timeout(
            Duration::from_secs(5),
            s.delete(&format!("/api/fields/contact/{fixed}/delete")),
        )
        .await
        .expect("a refused deletion answers at once");
        assert_eq!(refused.status, 403);
        drop(reading);
        delete.await.expect(200);
    }

    // Every contact selected, and a search: the selected ones that match.
    let r = s
        .get(&format!(
            "/api/exports/direct?format=csv&ids={}&search=tag:vip",
            ids.join(",")
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut emails: Vec<String> = records(&parse_csv(&r.text))
        .iter()
        .map(|r| r["email"].clone())
        .collect();
    emails.sort();
    assert_eq!(emails, ["vip1@x.org", "vip2@x.org"]);
    let r = s
        .get(&format!(
            "/api/exports/direct?format=csv&ids={}&where[0][col]=email&where[0][expr]=eq&where[0][val]=nobody@x.org",
            ids.join(",")
        ))
        .await;
    assert_eq!(records(&parse_csv(&r.text)).len(), 0, "{}", r.text);

    // One export that will work, one whose search names a field deleted before it runs.
    s.post(
        "/api/fields/contact/new",
        json!({"label": "Gone", "alias": "gone", "type": "text"}),
    )
    .await
    .expect(201);
    let ok = s
        .post("/api/exports", json!({"search": "tag:vip"}))
        .await
        .expect(202)["export"]["id"]
        .as_i64()
        .unwrap();
    let doomed = s
        .post("/api/exports", json!({"search": "gone:bye"}))
        .await
        .expect(202)["export"]["id"]
        .as_i64()
        .unwrap();
    delete_field(&s, "gone").await;
    s.halt().await;
    s.set_config("");
    s.resume().await;
    let started = std::time::Instant::now();
    let (ok, doomed) = loop {
        let a = s.get(&format!("/api/exports/{ok}")).await.expect(200);
        let b = s.get(&format!("/api/exports/{doomed}")).await.expect(200);
        let settled = |e: &serde_json::Value| {
            ["done", "failed"].contains(&e["export"]["status"].as_str().unwrap())
                && e["export"]["email"]["status"] != "sending"
        };
        if (settled(&a) && settled(&b)) || started.elapsed() > Duration::from_secs(60) {
            break (a, b);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ok["export"]["status"], "done", "{ok}");
    let status = ok["export"]["email"]["status"].as_str().unwrap();
    assert!(
        status.starts_with("written to the outbox as ") && !status.contains('/'),
        "no path of the server: {status}"
    );
    assert_eq!(doomed["export"]["status"], "failed", "{doomed}");
    let notes = s.get("/api/notifications").await.expect(200);
    let titles: Vec<&str> = notes["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"Your export failed"), "{notes}");
    assert!(titles.contains(&"Your export is ready"), "{notes}");
    let failed = s
        .get(&format!(
            "/api/exports/{}/download?token=x",
            doomed["export"]["id"]
        ))
        .await;
    assert_eq!(failed.status, 409, "{}", failed.text);
    assert!(failed.error_message().contains("failed"), "{}", failed.text);
    s.stop().await;
}

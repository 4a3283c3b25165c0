//! Exports end to end, on both databases: CSV by an emailed link (a local SMTP receiver
//! gets the mail; the link works for the right user only, and not after expiry), the
//! outbox without SMTP, XLSX read back with calamine, formula injection, and the round
//! trip: an exported CSV imported into an empty Magpie exports the same again.

mod common;

use std::time::Duration;

use common::*;
use magpie_tests::{Backend, TestServer, both_backends, json};

both_backends!(
    csv_export_by_emailed_link,
    export_without_smtp_goes_to_the_outbox,
    xlsx_export,
    csv_round_trip
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
    assert_eq!(done["progress"]["created"], 3, "{done}");
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
    assert_eq!(r1.len(), 3);
    for (x, y) in r1.iter().zip(&r2) {
        for ((h, v1), v2) in h1.iter().zip(x).zip(y) {
            assert_eq!(v1, v2, "column {h} changed in the round trip");
        }
    }
}

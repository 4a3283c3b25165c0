//! CSV imports end to end over HTTP, on both databases: upload, preview and proposed
//! mapping, a new field, duplicates (skip/update, AND/OR, by id), bad rows and the
//! failed-rows file, encodings, stop and resume, repeats across batches, stages and
//! owners by name or id.

mod common;

use common::*;
use magpie_tests::{Backend, TestServer, Value, both_backends, json};

both_backends!(
    import_with_mapping_and_a_new_field,
    duplicates_skip_update_and_or_and_by_id,
    bad_rows_are_listed_and_good_rows_import,
    files_that_are_not_csv_and_encodings,
    stop_and_resume,
    repeats_across_batches_are_one_contact,
    stages_and_owners_by_name_or_id,
    mapping_as_an_object_by_header_or_number,
    refused_starts_and_special_cells,
    a_field_deleted_while_paused_is_skipped,
    an_import_and_api_saves_of_the_same_emails_meet,
);

/// An import running while API clients create the same emails: every request is answered
/// (on PostgreSQL the two write concurrently and lock the same identifiers: no deadlock
/// may reach a client), and each email is one contact.
async fn an_import_and_api_saves_of_the_same_emails_meet(backend: Backend) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = TestServer::start(backend).await;
    let mut csv = String::from("email,firstname\n");
    for i in 0..8000 {
        csv.push_str(&format!("imp{}@race.example,Row{i}\n", i % 4000));
    }
    let import = upload(&s, "race.csv", csv).await;
    let id = import["id"].as_i64().unwrap();
    let start = s.post(&format!("/api/imports/{id}/start"), json!({})).await;
    assert_eq!(start.status, 202, "{}", start.text);
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3u64)
        .map(|c| {
            let req = s.client.clone();
            let url = s.url("/api/contacts/batch/new");
            let done = done.clone();
            tokio::spawn(async move {
                let mut answered = Vec::new();
                let mut n = c * 7919;
                while !done.load(Ordering::Relaxed) {
                    let items: Vec<Value> = (0..10)
                        .map(|_| {
                            n = (n * 48271 + 11) % 4000;
                            json!({"email": format!("imp{n}@race.example"), "lastname": "Api"})
                        })
                        .collect();
                    let r = req
                        .post(&url)
                        .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
                        .json(&items)
                        .send()
                        .await
                        .unwrap();
                    answered.push((r.status().as_u16(), r.text().await.unwrap()));
                }
                answered
            })
        })
        .collect();
    let finished = wait_import(&s, id).await;
    done.store(true, Ordering::Relaxed);
    for client in clients {
        for (status, body) in client.await.unwrap() {
            assert_eq!(status, 201, "{body}");
            let body: Value = serde_json::from_str(&body).unwrap();
            for code in body["statusCodes"].as_array().unwrap() {
                assert!(code == 200 || code == 201, "{body}");
            }
        }
    }
    assert_eq!(finished["status"], "done", "{finished}");
    assert_eq!(finished["progress"]["failed"], 0, "{finished}");
    assert_eq!(count_contacts(&s).await, 4000, "one contact per email");
    s.stop().await;
}

fn mapping_from_preview(import: &Value) -> Vec<Value> {
    import["preview"]["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json!({"column": m["column"], "field": m["field"]}))
        .collect()
}

/// The finished import's progress counters named by `keys`, in that order.
fn counts(done: &Value, keys: &[&str]) -> Vec<Option<i64>> {
    keys.iter().map(|k| done["progress"][*k].as_i64()).collect()
}

async fn events_of(s: &TestServer, contact: i64, kind: &str) -> Vec<Value> {
    let r = s
        .get(&format!(
            "/api/contacts/{contact}/activity?filters[includeEvents][]={kind}&limit=100"
        ))
        .await
        .expect(200);
    r["events"].as_array().unwrap().clone()
}

async fn import_with_mapping_and_a_new_field(backend: Backend) {
    let s = TestServer::start(backend).await;
    let ada = s
        .create_contact(json!({"email": "ada@example.org", "firstname": "Ada", "city": "London"}))
        .await;

    // Semicolons, a byte order mark, accents and synonyms in the header.
    let csv = "\u{feff}E-mail;Prénom;Nom;Shoe size;Ville;Tags;Notes\r\n\
               ADA@example.org;Ada;Lovelace;38;;vip|math;not imported\r\n\
               bob@example.org;Bob;Builder;44;Paris;;x\r\n";
    let import = upload(&s, "people.csv", csv).await;
    let id = import["id"].as_i64().unwrap();
    assert_eq!(import["status"], "new");
    assert_eq!(import["preview"]["dialect"]["delimiter"], ";");
    assert_eq!(import["preview"]["dialect"]["bom"], true);
    assert_eq!(
        import["preview"]["headers"],
        json!([
            "E-mail",
            "Prénom",
            "Nom",
            "Shoe size",
            "Ville",
            "Tags",
            "Notes"
        ])
    );
    assert_eq!(
        import["preview"]["rows"][1],
        json!(["bob@example.org", "Bob", "Builder", "44", "Paris", "", "x"])
    );
    let proposed: Vec<Value> = import["preview"]["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["field"].clone())
        .collect();
    assert_eq!(
        proposed,
        vec![
            json!("email"),
            json!("firstname"),
            json!("lastname"),
            json!(null),
            json!("city"),
            json!("tags"),
            json!(null)
        ]
    );
    assert_eq!(import["progress"]["rowsTotal"], 2);

    let mut mapping = mapping_from_preview(&import);
    mapping[3] = json!({"column": 3, "create": {"label": "Shoe size", "type": "number"}});
    let done = run_import(
        &s,
        id,
        json!({"mapping": mapping, "tags": ["imported"], "ifExists": "update"}),
    )
    .await;
    assert_eq!(done["status"], "done", "{done}");
    let p = &done["progress"];
    assert_eq!(
        counts(&done, &["rowsDone", "created", "updated", "failed"]),
        [Some(2), Some(1), Some(1), Some(0)],
        "{done}"
    );
    assert_eq!(p["percent"], 100.0);
    assert_eq!(p["rowsTotalExact"], true);
    assert_eq!(done["mapping"][3]["field"], "shoe_size");

    let c = s.get(&format!("/api/contacts/{ada}")).await.expect(200);
    let all = &c["contact"]["fields"]["all"];
    assert_eq!(all["lastname"], "Lovelace");
    assert_eq!(all["city"], "London", "an empty cell never overwrites");
    assert_eq!(all["shoe_size"], 38);
    let tags: Vec<&str> = c["contact"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    for t in ["vip", "math", "imported"] {
        assert!(tags.contains(&t), "{tags:?}");
    }
    let bob = by_email(&s, "bob@example.org").await;
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0]["fields"]["all"]["shoe_size"], 44);
    assert_eq!(bob[0]["fields"]["all"]["city"], "Paris");

    // The timeline says where each contact came from.
    let ev = events_of(&s, ada, "lead.imported").await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["extra"]["file"], "people.csv");
    assert_eq!(ev[0]["extra"]["action"], "updated");
    let ev = events_of(&s, bob[0]["id"].as_i64().unwrap(), "lead.imported").await;
    assert_eq!(ev[0]["extra"]["action"], "created");

    // NULL clears; the list shows both imports; starting twice is refused.
    let second = upload(&s, "clear.csv", "email,city\nada@example.org,NULL\n").await;
    let done = run_import(&s, second["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(done["progress"]["updated"], 1, "{done}");
    let c = s.get(&format!("/api/contacts/{ada}")).await.expect(200);
    assert_eq!(c["contact"]["fields"]["all"]["city"], json!(null));
    let r = s.post(&format!("/api/imports/{id}/start"), json!({})).await;
    assert_eq!(r.status, 409, "{}", r.text);
    // Done imports leave no file behind (an upload may be gigabytes); their status and
    // failed rows still answer.
    let files: Vec<_> = std::fs::read_dir(s.data_dir.join("imports"))
        .unwrap()
        .collect();
    assert!(files.is_empty(), "{files:?}");
    let again = s
        .get(&format!("/api/imports/{id}?preview=1"))
        .await
        .expect(200);
    assert_eq!(again["import"]["status"], "done", "{again}");
    s.get(&format!("/api/imports/{id}/failed.csv"))
        .await
        .expect(200);
    let list = s.get("/api/imports").await.expect(200);
    assert_eq!(list["total"], 2);
    assert_eq!(list["imports"][0]["fileName"], "clear.csv");

    // Another user sees neither the imports nor may create fields.
    add_user(&s, "eve", "eve-password-1", "eve@example.org", false).await;
    let r = get_as(&s, "eve", "eve-password-1", &format!("/api/imports/{id}")).await;
    assert_eq!(r.status, 404);
    let r = get_as(&s, "eve", "eve-password-1", "/api/imports").await;
    assert_eq!(r.body["total"], 0);
    s.stop().await;
}

async fn duplicates_skip_update_and_or_and_by_id(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = s.post("/api/fields/contact/new", json!({"label": "Customer no", "alias": "customer_no", "type": "text", "isUniqueIdentifier": true})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let e1 = s
        .create_contact(json!({"email": "e1@x.org", "customer_no": "C1", "firstname": "Old"}))
        .await;
    let e2 = s
        .create_contact(json!({"email": "e2@x.org", "customer_no": "C2", "firstname": "Old"}))
        .await;
    s.create_contact(json!({"email": "e3@x.org", "customer_no": "C3", "firstname": "Old"}))
        .await;
    let before = count_contacts(&s).await;

    // Skip + AND: both identifiers must match; a repeat within the file is skipped too.
    let csv = "email,customer_no,firstname\n\
               e1@x.org,C1,New\n\
               e1@x.org,C9,Other customer\n\
               n1@x.org,N1,A\n\
               N1@x.org,N1,B\n";
    let i = upload(&s, "and.csv", csv).await;
    let done = run_import(
        &s,
        i["id"].as_i64().unwrap(),
        json!({"ifExists": "skip", "operator": "and"}),
    )
    .await;
    assert_eq!(
        counts(&done, &["created", "skipped", "updated"]),
        [Some(2), Some(2), Some(0)],
        "{done}"
    );
    let c = s.get(&format!("/api/contacts/{e1}")).await.expect(200);
    assert_eq!(c["contact"]["fields"]["all"]["firstname"], "Old");
    assert_eq!(by_email(&s, "n1@x.org").await.len(), 1);
    assert_eq!(
        by_email(&s, "n1@x.org").await[0]["fields"]["all"]["firstname"],
        "A"
    );
    assert_eq!(count_contacts(&s).await, before + 2);

    // Update + OR: the email alone finds e2; a repeat within the file updates the new one.
    let csv = "email,customer_no,firstname\n\
               e2@x.org,C99,Updated\n\
               n2@x.org,N2,A\n\
               n2@x.org,N2,B\n";
    let i = upload(&s, "or.csv", csv).await;
    let done = run_import(
        &s,
        i["id"].as_i64().unwrap(),
        json!({"ifExists": "update", "operator": "or"}),
    )
    .await;
    assert_eq!(
        counts(&done, &["created", "updated", "skipped"]),
        [Some(1), Some(2), Some(0)],
        "{done}"
    );
    let c = s.get(&format!("/api/contacts/{e2}")).await.expect(200);
    assert_eq!(c["contact"]["fields"]["all"]["firstname"], "Updated");
    assert_eq!(c["contact"]["fields"]["all"]["customer_no"], "C99");
    let n2 = by_email(&s, "n2@x.org").await;
    assert_eq!(n2.len(), 1);
    assert_eq!(n2[0]["fields"]["all"]["firstname"], "B");

    // Skip + OR: the customer number alone matches e3.
    let i = upload(
        &s,
        "or-skip.csv",
        "email,customer_no,firstname\nsomeone-else@x.org,C3,X\n",
    )
    .await;
    let done = run_import(
        &s,
        i["id"].as_i64().unwrap(),
        json!({"ifExists": "skip", "operator": "or"}),
    )
    .await;
    assert_eq!(done["progress"]["skipped"], 1, "{done}");
    assert_eq!(by_email(&s, "someone-else@x.org").await.len(), 0);

    // By id: an existing id is updated, an unknown one creates a contact.
    let total = count_contacts(&s).await;
    let csv = format!("id,firstname,email\n{e1},ById,\n999999,Fresh,fresh@x.org\n");
    let i = upload(&s, "ids.csv", csv).await;
    let done = run_import(&s, i["id"].as_i64().unwrap(), json!({"matchBy": "id"})).await;
    assert_eq!(
        counts(&done, &["created", "updated"]),
        [Some(1), Some(1)],
        "{done}"
    );
    let c = s.get(&format!("/api/contacts/{e1}")).await.expect(200);
    assert_eq!(c["contact"]["fields"]["all"]["firstname"], "ById");
    assert_eq!(
        c["contact"]["fields"]["all"]["email"], "e1@x.org",
        "the empty email cell did not clear it"
    );
    assert_eq!(count_contacts(&s).await, total + 1);

    // By id, rows without a known id match by the unique identifiers (AND: email and
    // customer number): no second e3, no second fresh; skipping skips those matches too.
    let csv = "id,firstname,email,customer_no\n\
               ,NoId,e3@x.org,C3\n\
               888888,UnknownId,fresh@x.org,\n";
    let i = upload(&s, "ids-fallback.csv", csv).await;
    let done = run_import(&s, i["id"].as_i64().unwrap(), json!({"matchBy": "id"})).await;
    assert_eq!(
        counts(&done, &["created", "updated"]),
        [Some(0), Some(2)],
        "{done}"
    );
    assert_eq!(count_contacts(&s).await, total + 1);
    let e3 = by_email(&s, "e3@x.org").await;
    assert_eq!(e3.len(), 1);
    assert_eq!(e3[0]["fields"]["all"]["firstname"], "NoId");
    let fresh = by_email(&s, "fresh@x.org").await;
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0]["fields"]["all"]["firstname"], "UnknownId");
    let i = upload(&s, "ids-fallback-skip.csv", csv).await;
    let done = run_import(
        &s,
        i["id"].as_i64().unwrap(),
        json!({"matchBy": "id", "ifExists": "skip"}),
    )
    .await;
    assert_eq!(
        counts(&done, &["created", "updated", "skipped"]),
        [Some(0), Some(0), Some(2)],
        "{done}"
    );
    assert_eq!(count_contacts(&s).await, total + 1);

    // Skipping: a row that fails does not make a later row with its email a duplicate.
    let csv = "email,firstname,attribution_date\n\
               quill@x.org,Bad,not a date\n\
               quill@x.org,Good,\n\
               quill@x.org,Repeat,\n";
    let i = upload(&s, "skip-after-failure.csv", csv).await;
    let done = run_import(&s, i["id"].as_i64().unwrap(), json!({"ifExists": "skip"})).await;
    assert_eq!(
        counts(&done, &["created", "failed", "skipped"]),
        [Some(1), Some(1), Some(1)],
        "{done}"
    );
    let quill = by_email(&s, "quill@x.org").await;
    assert_eq!(quill.len(), 1);
    assert_eq!(quill[0]["fields"]["all"]["firstname"], "Good");

    // matchBy id needs an id column; an unknown field is refused with its column named.
    let i = upload(&s, "bad.csv", "email\na@b.co\n").await;
    let r = s
        .post(
            &format!("/api/imports/{}/start", i["id"]),
            json!({"matchBy": "id"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = s
        .post(
            &format!("/api/imports/{}/start", i["id"]),
            json!({"mapping": [{"column": 0, "field": "nope"}]}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.error_message().contains("'nope' is not a contact field"),
        "{}",
        r.text
    );
    s.stop().await;
}

async fn bad_rows_are_listed_and_good_rows_import(backend: Backend) {
    let s = TestServer::start_with(backend, "[import]\nmax_record_bytes = 4096\n").await;
    let before = count_contacts(&s).await;
    let mut csv = String::from("email,firstname,last_active,tags\n");
    csv.push_str("good1@x.org,A,2024-05-01 10:00:00,t1\n"); // row 2
    csv.push_str("not-an-email,B,,\n"); // row 3
    csv.push_str("bad-date@x.org,C,yesterday,\n"); // row 4
    csv.push_str("short@x.org,D\n"); // row 5: too few values
    csv.push_str("long@x.org,E,,t,extra\n"); // row 6: too many values
    csv.push_str("binary@x.org,F\u{0}G,,\n"); // row 7: NUL byte
    csv.push_str("good2@x.org,\"Comma, quoted\",,\n"); // row 8
    csv.push_str(&format!("huge@x.org,{},,\n", "x".repeat(10_000))); // row 9: longer than the limit
    csv.push_str("good3@x.org,H,,\n"); // row 10
    csv.push_str("unterminated@x.org,\"I,,\n"); // row 11: the quote never closes
    csv.push_str("good4@x.org,J,,\n"); // read again after the broken line
    csv.push_str(" , ,,\n"); // a line of blanks is no row
    csv.push_str("bad-formula,'=SUM(1),,'+vip\n"); // row 13
    let long = "y".repeat(3000);
    csv.push_str(&format!("bad-long,{long},,\n")); // row 14
    let i = upload(&s, "bad.csv", csv).await;
    let id = i["id"].as_i64().unwrap();
    let done = run_import(&s, id, json!({})).await;
    assert_eq!(done["status"], "done", "{done}");
    let p = &done["progress"];
    assert_eq!(p["failed"], 9, "{done}");
    assert_eq!(p["created"], 4, "{done}");
    assert_eq!(p["skipped"], 0, "{done}");
    for e in ["good1@x.org", "good2@x.org", "good3@x.org", "good4@x.org"] {
        assert_eq!(by_email(&s, e).await.len(), 1, "{e}");
    }
    for e in [
        "bad-date@x.org",
        "short@x.org",
        "long@x.org",
        "binary@x.org",
        "huge@x.org",
        "unterminated@x.org",
    ] {
        assert_eq!(by_email(&s, e).await.len(), 0, "never half a row: {e}");
    }
    assert_eq!(count_contacts(&s).await, before + 4);
    let g2 = by_email(&s, "good2@x.org").await;
    assert_eq!(g2[0]["fields"]["all"]["firstname"], "Comma, quoted");

    let r = s.get(&format!("/api/imports/{id}/failed.csv")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let rows = parse_csv(&r.text);
    assert_eq!(
        rows[0],
        vec![
            "row",
            "line",
            "reason",
            "email",
            "firstname",
            "last_active",
            "tags"
        ]
    );
    let failed: Vec<(String, String)> = rows[1..]
        .iter()
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect();
    let expect = [
        ("3", "email: "),
        ("4", "last_active: must be a date"),
        ("5", "the row has 2 values but the header has 4 columns"),
        ("6", "the row has 5 values"),
        ("7", "binary data"),
        ("9", "longer than 4096 bytes"),
        ("11", "never closed"),
        ("13", "email: "),
        ("14", "email: "),
    ];
    assert_eq!(failed.len(), expect.len(), "{failed:?}");
    for ((row, reason), (want_row, want)) in failed.iter().zip(expect) {
        assert_eq!(row, want_row, "{failed:?}");
        assert!(
            reason.contains(want),
            "row {row}: {reason} should contain {want}"
        );
    }
    assert_eq!(rows[1][3], "not-an-email", "the row's values are listed");
    // A failed row's values are whole, and written so that the fixed file imports to
    // what the row gave: an escaped formula is not escaped again.
    assert_eq!(rows[8][4..], ["'=SUM(1)", "", "'+vip"], "{:?}", rows[8]);
    assert_eq!(rows[9][4], long, "not cut");
    let fixed = r
        .text
        .trim_start_matches('\u{feff}')
        .lines()
        .filter(|l| l.starts_with("13,"))
        .map(|l| l.replacen("bad-formula", "fixed@x.org", 1))
        .collect::<Vec<_>>()
        .join("\n");
    let again = upload(
        &s,
        "fixed.csv",
        format!("row,line,reason,email,firstname,last_active,tags\n{fixed}\n"),
    )
    .await;
    let again = run_import(&s, again["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(again["progress"]["created"], 1, "{again}");
    let fixed = by_email(&s, "fixed@x.org").await;
    assert_eq!(fixed[0]["fields"]["all"]["firstname"], "=SUM(1)");
    assert_eq!(fixed[0]["tags"][0]["tag"], "+vip");

    // A row whose imported cells are all empty (its only value is in a column not
    // imported) is skipped, as Mautic ignores empty rows, not made an empty contact.
    let before = count_contacts(&s).await;
    let i = upload(&s, "partial.csv", "email,note\n,hello\nz@x.org,\n").await;
    let done = run_import(
        &s,
        i["id"].as_i64().unwrap(),
        json!({"mapping": {"email": "email", "note": null}}),
    )
    .await;
    assert_eq!(
        counts(&done, &["created", "skipped", "failed"]),
        [Some(1), Some(1), Some(0)],
        "{done}"
    );
    assert_eq!(count_contacts(&s).await, before + 1);
    s.stop().await;
}

async fn files_that_are_not_csv_and_encodings(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = upload_raw(
        &s,
        "photo.png",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec(),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.error_message().contains("not CSV") && r.error_message().contains("image"),
        "{}",
        r.text
    );
    let r = upload_raw(
        &s,
        "book.xlsx",
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00".to_vec(),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.error_message().contains("Excel"), "{}", r.text);
    let r = upload_raw(&s, "empty.csv", Vec::new()).await;
    assert_eq!(r.status, 422);
    // One enormous line: not even a header, said so, nothing kept.
    let s2 = TestServer::start_with(s.backend, "[import]\nmax_record_bytes = 4096\n").await;
    let r = upload_raw(&s2, "one-line.csv", vec![b'x'; 300_000]).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.error_message().contains("header")
            && r.error_message().contains("longer than 4096 bytes"),
        "{}",
        r.text
    );
    assert_eq!(s2.get("/api/imports").await.expect(200)["total"], 0);
    assert_eq!(
        std::fs::read_dir(s2.data_dir.join("imports"))
            .unwrap()
            .count(),
        0
    );
    s2.stop().await;
    let leftovers: Vec<_> = std::fs::read_dir(s.data_dir.join("imports"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "refused uploads leave no file: {leftovers:?}"
    );

    // Windows-1252: said so in the preview, read correctly.
    let i = upload(
        &s,
        "latin.csv",
        b"email;prenom;ville\nj@x.org;Jos\xe9;Z\xfcrich\n".to_vec(),
    )
    .await;
    assert_eq!(i["preview"]["dialect"]["encoding"], "windows-1252");
    assert!(
        i["preview"]["notes"][0]
            .as_str()
            .unwrap()
            .contains("Windows-1252"),
        "{i}"
    );
    assert_eq!(
        i["preview"]["rows"][0],
        json!(["j@x.org", "José", "Zürich"])
    );
    let done = run_import(&s, i["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(done["progress"]["created"], 1, "{done}");
    let c = by_email(&s, "j@x.org").await;
    assert_eq!(c[0]["fields"]["all"]["firstname"], "José");
    assert_eq!(c[0]["fields"]["all"]["city"], "Zürich");

    // A preview with another delimiter; duplicate headers are flagged.
    let i = upload(&s, "dups.csv", "email,email,firstname\na@x.org,b@x.org,A\n").await;
    let warnings = i["preview"]["warnings"].to_string();
    assert!(warnings.contains("appears more than once"), "{warnings}");
    assert!(
        !warnings.contains("match no contact field"),
        "a repeated header is not called unmatched: {warnings}"
    );
    // Columns no field receives are named.
    let other = upload(&s, "custom.csv", "email,Shoe size,langs\na@x.org,42,en\n").await;
    let warnings = other["preview"]["warnings"].to_string();
    assert!(
        warnings.contains("2 columns match no contact field")
            && warnings.contains("Shoe size, langs"),
        "{warnings}"
    );
    let r = s
        .get(&format!("/api/imports/{}?delimiter=%3B", i["id"]))
        .await
        .expect(200);
    assert_eq!(
        r["import"]["preview"]["headers"],
        json!(["email,email,firstname"])
    );
    let done = run_import(&s, i["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(done["progress"]["created"], 1);
    assert_eq!(by_email(&s, "a@x.org").await.len(), 1);

    // Tab-separated upload as multipart/form-data, as a browser form sends it.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"email\tfirstname\nt@x.org\tTab\n".to_vec())
            .file_name("tabs.tsv"),
    );
    let r = s
        .send(
            s.client
                .post(s.url("/api/imports"))
                .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
                .multipart(form),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["import"]["fileName"], "tabs.tsv");
    assert_eq!(r.body["import"]["preview"]["dialect"]["delimiter"], "\t");
    s.stop().await;
}

async fn stop_and_resume(backend: Backend) {
    // One row per batch: the stop lands between two of them.
    let s = TestServer::start_with(backend, "[import]\nbatch_rows = 1\n").await;
    let before = count_contacts(&s).await;
    // Enough one-row transactions (seconds of work) that the stop, sent right after the
    // start, always lands before the end.
    let n = 2000;
    let mut csv = String::from("email,firstname\n");
    for k in 0..n {
        csv.push_str(&format!("p{k}@x.org,P{k}\n"));
    }
    let i = upload(&s, "slow.csv", csv).await;
    let id = i["id"].as_i64().unwrap();
    s.post(&format!("/api/imports/{id}/start"), json!({}))
        .await
        .expect(202);
    s.post(&format!("/api/imports/{id}/stop"), json!({}))
        .await
        .expect(200);
    let stopped = wait_import(&s, id).await;
    assert_eq!(stopped["status"], "paused", "{stopped}");
    let done_so_far = stopped["progress"]["rowsDone"].as_i64().unwrap();
    assert!(done_so_far < n, "{stopped}");
    assert_eq!(count_contacts(&s).await, before + done_so_far);
    // Paused stays paused.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let still = s
        .get(&format!("/api/imports/{id}?preview=0"))
        .await
        .expect(200);
    assert_eq!(
        still["import"]["progress"]["rowsDone"], done_so_far,
        "{still}"
    );
    let r = s
        .post(&format!("/api/imports/{id}/resume"), json!({}))
        .await
        .expect(200);
    assert!(
        ["queued", "running", "done"].contains(&r["import"]["status"].as_str().unwrap()),
        "{r}"
    );
    let done = wait_import(&s, id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["progress"]["created"], n);
    assert_eq!(done["progress"]["rowsDone"], n);
    assert_eq!(
        count_contacts(&s).await,
        before + n,
        "no row twice, none lost"
    );
    let r = s
        .post(&format!("/api/imports/{id}/resume"), json!({}))
        .await;
    assert_eq!(r.status, 409);
    s.stop().await;
}

/// Rows of one file naming the same contact in different batches (and different case):
/// each later row updates the contact an earlier batch created, never a second one.
async fn repeats_across_batches_are_one_contact(backend: Backend) {
    let s = TestServer::start_with(backend, "[import]\nbatch_rows = 10\n").await;
    let before = count_contacts(&s).await;
    // 300 rows over 50 emails: every batch repeats emails of the batches before it, in
    // varying case; each row's first name is its row number.
    let mut csv = String::from("email,firstname\n");
    for row in 1..=300 {
        let k = (row * 7) % 50;
        let email = match row % 3 {
            0 => format!("REPEAT{k}@X.org"),
            _ => format!("repeat{k}@x.org"),
        };
        csv.push_str(&format!("{email},R{row}\n"));
    }
    let i = upload(&s, "repeats.csv", csv).await;
    let done = run_import(&s, i["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(
        counts(&done, &["created", "updated", "failed"]),
        [Some(50), Some(250), Some(0)],
        "{done}"
    );
    assert_eq!(count_contacts(&s).await, before + 50);
    for k in [0, 7, 49] {
        let found = by_email(&s, &format!("repeat{k}@x.org")).await;
        assert_eq!(found.len(), 1, "repeat{k}: {found:?}");
        // The last row naming this email wins.
        let last = (1..=300).filter(|row| (row * 7) % 50 == k).max().unwrap();
        assert_eq!(
            found[0]["fields"]["all"]["firstname"],
            format!("R{last}"),
            "repeat{k}"
        );
        let id = found[0]["id"].as_i64().unwrap();
        assert_eq!(events_of(&s, id, "lead.imported").await.len(), 6);
    }
    s.stop().await;
}

/// Stage and owner columns take a name or an id. A stage named for the first time is
/// created once, however its name is cased and whichever later batch names it again; a
/// number that is neither a stage's name nor its id is a new stage's name (exports write
/// names); an unknown user fails its row only, and a stage named only by a row that
/// failed is not kept.
async fn stages_and_owners_by_name_or_id(backend: Backend) {
    let s = TestServer::start_with(backend, "[import]\nbatch_rows = 2\n").await;
    let customer = s
        .post("/api/stages/new", json!({"name": "Customer"}))
        .await
        .expect(201)["stage"]["id"]
        .as_i64()
        .unwrap();
    let csv = format!(
        "email,stage,owner\n\
         s1@x.org,Lead,admin\n\
         s2@x.org,customer,\n\
         s3@x.org,LEAD,1\n\
         s4@x.org,{customer},\n\
         s5@x.org,999999,\n\
         s6@x.org,Lead,nobody\n\
         s7@x.org,lead,\n\
         not-an-email,Ghost,\n"
    );
    let i = upload(&s, "stages.csv", csv).await;
    let done = run_import(&s, i["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(
        counts(&done, &["created", "failed"]),
        [Some(6), Some(2)],
        "{done}"
    );
    let stages = s.get("/api/stages").await.expect(200);
    let names: Vec<&str> = stages["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        3,
        "Customer, one Lead and 999999; no Ghost, named only by a row that failed: {names:?}"
    );
    let stage_of = |c: &Value| c["stage"]["name"].as_str().map(str::to_owned);
    let mut lead_ids = Vec::new();
    for (email, stage, owner) in [
        ("s1@x.org", "Lead", Some(1)),
        ("s2@x.org", "Customer", None),
        ("s3@x.org", "Lead", Some(1)),
        ("s4@x.org", "Customer", None),
        ("s5@x.org", "999999", None),
        ("s7@x.org", "Lead", None),
    ] {
        let c = by_email(&s, email).await;
        assert_eq!(c.len(), 1, "{email}");
        assert_eq!(stage_of(&c[0]).as_deref(), Some(stage), "{email}: {}", c[0]);
        assert_eq!(c[0]["owner"]["id"].as_i64(), owner, "{email}");
        if stage == "Lead" {
            lead_ids.push(c[0]["stage"]["id"].clone());
        }
    }
    assert!(lead_ids.windows(2).all(|w| w[0] == w[1]), "{lead_ids:?}");
    let r = s.get(&format!("/api/imports/{}/failed.csv", i["id"])).await;
    let rows = parse_csv(&r.text);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows[1][2].contains("owner: 'nobody' is not a user"),
        "{rows:?}"
    );
    s.stop().await;
}

/// The mapping as an object: keys name a column by its header (even one that looks like a
/// number) or by its number; an unknown one is refused with its name.
async fn mapping_as_an_object_by_header_or_number(backend: Backend) {
    let s = TestServer::start(backend).await;
    let csv = "2024,E-Mail,Name\nBerlin,ann@x.org,Ann\n";
    let i = upload(&s, "object-mapping.csv", csv).await;
    let id = i["id"].as_i64().unwrap();
    let r = s
        .post(
            &format!("/api/imports/{id}/start"),
            json!({"mapping": {"E-Mail": "email", "nope": "city"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("nope"), "{}", r.text);
    let done = run_import(
        &s,
        id,
        json!({"mapping": {"2024": "city", "e-mail": "email", "2": "firstname"}}),
    )
    .await;
    assert_eq!(done["progress"]["created"], 1, "{done}");
    let ann = by_email(&s, "ann@x.org").await;
    assert_eq!(ann.len(), 1);
    assert_eq!(ann[0]["fields"]["all"]["city"], "Berlin");
    assert_eq!(ann[0]["fields"]["all"]["firstname"], "Ann");
    s.stop().await;
}

/// A refused start changes nothing (no field is created) and options are checked by name
/// and type; `NULL` clears owner and stage and names no tag; `-tag` takes a tag off; a
/// stage or owner cell is a name before it is an id; an id column matches by id unless
/// `matchBy` says otherwise; apostrophes that only open values are text.
async fn refused_starts_and_special_cells(backend: Backend) {
    let s = TestServer::start(backend).await;
    let fields_before = s.get("/api/fields/contact").await.expect(200)["total"].clone();
    let i = upload(&s, "m.csv", "email,firstname,shoe\nm1@x.org,M,42\n").await;
    let id = i["id"].as_i64().unwrap();
    for (body, key) in [
        (
            json!({"mapping": [{"column": 0, "field": "email"}, {"column": 2, "create": {"label": "Good one", "type": "number"}}, {"column": 1, "create": {"label": "Bad one", "type": "bogus"}}]}),
            "",
        ),
        (json!({"if_exists": "skip"}), "if_exists"),
        (json!({"ifExists": 5}), "ifExists"),
        (json!({"matchBy": true}), "matchBy"),
        (json!({"operator": 1}), "operator"),
        (json!({"delimiter": 5}), "delimiter"),
        (json!({"quote": ","}), "quote"),
    ] {
        let r = s
            .post(&format!("/api/imports/{id}/start"), body.clone())
            .await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        if !key.is_empty() {
            assert!(
                r.body["errors"][0]["details"][key].is_array(),
                "{body}: {}",
                r.text
            );
        }
    }
    assert_eq!(
        s.get("/api/fields/contact").await.expect(200)["total"],
        fields_before,
        "a refused start created no field"
    );
    assert_eq!(
        s.get(&format!("/api/imports/{id}?preview=0"))
            .await
            .expect(200)["import"]["status"],
        "new"
    );

    // A stage whose name is the id of another.
    let named_two = s
        .post("/api/stages/new", json!({"name": "Plain"}))
        .await
        .expect(201)["stage"]["id"]
        .as_i64()
        .unwrap();
    let two = s
        .post("/api/stages/new", json!({"name": named_two.to_string()}))
        .await
        .expect(201)["stage"]["id"]
        .as_i64()
        .unwrap();
    assert_ne!(two, named_two);
    let seeded = s
        .create_contact(json!({"email": "old@x.org", "firstname": "Old", "tags": ["keep", "drop"], "owner": 1, "stage": named_two}))
        .await;
    let csv = format!(
        "id,email,firstname,stage,owner,tags\n\
         {seeded},renamed@x.org,NULL,NULL,NULL,-drop|new\n\
         ,n2@x.org,Town,{named_two},,\n\
         ,n3@x.org,'s-Hertogenbosch,,,\n\
         ,n4@x.org,'s-Gravenhage,,,\n\
         ,n5@x.org,'s-Hertogenbosch,,, NULL \n\
         ,n6@x.org,'s-Gravenhage,,1,\n"
    );
    // A user whose name is another user's id: the owner cell `1` is that name.
    let named_one = add_user(&s, "1", "one-password-1", "one@x.org", false).await;
    let i = upload(&s, "cells.csv", csv).await;
    assert_eq!(i["preview"]["dialect"]["quote"], "\"", "{i}");
    // Aliases in any case.
    let mut mapping = mapping_from_preview(&i);
    mapping[2]["field"] = json!("FirstName");
    let done = run_import(&s, i["id"].as_i64().unwrap(), json!({"mapping": mapping})).await;
    assert_eq!(
        counts(&done, &["created", "updated", "failed"]),
        [Some(5), Some(1), Some(0)],
        "{done}"
    );
    let n6 = by_email(&s, "n6@x.org").await;
    assert_eq!(n6[0]["owner"]["id"].as_i64(), Some(named_one), "{}", n6[0]);
    let old = s.get(&format!("/api/contacts/{seeded}")).await.expect(200)["contact"].clone();
    assert_eq!(
        old["fields"]["all"]["email"], "renamed@x.org",
        "the id column matched by id by default: {old}"
    );
    assert!(old["fields"]["all"]["firstname"].is_null(), "{old}");
    assert!(old["owner"].is_null(), "NULL clears the owner: {old}");
    assert!(old["stage"].is_null(), "NULL clears the stage: {old}");
    let mut tags: Vec<&str> = old["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["keep", "new"], "-drop took a tag off");
    let n5 = by_email(&s, "n5@x.org").await;
    assert_eq!(n5[0]["tags"], json!([]), "NULL names no tag: {}", n5[0]);
    let n2 = by_email(&s, "n2@x.org").await;
    assert_eq!(
        n2[0]["stage"]["id"].as_i64(),
        Some(two),
        "a stage cell is a name first: {}",
        n2[0]
    );
    let n3 = by_email(&s, "n3@x.org").await;
    assert_eq!(n3[0]["fields"]["all"]["firstname"], "'s-Hertogenbosch");

    // An id column only proposed (no mapping sent) does not match by id: another
    // Magpie's export must not update the contacts that happen to have its ids.
    let i = upload(
        &s,
        "ids.csv",
        format!("id,email\n{seeded},stranger@x.org\n"),
    )
    .await;
    let done = run_import(&s, i["id"].as_i64().unwrap(), json!({})).await;
    assert_eq!(
        counts(&done, &["created", "updated"]),
        [Some(1), Some(0)],
        "{done}"
    );
    let old = s.get(&format!("/api/contacts/{seeded}")).await.expect(200);
    assert_eq!(old["contact"]["fields"]["all"]["email"], "renamed@x.org");
    s.stop().await;
}

/// A field an import maps is deleted while it is paused: the rest of the file imports
/// without that column (a note says so) instead of every row failing.
async fn a_field_deleted_while_paused_is_skipped(backend: Backend) {
    let s = TestServer::start_with(backend, "[import]\nbatch_rows = 1\n").await;
    let n = 2000;
    let mut csv = String::from("email,firstname,shoe\n");
    for k in 0..n {
        csv.push_str(&format!("d{k}@x.org,D{k},{}\n", 30 + k % 15));
    }
    let i = upload(&s, "shoes.csv", csv).await;
    let id = i["id"].as_i64().unwrap();
    let mapping = json!([{"column": 0, "field": "email"}, {"column": 1, "field": "firstname"},
                         {"column": 2, "create": {"label": "Shoe", "type": "number"}}]);
    s.post(
        &format!("/api/imports/{id}/start"),
        json!({"mapping": mapping}),
    )
    .await
    .expect(202);
    s.post(&format!("/api/imports/{id}/stop"), json!({}))
        .await
        .expect(200);
    let stopped = wait_import(&s, id).await;
    assert_eq!(stopped["status"], "paused", "{stopped}");
    delete_field(&s, "shoe").await;
    s.post(&format!("/api/imports/{id}/resume"), json!({}))
        .await
        .expect(200);
    let done = wait_import(&s, id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        counts(&done, &["created", "failed"]),
        [Some(n), Some(0)],
        "{done}"
    );
    let notes = done["notes"].to_string();
    assert!(notes.contains("'shoe' was deleted"), "{done}");
    let last = by_email(&s, &format!("d{}@x.org", n - 1)).await;
    assert_eq!(last[0]["fields"]["all"]["firstname"], format!("D{}", n - 1));
    s.stop().await;
}

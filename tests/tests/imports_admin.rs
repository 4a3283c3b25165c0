//! The admin's import wizard and exports over plain HTTP (as a browser without script),
//! on SQLite and PostgreSQL: upload → mapping → start → progress JSON → done, hostile
//! file names, headers and values rendered inert, the encoding note, files that are not
//! CSV, the size limit, CSRF refusals, 404s, mapping errors shown on the form; exports
//! from the contacts list (CSV by link with a notification, XLSX at once, selected
//! contacts) and the link followed by the right user, another user, nobody, and after
//! expiry.

use std::time::{Duration, Instant};

use magpie_tests::web::{Page, Web, create_user};
use magpie_tests::{ADMIN_PASSWORD, Backend, TestServer, Value, both_backends, json};

both_backends!(
    import_wizard,
    import_refusals,
    import_visibility_and_options,
    export_from_the_list
);

/// A text as the templates escape it.
fn escaped(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// The page a redirect leads to.
async fn follow(web: &Web, page: &Page) -> Page {
    assert_eq!(page.status, 303, "{}", page.body);
    web.get(&page.location()).await
}

/// The import id of a redirect to `/contacts/imports/{id}`.
fn import_id(page: &Page) -> i64 {
    assert_eq!(page.status, 303, "{}", page.body);
    page.location()
        .strip_prefix("/contacts/imports/")
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("redirect to an import: {}", page.location()))
}

async fn progress(web: &Web, id: i64) -> Value {
    let r = web
        .req(
            reqwest::Method::GET,
            &format!("/contacts/imports/{id}/progress"),
        )
        .header("x-csrf-token", &web.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json::<Value>().await.unwrap()["import"].clone()
}

async fn wait_done(web: &Web, id: i64) -> Value {
    let started = Instant::now();
    loop {
        let p = progress(web, id).await;
        if ["done", "failed", "paused"].contains(&p["status"].as_str().unwrap_or("")) {
            return p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "import {id} did not finish: {p}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of an input or select option marked selected, by a marker in the page.
fn selected_in(body: &str, select_id: &str) -> String {
    let start = body
        .find(&format!("id=\"{select_id}\""))
        .unwrap_or_else(|| panic!("no {select_id}"));
    let rest = &body[start
        ..body[start..]
            .find("</select>")
            .map_or(body.len(), |e| start + e)];
    let sel = rest
        .find(" selected")
        .unwrap_or_else(|| panic!("nothing selected in {select_id}: {rest}"));
    let open = rest[..sel].rfind("value=\"").unwrap() + 7;
    rest[open..open + rest[open..].find('"').unwrap()].to_owned()
}

async fn import_wizard(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let list = web.get("/contacts").await;
    assert!(
        list.body.contains("href=\"/contacts/import\""),
        "the list links to the import"
    );
    assert_eq!(web.get("/contacts/import").await.status, 200);

    // A file with a hostile name, a hostile header, hostile values and one bad row.
    let mut csv = String::from("E-mail,Prénom,Shoe size,<script>alert(1)</script>\r\n");
    for i in 0..300 {
        csv.push_str(&format!(
            "user{i}@example.org,Name{i},{},<img src=x onerror=alert(1)>\r\n",
            30 + i % 15
        ));
    }
    csv.push_str("not-an-email,Bad,40,x\r\n");
    let up = web
        .multipart(
            "/contacts/import/upload",
            &[],
            Some(("file", "<img src=x onerror=alert(2)>.csv", csv.as_bytes())),
            true,
        )
        .await;
    let id = import_id(&up);

    // The mapping step: every column with its proposal and samples, all escaped.
    let map = web.get(&format!("/contacts/imports/{id}")).await;
    assert_eq!(map.status, 200);
    for hostile in [
        "<script>alert(1)",
        "<img src=x onerror=alert(1)>",
        "<img src=x onerror=alert(2)>",
    ] {
        assert!(!map.body.contains(hostile), "{hostile} rendered raw");
    }
    assert!(
        map.body.contains(&escaped("<script>alert(1)</script>")),
        "the header is shown, escaped: {}",
        map.body
    );
    assert!(
        map.body
            .contains(&escaped("<img src=x onerror=alert(2)>.csv")),
        "the file name is shown, escaped"
    );
    assert!(
        map.body.contains("user0@example.org") && map.body.contains("Name1"),
        "sample values"
    );
    assert_eq!(selected_in(&map.body, "col-0"), "email");
    assert_eq!(selected_in(&map.body, "col-1"), "firstname");
    assert_eq!(
        selected_in(&map.body, "col-3"),
        "",
        "not matched: do not import"
    );
    assert!(map.body.contains("Create a new field"));

    // Start: a new number field for the shoe size, a tag for everyone.
    let start = web
        .post(
            &format!("/contacts/imports/{id}/start"),
            &[
                ("delimiter", ","),
                ("quote", "\""),
                ("encoding", "utf-8"),
                ("col_0", "email"),
                ("col_1", "firstname"),
                ("col_2", "__create__"),
                ("new_label_2", "Shoe size"),
                ("new_type_2", "number"),
                ("col_3", ""),
                ("new_label_3", "x"),
                ("new_type_3", "text"),
                ("owner", ""),
                ("tags", "imported, web"),
                ("ifExists", "update"),
                ("matchBy", "identifiers"),
                ("operator", "and"),
            ],
        )
        .await;
    assert_eq!(start.status, 303, "{}", start.body);
    assert_eq!(start.location(), format!("/contacts/imports/{id}"));

    // Progress JSON: needs the token; ends done with the counts.
    let r = web
        .req(
            reqwest::Method::GET,
            &format!("/contacts/imports/{id}/progress"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the progress JSON wants the CSRF token");
    let done = wait_done(&web, id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["progress"]["created"], 300);
    assert_eq!(done["progress"]["failed"], 1);
    assert_eq!(done["progress"]["rowsDone"], 301);
    assert_eq!(done["progress"]["percent"], 100.0);
    assert_eq!(done["display"]["live"], false);
    let c = s
        .get("/api/contacts?search=email:user7@example.org")
        .await
        .expect(200);
    let contact = c["contacts"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(contact["fields"]["all"]["shoe_size"], 37);
    assert!(
        contact["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tag"] == "web" || t == "web"),
        "{}",
        contact["tags"]
    );

    // The progress page: counts, the failed rows link, no Stop; no meta refresh when done.
    let page = web.get(&format!("/contacts/imports/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("id=\"import-created\" data-p=\"created\">300<"),
        "created count"
    );
    assert!(
        page.body
            .contains("id=\"import-failed\" data-p=\"failed\">1<")
    );
    assert!(
        page.body.contains(
            "href=\"/contacts/imports/{id}/failed.csv\""
                .replace("{id}", &id.to_string())
                .as_str()
        )
    );
    assert!(!page.body.contains("http-equiv=\"refresh\""));
    assert!(!page.body.contains("<img src=x"), "still escaped");
    let failed = web.get(&format!("/contacts/imports/{id}/failed.csv")).await;
    assert_eq!(failed.status, 200);
    assert_eq!(failed.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        failed.body.contains("not-an-email") && failed.body.contains("email"),
        "{}",
        failed.body
    );

    // The list of past imports.
    let list = web.get("/contacts/import").await;
    assert!(list.body.contains(&format!("data-import-id=\"{id}\"")));
    assert!(
        list.body
            .contains(&escaped("<img src=x onerror=alert(2)>.csv"))
            && !list.body.contains("<img src=x")
    );

    // Stop and resume of a finished import: refused with a message, not an error page.
    let r = web.post(&format!("/contacts/imports/{id}/stop"), &[]).await;
    assert_eq!(r.status, 303);
    let page = follow(&web, &r).await;
    assert!(page.body.contains("cannot be stopped"), "{}", page.body);
    s.stop().await;
}

async fn import_refusals(backend: Backend) {
    let s = TestServer::start_with(backend, "[import]\nmax_upload_bytes = 4000\n").await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;

    // CSRF: upload, start, stop, resume without the token are refused before anything.
    let csv = b"email,firstname\r\na@example.org,A\r\n";
    let r = web
        .multipart(
            "/contacts/import/upload",
            &[],
            Some(("file", "a.csv", csv)),
            false,
        )
        .await;
    assert_eq!(r.status, 403, "upload without a token");
    assert!(r.body.contains("security token"));
    assert_eq!(
        s.get("/api/imports").await.expect(200)["total"],
        0,
        "nothing stored"
    );
    let id = import_id(
        &web.multipart(
            "/contacts/import/upload",
            &[],
            Some(("file", "a.csv", csv)),
            true,
        )
        .await,
    );
    for action in ["start", "stop", "resume"] {
        let r = web
            .post_without_token(
                &format!("/contacts/imports/{id}/{action}"),
                &[("col_0", "email")],
            )
            .await;
        assert_eq!(r.status, 403, "{action} without a token");
    }
    assert_eq!(
        s.get(&format!("/api/imports/{id}")).await.expect(200)["import"]["status"],
        "new"
    );

    // Unknown ids: 404 pages.
    for path in [
        "/contacts/imports/999999",
        "/contacts/imports/abc",
        "/contacts/imports/999999/failed.csv",
    ] {
        let r = web.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.body.contains("Page not found"),
            "an HTML 404 page for {path}"
        );
    }
    let r = web.post("/contacts/imports/999999/start", &[]).await;
    assert_eq!(r.status, 404);

    // A mapping error: the form again with the message and the choices kept.
    let r = web
        .post(
            &format!("/contacts/imports/{id}/start"),
            &[("col_0", "email"), ("col_1", "email"), ("ifExists", "skip")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("id=\"mapping-errors\"") && r.body.contains("mapped from two columns"),
        "{}",
        r.body
    );
    assert_eq!(selected_in(&r.body, "col-1"), "email");
    assert!(
        r.body
            .contains("value=\"skip\" id=\"if-exists-skip\" checked")
    );

    // Not a CSV file: refused with what it is; nothing kept.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let r = web
        .multipart(
            "/contacts/import/upload",
            &[],
            Some(("file", "photo.csv", png)),
            true,
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("id=\"upload-error\""), "{}", r.body);
    assert!(
        r.body.to_lowercase().contains("image"),
        "says what it is: {}",
        r.body
    );
    // No file chosen.
    let r = web
        .multipart("/contacts/import/upload", &[], None, true)
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("choose a CSV file"));
    // Larger than [import] max_upload_bytes.
    let big = "email\r\n".to_owned() + &"someone@example.org\r\n".repeat(400);
    let r = web
        .multipart(
            "/contacts/import/upload",
            &[],
            Some(("file", "big.csv", big.as_bytes())),
            true,
        )
        .await;
    assert_eq!(r.status, 413);
    assert!(
        r.body.contains("larger than the import limit"),
        "{}",
        r.body
    );
    assert_eq!(
        s.get("/api/imports").await.expect(200)["total"],
        1,
        "only the good upload is kept"
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.data_dir.join("imports"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "refused uploads leave no file: {leftovers:?}"
    );

    // Not UTF-8: read as Windows-1252, and the page says so.
    let latin = b"email;pr\xe9nom;ville\r\nzoe@example.org;Zo\xe9;K\xf6ln\r\n";
    let id = import_id(
        &web.multipart(
            "/contacts/import/upload",
            &[],
            Some(("file", "latin.csv", latin)),
            true,
        )
        .await,
    );
    let map = web.get(&format!("/contacts/imports/{id}")).await;
    assert!(
        map.body
            .contains("not valid UTF-8; it is read as Windows-1252"),
        "{}",
        map.body
    );
    assert!(map.body.contains("Zoé") && map.body.contains("Köln"));
    assert_eq!(selected_in(&map.body, "dialect-delimiter"), ";");
    assert_eq!(selected_in(&map.body, "dialect-encoding"), "windows-1252");
    // Re-read with another encoding: the note goes.
    let map = web
        .get(&format!(
            "/contacts/imports/{id}?delimiter=%3B&quote=%22&encoding=utf-8"
        ))
        .await;
    assert_eq!(map.status, 200);
    assert!(
        !map.body.contains("it is read as Windows-1252"),
        "{}",
        map.body
    );
    s.stop().await;
}

async fn import_visibility_and_options(backend: Backend) {
    let s = TestServer::start(backend).await;
    create_user(&s, "una", "una-password-1", magpie::users::Role::User).await;
    let admin = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let una = Web::login(&s, "una", "una-password-1").await;
    // Existing contact: skipped with "skip if exists".
    s.create_contact(json!({"email": "known@example.org", "firstname": "Known"}))
        .await;
    let csv = b"email,firstname,owner\r\nknown@example.org,Changed,\r\nnew@example.org,New,\r\n";
    let id = import_id(
        &admin
            .multipart(
                "/contacts/import/upload",
                &[],
                Some(("file", "people.csv", csv)),
                true,
            )
            .await,
    );

    // Imports are their uploader's (and admins'): another user gets a 404.
    assert_eq!(
        una.get(&format!("/contacts/imports/{id}")).await.status,
        404
    );
    assert_eq!(
        una.post(&format!("/contacts/imports/{id}/start"), &[])
            .await
            .status,
        404
    );
    assert!(
        !una.get("/contacts/import")
            .await
            .body
            .contains(&format!("data-import-id=\"{id}\""))
    );

    let r = admin
        .post(
            &format!("/contacts/imports/{id}/start"),
            &[
                ("col_0", "email"),
                ("col_1", "firstname"),
                ("col_2", "owner"),
                ("owner", "1"),
                ("ifExists", "skip"),
                ("matchBy", "identifiers"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let done = wait_done(&admin, id).await;
    assert_eq!(
        (
            done["progress"]["created"].as_i64(),
            done["progress"]["skipped"].as_i64()
        ),
        (Some(1), Some(1)),
        "{done}"
    );
    let known = s
        .get("/api/contacts?search=email:known@example.org")
        .await
        .expect(200);
    assert_eq!(
        known["contacts"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()["fields"]["all"]["firstname"],
        "Known"
    );
    let new = s
        .get("/api/contacts?search=email:new@example.org")
        .await
        .expect(200);
    assert_eq!(
        new["contacts"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()["owner"]["id"],
        1,
        "the default owner"
    );

    // A user's own import: no "create a new field" for non-admins.
    let id = import_id(
        &una.multipart(
            "/contacts/import/upload",
            &[],
            Some(("file", "mine.csv", csv)),
            true,
        )
        .await,
    );
    let page = una.get(&format!("/contacts/imports/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Create a new field"));
    assert!(
        admin.get(&format!("/contacts/imports/{id}")).await.status == 200,
        "admins see every import"
    );
    s.stop().await;
}

/// Waits for the user's newest export notification (other than `old`); returns its
/// local download link.
async fn wait_link(web: &Web, old: Option<&str>) -> String {
    let started = Instant::now();
    loop {
        let page = web.get("/notifications").await;
        if let Some(at) = page.body.find("data-download-link") {
            let before = &page.body[..at];
            let href = before.rfind("href=\"").unwrap() + 6;
            let link = before[href..href + before[href..].find('"').unwrap()].replace("&amp;", "&");
            if Some(link.as_str()) != old {
                return link;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no notification: {}",
            page.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn export_from_the_list(backend: Backend) {
    let s = TestServer::start(backend).await;
    create_user(&s, "bob", "bob-password-1", magpie::users::Role::Admin).await;
    for (e, tag) in [
        ("vip1@example.org", "vip"),
        ("vip2@example.org", "vip"),
        ("plain@example.org", "plain"),
    ] {
        s.create_contact(json!({"email": e, "firstname": "<b>x</b>", "tags": [tag]}))
            .await;
    }
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let bob = Web::login(&s, "bob", "bob-password-1").await;
    let list = web.get("/contacts?q=tag%3Avip").await;
    assert!(
        list.body.contains("id=\"export-csv\"") && list.body.contains("id=\"batch-export-csv\"")
    );
    assert!(
        list.body
            .contains("name=\"q\" value=\"tag:vip\" data-export-search")
    );

    // CSV of the search: queued, a message, then a notification with the link.
    let r = web
        .post("/contacts/export", &[("format", "csv"), ("q", "tag:vip")])
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/contacts?q=tag%3Avip");
    let back = follow(&web, &r).await;
    assert!(
        back.body.contains("The export has started"),
        "{}",
        back.body
    );
    let link = wait_link(&web, None).await;
    assert!(
        link.starts_with("/exports/") && link.contains("/download?token="),
        "{link}"
    );
    let contacts = web.get("/contacts").await;
    assert!(
        contacts.body.contains("id=\"notifications-count\""),
        "unread indicator in the navigation"
    );

    // The link: the same user downloads; another user gets a 403 page; nobody → login.
    let file = web.get(&link).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.headers["content-type"], "text/csv; charset=utf-8");
    assert!(
        file.headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        file.body.contains("vip1@example.org")
            && file.body.contains("vip2@example.org")
            && !file.body.contains("plain@example.org")
    );
    let other = bob.get(&link).await;
    assert_eq!(other.status, 403);
    assert!(
        other.body.contains("belongs to another user") && other.body.contains("<html"),
        "a 403 page: {}",
        other.body
    );
    let anonymous = magpie_tests::web::fetch(magpie_tests::web::client().get(s.url(&link))).await;
    assert_eq!(anonymous.status, 303);
    assert!(
        anonymous
            .location()
            .starts_with("/login?next=%2Fexports%2F"),
        "{}",
        anonymous.location()
    );
    let id: i64 = link["/exports/".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        web.get(&format!("/exports/{id}/download?token=wrong"))
            .await
            .status,
        403
    );
    // An unknown export answers as a wrong token does: ids cannot be probed.
    assert_eq!(
        web.get("/exports/999999/download?token=x").await.status,
        403
    );
    {
        use magpie::store::Exec;
        let mut tx = s.state().store.begin().await.unwrap();
        tx.execute(
            "UPDATE exports SET expires_at = 1 WHERE id = $1",
            vec![magpie::store::Value::Int(id)],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let expired = web.get(&link).await;
    assert_eq!(expired.status, 403);
    assert!(expired.body.contains("expired"));

    // Notifications: read them all; the indicator goes.
    assert_eq!(
        web.post_without_token("/notifications/read", &[])
            .await
            .status,
        403
    );
    let r = web.post("/notifications/read", &[]).await;
    assert_eq!(r.status, 303);
    assert!(
        !web.get("/contacts")
            .await
            .body
            .contains("id=\"notifications-count\"")
    );

    // Selected contacts as XLSX: downloaded at once.
    let ids: Vec<String> = s.get("/api/contacts?search=tag:vip").await.expect(200)["contacts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let r = web
        .req(reqwest::Method::POST, "/contacts/export")
        .form(&[
            ("_csrf", web.csrf.as_str()),
            ("format", "xlsx"),
            ("q", ""),
            ("ids", &ids[0]),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(
        r.bytes().await.unwrap().starts_with(b"PK"),
        "a zip (xlsx) file"
    );
    // Selected contacts as CSV: only those.
    let r = web
        .post(
            "/contacts/export",
            &[
                ("format", "csv"),
                ("q", ""),
                ("ids", &ids[0]),
                ("ids", &ids[1]),
            ],
        )
        .await;
    assert!(
        follow(&web, &r)
            .await
            .body
            .contains("The export of the selected contacts has started")
    );
    let link = wait_link(&web, Some(&link)).await;
    let file = web.get(&link).await;
    assert_eq!(
        file.body.matches("vip").count(),
        4,
        "two rows, each with email and tag: {}",
        file.body
    );
    // A bad search: the reason, no export.
    let r = web
        .post("/contacts/export", &[("format", "csv"), ("q", "(unclosed")])
        .await;
    assert!(
        follow(&web, &r)
            .await
            .body
            .contains("could not be exported")
    );
    assert_eq!(
        web.post_without_token("/contacts/export", &[("format", "csv")])
            .await
            .status,
        403
    );
    s.stop().await;
}

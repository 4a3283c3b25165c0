//! The import wizard in a real browser (Chromium through WebDriver), on SQLite and
//! PostgreSQL: Contacts → Import, upload a CSV of a few thousand rows through the file
//! input (with a hostile header and a few bad rows), check the proposed mapping, create a
//! field for one column, start, and watch the progress bar (updated by the page's
//! script, without reloading) reach 100% with the counts; the failed rows link appears.
//! Then the export buttons: Export CSV leaves its message and the notification's link
//! downloads. Screenshots of the mapping and the finished progress are saved.

use std::time::Duration;

use magpie_tests::browser::Browser;
use magpie_tests::{ADMIN_PASSWORD, Backend, TestServer, both_backends, json};

both_backends!(import_wizard_in_a_browser);

const ROWS: usize = 3000;
const BAD: usize = 3;

fn prefix(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

async fn assert_inert(b: &Browser, place: &str) {
    assert!(!b.alert_open().await, "an alert fired on {place}");
    assert_eq!(
        b.script("return typeof window.__xss").await,
        json!("undefined"),
        "injected code ran on {place}"
    );
    let injected = b
        .script("return document.querySelectorAll('img[onerror], script:not([src])').length")
        .await;
    assert_eq!(injected, json!(0), "an injected element exists on {place}");
}

fn csv_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut csv = String::from(
        "Email;First name;Last name;City;Loyalty level;<img src=x onerror=window.__xss=1>\n",
    );
    for i in 0..ROWS {
        csv.push_str(&format!(
            "person{i}@example.org;First{i};Last{i};City {};{};<script>window.__xss=2</script>\n",
            i % 40,
            i % 5
        ));
    }
    for i in 0..BAD {
        csv.push_str(&format!("broken-{i};Bad;Row;Nowhere;1;x\n"));
    }
    let path = dir.join("people <i>list.csv");
    std::fs::write(&path, csv).unwrap();
    path
}

async fn import_wizard_in_a_browser(backend: Backend) {
    // Small batches: the import takes several checkpoints, so the bar moves.
    let s = TestServer::start_with(backend, "[import]\nbatch_rows = 100\n").await;
    let b = Browser::start(&s.base).await;
    b.login("admin", ADMIN_PASSWORD).await;

    // Contacts → Import.
    b.click("#import-link").await;
    b.wait_path("/contacts/import").await;
    let dir = tempfile::tempdir().unwrap();
    let file = csv_file(dir.path());
    b.find("#import-file")
        .await
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    b.click("#import-upload-submit").await;
    b.wait_path("/contacts/imports/").await;

    // The mapping: proposals, samples, the hostile header and file name as text.
    b.wait_text("Map the columns").await;
    assert_inert(&b, "the mapping step").await;
    assert_eq!(b.text("#import-file-name").await, "people <i>list.csv");
    assert_eq!(
        b.script("return document.getElementById('col-0').value")
            .await,
        json!("email")
    );
    assert_eq!(
        b.script("return document.getElementById('col-1').value")
            .await,
        json!("firstname")
    );
    assert_eq!(
        b.script("return document.getElementById('col-2').value")
            .await,
        json!("lastname")
    );
    assert_eq!(
        b.script("return document.getElementById('col-3').value")
            .await,
        json!("city")
    );
    assert_eq!(
        b.script("return document.getElementById('col-4').value")
            .await,
        json!(""),
        "no field named like it"
    );
    assert!(
        b.text("#mapping-table tr[data-column='5'] .col-header")
            .await
            .contains("<img src=x onerror=window.__xss=1>")
    );
    assert!(
        b.text("#mapping-table tr[data-column='0'] .col-samples")
            .await
            .contains("person0@example.org")
    );
    assert_eq!(
        b.text("#dialect-delimiter option:checked").await,
        "Semicolon ;"
    );
    // Column 4 becomes a new number field; its inputs appear only then.
    assert!(!b.find("#new-label-4").await.is_displayed().await.unwrap());
    b.set_value("#col-4", "__create__").await;
    assert!(b.find("#new-label-4").await.is_displayed().await.unwrap());
    b.fill("#new-label-4", "Loyalty level").await;
    b.set_value("#new-type-4", "number").await;
    b.fill("#import-tags", "from-browser").await;
    b.screenshot(&format!("{}-import-mapping", prefix(backend)))
        .await;
    b.click("#import-start").await;

    // The progress page: the script polls and fills the bar; the page is not reloaded.
    b.find("#import-bar").await;
    let live_at_load = b.script("window.__samePage = 1; return document.getElementById('import-progress').getAttribute('data-live')").await == json!("1");
    let mut seen = Vec::new();
    for _ in 0..600 {
        let v = b.script("return [document.getElementById('import-bar').value, document.getElementById('import-status').textContent]").await;
        let (value, status) = (
            v[0].as_f64().unwrap_or(0.0),
            v[1].as_str().unwrap_or("").to_owned(),
        );
        if seen.last() != Some(&value) {
            seen.push(value);
        }
        if status == "Done" && value >= 100.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        b.text("#import-status").await,
        "Done",
        "the import finished; bar values seen: {seen:?}"
    );
    assert_eq!(
        b.script("return document.getElementById('import-bar').value")
            .await,
        json!(100)
    );
    assert_eq!(b.text("#import-percent").await, "100.0");
    eprintln!("progress bar values seen: {seen:?} (live when loaded: {live_at_load})");
    if live_at_load {
        assert_eq!(
            b.script("return window.__samePage").await,
            json!(1),
            "updated in place by the script, not by reloading"
        );
        assert_eq!(
            b.find("#import-progress")
                .await
                .attr("data-live")
                .await
                .unwrap()
                .as_deref(),
            Some("0"),
            "the script saw the end"
        );
    }
    assert_eq!(
        b.text("#import-rows").await,
        format!(
            "{} of {} rows",
            thousands(ROWS + BAD),
            thousands(ROWS + BAD)
        )
    );
    assert_eq!(b.text("#import-created").await, thousands(ROWS));
    assert_eq!(b.text("#import-updated").await, "0");
    assert_eq!(b.text("#import-failed").await, BAD.to_string());
    assert!(
        b.find("#import-failed-link")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "the failed rows link shows"
    );
    assert_eq!(
        b.find("#import-failed-link")
            .await
            .attr("href")
            .await
            .unwrap()
            .unwrap(),
        format!("{}/failed.csv", b.path().await)
    );
    assert!(
        !b.find("#import-stop").await.is_displayed().await.unwrap(),
        "no Stop once done"
    );
    assert!(
        b.find("#import-done-hint")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    assert_inert(&b, "the progress page").await;
    b.screenshot(&format!("{}-import-progress", prefix(backend)))
        .await;

    // The contacts are there, with the new field and the tag.
    let c = s
        .get("/api/contacts?search=email:person42@example.org")
        .await
        .expect(200);
    let contact = c["contacts"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(contact["fields"]["all"]["loyalty_level"], 2);
    assert_eq!(contact["tags"][0]["tag"], "from-browser");

    // Past imports on the upload page.
    b.goto("/contacts/import").await;
    let row = b.text("#imports-table tbody tr").await;
    assert!(
        row.contains("people <i>list.csv")
            && row.contains("Done")
            && row.contains(&thousands(ROWS)),
        "{row}"
    );

    // Export CSV of a search: the message, then the notification's link downloads.
    b.goto("/contacts?q=city%3A%22City%207%22").await;
    b.click("#export-csv").await;
    b.wait_text("The export has started").await;
    let mut link = None;
    for _ in 0..200 {
        b.goto("/notifications").await;
        if b.exists("[data-download-link]").await {
            link = b
                .find("[data-download-link]")
                .await
                .attr("href")
                .await
                .unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let link = link.expect("the export's notification");
    assert!(link.starts_with("/exports/"), "{link}");
    // The browser's session follows it (fetched by script to read the answer).
    let got = b
        .script(&format!("return fetch({:?}, {{credentials: 'same-origin'}}).then(r => r.text().then(t => [r.status, r.headers.get('content-disposition'), t.split('\\n').length]))", link))
        .await;
    assert_eq!(got[0], json!(200), "{got}");
    assert!(got[1].as_str().unwrap().starts_with("attachment"));
    assert_eq!(
        got[2],
        json!(ROWS / 40 + 2),
        "header, the rows of City 7, the last line end"
    );
    b.close().await;
    s.stop().await;
}

fn thousands(n: usize) -> String {
    magpie::web::display::thousands(n as i64)
}

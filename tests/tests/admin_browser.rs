//! The web admin in a real browser (Chromium through WebDriver), on SQLite and
//! PostgreSQL: the marketer's daily workflow from login to delete, and hostile values
//! that must stay inert. Screenshots of the list and the contact page are saved (see the
//! test output for where).

use magpie::timeline::NewEvent;
use magpie_tests::browser::Browser;
use magpie_tests::{ADMIN_PASSWORD, Backend, TestServer, both_backends, json};

both_backends!(daily_workflow, hostile_values_stay_inert);

fn prefix(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// The names in the contacts table (read in one script, so a table being replaced by
/// live search cannot leave a stale element behind).
async fn rows(b: &Browser) -> Vec<String> {
    let v = b.script("return Array.from(document.querySelectorAll('#contacts-table tbody tr .col-name bdi')).map(e => e.textContent)").await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

async fn daily_workflow(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alan = s.create_contact(json!({"firstname": "Alan", "lastname": "Turing", "email": "alan@example.org", "points": 10, "tags": ["vip"]})).await;
    let b = Browser::start(&s.base).await;

    // Unauthenticated: to the login page, and back to where we were going after it.
    b.goto("/contacts?q=tag%3Avip").await;
    b.wait_path("/login").await;
    assert!(
        b.path()
            .await
            .contains("next=%2Fcontacts%3Fq%3Dtag%253Avip")
            || b.path().await.contains("next="),
        "{}",
        b.path().await
    );
    b.fill("#username", "admin").await;
    b.fill("#password", "wrong password").await;
    b.click("#login-submit").await;
    assert!(
        b.text("#login-error")
            .await
            .contains("Wrong user name or password")
    );
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#login-submit").await;
    b.wait_path("/contacts?q=tag").await;
    assert_eq!(rows(&b).await, vec!["Alan Turing"]);
    assert_eq!(
        b.find("#search")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("tag:vip")
    );

    // A custom field in a custom group, through the settings pages.
    b.goto("/settings/fields/new").await;
    b.fill("#field-label", "Shoe size").await;
    b.find("#field-type")
        .await
        .select_by_value("number")
        .await
        .unwrap();
    b.fill("#field-group-new", "loyalty").await;
    b.click("#save-field").await;
    // The form's own path starts with "/settings/fields" too: wait for the new row itself.
    b.find("#fields-table tr[data-alias=shoe_size]").await;
    assert_eq!(b.path().await, "/settings/fields");
    b.screenshot(&format!("{}-settings-fields", prefix(backend)))
        .await;

    // Quick add: a validation error stays in the modal, then success shows the contact.
    b.goto("/contacts").await;
    b.click("#quick-add-open").await;
    assert!(b.find("#quick-add").await.is_displayed().await.unwrap());
    let quick_labels: Vec<String> = {
        let mut v = Vec::new();
        for e in b.find_all("#quick-add .field-label").await {
            v.push(e.text().await.unwrap());
        }
        v
    };
    assert_eq!(
        quick_labels,
        vec!["First Name", "Last Name", "Email unique", "Owner", "Tags"],
        "short-form fields in field order, then owner and tags"
    );
    b.fill("#quick-add #f-firstname", "Ada").await;
    b.fill("#quick-add #f-lastname", "Lovelace").await;
    b.fill("#quick-add #f-email", "not-an-email").await;
    b.click("#quick-add-save").await;
    b.wait_text("must be a valid email address").await;
    assert!(
        b.find("#quick-add").await.is_displayed().await.unwrap(),
        "the modal reopens with the error"
    );
    assert_eq!(
        b.find("#quick-add #f-firstname")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Ada"),
        "typed values are kept"
    );
    b.fill("#quick-add #f-email", "ada@example.org").await;
    b.fill("#quick-tags", "newsletter").await;
    b.click("#quick-add-save").await;
    b.wait_path("/contacts?added=").await;
    b.wait_text("Ada Lovelace was added.").await;
    assert_eq!(
        b.text("#contacts-table tbody tr.highlight .col-name bdi")
            .await,
        "Ada Lovelace"
    );

    // Full add with the custom field in its tab, tags and owner.
    b.click("#new-contact").await;
    b.wait_path("/contacts/new").await;
    let tabs: Vec<String> = {
        let mut v = Vec::new();
        for t in b.find_all("#contact-form [role=tab]").await {
            v.push(t.text().await.unwrap());
        }
        v
    };
    assert_eq!(tabs, vec!["Core", "Social", "Loyalty"], "{tabs:?}");
    assert!(
        !b.find("#f-shoe_size").await.is_displayed().await.unwrap(),
        "other tabs are hidden"
    );
    b.fill("#f-firstname", "Grace").await;
    b.fill("#f-lastname", "Hopper").await;
    b.fill("#f-email", "grace@example.org").await;
    b.fill("#f-points", "50").await;
    b.find("#f-country")
        .await
        .select_by_value("United States")
        .await
        .unwrap();
    b.click("#tab-loyalty").await;
    assert!(b.find("#f-shoe_size").await.is_displayed().await.unwrap());
    b.fill("#f-shoe_size", "42").await;
    b.fill("#f-tags", "vip, beta").await;
    b.click("#tab-core").await;
    b.screenshot(&format!("{}-contact-form", prefix(backend)))
        .await;
    b.click("#save-contact").await;
    b.wait_text("Grace Hopper was created.").await;
    let grace: i64 = b
        .path()
        .await
        .trim_start_matches("/contacts/")
        .parse()
        .expect("on the contact page");
    let about = b.text("#about").await;
    assert!(
        about.contains("Shoe size") && about.contains("42"),
        "{about}"
    );
    assert!(about.contains("United States"));
    assert_eq!(b.text("#points").await, "50");

    // Duplicate warning before anything is saved.
    b.goto("/contacts/new").await;
    b.fill("#f-firstname", "Another").await;
    b.fill("#f-email", "GRACE@example.org").await;
    b.click("#save-contact").await;
    let warning = b.text("#duplicate-warning").await;
    assert!(
        warning.contains("Grace Hopper") && warning.contains("Nothing was saved"),
        "{warning}"
    );
    let href = b
        .find("#duplicate-warning a.duplicate-link")
        .await
        .attr("href")
        .await
        .unwrap();
    assert_eq!(href.as_deref(), Some(format!("/contacts/{grace}").as_str()));
    let total = s.get("/api/contacts?limit=1").await.expect(200)["total"].clone();
    assert_eq!(total, "3", "nothing was saved");

    // Server-side validation on the full form keeps what was typed.
    b.goto(&format!("/contacts/{grace}/edit")).await;
    b.fill("#f-website", "not a url").await;
    b.fill("#f-city", "Arlington").await;
    b.click("#save-contact").await;
    b.wait_text("must be a URL").await;
    assert_eq!(
        b.find("#f-city")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Arlington")
    );
    b.fill("#f-website", "https://grace.example.org").await;
    b.click("#save-contact").await;
    b.wait_text("Grace Hopper was saved.").await;
    assert!(b.text("#about").await.contains("Arlington"));

    // Uploads that are not images, or too big, are refused with a message.
    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("notes.png");
    std::fs::write(&text_file, "<svg onload=alert(1)>definitely not an image").unwrap();
    let big_file = dir.path().join("huge.png");
    let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
    big.resize(3 * 1024 * 1024, 0);
    std::fs::write(&big_file, big).unwrap();
    for (file, message) in [
        (&text_file, "not a PNG, JPEG, GIF or WebP image"),
        (&big_file, "too big"),
    ] {
        b.goto(&format!("/contacts/{grace}/edit")).await;
        b.click("#image-custom").await;
        b.find("#f-avatar")
            .await
            .send_keys(&file.display().to_string())
            .await
            .unwrap();
        b.click("#save-contact").await;
        b.wait_text(message).await;
        let err = b.text("#avatar-error").await;
        assert!(err.contains(message), "{err}");
    }
    let png = dir.path().join("ok.png");
    std::fs::write(&png, tiny_png()).unwrap();
    b.goto(&format!("/contacts/{grace}/edit")).await;
    b.click("#image-custom").await;
    b.find("#f-avatar")
        .await
        .send_keys(&png.display().to_string())
        .await
        .unwrap();
    b.click("#save-contact").await;
    b.wait_text("Grace Hopper was saved.").await;
    let src = b
        .find("#contact-header img[data-avatar]")
        .await
        .attr("src")
        .await
        .unwrap()
        .unwrap();
    assert!(
        src.starts_with(&format!("/contacts/{grace}/avatar")),
        "{src}"
    );
    let loaded = b
        .script("return document.querySelector('#contact-header img[data-avatar]').naturalWidth")
        .await;
    assert_eq!(loaded, json!(1), "the uploaded image is served");

    // Search with commands, sorting, page sizes and the help popover.
    b.goto("/contacts").await;
    b.click("#search-help-toggle").await;
    assert_eq!(
        b.script("return document.getElementById('search-help').matches(':popover-open')")
            .await,
        json!(true)
    );
    assert!(b.text("#search-help").await.contains("is:anonymous"));
    b.script("document.getElementById('search-help').hidePopover()")
        .await;
    b.fill("#search", "tag:vip").await;
    b.find("#search").await.send_keys("\u{E007}").await.unwrap();
    b.wait_path("/contacts?q=tag%3Avip").await;
    let mut names = rows(&b).await;
    names.sort();
    assert_eq!(names, vec!["Alan Turing", "Grace Hopper"]);
    b.click("th.col-points a").await;
    b.wait_path("/contacts?q=tag%3Avip&sort=points&dir=desc")
        .await;
    assert_eq!(rows(&b).await, vec!["Grace Hopper", "Alan Turing"]);
    b.click("th.col-points a").await;
    b.wait_path("/contacts?q=tag%3Avip&sort=points&dir=asc")
        .await;
    assert_eq!(rows(&b).await, vec!["Alan Turing", "Grace Hopper"]);
    b.goto("/contacts?q=email%3Aada%40").await;
    assert_eq!(rows(&b).await, vec!["Ada Lovelace"]);
    b.goto("/contacts?q=points%3A%3E20").await;
    assert_eq!(rows(&b).await, vec!["Grace Hopper"]);
    b.goto("/contacts?q=%28unbalanced").await;
    assert!(b.text("#search-error").await.contains("Invalid search"));
    b.goto("/contacts").await;
    b.find("#page-size")
        .await
        .select_by_value("10")
        .await
        .unwrap();
    b.wait_path("/contacts?limit=10").await;
    // Search as you type: the results and the URL follow the search box.
    b.goto("/contacts").await;
    b.fill("#search", "email:ada").await;
    b.wait_path("/contacts?q=email%3Aada").await;
    for _ in 0..50 {
        if rows(&b).await == vec!["Ada Lovelace"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rows(&b).await, vec!["Ada Lovelace"]);
    b.goto("/contacts?limit=10").await;
    // Select-all shows the batch bar.
    b.click("#select-all").await;
    assert!(b.text("[data-batch-bar]").await.contains("3 selected"));
    b.screenshot(&format!("{}-contacts-list", prefix(backend)))
        .await;

    // The contact page: chart, history with filters and expandable events, notes.
    let store = s.state().store.clone();
    let now = magpie::time::now_ms();
    let mut events = Vec::new();
    for i in 0..40 {
        events.push(NewEvent::new(
            grace,
            "page.hit",
            now - i * 86_400_000,
            json!({"url": format!("https://shop.example/p/{i}"), "title": format!("Product {i}")}),
        ));
    }
    let mut tx = store.begin().await.unwrap();
    magpie::store::events::insert(&mut tx, &events)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    b.goto(&format!("/contacts/{grace}")).await;
    assert_eq!(b.find_all("#engagement-chart rect.bar").await.len(), 6);
    let chart_text = b.text("#engagement").await;
    assert!(chart_text.contains("Engagements") && chart_text.contains("Points"));
    assert_eq!(
        b.find_all("#timeline li.event").await.len(),
        25,
        "the first page of the history"
    );
    assert!(b.exists("#history-next").await);
    b.fill("#history-search", "Product 7").await;
    b.click("#history-apply").await;
    b.wait_path(&format!("/contacts/{grace}?eq=Product+7"))
        .await;
    assert_eq!(b.find_all("#timeline li.event").await.len(), 1);
    b.click("#timeline li.event summary").await;
    assert!(
        b.text("#timeline li.event .event-details")
            .await
            .contains("https://shop.example/p/7")
    );
    b.goto(&format!("/contacts/{grace}")).await;
    b.find("#history-exclude")
        .await
        .select_by_value("page.hit")
        .await
        .unwrap();
    b.click("#history-apply").await;
    b.wait_path(&format!("/contacts/{grace}?eq=&exc=page.hit"))
        .await;
    let history = b.text("#timeline").await;
    assert!(
        !history.contains("Page hit") && history.contains("Contact created"),
        "{history}"
    );
    b.goto(&format!("/contacts/{grace}")).await;
    b.find("#history-include")
        .await
        .select_by_value("lead.create")
        .await
        .unwrap();
    b.click("#history-apply").await;
    b.wait_path(&format!("/contacts/{grace}?eq=&inc=lead.create"))
        .await;
    assert_eq!(b.find_all("#timeline li.event").await.len(), 1);

    // Notes: add a call with its date-time, edit it, delete it.
    b.goto(&format!("/contacts/{grace}")).await;
    b.click("#tab-notes").await;
    b.find("#note-type")
        .await
        .select_by_value("call")
        .await
        .unwrap();
    b.set_value("#note-date", "2026-01-15T10:30").await;
    b.fill("#note-text", "Called about the renewal").await;
    b.click("#note-add").await;
    b.wait_text("Note added.").await;
    let notes = b.text("#notes-list").await;
    assert!(
        notes.contains("Called about the renewal")
            && notes.contains("Call")
            && notes.contains("2026-01-15 10:30"),
        "{notes}"
    );
    b.goto(&format!("/contacts/{grace}?inc=lead.note")).await;
    b.click("#timeline li.event summary").await;
    let history = b.text("#timeline").await;
    assert!(
        history.contains("Note") && history.contains("Called about the renewal"),
        "notes show in the history: {history}"
    );
    b.click("#tab-notes").await;
    b.click("#notes-list [data-open-dialog]").await;
    b.fill("dialog[open] textarea[name=text]", "Called twice")
        .await;
    b.click("dialog[open] button[type=submit].btn-primary")
        .await;
    b.wait_text("Note saved.").await;
    assert!(b.text("#notes-list").await.contains("Called twice"));
    b.goto(&format!("/contacts/{grace}")).await;
    b.click("#timeline li.event summary").await;
    b.screenshot(&format!("{}-contact-page", prefix(backend)))
        .await;
    b.click("#tab-notes").await;
    b.click("#notes-list form[data-confirm] button").await;
    b.click("#confirm-dialog [data-confirm-ok]").await;
    b.wait_text("Note deleted.").await;
    assert!(!b.exists("#notes-list li.note").await);

    // 404 page for an unknown id.
    b.goto("/contacts/99999999").await;
    assert!(b.text("h1").await.contains("Page not found"));

    // Delete from the actions menu, with confirmation.
    b.goto(&format!("/contacts/{alan}")).await;
    b.click("#actions-menu summary").await;
    b.click("#action-delete").await;
    b.click("#confirm-dialog [data-confirm-ok]").await;
    b.wait_text("Alan Turing was deleted.").await;
    assert_eq!(b.path().await, "/contacts");
    assert!(!rows(&b).await.contains(&"Alan Turing".to_owned()));
    assert_eq!(s.get(&format!("/api/contacts/{alan}")).await.status, 404);

    // Log out: the session is gone.
    b.click("#logout").await;
    b.wait_path("/login").await;
    b.goto("/contacts").await;
    b.wait_path("/login").await;
    b.close().await;
    s.stop().await;
}

/// A 1×1 PNG.
fn tiny_png() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/l9fU+QAAAABJRU5ErkJggg==")
        .unwrap()
}

const SCRIPT: &str = "<script>window.__xss=1;alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=\"window.__xss=2;alert(2)\">";
const RTL: &str = "\u{202E}gnp.exe";

async fn assert_inert(b: &Browser, place: &str) {
    assert!(!b.alert_open().await, "an alert fired on {place}");
    assert_eq!(
        b.script("return typeof window.__xss").await,
        json!("undefined"),
        "injected code ran on {place}"
    );
    let injected = b.script("return document.querySelectorAll('img[onerror], img[src=x], script:not([src]), [onload]').length").await;
    assert_eq!(injected, json!(0), "an injected element exists on {place}");
}

async fn hostile_values_stay_inert(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.post(
        "/api/fields/contact/new",
        json!({"label": "Bio", "type": "textarea", "group": "personal"}),
    )
    .await
    .expect(201);
    let huge = "€".repeat(34_000); // 102 kB
    let id = s
        .create_contact(json!({
            "firstname": SCRIPT, "lastname": IMG, "company": RTL, "email": "hostile@example.org",
            "city": "x".repeat(255), "bio": huge, "tags": ["<b>bold</b>", "\"><svg onload=alert(3)>"],
        }))
        .await;
    s.post(
        "/api/notes/new",
        json!({"lead": id, "text": format!("{IMG} {SCRIPT}"), "type": "general"}),
    )
    .await
    .expect(201);
    let mut tx = s.state().store.begin().await.unwrap();
    magpie::store::events::insert(
        &mut tx,
        &[
            NewEvent::new(
                id,
                "plugin.thing<script>alert(4)</script>",
                magpie::time::now_ms(),
                json!({"title": SCRIPT, "url": "javascript:alert(5)", "big": "y".repeat(100_000)}),
            ),
            NewEvent::new(
                id,
                "page.hit",
                magpie::time::now_ms(),
                json!({"title": IMG, "url": "javascript:alert(6)"}),
            ),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let b = Browser::start(&s.base).await;
    b.login("admin", ADMIN_PASSWORD).await;

    // The list.
    b.goto("/contacts").await;
    assert_inert(&b, "the list").await;
    let name = b.text("#contacts-table tbody tr .col-name bdi").await;
    assert!(
        name.contains(SCRIPT) && name.contains("<img src=x"),
        "shown literally: {name}"
    );
    assert!(b.body_text().await.contains("<b>bold</b>"));
    let width = b
        .script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(width, json!(true), "long values do not widen the page");
    b.screenshot(&format!("{}-hostile-list", prefix(backend)))
        .await;

    // The contact page, with every event expanded and the note edit modal open.
    b.goto(&format!("/contacts/{id}")).await;
    assert_inert(&b, "the contact page").await;
    let title = b.script("return document.title").await;
    let title = title.as_str().unwrap();
    assert!(
        title.starts_with(SCRIPT),
        "the title shows the name as text: {title}"
    );
    assert!(b.text("#contact-name").await.contains(SCRIPT));
    assert!(
        b.text("#about").await.contains(RTL),
        "the RTL override is kept as text"
    );
    b.script("document.querySelectorAll('#timeline details').forEach(d => d.open = true)")
        .await;
    let history = b.text("#timeline").await;
    assert!(
        history.contains("plugin.thing<script>alert(4)</script>"),
        "an unknown type shows by its key, as text"
    );
    assert!(history.contains(IMG));
    assert!(
        !b.exists("#timeline a[href^=javascript]").await,
        "unsafe links are not links"
    );
    assert_inert(&b, "the expanded history").await;
    let width = b
        .script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(width, json!(true), "100 kB values do not widen the page");
    b.click("#tab-notes").await;
    b.click("#notes-list [data-open-dialog]").await;
    let modal_text = b
        .find("dialog[open] textarea[name=text]")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(modal_text, format!("{IMG} {SCRIPT}"));
    assert_inert(&b, "the note modal").await;
    b.screenshot(&format!("{}-hostile-contact", prefix(backend)))
        .await;

    // The edit form and a duplicate warning naming the hostile contact.
    b.goto(&format!("/contacts/{id}/edit")).await;
    assert_inert(&b, "the edit form").await;
    assert_eq!(
        b.find("#f-firstname")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(SCRIPT)
    );
    b.goto("/contacts/new").await;
    b.fill("#f-email", "hostile@example.org").await;
    b.click("#save-contact").await;
    assert!(b.text("#duplicate-warning").await.contains(SCRIPT));
    assert_inert(&b, "the duplicate warning").await;

    // The quick-add modal re-rendered with a hostile typed value.
    b.goto("/contacts").await;
    b.click("#quick-add-open").await;
    b.set_value("#quick-add #f-firstname", IMG).await;
    b.set_value("#quick-add #f-email", SCRIPT).await;
    b.click("#quick-add-save").await;
    b.wait_text("must be a valid email address").await;
    assert_inert(&b, "the quick-add modal").await;
    assert_eq!(
        b.find("#quick-add #f-firstname")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(IMG)
    );
    b.close().await;
    s.stop().await;
}

//! The admin's Plugins page in a real browser (Chromium through WebDriver), on SQLite
//! and PostgreSQL: the built-ins with their statistics, disabling and enabling, granting
//! a capability, configuring, the webhook secret, uploading through the file input (a bad
//! file refused, a good one listed), and a plugin's hostile metadata staying inert.
//! Screenshots of the list and a plugin's page are saved (see the test output).

use magpie_tests::browser::Browser;
use magpie_tests::{ADMIN_PASSWORD, Backend, TestServer, both_backends, json};

both_backends!(plugins_page_workflow);

fn prefix(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

fn test_plugin_path(name: &str) -> String {
    std::path::Path::new(magpie::plugins::TEST_PLUGINS_DIR)
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

async fn assert_inert(b: &Browser, place: &str) {
    assert!(!b.alert_open().await, "an alert fired on {place}");
    assert_eq!(
        b.script("return typeof window.__xss").await,
        json!("undefined"),
        "injected code ran on {place}"
    );
    let injected = b.script("return document.querySelectorAll('img[onerror], img[src=x], script:not([src]), [onclick], a[href^=javascript]').length").await;
    assert_eq!(injected, json!(0), "an injected element exists on {place}");
}

async fn state_of(b: &Browser, name: &str) -> String {
    b.find(&format!("#plugin-{name}"))
        .await
        .attr("data-state")
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn plugins_page_workflow(backend: Backend) {
    let s = TestServer::start(backend).await;
    let id = s.create_contact(json!({"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.org", "points": 5})).await;
    let b = Browser::start(&s.base).await;
    b.login("admin", ADMIN_PASSWORD).await;
    // The contact page renders its history through core-events: calls to count.
    b.goto(&format!("/contacts/{id}")).await;
    b.wait_text("Contact created").await;

    // Settings → Plugins: the built-ins with their statistics.
    b.click("nav.mainnav a[href='/settings/fields']").await;
    b.click("#nav-plugins").await;
    b.wait_path("/settings/plugins").await;
    let core = b.text("#plugin-core-events").await;
    assert!(
        core.contains("core-events")
            && core.contains("built-in")
            && core.contains("Event types")
            && core.contains("Enabled"),
        "{core}"
    );
    let calls: i64 = b
        .text("#plugin-core-events [data-stat=calls]")
        .await
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(
        calls >= 1,
        "core-events rendered the history: {calls} calls"
    );
    assert_eq!(b.text("#plugin-core-events [data-stat=errors]").await, "0");
    assert!(
        b.text("#plugin-core-events [data-stat=mean]")
            .await
            .ends_with('s'),
        "a mean call time in µs or ms"
    );
    assert!(
        b.text("#plugin-video-events")
            .await
            .contains("✓ record-events")
    );

    // Disable and re-enable a built-in.
    b.click("#disable-video-events").await;
    b.wait_text("Plugin video-events was disabled").await;
    assert_eq!(state_of(&b, "video-events").await, "disabled");
    assert!(
        b.text("#plugin-video-events")
            .await
            .contains("Disabled by an admin")
    );
    assert_eq!(
        s.get("/api/plugins/video-events").await.expect(200)["plugin"]["enabled"],
        false
    );
    b.click("#enable-video-events").await;
    b.wait_text("Plugin video-events was enabled.").await;
    assert_eq!(state_of(&b, "video-events").await, "enabled");

    // A bad file through the file input: refused with the reason, nothing changed.
    let before = s.get("/api/plugins").await.expect(200)["plugins"]
        .as_array()
        .unwrap()
        .len();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.wasm");
    std::fs::write(&bad, b"this is not WebAssembly").unwrap();
    b.find("#plugin-file")
        .await
        .send_keys(&bad.display().to_string())
        .await
        .unwrap();
    b.click("#upload-submit").await;
    b.wait_text("The plugin was refused").await;
    assert!(
        b.text("#upload-error")
            .await
            .contains("not a WebAssembly file")
    );
    assert_eq!(
        s.get("/api/plugins").await.expect(200)["plugins"]
            .as_array()
            .unwrap()
            .len(),
        before
    );

    // A good one: installed, listed and highlighted.
    b.goto("/settings/plugins").await;
    b.find("#plugin-file")
        .await
        .send_keys(&test_plugin_path("hostile_escape"))
        .await
        .unwrap();
    b.click("#upload-submit").await;
    b.wait_text("Plugin hostile-escape 0.1.0 was installed.")
        .await;
    assert!(
        b.path()
            .await
            .starts_with("/settings/plugins?installed=hostile-escape")
    );
    let row = b.text("#plugin-hostile-escape").await;
    assert!(
        row.contains("Escape (test)")
            && row.contains("uploaded")
            && row.contains("✗ read-contacts")
            && row.contains("nothing granted"),
        "{row}"
    );
    assert!(b.exists("#plugin-hostile-escape.highlight").await);
    b.screenshot(&format!("{}-plugins-list", prefix(backend)))
        .await;

    // Its page: grant a capability, configure it, reveal and rotate the secret.
    b.click("#open-hostile-escape").await;
    b.wait_path("/settings/plugins/hostile-escape").await;
    assert_eq!(b.text("#plugin-title").await, "Escape (test)");
    b.click("input[data-cap='read-contacts']").await;
    b.click("#save-capabilities").await;
    b.wait_text("Plugin hostile-escape is now granted read-contacts.")
        .await;
    assert_eq!(
        b.find("input[data-cap='read-contacts']")
            .await
            .prop("checked")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert_eq!(
        s.get("/api/plugins/hostile-escape").await.expect(200)["plugin"]["capabilities"]["granted"],
        json!(["read-contacts"])
    );
    let secret = s.plugin_secret("hostile-escape").await;
    let m = s
        .hook(
            "hostile-escape",
            &format!("contact?id={id}"),
            Some(&secret),
            json!({}),
        )
        .await
        .expect(200)["message"]
        .clone();
    assert_eq!(
        m,
        json!(format!("ok: Some({id})")),
        "the grant works at once"
    );

    // A bad origin is refused by its field and the typed lines are kept.
    b.fill("#cap-origins", "gopher://old.example.com").await;
    b.click("#save-capabilities").await;
    b.wait_text("the scheme must be http or https").await;
    assert_eq!(
        b.find("#cap-origins")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("gopher://old.example.com")
    );

    b.goto("/settings/plugins/hostile-escape").await;
    b.fill("#cfg-greeting", "Hello there").await;
    b.fill("#cfg-token", "tok-123").await;
    b.find("#cfg-mode")
        .await
        .select_by_value("b")
        .await
        .unwrap();
    b.click("#save-config").await;
    b.wait_text("The configuration of hostile-escape was saved.")
        .await;
    assert_eq!(
        b.find("#cfg-greeting")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Hello there")
    );
    assert_eq!(
        b.find("#cfg-token")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("********"),
        "the secret stays masked"
    );
    let m = s
        .hook("hostile-escape", "config", Some(&secret), json!({}))
        .await
        .expect(200)["message"]
        .clone();
    assert_eq!(m, "ok: greeting=Hello there;token=tok-123;mode=b");

    assert!(
        !b.body_text().await.contains(&secret),
        "hidden until revealed"
    );
    b.click("#reveal-secret").await;
    b.wait_path("/settings/plugins/hostile-escape?secret=show")
        .await;
    assert_eq!(
        b.find("#webhook-secret")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(secret.as_str())
    );
    assert!(
        b.find("[data-copy]").await.is_displayed().await.unwrap(),
        "the copy button shows with script"
    );
    b.screenshot(&format!("{}-plugin-page", prefix(backend)))
        .await;
    b.click("#rotate-secret").await;
    b.click("#confirm-dialog [data-confirm-ok]").await;
    b.wait_text("has a new webhook secret").await;
    let rotated = s.plugin_secret("hostile-escape").await;
    assert_ne!(rotated, secret);
    assert_eq!(
        b.find("#webhook-secret")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(rotated.as_str())
    );

    // Hostile metadata: uploaded, listed, opened; nothing of it runs.
    b.goto("/settings/plugins").await;
    b.find("#plugin-file")
        .await
        .send_keys(&test_plugin_path("hostile_markup"))
        .await
        .unwrap();
    b.click("#upload-submit").await;
    b.wait_text("Plugin hostile-markup 0.1.0 was installed.")
        .await;
    assert_inert(&b, "the list").await;
    assert!(
        b.text("#plugin-hostile-markup")
            .await
            .contains("Markup <script>window.__xss=1;alert(1)</script>"),
        "the title as text"
    );
    let width = b
        .script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(
        width,
        json!(true),
        "a long description does not widen the page"
    );
    b.click("#open-hostile-markup").await;
    b.wait_path("/settings/plugins/hostile-markup").await;
    assert_inert(&b, "the plugin's page").await;
    assert_eq!(
        b.text("#plugin-title").await,
        "Markup <script>window.__xss=1;alert(1)</script>"
    );
    let title = b.script("return document.title").await;
    assert_eq!(title, json!("Plugin hostile-markup · Magpie"));
    b.click("#save-config").await;
    b.wait_text("Please correct the highlighted settings").await;
    assert_inert(&b, "the configuration form with errors").await;
    b.screenshot(&format!("{}-plugin-hostile", prefix(backend)))
        .await;

    // Remove it, with confirmation.
    b.goto("/settings/plugins/hostile-markup").await;
    b.click("#plugin-delete").await;
    b.click("#confirm-dialog [data-confirm-ok]").await;
    b.wait_text("Plugin hostile-markup was removed.").await;
    assert!(!b.exists("#plugin-hostile-markup").await);
    b.close().await;
    s.stop().await;
}

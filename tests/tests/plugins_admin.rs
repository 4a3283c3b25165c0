//! The admin's Plugins page (`/settings/plugins…`) over plain HTTP, on SQLite and
//! PostgreSQL: administrators only, CSRF on every form, enabling/disabling and grants
//! taking effect in the running server, configuration checked against the plugin's
//! schema, uploads validated before they are accepted, and plugin-provided text shown
//! as text.

use magpie::users::Role;
use magpie_tests::web::{Page, Web, create_user, unify_entities};
use magpie_tests::{
    ADMIN_PASSWORD, Backend, TestServer, Value, both_backends, hello_server, json, test_plugin,
};

both_backends!(
    only_administrators_see_and_change_plugins,
    forms_without_the_csrf_token_change_nothing,
    enabling_disabling_and_grants_take_effect,
    configuration_is_checked_against_the_schema,
    uploads_are_validated_before_they_are_accepted,
    webhook_secret_is_revealed_and_rotated,
    failures_and_ignored_types_are_visible,
    plugin_metadata_is_shown_as_text,
);

/// Plugin names with their code's hash, from the API: "the running set".
async fn running_set(s: &TestServer) -> Vec<String> {
    let list = s.get("/api/plugins").await.expect(200);
    list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p["name"].as_str().unwrap(),
                p["sha256"].as_str().unwrap()
            )
        })
        .collect()
}

async fn api_plugin(s: &TestServer, name: &str) -> Value {
    s.get(&format!("/api/plugins/{name}")).await.expect(200)["plugin"].clone()
}

/// The `<tr>` of a plugin in the list page.
fn row<'a>(page: &'a Page, name: &str) -> &'a str {
    let start = page
        .body
        .find(&format!("<tr id=\"plugin-{name}\""))
        .unwrap_or_else(|| panic!("no row for {name}"));
    let end = start + page.body[start..].find("</tr>").unwrap();
    &page.body[start..end]
}

#[track_caller]
fn assert_redirect(page: &Page, to: &str) {
    assert_eq!(
        page.status, 303,
        "expected a redirect to {to}: {}",
        page.body
    );
    assert_eq!(page.location(), to);
}

async fn only_administrators_see_and_change_plugins(backend: Backend) {
    let s = TestServer::start(backend).await;
    // Not logged in: to the login page.
    let anon =
        magpie_tests::web::fetch(magpie_tests::web::client().get(s.url("/settings/plugins"))).await;
    assert_eq!(anon.status, 303);
    assert!(
        anon.location()
            .starts_with("/login?next=%2Fsettings%2Fplugins"),
        "{}",
        anon.location()
    );

    let admin = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let list = admin.get("/settings/plugins").await;
    assert_eq!(list.status, 200);
    for name in ["core-events", "video-events"] {
        let r = row(&list, name);
        assert!(
            r.contains("data-state=\"enabled\"")
                && r.contains("built-in")
                && r.contains("Event types"),
            "{r}"
        );
    }
    assert!(
        row(&list, "video-events").contains("✓ record-events"),
        "requested and granted"
    );
    assert!(
        list.body.contains("id=\"nav-plugins\""),
        "the settings navigation links the page"
    );
    assert_eq!(
        admin.get("/settings/plugins/video-events").await.status,
        200
    );
    assert_eq!(
        admin.get("/settings/plugins/no-such-plugin").await.status,
        404
    );

    create_user(&s, "plain", "user-password", Role::User).await;
    let user = Web::login(&s, "plain", "user-password").await;
    let contacts = user.get("/contacts").await;
    assert!(
        !contacts.body.contains("/settings/plugins"),
        "no link for non-admins"
    );
    for path in ["/settings/plugins", "/settings/plugins/core-events"] {
        let page = user.get(path).await;
        assert_eq!(page.status, 403, "{path}");
        assert!(page.body.contains("Only administrators"), "{}", page.body);
    }
    for path in [
        "/settings/plugins/core-events/disable",
        "/settings/plugins/video-events/secret/rotate",
        "/settings/plugins/video-events/delete",
    ] {
        assert_eq!(user.post(path, &[]).await.status, 403, "{path}");
    }
    let page = user
        .post("/settings/plugins/video-events/capabilities", &[])
        .await;
    assert_eq!(page.status, 403);
    let page = user
        .post("/settings/plugins/video-events/config", &[])
        .await;
    assert_eq!(page.status, 403);
    let before = running_set(&s).await;
    let page = user
        .multipart(
            "/settings/plugins",
            &[],
            Some(("plugin", "crash.wasm", &test_plugin("hostile_crash"))),
            true,
        )
        .await;
    assert_eq!(page.status, 403);
    assert_eq!(running_set(&s).await, before, "nothing was installed");
    let core = api_plugin(&s, "core-events").await;
    assert_eq!(core["enabled"], true, "nothing was disabled");
    assert_eq!(
        api_plugin(&s, "video-events").await["capabilities"]["granted"],
        json!(["record-events"]),
        "nothing was revoked"
    );
    s.stop().await;
}

async fn forms_without_the_csrf_token_change_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let secret = s.plugin_secret("video-events").await;
    let refused = [
        admin
            .post_without_token("/settings/plugins/core-events/disable", &[])
            .await,
        admin
            .post_without_token("/settings/plugins/video-events/capabilities", &[])
            .await,
        admin
            .post_without_token("/settings/plugins/video-events/secret/rotate", &[])
            .await,
        admin
            .post_without_token("/settings/plugins/video-events/config", &[])
            .await,
        admin
            .multipart(
                "/settings/plugins",
                &[],
                Some(("plugin", "crash.wasm", &test_plugin("hostile_crash"))),
                false,
            )
            .await,
        admin
            .multipart(
                "/settings/plugins",
                &[("_csrf", "forged")],
                Some(("plugin", "crash.wasm", &test_plugin("hostile_crash"))),
                false,
            )
            .await,
    ];
    for page in &refused {
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(
            page.body.contains("security token"),
            "the CSRF page: {}",
            page.body
        );
    }
    assert_eq!(api_plugin(&s, "core-events").await["enabled"], true);
    assert_eq!(
        api_plugin(&s, "video-events").await["capabilities"]["granted"],
        json!(["record-events"])
    );
    assert_eq!(s.plugin_secret("video-events").await, secret);
    assert!(
        s.get("/api/plugins/hostile-crash").await.status == 404,
        "nothing was installed"
    );
    assert!(!s.data_dir.join("plugins/hostile-crash.wasm").exists());
    // Every form of the pages carries the token.
    for path in ["/settings/plugins", "/settings/plugins/video-events"] {
        let page = admin.get(path).await;
        let forms = page.body.matches("<form method=\"post\"").count();
        let tokens = page
            .body
            .matches(&format!("name=\"_csrf\" value=\"{}\"", admin.csrf))
            .count();
        assert!(
            forms >= 2 && tokens == forms,
            "{path}: {forms} forms, {tokens} tokens"
        );
    }
    s.stop().await;
}

async fn enabling_disabling_and_grants_take_effect(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let id = s
        .create_contact(json!({"email": "ada@example.org", "firstname": "Ada"}))
        .await;
    let created = |act: &Value| {
        act["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "lead.create")
            .unwrap()["rendered"]
            .clone()
    };

    // Disable from the list: the events of its types show raw, the page says so.
    let r = admin
        .post("/settings/plugins/core-events/disable", &[])
        .await;
    assert_redirect(&r, "/settings/plugins#plugin-core-events");
    let act = s
        .get(&format!("/api/contacts/{id}/activity"))
        .await
        .expect(200);
    assert_eq!(
        created(&act)["raw"],
        true,
        "a disabled plugin's events show raw"
    );
    let list = admin.get("/settings/plugins").await;
    assert!(
        list.body.contains("Plugin core-events was disabled"),
        "the flash says so"
    );
    let r = row(&list, "core-events");
    assert!(
        r.contains("data-state=\"disabled\"")
            && r.contains("Disabled by an admin")
            && r.contains("id=\"enable-core-events\""),
        "{r}"
    );
    let page = admin.get(&format!("/contacts/{id}")).await;
    assert_eq!(page.status, 200, "the contact page still renders");
    // Enable from its page: back to its page, rendering again.
    let r = admin
        .post(
            "/settings/plugins/core-events/enable",
            &[("back", "detail")],
        )
        .await;
    assert_redirect(&r, "/settings/plugins/core-events");
    let act = s
        .get(&format!("/api/contacts/{id}/activity"))
        .await
        .expect(200);
    assert_eq!(created(&act)["raw"], false);
    assert_eq!(created(&act)["summary"], "Contact created (api)");
    assert_eq!(
        admin
            .post("/settings/plugins/core-events/explode", &[])
            .await
            .status,
        404
    );

    // Grants: uploaded plugins start with nothing; the checkboxes grant what they request.
    s.upload_plugin(test_plugin("hostile_escape"))
        .await
        .expect(201);
    let hook_secret = s.plugin_secret("hostile-escape").await;
    let attempt = |path: String| {
        let s = &s;
        let secret = hook_secret.clone();
        async move {
            s.hook("hostile-escape", &path, Some(&secret), json!({}))
                .await
                .expect(200)["message"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert!(
        attempt(format!("contact?id={id}"))
            .await
            .starts_with("err: denied")
    );
    let page = admin.get("/settings/plugins/hostile-escape").await;
    for cap in [
        "read-contacts",
        "http:http://127.0.0.1:*",
        "private-network",
    ] {
        assert!(
            page.body.contains(&format!("data-cap=\"{cap}\" >")),
            "an unchecked box for {cap}"
        );
    }
    assert!(
        page.body
            .contains("Private networks are refused by default"),
        "the note on private networks"
    );
    let r = admin
        .post(
            "/settings/plugins/hostile-escape/capabilities",
            &[("cap", "read-contacts"), ("origins", "")],
        )
        .await;
    assert_redirect(&r, "/settings/plugins/hostile-escape#capabilities");
    assert_eq!(
        api_plugin(&s, "hostile-escape").await["capabilities"]["granted"],
        json!(["read-contacts"])
    );
    assert_eq!(
        attempt(format!("contact?id={id}")).await,
        format!("ok: Some({id})"),
        "the grant takes effect at once"
    );
    let page = admin.get("/settings/plugins/hostile-escape").await;
    assert!(
        page.body.contains("data-cap=\"read-contacts\" checked"),
        "shown checked"
    );
    assert!(page.body.contains("is now granted read-contacts"));

    // HTTP: a requested origin, then loopback needs private-network too.
    let port = hello_server().await;
    let url = format!("http://127.0.0.1:{port}/x");
    assert!(
        attempt(format!("http?url={url}"))
            .await
            .contains("not an origin the admin granted")
    );
    admin
        .post(
            "/settings/plugins/hostile-escape/capabilities",
            &[
                ("cap", "read-contacts"),
                ("cap", "http:http://127.0.0.1:*"),
                ("origins", ""),
            ],
        )
        .await;
    let m = attempt(format!("http?url={url}")).await;
    assert!(
        m.starts_with("err: denied") && m.contains("private network"),
        "{m}"
    );
    let r = admin
        .post(
            "/settings/plugins/hostile-escape/capabilities",
            &[
                ("cap", "http:http://127.0.0.1:*"),
                ("cap", "private-network"),
                (
                    "origins",
                    "https://api.example.com\n\n  https://*.example.org:8443 \n",
                ),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        attempt(format!("http?url={url}")).await,
        "ok: (200, \"hello\")"
    );
    let granted = api_plugin(&s, "hostile-escape").await["capabilities"]["granted"].clone();
    assert_eq!(
        granted,
        json!([
            "http:http://127.0.0.1:*",
            "private-network",
            "http:https://api.example.com",
            "http:https://*.example.org:8443"
        ])
    );
    let page = admin.get("/settings/plugins/hostile-escape").await;
    assert!(
        page.body
            .contains("https://api.example.com\nhttps://*.example.org:8443</textarea>"),
        "other origins listed one per line"
    );

    // A bad origin: refused by its field, what was typed kept, nothing changed.
    let r = admin
        .post(
            "/settings/plugins/hostile-escape/capabilities",
            &[
                ("cap", "read-contacts"),
                ("origins", "https://ok.example.com\nftp://files.example.com"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("id=\"capabilities-error\"")
            && r.body.contains("the scheme must be http or https"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("https://ok.example.com\nftp://files.example.com</textarea>"),
        "the input is kept"
    );
    assert!(
        r.body.contains("data-cap=\"read-contacts\" checked"),
        "the boxes as sent"
    );
    let r = admin
        .post(
            "/settings/plugins/hostile-escape/capabilities",
            &[("cap", "root")],
        )
        .await;
    assert_eq!(r.status, 422, "a forged capability");
    assert_eq!(
        api_plugin(&s, "hostile-escape").await["capabilities"]["granted"],
        granted,
        "nothing changed"
    );
    // Nothing granted at all.
    let r = admin
        .post(
            "/settings/plugins/hostile-escape/capabilities",
            &[("origins", "")],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        api_plugin(&s, "hostile-escape").await["capabilities"]["granted"],
        json!([])
    );
    s.stop().await;
}

async fn configuration_is_checked_against_the_schema(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    s.upload_plugin(test_plugin("hostile_markup"))
        .await
        .expect(201);
    let page = admin.get("/settings/plugins/hostile-markup").await;
    assert_eq!(page.status, 200);
    // A widget per kind of setting.
    for needle in [
        "type=\"text\" name=\"greeting\"",
        "type=\"password\" name=\"api_key\"",
        "type=\"number\" name=\"retries\" id=\"cfg-retries\" value=\"\" step=\"1\" placeholder=\"3\"",
        "type=\"number\" name=\"ratio\" id=\"cfg-ratio\" value=\"\" step=\"any\"",
        "type=\"checkbox\" name=\"verbose\" value=\"1\" id=\"cfg-verbose\" checked",
        "type=\"url\" name=\"endpoint\"",
        "type=\"email\" name=\"contact\"",
        "<select name=\"mode\" id=\"cfg-mode\">",
        "<textarea name=\"notes\" id=\"cfg-notes\"",
    ] {
        assert!(page.body.contains(needle), "expected {needle}");
    }

    // Invalid values: each refused by its field, everything typed kept, nothing saved.
    let bad = [
        ("greeting", "hello"),
        ("api_key", ""),
        ("retries", "three"),
        ("ratio", "1e999"),
        ("verbose", "0"),
        ("endpoint", "ftp://example.org"),
        ("contact", "nobody"),
        ("mode", "slow"),
        ("notes", "line one\nline two"),
    ];
    let r = admin
        .post("/settings/plugins/hostile-markup/config", &bad)
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("id=\"config-errors\""));
    for (key, message) in [
        ("api_key", "is required"),
        ("retries", "must be a whole number"),
        ("ratio", "must be a number"),
        ("endpoint", "must be an http:// or https:// URL"),
        ("contact", "must be an email address"),
        ("mode", "must be one of the options"),
    ] {
        assert!(
            r.body.contains(&format!(
                "<em class=\"error\" id=\"cfg-error-{key}\">{message}</em>"
            )),
            "{key}: {message}"
        );
    }
    assert!(
        !r.body.contains("cfg-error-greeting") && !r.body.contains("cfg-error-notes"),
        "valid fields have no error"
    );
    for kept in [
        "value=\"hello\"",
        "value=\"three\"",
        "value=\"ftp://example.org\"",
        "value=\"nobody\"",
        ">line one\nline two</textarea>",
    ] {
        assert!(r.body.contains(kept), "kept: {kept}");
    }
    assert!(
        !r.body.contains("id=\"cfg-verbose\" checked"),
        "the unchecked box stays unchecked"
    );
    assert_eq!(
        api_plugin(&s, "hostile-markup").await["config"]["values"],
        json!({}),
        "nothing saved"
    );

    // Valid: saved; the secret is masked everywhere and kept when sent back masked.
    let good = [
        ("greeting", " hi "),
        ("api_key", "s3cret-key"),
        ("retries", "5"),
        ("ratio", "0.5"),
        ("verbose", "0"),
        ("endpoint", "https://hooks.example.org/in"),
        ("contact", "ops@example.org"),
        ("mode", "fast"),
        ("notes", ""),
    ];
    let r = admin
        .post("/settings/plugins/hostile-markup/config", &good)
        .await;
    assert_redirect(&r, "/settings/plugins/hostile-markup#configuration");
    let values = api_plugin(&s, "hostile-markup").await["config"]["values"].clone();
    assert_eq!(
        values,
        json!({"greeting": "hi", "api_key": "********", "retries": "5", "ratio": "0.5", "verbose": "0", "endpoint": "https://hooks.example.org/in", "contact": "ops@example.org", "mode": "fast"})
    );
    let page = admin.get("/settings/plugins/hostile-markup").await;
    assert!(
        !page.body.contains("s3cret-key"),
        "the secret never reaches the page"
    );
    assert!(
        page.body
            .contains("name=\"api_key\" id=\"cfg-api_key\" value=\"********\""),
        "shown masked"
    );
    assert!(page.body.contains("value=\"5\"") && !page.body.contains("id=\"cfg-verbose\" checked"));
    let kept: Vec<(&str, &str)> = good
        .iter()
        .map(|(k, v)| {
            if *k == "api_key" {
                (*k, "********")
            } else {
                (*k, *v)
            }
        })
        .collect();
    admin
        .post("/settings/plugins/hostile-markup/config", &kept)
        .await;
    let stored = s
        .state()
        .plugins
        .get("hostile-markup")
        .unwrap()
        .settings()
        .config;
    assert_eq!(stored["api_key"], "s3cret-key", "sent back masked: kept");

    // The plugin reads what the admin set (hostile-escape echoes its configuration).
    s.upload_plugin(test_plugin("hostile_escape"))
        .await
        .expect(201);
    let r = admin
        .post(
            "/settings/plugins/hostile-escape/config",
            &[("greeting", "hello <b>"), ("token", "tok"), ("mode", "b")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let secret = s.plugin_secret("hostile-escape").await;
    let m = s
        .hook("hostile-escape", "config", Some(&secret), json!({}))
        .await
        .expect(200)["message"]
        .clone();
    assert_eq!(m, "ok: greeting=hello <b>;token=tok;mode=b");
    // An empty select falls back to its default.
    admin
        .post(
            "/settings/plugins/hostile-escape/config",
            &[("greeting", ""), ("token", "********"), ("mode", "")],
        )
        .await;
    let m = s
        .hook("hostile-escape", "config", Some(&secret), json!({}))
        .await
        .expect(200)["message"]
        .clone();
    assert_eq!(m, "ok: greeting=hi;token=tok;mode=a");
    s.stop().await;
}

async fn uploads_are_validated_before_they_are_accepted(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let before = running_set(&s).await;
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    // (file name and bytes, or nothing chosen; the message shown)
    type Upload<'a> = Option<(&'a str, Vec<u8>)>;
    let cases: Vec<(Upload, &str)> = vec![
        (None, "Choose a plugin file (.wasm) to upload."),
        (
            Some(("empty.wasm", Vec::new())),
            "The file empty.wasm is empty.",
        ),
        (
            Some(("notes.wasm", b"<html>not wasm at all".to_vec())),
            "not a WebAssembly file",
        ),
        (
            Some(("module.wasm", core_module)),
            "a core WebAssembly module, not a component",
        ),
        (
            Some(("describe.wasm", test_plugin("hostile_describe"))),
            "describe failed",
        ),
    ];
    for (file, message) in cases {
        let page = match &file {
            Some((name, bytes)) => {
                admin
                    .multipart(
                        "/settings/plugins",
                        &[],
                        Some(("plugin", name, bytes)),
                        true,
                    )
                    .await
            }
            None => admin.multipart("/settings/plugins", &[], None, true).await,
        };
        assert_eq!(page.status, 422, "{message}: {}", page.body);
        let start = page
            .body
            .find("id=\"upload-error\">")
            .unwrap_or_else(|| panic!("no upload error: {}", page.body));
        assert!(
            page.body[start..]
                .split("</div>")
                .next()
                .unwrap()
                .contains(message),
            "expected {message}"
        );
        assert!(
            page.body.contains("<tr id=\"plugin-core-events\""),
            "the list is shown with the error"
        );
    }
    assert_eq!(
        running_set(&s).await,
        before,
        "the running set is unchanged"
    );
    assert!(!s.data_dir.join("plugins/hostile-describe.wasm").exists());
    // Larger than the admin takes: refused before anything is read.
    let huge = vec![0u8; 9 << 20];
    let page = admin
        .multipart(
            "/settings/plugins",
            &[],
            Some(("plugin", "huge.wasm", &huge)),
            true,
        )
        .await;
    assert_eq!(page.status, 413);
    assert_eq!(running_set(&s).await, before);

    // A good file: installed, listed and highlighted, with a message.
    let page = admin
        .multipart(
            "/settings/plugins",
            &[],
            Some(("plugin", "anything.bin", &test_plugin("hostile_escape"))),
            true,
        )
        .await;
    assert_redirect(
        &page,
        "/settings/plugins?installed=hostile-escape#plugin-hostile-escape",
    );
    let list = admin
        .get("/settings/plugins?installed=hostile-escape")
        .await;
    assert!(
        list.body.contains(
            "Plugin hostile-escape 0.1.0 was installed. It requests 2 capabilities not granted yet"
        ),
        "{}",
        list.body
    );
    let r = row(&list, "hostile-escape");
    assert!(
        r.contains("class=\"highlight\"")
            && r.contains("uploaded")
            && r.contains("✗ read-contacts")
            && r.contains("nothing granted"),
        "{r}"
    );
    assert!(s.data_dir.join("plugins/hostile-escape.wasm").exists());
    // The same name again: swapped in place, settings kept.
    s.put(
        "/api/plugins/hostile-escape/capabilities",
        json!({"granted": ["read-contacts"]}),
    )
    .await
    .expect(200);
    let page = admin
        .multipart(
            "/settings/plugins",
            &[],
            Some(("plugin", "escape.wasm", &test_plugin("hostile_escape"))),
            true,
        )
        .await;
    assert_eq!(page.status, 303);
    let list = admin.get("/settings/plugins").await;
    assert!(
        list.body
            .contains("Plugin hostile-escape 0.1.0 replaced version 0.1.0, without a restart."),
        "{}",
        list.body
    );
    assert_eq!(
        list.body
            .matches("<tr id=\"plugin-hostile-escape\"")
            .count(),
        1
    );
    assert_eq!(
        api_plugin(&s, "hostile-escape").await["capabilities"]["granted"],
        json!(["read-contacts"])
    );

    // Removing: built-ins cannot be; uploaded ones can.
    let page = admin.get("/settings/plugins/core-events").await;
    assert!(
        !page.body.contains("id=\"plugin-delete\"")
            && page.body.contains("Built-in plugins cannot be removed")
    );
    let r = admin
        .post("/settings/plugins/core-events/delete", &[])
        .await;
    assert_redirect(&r, "/settings/plugins/core-events");
    assert!(
        admin
            .get("/settings/plugins/core-events")
            .await
            .body
            .contains("could not be removed: built-in plugins cannot be removed")
    );
    let page = admin.get("/settings/plugins/hostile-escape").await;
    assert!(page.body.contains("id=\"plugin-delete\""));
    let r = admin
        .post("/settings/plugins/hostile-escape/delete", &[])
        .await;
    assert_redirect(&r, "/settings/plugins");
    assert!(
        admin
            .get("/settings/plugins")
            .await
            .body
            .contains("Plugin hostile-escape was removed.")
    );
    assert_eq!(running_set(&s).await, before);
    assert_eq!(
        admin
            .post("/settings/plugins/hostile-escape/delete", &[])
            .await
            .status,
        404
    );
    s.stop().await;
}

async fn webhook_secret_is_revealed_and_rotated(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let secret = s.plugin_secret("video-events").await;
    let page = admin.get("/settings/plugins/video-events").await;
    assert!(
        page.body
            .contains(&format!("{}/plugins/video-events/hook/", s.base)),
        "the full webhook URL"
    );
    assert!(page.body.contains("X-Magpie-Secret"));
    assert!(!page.body.contains(&secret), "hidden until revealed");
    assert!(
        page.body
            .contains("href=\"/settings/plugins/video-events?secret=show#webhook\"")
    );
    let page = admin
        .get("/settings/plugins/video-events?secret=show")
        .await;
    assert!(
        page.body
            .contains(&format!("value=\"{secret}\" id=\"webhook-secret\""))
    );
    assert!(
        page.body
            .contains("data-confirm=\"Make a new secret for video-events?"),
        "rotation asks first"
    );

    let r = admin
        .post("/settings/plugins/video-events/secret/rotate", &[])
        .await;
    assert_redirect(&r, "/settings/plugins/video-events?secret=show#webhook");
    let rotated = s.plugin_secret("video-events").await;
    assert_ne!(rotated, secret);
    let page = admin
        .get("/settings/plugins/video-events?secret=show")
        .await;
    assert!(page.body.contains(&rotated) && page.body.contains("the old one no longer works"));
    let id = s
        .create_contact(json!({"email": "viewer@example.org"}))
        .await;
    let view = json!({"email": "viewer@example.org", "url": "https://videos.example.org/intro", "seconds": 5});
    assert_eq!(
        s.hook("video-events", "view", Some(&secret), view.clone())
            .await
            .status,
        401
    );
    s.hook("video-events", "view", Some(&rotated), view)
        .await
        .expect(200);
    assert!(id > 0);
    // The event types it provides.
    let page = admin.get("/settings/plugins/video-events").await;
    assert!(page.body.contains("<li data-type=\"video.view\"><span class=\"type-label\"><bdi>Video view</bdi></span> <code>video.view</code>"));
    // Plugins of other kinds have no webhook; core-events has a webhook section too (event-types).
    assert_eq!(
        admin
            .post("/settings/plugins/no-such/secret/rotate", &[])
            .await
            .status,
        404
    );
    s.stop().await;
}

async fn failures_and_ignored_types_are_visible(backend: Backend) {
    let s = TestServer::start_with(backend, "[plugins]\nmax_consecutive_failures = 2\n").await;
    let admin = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    s.upload_plugin(test_plugin("hostile_crash"))
        .await
        .expect(201);
    let secret = s.plugin_secret("hostile-crash").await;
    assert_eq!(
        s.hook("hostile-crash", "trap", Some(&secret), json!({}))
            .await
            .status,
        502
    );
    let page = admin.get("/settings/plugins/hostile-crash").await;
    assert!(
        page.body
            .contains("id=\"plugin-streak\">1 call in a row failed; it is disabled after 2."),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("id=\"last-error\"><bdi>the plugin trapped")
    );
    assert_eq!(
        s.hook("hostile-crash", "trap", Some(&secret), json!({}))
            .await
            .status,
        502
    );
    let list = admin.get("/settings/plugins").await;
    let r = row(&list, "hostile-crash");
    assert!(
        r.contains("data-state=\"failed\"") && r.contains("Disabled after 2 failures"),
        "{r}"
    );
    assert!(
        r.contains("disabled after 2 consecutive failures; last: the plugin trapped"),
        "the reason: {r}"
    );
    assert!(
        r.contains("data-stat=\"errors\">2<") && r.contains("data-stat=\"calls\">2<"),
        "{r}"
    );
    let page = admin.get("/settings/plugins/hostile-crash").await;
    assert!(page.body.contains("id=\"plugin-failed\""));
    // Enabling clears it.
    admin
        .post("/settings/plugins/hostile-crash/enable", &[])
        .await;
    let list = admin.get("/settings/plugins").await;
    assert!(row(&list, "hostile-crash").contains("data-state=\"enabled\""));
    s.hook("hostile-crash", "ok", Some(&secret), json!({}))
        .await
        .expect(200);

    // A type another plugin already provides is marked as ignored.
    s.upload_plugin(test_plugin("hostile_data"))
        .await
        .expect(201);
    let page = admin.get("/settings/plugins/hostile-data").await;
    let start = page
        .body
        .find("<li data-type=\"lead.create\">")
        .expect("lead.create listed");
    let item = page.body[start..].split("</li>").next().unwrap();
    assert!(
        item.contains("ignored: <code>core-events</code> provides this type"),
        "{item}"
    );
    assert!(
        page.body.contains("id=\"plugin-warnings\""),
        "load warnings are shown"
    );
    s.stop().await;
}

const SCRIPT: &str = "<script>window.__xss=1;alert(1)</script>";

async fn plugin_metadata_is_shown_as_text(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let page = admin
        .multipart(
            "/settings/plugins",
            &[],
            Some(("plugin", "markup.wasm", &test_plugin("hostile_markup"))),
            true,
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    for path in [
        "/settings/plugins",
        "/settings/plugins/hostile-markup",
        "/settings/plugins/hostile-markup?secret=show",
    ] {
        let page = admin.get(path).await;
        assert_eq!(page.status, 200);
        let b = &page.body;
        assert!(
            !b.contains("<script>window") && !b.contains("<img src=x") && !b.contains("onerror=\""),
            "{path}: markup reached the page"
        );
        assert!(
            !b.contains("onclick") && !b.contains("javascript:"),
            "{path}"
        );
        assert!(
            unify_entities(b)
                .contains("Markup &lt;script&gt;window.__xss=1;alert(1)&lt;/script&gt;"),
            "{path}: the title as text"
        );
        assert_eq!(
            b.matches("<script").count(),
            1,
            "{path}: only the page's own script"
        );
    }
    let page = admin.get("/settings/plugins/hostile-markup").await;
    assert!(
        page.body
            .contains("<title>Plugin hostile-markup · Magpie</title>")
    );
    assert!(
        unify_entities(&page.body).contains(
            "Greeting &quot;&gt;&lt;img src=x onerror=&quot;window.__xss=2;alert(2)&quot;&gt;"
        ),
        "labels as text"
    );
    // Configuration values with markup are kept and shown as text too.
    let r = admin
        .post(
            "/settings/plugins/hostile-markup/config",
            &[("greeting", SCRIPT), ("api_key", "k"), ("mode", "fast")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = admin.get("/settings/plugins/hostile-markup").await;
    assert!(
        !page.body.contains("<script>window")
            && unify_entities(&page.body).contains("value=\"&lt;script&gt;window.__xss=1")
    );
    // And the contact page renders its events as text.
    let id = s.create_contact(json!({"email": "m@example.org"})).await;
    let mut tx = s.state().store.begin().await.unwrap();
    magpie::store::events::insert(
        &mut tx,
        &[magpie::timeline::NewEvent::new(
            id,
            "markup.thing",
            magpie::time::now_ms(),
            json!({}),
        )],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let page = admin.get(&format!("/contacts/{id}")).await;
    assert!(
        !page.body.contains("<script>window")
            && !page.body.contains("<img src=x")
            && !page.body.contains("javascript:")
    );
    s.stop().await;
}

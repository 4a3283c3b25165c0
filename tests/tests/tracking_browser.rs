//! Website tracking in a real browser (Chromium through WebDriver), on SQLite and
//! PostgreSQL. A test website on another origin (its own port) embeds Mautic's exact
//! loader snippet pointed at Magpie's `/mtc.js`, and a form whose HTML is the embed code
//! the admin hands out. Then the admin's tracking pages in the browser: the forms editor,
//! the tracking settings, the merge modal. Screenshots are saved (see the test output).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use magpie_tests::browser::Browser;
use magpie_tests::web::{Web, textarea};
use magpie_tests::{ADMIN_PASSWORD, Backend, TestServer, Value, both_backends, json};

both_backends!(tracking_in_chromium, admin_tracking_pages_in_chromium);

const CONFIG: &str = "[tracking]\ntrack_private_ip_ranges = true\n";

fn prefix(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Mautic's loader snippet exactly as CONTRACT.md §3 has it, for the script at `url`,
/// with the page view asking for `onload`/`onerror` callbacks.
fn snippet(url: &str) -> String {
    format!(
        "<script>\n(function(w,d,t,u,n,a,m){{w['MauticTrackingObject']=n;\n w[n]=w[n]||function(){{(w[n].q=w[n].q||[]).push(arguments)}},a=d.createElement(t),\n m=d.getElementsByTagName(t)[0];a.async=1;a.src=u;m.parentNode.insertBefore(a,m)\n}})(window,document,'script','{url}','mt');\nmt('send', 'pageview', {{}}, {{onload: function (r) {{ document.title += ' loaded'; window.__mtLoaded = true; window.__mtResponse = r && r.response; }}, onerror: function () {{ window.__mtError = true; }}}});\n</script>"
    )
}

fn page(title: &str, body: &str, magpie: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n{body}\n{}\n</body></html>\n",
        snippet(&format!("{magpie}/mtc.js"))
    )
}

/// A tiny website on 127.0.0.1 (another origin than Magpie): serves fixed pages by path.
async fn website(pages: Arc<std::sync::RwLock<HashMap<String, String>>>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let pages = pages.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65_536 {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .split('?')
                    .next()
                    .unwrap_or("/")
                    .to_owned();
                let found = pages.read().unwrap().get(&path).cloned();
                let response = match found {
                    Some(html) => format!("HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}", html.len()),
                    None => "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nnot found".to_owned(),
                };
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    port
}

/// Waits for the page's tracking call to answer; returns the `/mtc/event` answer.
async fn wait_tracked(b: &Browser) -> Value {
    for _ in 0..200 {
        let v = b.script("return window.__mtLoaded === true ? (window.__mtResponse || {}) : (window.__mtError ? 'error' : null)").await;
        if v == json!("error") {
            panic!("mtc.js reported an error; page: {}", b.body_text().await);
        }
        if !v.is_null() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the page view was never answered; the page shows: {}",
        b.body_text().await
    );
}

async fn hits(s: &TestServer, contact: i64) -> Vec<Value> {
    let r = s
        .get(&format!(
            "/api/contacts/{contact}/activity?limit=100&filters[includeEvents][]=page.hit"
        ))
        .await
        .expect(200);
    r["events"].as_array().unwrap().clone()
}

async fn goto_site(b: &Browser, url: &str) {
    b.client
        .goto(url)
        .await
        .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
}

async fn tracking_in_chromium(backend: Backend) {
    let s = TestServer::start_with(backend, CONFIG).await;
    let grace = s.create_contact(json!({"firstname": "Grace", "lastname": "Hopper", "email": "grace@example.org", "points": 7})).await;
    let form = s
        .post(
            "/api/forms/new",
            json!({"name": "Newsletter signup", "fields": [{"label": "Email", "alias": "email", "contactField": "email"}, {"label": "First name", "alias": "firstname", "contactField": "firstname"}]}),
        )
        .await
        .expect(201);
    let form_id = form["form"]["id"].as_i64().unwrap();

    let pages = Arc::new(std::sync::RwLock::new(HashMap::new()));
    let port = website(pages.clone()).await;
    // Another site, not only another origin: no cookie of Magpie's host is ever shared with it.
    let site = format!("http://localhost:{port}");
    // The form's embed code, as the admin hands it out, returning to the site.
    let web = Web::admin(&s).await;
    let view = web
        .get(&format!(
            "/forms/{form_id}?return={}",
            format!("{site}/thanks")
                .replace(':', "%3A")
                .replace('/', "%2F")
        ))
        .await;
    let embed = textarea(&view.body, "embed-code");
    assert!(
        embed.contains(&format!(
            "action=\"{}/form/submit?formId={form_id}\"",
            s.base
        )),
        "{embed}"
    );
    assert!(
        embed.contains(&format!(
            "name=\"mauticform[return]\" value=\"{site}/thanks\""
        )),
        "{embed}"
    );
    {
        let mut p = pages.write().unwrap();
        p.insert("/landing".to_owned(), page("Landing page", "<h1>Welcome</h1>\n<p><a id=\"to-pricing\" href=\"/pricing\">See our prices</a></p>", &s.base));
        p.insert(
            "/pricing".to_owned(),
            page(
                "Pricing",
                "<h1>Pricing</h1>\n<p><a id=\"to-signup\" href=\"/signup\">Sign up</a></p>",
                &s.base,
            ),
        );
        p.insert(
            "/signup".to_owned(),
            page("Sign up", &format!("<h1>Sign up</h1>\n{embed}"), &s.base),
        );
        p.insert(
            "/thanks".to_owned(),
            page("Thank you", "<h1 id=\"thanks\">Thank you!</h1>", &s.base),
        );
    }

    // A first visitor: /mtc.js loads from Magpie, the hit is recorded, onload fires.
    let b = Browser::start(&s.base).await;
    goto_site(&b, &format!("{site}/landing")).await;
    let first = wait_tracked(&b).await;
    assert_eq!(first["success"], 1, "{first}");
    let visitor = first["id"].as_i64().expect("a contact id");
    let device = first["device_id"].as_str().expect("a device id").to_owned();
    assert_eq!(
        b.script("return document.title").await,
        "Landing page loaded",
        "onload ran"
    );
    let loaded = b.script("return performance.getEntriesByType('resource').filter(e => e.name.endsWith('/mtc.js')).map(e => e.name)").await;
    assert_eq!(
        loaded,
        json!([format!("{}/mtc.js", s.base)]),
        "the script came from Magpie"
    );
    let language = b.script("return navigator.language").await;
    let h = hits(&s, visitor).await;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["extra"]["url"], format!("{site}/landing"));
    assert_eq!(
        h[0]["extra"]["title"], "Landing page",
        "the title before onload changed it"
    );
    assert_eq!(h[0]["extra"]["language"], language);
    assert!(
        h[0]["extra"]["language"]
            .as_str()
            .is_some_and(|l| !l.is_empty())
    );
    assert_eq!(
        h[0]["extra"]["referrer"],
        Value::Null,
        "typed in: no referrer"
    );
    assert_eq!(
        h[0]["extra"]["device"]["browser"], "Chrome",
        "HeadlessChrome is a browser, not a bot"
    );
    assert!(
        h[0]["extra"]["resolution"]
            .as_str()
            .is_some_and(|r| r.contains('x'))
    );
    let c = s.get(&format!("/api/contacts/{visitor}")).await.expect(200);
    assert_eq!(
        c["contact"]["dateIdentified"],
        Value::Null,
        "an anonymous visitor"
    );
    assert_eq!(
        b.script("return localStorage.getItem('mautic_device_id')")
            .await,
        json!(device),
        "the device id is kept"
    );

    // A second page view in the same browser is the same contact, with its referrer.
    b.click("#to-pricing").await;
    b.wait_path("/pricing").await;
    let second = wait_tracked(&b).await;
    assert_eq!(
        second["id"], visitor,
        "the same browser is the same contact"
    );
    assert_eq!(second["device_id"], device.as_str());
    let h = hits(&s, visitor).await;
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["extra"]["url"], format!("{site}/pricing"));
    assert_eq!(h[0]["extra"]["title"], "Pricing");
    assert_eq!(h[0]["extra"]["referrer"], format!("{site}/landing"));
    assert!(
        h[1]["extra"]["date_left"].is_number(),
        "leaving the landing page is recorded"
    );

    // A fresh browser profile is a new visitor.
    let b2 = Browser::start(&s.base).await;
    goto_site(&b2, &format!("{site}/landing")).await;
    let other = wait_tracked(&b2).await;
    let newcomer = other["id"].as_i64().unwrap();
    assert_ne!(newcomer, visitor, "a fresh profile is a new contact");
    assert_ne!(other["device_id"], device.as_str());

    // The form on the site identifies the visitor: the first one gets the email.
    goto_site(&b, &format!("{site}/signup")).await;
    assert_eq!(wait_tracked(&b).await["id"], visitor);
    b.fill(
        "#mauticform_input_newsletter_signup_email",
        "ann@example.org",
    )
    .await;
    b.fill("#mauticform_input_newsletter_signup_firstname", "Ann")
        .await;
    b.click("button[name='mauticform[submit]']").await;
    b.wait_path("/thanks").await;
    let after = wait_tracked(&b).await;
    assert_eq!(after["id"], visitor, "still the same contact, now known");
    let c = s.get(&format!("/api/contacts/{visitor}")).await.expect(200)["contact"].clone();
    assert_eq!(c["fields"]["all"]["email"], "ann@example.org");
    assert_eq!(c["fields"]["all"]["firstname"], "Ann");
    assert!(c["dateIdentified"].is_string());
    let submitted = s
        .get(&format!(
            "/api/contacts/{visitor}/activity?filters[includeEvents][]=form.submitted"
        ))
        .await
        .expect(200);
    assert_eq!(submitted["events"][0]["extra"]["form_id"], form_id);
    assert_eq!(
        submitted["events"][0]["extra"]["referer"],
        format!("{site}/thanks")
    );

    // The other visitor gives a known contact's email: the known contact absorbs them.
    goto_site(&b2, &format!("{site}/signup")).await;
    assert_eq!(wait_tracked(&b2).await["id"], newcomer);
    b2.fill(
        "#mauticform_input_newsletter_signup_email",
        "GRACE@example.org",
    )
    .await;
    b2.click("button[name='mauticform[submit]']").await;
    b2.wait_path("/thanks").await;
    let after = wait_tracked(&b2).await;
    assert_eq!(after["id"], grace, "the browser is now Grace");
    assert_eq!(
        s.get(&format!("/api/contacts/{newcomer}"))
            .await
            .expect(200)["contact"]["id"],
        grace,
        "the anonymous visitor merged into Grace"
    );
    let g = s.get(&format!("/api/contacts/{grace}")).await.expect(200)["contact"].clone();
    assert_eq!(
        g["fields"]["all"]["firstname"], "Grace",
        "the known contact keeps its data"
    );
    assert_eq!(g["fields"]["all"]["lastname"], "Hopper");
    let urls: Vec<String> = hits(&s, grace)
        .await
        .iter()
        .map(|h| h["extra"]["url"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        urls,
        vec![
            format!("{site}/thanks"),
            format!("{site}/signup"),
            format!("{site}/landing")
        ],
        "the visitor's history moved to Grace"
    );
    let merged = s
        .get(&format!(
            "/api/contacts/{grace}/activity?filters[includeEvents][]=lead.merged"
        ))
        .await
        .expect(200);
    assert_eq!(merged["events"][0]["extra"]["merged_id"], newcomer);

    // The admin shows the page hits of the visit, title and URL.
    let page = web.get(&format!("/contacts/{visitor}")).await;
    assert!(page.body.contains("Landing page") && page.body.contains(&format!("{site}/pricing")));
    assert!(page.body.contains("id=\"devices\""));
    b.close().await;
    b2.close().await;
    s.stop().await;
}

async fn admin_tracking_pages_in_chromium(backend: Backend) {
    let s = TestServer::start_with(backend, CONFIG).await;
    let ada = s.create_contact(json!({"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.org", "city": "London", "points": 12, "tags": ["vip"]})).await;
    let augusta = s.create_contact(json!({"firstname": "Augusta", "lastname": "King", "email": "augusta@example.org", "city": "Ockham", "points": 3})).await;
    s.create_contact(json!({"firstname": "August", "lastname": "Kekulé", "email": "kekule@example.org", "city": "Bonn"})).await;
    s.post(
        "/api/notes/new",
        json!({"lead": augusta, "text": "Prefers letters"}),
    )
    .await
    .expect(201);
    let b = Browser::start(&s.base).await;
    b.login("admin", ADMIN_PASSWORD).await;
    let p = prefix(backend);

    // Forms: create one in the editor, adding a row with the script.
    b.click(".mainnav a[href='/forms']").await;
    b.wait_path("/forms").await;
    b.click("#new-form").await;
    b.wait_path("/forms/new").await;
    b.fill("#form-name", "Event <registration>").await;
    assert!(
        b.find("#add-form-field")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "the script shows Add a field"
    );
    let rows_before = b.find_all("#form-fields tbody tr").await.len();
    b.click("#add-form-field").await;
    assert_eq!(
        b.find_all("#form-fields tbody tr").await.len(),
        rows_before + 1
    );
    let last = format!("#form-fields tbody tr:nth-child({})", rows_before + 1);
    b.fill(&format!("{last} input[name=field_label]"), "City")
        .await;
    b.find(&format!("{last} select[name=field_map]"))
        .await
        .select_by_value("city")
        .await
        .unwrap();
    // Remove the spare blank row.
    b.click(&format!(
        "#form-fields tbody tr:nth-child({rows_before}) [data-remove-row]"
    ))
    .await;
    b.screenshot(&format!("{p}-form-editor")).await;
    b.click("#save-form").await;
    b.wait_text("was created").await;
    let form_id: i64 = b
        .path()
        .await
        .trim_start_matches("/forms/")
        .parse()
        .expect("on the form's page");
    let form = s.get(&format!("/api/forms/{form_id}")).await.expect(200)["form"].clone();
    let aliases: Vec<&str> = form["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["alias"].as_str().unwrap())
        .collect();
    assert_eq!(aliases, vec!["email", "firstname", "city"]);
    assert_eq!(form["name"], "Event <registration>");
    let embed = b
        .find("#embed-code")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(
        embed.contains(&format!("{}/form/submit?formId={form_id}", s.base))
            && embed.contains("name=\"mauticform[city]\""),
        "{embed}"
    );
    assert!(
        b.find("[data-copy=embed-code]")
            .await
            .is_displayed()
            .await
            .unwrap()
    );
    // A submission shows up on the form's page.
    s.client
        .post(s.url(&format!("/form/submit?formId={form_id}")))
        .form(&[
            ("mauticform[email]", "visitor@example.org"),
            ("mauticform[city]", "Paris"),
        ])
        .send()
        .await
        .unwrap();
    b.goto(&format!("/forms/{form_id}")).await;
    assert!(b.text("#submissions-table").await.contains("Paris"));
    b.screenshot(&format!("{p}-form-view")).await;
    b.goto("/forms").await;
    assert!(
        b.text("#forms-table")
            .await
            .contains("Event <registration>")
    );
    b.screenshot(&format!("{p}-forms")).await;

    // Tracking settings.
    b.goto("/settings/fields").await;
    b.click(".subnav a[href='/settings/tracking']").await;
    b.wait_path("/settings/tracking").await;
    let snippet = b
        .find("#tracking-snippet")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(
        snippet.contains(&format!("'{}/mtc.js','mt'", s.base)),
        "{snippet}"
    );
    assert!(
        b.text("#tracking-options")
            .await
            .contains("Track private and loopback addresses")
    );
    b.screenshot(&format!("{p}-settings-tracking")).await;

    // The merge modal: search as you type, pick, confirm; Ada survives.
    b.goto(&format!("/contacts/{ada}")).await;
    b.click("#actions-menu summary").await;
    b.click("#action-merge").await;
    assert!(
        b.find("#merge-dialog").await.is_displayed().await.unwrap(),
        "the modal opened"
    );
    assert_eq!(
        b.path().await,
        format!("/contacts/{ada}"),
        "the script opened the modal instead of the page"
    );
    b.fill("#merge-search", "Aug").await;
    b.find("#merge-results .pick").await;
    let names = b.script("return Array.from(document.querySelectorAll('#merge-results .pick-name')).map(e => e.textContent)").await;
    let names: Vec<String> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"Augusta King".to_owned()) && names.contains(&"August Kekulé".to_owned()),
        "{names:?}"
    );
    assert!(!names.contains(&"Ada Lovelace".to_owned()));
    b.screenshot(&format!("{p}-merge-search")).await;
    b.click(&format!(
        "#merge-results .pick[data-contact-id='{augusta}']"
    ))
    .await;
    let confirm = b.text("[data-merge-step=confirm]").await;
    assert!(
        confirm.contains("Ada Lovelace") && confirm.contains("Augusta King"),
        "{confirm}"
    );
    b.screenshot(&format!("{p}-merge-confirm")).await;
    b.click("#merge-confirm").await;
    b.wait_text("was merged into Ada Lovelace").await;
    assert_eq!(b.path().await, format!("/contacts/{ada}"));
    assert_eq!(b.text("#points").await, "15");
    assert!(b.text("#about").await.contains("Ockham") || b.text("#about").await.contains("London"));
    b.click("#tab-notes").await;
    assert!(
        b.text("#notes-list").await.contains("Prefers letters"),
        "the note moved"
    );
    // The merged contact's old page lands on Ada.
    b.goto(&format!("/contacts/{augusta}")).await;
    b.wait_path(&format!("/contacts/{ada}")).await;
    b.wait_text(&format!("Contact #{augusta} was merged into this contact."))
        .await;
    b.close().await;
    s.stop().await;
}

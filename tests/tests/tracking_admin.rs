//! The admin pages of website tracking over plain HTTP, on SQLite and PostgreSQL: the
//! manual merge (search, confirm, CSRF, old URLs landing on the survivor), the forms
//! pages (hostile names and values stay inert, the embed HTML, submissions), the
//! tracking settings page, devices and companies on the contact page, the companies pages.

use magpie::timeline::NewEvent;
use magpie_tests::web::{Web, decode_entities, fetch, textarea, unify_entities};
use magpie_tests::{Backend, TestServer, Value, both_backends, json};

both_backends!(
    merging_from_the_contact_page,
    merge_refusals_and_missing_contacts,
    forms_pages,
    form_submissions_are_listed_inertly,
    tracking_settings_page,
    contact_page_shows_devices_companies_and_hits,
    companies_pages,
);

const TRACK_LOCAL: &str = "[tracking]\ntrack_private_ip_ranges = true\n";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

/// A page hit from a visitor; returns (contact id, device id).
async fn hit(s: &TestServer, form: &str, device: Option<&str>) -> (i64, String) {
    let body = match device {
        Some(d) => format!("{form}&mautic_device_id={d}"),
        None => form.to_owned(),
    };
    let r = s
        .send(
            s.client
                .post(s.url("/mtc/event"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("user-agent", BROWSER)
                .body(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    (
        r.body["id"].as_i64().expect("tracked"),
        r.body["device_id"].as_str().expect("device").to_owned(),
    )
}

/// The flash message's text.
fn flash(html: &str) -> String {
    let Some(i) = html.find("data-flash><bdi>") else {
        return String::new();
    };
    let start = i + "data-flash><bdi>".len();
    decode_entities(&html[start..start + html[start..].find("</bdi>").unwrap()])
}

async fn merging_from_the_contact_page(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    let ada = s.create_contact(json!({"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.org", "points": 10, "tags": ["vip"]})).await;
    let augusta = s.create_contact(json!({"firstname": "Augusta", "lastname": "King", "email": "augusta@example.org", "city": "London", "points": 5, "tags": ["old"]})).await;
    s.post(
        "/api/notes/new",
        json!({"lead": augusta, "text": "met at the conference"}),
    )
    .await
    .expect(201);
    // Augusta browsed the site from a device of her own.
    let (tracked, device) = hit(&s, "page_url=https%3A%2F%2Fshop.example%2Fpricing&page_title=Pricing&email=augusta%40example.org", None).await;
    assert_eq!(tracked, augusta);
    let web = Web::admin(&s).await;

    // The contact page offers the merge: a link to the no-script page that opens the modal.
    let page = web.get(&format!("/contacts/{ada}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&format!("href=\"/contacts/{ada}/merge\" role=\"menuitem\" id=\"action-merge\" data-open-dialog=\"merge-dialog\"")), "{}", page.body);
    assert!(
        page.body.contains("id=\"merge-dialog\"")
            && page
                .body
                .contains(&format!("action=\"/contacts/{ada}/merge\""))
    );

    // Search as you type: JSON, only with the session's CSRF token.
    let search = |q: &str, token: Option<&str>| {
        let mut req = web
            .req(
                reqwest::Method::GET,
                &format!("/contacts/{ada}/merge/search"),
            )
            .query(&[("q", q)]);
        if let Some(t) = token {
            req = req.header("x-csrf-token", t);
        }
        fetch(req)
    };
    assert_eq!(search("Augusta", None).await.status, 403, "no token");
    assert_eq!(
        search("Augusta", Some("forged")).await.status,
        403,
        "a wrong token"
    );
    let r = search("Augusta", Some(&web.csrf)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let found: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(found["results"][0]["id"], augusta);
    assert_eq!(found["results"][0]["name"], "Augusta King");
    assert_eq!(found["results"][0]["email"], "augusta@example.org");
    assert!(
        found["results"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("London")
    );
    // The contact itself is never offered; the grammar works; a bad search says why.
    let r: Value = serde_json::from_str(&search("email:ada@", Some(&web.csrf)).await.body).unwrap();
    assert_eq!(r["results"], json!([]));
    let r: Value = serde_json::from_str(&search("tag:old", Some(&web.csrf)).await.body).unwrap();
    assert_eq!(r["results"].as_array().unwrap().len(), 1);
    let r: Value =
        serde_json::from_str(&search("nosuchfield:x", Some(&web.csrf)).await.body).unwrap();
    assert!(r["error"].as_str().unwrap().contains("nosuchfield"), "{r}");
    let r: Value = serde_json::from_str(&search("", Some(&web.csrf)).await.body).unwrap();
    assert_eq!(r["results"], json!([]));

    // The no-script steps: search, pick, confirm with both names.
    let page = web.get(&format!("/contacts/{ada}/merge?q=King")).await;
    assert_eq!(page.status, 200);
    assert!(
        unify_entities(&page.body).contains(&format!(
            "href=\"/contacts/{ada}/merge?q=King&amp;with={augusta}#confirm\""
        )),
        "{}",
        page.body
    );
    let page = web
        .get(&format!("/contacts/{ada}/merge?q=King&with={augusta}"))
        .await;
    let confirm = &page.body[page.body.find("id=\"confirm\"").expect("a confirmation")..];
    assert!(confirm.contains("Ada Lovelace") && confirm.contains("Augusta King"));
    assert!(confirm.contains(&format!("name=\"other\" value=\"{augusta}\"")));

    // Without the token nothing happens.
    let r = web
        .post_without_token(
            &format!("/contacts/{ada}/merge"),
            &[("other", &augusta.to_string())],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        s.get(&format!("/api/contacts/{augusta}")).await.expect(200)["contact"]["id"],
        augusta,
        "not merged"
    );

    // Merging: the contact we are on survives and shows what moved.
    let events_before = s
        .get(&format!("/api/contacts/{ada}/activity?limit=1"))
        .await
        .expect(200)["total"]
        .as_i64()
        .unwrap()
        + s.get(&format!("/api/contacts/{augusta}/activity?limit=1"))
            .await
            .expect(200)["total"]
            .as_i64()
            .unwrap();
    let r = web
        .post(
            &format!("/contacts/{ada}/merge"),
            &[("other", &augusta.to_string())],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), format!("/contacts/{ada}"));
    let page = web.follow(&r).await;
    let message = flash(&page.body);
    assert!(
        message.contains(&format!("Augusta King (#{augusta}) was merged into")),
        "{message}"
    );
    assert!(
        message.contains("1 note") && message.contains("1 device") && message.contains("events"),
        "{message}"
    );
    let c = s.get(&format!("/api/contacts/{ada}")).await.expect(200)["contact"].clone();
    assert_eq!(c["points"], 15);
    assert_eq!(c["fields"]["all"]["city"], "London");
    let tags: Vec<&str> = c["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert!(tags.contains(&"vip") && tags.contains(&"old"), "{tags:?}");
    assert_eq!(
        s.get(&format!("/api/contacts/{ada}/notes"))
            .await
            .expect(200)["total"],
        1
    );
    let devices = s
        .get(&format!("/api/contacts/{ada}/devices"))
        .await
        .expect(200);
    assert_eq!(devices["devices"][0]["trackingId"], device.as_str());
    let activity = s
        .get(&format!("/api/contacts/{ada}/activity?limit=1"))
        .await
        .expect(200);
    assert_eq!(
        activity["total"].as_i64().unwrap(),
        events_before + 1,
        "every event moved, plus the merge"
    );
    let merged = s
        .get(&format!(
            "/api/contacts/{ada}/activity?filters[includeEvents][]=lead.merged"
        ))
        .await
        .expect(200);
    assert_eq!(merged["events"][0]["extra"]["merged_id"], augusta);
    assert_eq!(merged["events"][0]["extra"]["merged_name"], "Augusta King");
    assert!(
        merged["events"][0]["extra"]["by"].is_number(),
        "the admin user did it"
    );
    // The history shows the merge.
    assert!(
        page.body.contains("Contacts merged"),
        "the merge event is in the history"
    );
    // The device's next visit lands on the survivor.
    let (next, _) = hit(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2Fagain",
        Some(&device),
    )
    .await;
    assert_eq!(next, ada);

    // The merged-away contact's old address lands on the survivor, query kept.
    let r = web.get(&format!("/contacts/{augusta}")).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), format!("/contacts/{ada}"));
    let page = web.follow(&r).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        flash(&page.body),
        format!("Contact #{augusta} was merged into this contact.")
    );
    let r = web.get(&format!("/contacts/{augusta}?tab=notes")).await;
    assert_eq!(r.location(), format!("/contacts/{ada}?tab=notes"));
    // Merging it again is harmless: its id names the survivor now.
    let r = web
        .post(
            &format!("/contacts/{ada}/merge"),
            &[("other", &augusta.to_string())],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(flash(&web.follow(&r).await.body).contains("already this one"));
    s.stop().await;
}

async fn merge_refusals_and_missing_contacts(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s
        .create_contact(json!({"firstname": "Alan", "email": "alan@example.org"}))
        .await;
    let web = Web::admin(&s).await;
    for path in [
        "/contacts/999999",
        "/contacts/999999/merge",
        "/contacts/abc/merge",
        "/contacts/0/merge",
    ] {
        assert_eq!(web.get(path).await.status, 404, "{path}");
    }
    let r = fetch(
        web.req(reqwest::Method::GET, "/contacts/999999/merge/search?q=x")
            .header("x-csrf-token", &web.csrf),
    )
    .await;
    assert_eq!(r.status, 404);
    // Merging with itself, with nobody, with a contact that does not exist.
    let r = web
        .post(
            &format!("/contacts/{a}/merge"),
            &[("other", &a.to_string())],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(flash(&web.follow(&r).await.body).contains("nothing was merged"));
    let r = web
        .post(&format!("/contacts/{a}/merge"), &[("other", "")])
        .await;
    assert_eq!(r.location(), format!("/contacts/{a}/merge"));
    assert!(flash(&web.follow(&r).await.body).contains("Choose the contact"));
    let r = web
        .post(&format!("/contacts/{a}/merge"), &[("other", "424242")])
        .await;
    assert_eq!(r.status, 303);
    assert!(flash(&web.follow(&r).await.body).contains("no longer exists"));
    let r = web
        .post("/contacts/424242/merge", &[("other", &a.to_string())])
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        s.get(&format!("/api/contacts/{a}")).await.expect(200)["contact"]["id"],
        a,
        "nothing changed"
    );
    // A deleted contact's page stays a 404 (no merge record).
    let b = s.create_contact(json!({"firstname": "Bea"})).await;
    s.delete(&format!("/api/contacts/{b}/delete"))
        .await
        .expect(200);
    assert_eq!(web.get(&format!("/contacts/{b}")).await.status, 404);
    s.stop().await;
}

const HOSTILE_NAME: &str = "<script>alert(\"name\")</script> & Co";
const HOSTILE_LABEL: &str = "<img src=x onerror=alert(1)> Email";

async fn forms_pages(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::admin(&s).await;
    let page = web.get("/forms").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No forms yet"));
    assert!(
        page.body.contains("href=\"/forms\" aria-current=\"page\""),
        "the navigation marks Forms"
    );

    // The editor without a token: refused, nothing created.
    let fields: Vec<(&str, &str)> = vec![
        ("name", HOSTILE_NAME),
        ("is_published", "0"),
        ("is_published", "1"),
        ("record_utm", "0"),
        ("field_label", HOSTILE_LABEL),
        ("field_alias", ""),
        ("field_map", "email"),
        ("field_label", "Comment"),
        ("field_alias", "comment"),
        ("field_map", ""),
        ("field_label", ""),
        ("field_alias", ""),
        ("field_map", ""),
    ];
    assert_eq!(
        web.post_without_token("/forms/new", &fields).await.status,
        403
    );
    assert_eq!(s.get("/api/forms").await.expect(200)["total"], 0);

    // Validation errors come back with what was typed.
    let page = web.get("/forms/new").await;
    assert!(
        page.body.contains("name=\"field_map\"") && page.body.contains("<option value=\"email\""),
        "mapped fields from a drop-down"
    );
    let r = web
        .post(
            "/forms/new",
            &[
                ("name", ""),
                ("field_label", "Kept label"),
                ("field_alias", "Bad Alias!"),
                ("field_map", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("is required")
            && r.body.contains("Bad Alias!")
            && r.body.contains("value=\"Kept label\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("must be lowercase letters, digits and _"));
    let r = web
        .post(
            "/forms/new",
            &[
                ("name", "X"),
                ("field_label", "Y"),
                ("field_alias", "y"),
                ("field_map", "nosuchfield"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        unify_entities(&r.body).contains("&#39;nosuchfield&#39; is not a contact field"),
        "{}",
        r.body
    );
    assert_eq!(s.get("/api/forms").await.expect(200)["total"], 0);

    // Created: the view shows the embed; hostile text is escaped everywhere.
    let r = web.post("/forms/new", &fields).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let form: Value = s.get("/api/forms").await.expect(200)["forms"][0].clone();
    let id = form["id"].as_i64().unwrap();
    assert_eq!(r.location(), format!("/forms/{id}"));
    assert_eq!(form["name"], HOSTILE_NAME);
    assert_eq!(form["recordUtm"], false);
    assert_eq!(form["isPublished"], true);
    assert_eq!(
        form["fields"][0]["alias"], "email",
        "the alias comes from the mapped field"
    );
    assert_eq!(form["fields"][0]["leadField"], "email");
    assert_eq!(form["fields"][1]["alias"], "comment");
    assert_eq!(
        form["fields"].as_array().unwrap().len(),
        2,
        "blank rows are dropped"
    );
    let page = web.follow(&r).await;
    assert_eq!(page.status, 200);
    assert!(flash(&page.body).contains("was created"));
    for raw in ["<script>alert", "<img src=x"] {
        assert!(!page.body.contains(raw), "{raw} reached the page unescaped");
    }
    let embed = textarea(&page.body, "embed-code");
    assert!(
        embed.starts_with(&format!(
            "<form method=\"post\" action=\"{}/form/submit?formId={id}\" accept-charset=\"UTF-8\"",
            s.base
        )),
        "{embed}"
    );
    assert!(embed.contains(&format!(
        "<input type=\"hidden\" name=\"mauticform[formId]\" value=\"{id}\">"
    )));
    assert!(embed.contains("<input type=\"hidden\" name=\"mauticform[return]\" value=\"\">"));
    assert!(
        embed.contains("&lt;img src=x onerror=alert(1)&gt; Email</label>"),
        "labels are escaped inside the embed: {embed}"
    );
    assert!(
        embed.contains("type=\"email\"")
            && embed.contains("name=\"mauticform[email]\"")
            && embed.contains("name=\"mauticform[comment]\"")
    );
    assert!(!embed.contains("<img") && !embed.contains("<script"));
    // The page to return to is escaped in the embed; only http(s) is accepted.
    let page = web
        .get(&format!(
            "/forms/{id}?return=https%3A%2F%2Fshop.example%2Fthanks%3Fa%3D1%26b%3D%22q%22%3E"
        ))
        .await;
    let embed = textarea(&page.body, "embed-code");
    assert!(embed.contains("name=\"mauticform[return]\" value=\"https://shop.example/thanks?a=1&amp;b=&quot;q&quot;&gt;\""), "{embed}");
    let page = web
        .get(&format!("/forms/{id}?return=javascript%3Aalert(1)"))
        .await;
    assert!(page.body.contains("must be an http(s) address"));
    assert!(textarea(&page.body, "embed-code").contains("name=\"mauticform[return]\" value=\"\""));

    // The list: escaped name, counts.
    let page = web.get("/forms").await;
    assert!(
        unify_entities(&page.body).contains("&lt;script&gt;alert(")
            && !page.body.contains("<script>alert")
    );
    assert!(page.body.contains(&format!("id=\"form-{id}\"")));

    // Editing keeps the rows; unpublishing stops submissions.
    let page = web.get(&format!("/forms/{id}/edit")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("value=\"comment\""));
    let r = web
        .post(
            &format!("/forms/{id}/edit"),
            &[
                ("name", "Newsletter"),
                ("is_published", "0"),
                ("record_utm", "1"),
                ("field_label", "Email"),
                ("field_alias", "email"),
                ("field_map", "email"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let page = web.follow(&r).await;
    assert!(page.body.contains("unpublished") && page.body.contains("Newsletter"));
    let form = s.get(&format!("/api/forms/{id}")).await.expect(200)["form"].clone();
    assert_eq!(
        (
            form["isPublished"].clone(),
            form["recordUtm"].clone(),
            form["fields"].as_array().unwrap().len()
        ),
        (json!(false), json!(true), 1)
    );
    let r = s
        .send(
            s.client
                .post(s.url(&format!("/form/submit?formId={id}")))
                .header("accept", "application/json")
                .form(&[("mauticform[email]", "x@example.org")]),
        )
        .await;
    assert_eq!(r.status, 404, "an unpublished form takes nothing");

    // Missing forms, bad ids.
    for path in [
        "/forms/999999",
        "/forms/abc",
        "/forms/0",
        "/forms/999999/edit",
    ] {
        assert_eq!(web.get(path).await.status, 404, "{path}");
    }
    assert_eq!(
        web.post("/forms/999999/edit", &[("name", "x")])
            .await
            .status,
        404
    );
    assert_eq!(web.post("/forms/999999/delete", &[]).await.status, 404);

    // Delete: the token is needed, then it is gone.
    assert_eq!(
        web.post_without_token(&format!("/forms/{id}/delete"), &[])
            .await
            .status,
        403
    );
    assert_eq!(s.get("/api/forms").await.expect(200)["total"], 1);
    let r = web.post(&format!("/forms/{id}/delete"), &[]).await;
    assert_eq!(r.location(), "/forms");
    assert!(flash(&web.follow(&r).await.body).contains("was deleted"));
    assert_eq!(web.get(&format!("/forms/{id}")).await.status, 404);
    assert_eq!(s.get("/api/forms").await.expect(200)["total"], 0);
    s.stop().await;
}

async fn form_submissions_are_listed_inertly(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    let web = Web::admin(&s).await;
    let form = s
        .post("/api/forms/new", json!({"name": "Contact us", "fields": [{"label": "Email", "alias": "email", "contactField": "email"}, {"label": "Message <b>", "alias": "message"}]}))
        .await
        .expect(201);
    let id = form["form"]["id"].as_i64().unwrap();
    let known = s
        .create_contact(json!({"firstname": "Grace", "email": "grace@example.org"}))
        .await;
    // Redirects are not followed: the return page is on a site that does not exist.
    let browser = magpie_tests::web::client();
    let submit = |email: &str, message: &str, page: &str| {
        browser
            .post(s.url(&format!("/form/submit?formId={id}")))
            .header("user-agent", BROWSER)
            .header("origin", "https://shop.example")
            .form(&[
                ("mauticform[email]", email),
                ("mauticform[message]", message),
                ("mauticform[return]", page),
                ("mauticform[formId]", &id.to_string()),
            ])
            .send()
    };
    let r = submit(
        "grace@example.org",
        "<script>alert('msg')</script>",
        "https://shop.example/contact?utm_source=ad",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303, "back to the page of the form");
    assert_eq!(
        r.headers()["location"],
        "https://shop.example/contact?utm_source=ad"
    );
    let r = submit("new@example.org", "Hello", "javascript:alert(1)")
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "no return page: the thank-you page"
    );

    let page = web.get(&format!("/forms/{id}")).await;
    assert_eq!(page.status, 200);
    let body = unify_entities(&page.body);
    let subs = &body[body.find("id=\"submissions\"").unwrap()..];
    assert!(
        subs.contains(&format!("href=\"/contacts/{known}\"")),
        "the known contact took the submission"
    );
    assert!(
        subs.contains("&lt;script&gt;alert(") && !subs.contains("<script>alert"),
        "values are escaped"
    );
    assert!(subs.contains("Message &lt;b&gt;"), "labels are escaped");
    assert!(
        subs.contains("href=\"https://shop.example/contact?utm_source=ad\""),
        "the page links when http(s)"
    );
    assert!(
        !subs.contains("javascript:"),
        "a script address is never kept nor linked"
    );
    assert!(subs.contains("<span class=\"count\">2</span>"));
    let list = web.get("/forms").await;
    assert!(
        list.body.contains(&format!(
            "href=\"/forms/{id}#submissions\" class=\"submission-count\">2</a>"
        )),
        "{}",
        list.body
    );
    // The submission shows in the contact's history too.
    let contact = web.get(&format!("/contacts/{known}")).await;
    assert!(contact.body.contains("Contact us") && !contact.body.contains("<script>alert"));
    s.stop().await;
}

async fn tracking_settings_page(backend: Backend) {
    let config = "[tracking]\ntrack_private_ip_ranges = true\ncors_allowed_origins = [\"https://*.example.com\", \"https://shop.example\"]\ndo_not_track_ips = [\"192.0.2.0/24\"]\nanonymize_ip = true\n";
    let s = TestServer::start_with(backend, config).await;
    let web = Web::admin(&s).await;
    let page = web.get("/settings/tracking").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("href=\"/settings/tracking\" aria-current=\"page\""),
        "in the settings navigation"
    );
    let expected = format!(
        "<script>\n(function(w,d,t,u,n,a,m){{w['MauticTrackingObject']=n;\n w[n]=w[n]||function(){{(w[n].q=w[n].q||[]).push(arguments)}},a=d.createElement(t),\n m=d.getElementsByTagName(t)[0];a.async=1;a.src=u;m.parentNode.insertBefore(a,m)\n}})(window,document,'script','{}/mtc.js','mt');\nmt('send', 'pageview');\n</script>",
        s.base
    );
    assert_eq!(
        textarea(&page.body, "tracking-snippet"),
        expected,
        "Mautic's snippet with this server's address"
    );
    assert!(
        page.body
            .contains(&format!("{}/mtracking.gif?page_url=", s.base))
    );
    let option = |key: &str| {
        let start = page
            .body
            .find(&format!("data-option=\"{key}\""))
            .unwrap_or_else(|| panic!("{key}"));
        page.body[start..start + page.body[start..].find("</tr>").unwrap()].to_owned()
    };
    assert!(option("track_private_ip_ranges").contains(">on<"));
    assert!(option("cors_allowed_origins").contains("https://*.example.com, https://shop.example"));
    assert!(option("identify_by_tracking_url").contains(">off<"));
    assert!(option("anonymize_ip").contains(">on<"));
    assert!(option("do_not_track_ips").contains("192.0.2.0/24"));
    assert!(option("honor_do_not_track").contains(">off<"));
    // Behind an HTTPS proxy the snippet uses the public address.
    let page = fetch(
        web.req(reqwest::Method::GET, "/settings/tracking")
            .header("x-forwarded-proto", "https")
            .header("host", "magpie.example.com"),
    )
    .await;
    assert!(
        textarea(&page.body, "tracking-snippet").contains("'https://magpie.example.com/mtc.js'")
    );
    // A hostile Host header never reaches the snippet.
    let page = fetch(
        web.req(reqwest::Method::GET, "/settings/tracking")
            .header("host", "evil.example'><script>"),
    )
    .await;
    if page.status == 200 {
        assert!(!page.body.contains("evil.example'"), "{}", page.body);
        assert!(!textarea(&page.body, "tracking-snippet").contains("evil"));
    }

    // Users who are not administrators cannot see settings.
    let r = web
        .post(
            "/settings/users/new",
            &[
                ("username", "mia"),
                ("first_name", "Mia"),
                ("last_name", "M"),
                ("email", "mia@example.org"),
                ("role", "user"),
                ("password", "a long enough password 1"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let mia = Web::login(&s, "mia", "a long enough password 1").await;
    assert_eq!(mia.get("/settings/tracking").await.status, 403);
    assert!(
        !mia.get("/contacts")
            .await
            .body
            .contains("/settings/tracking")
    );
    s.stop().await;
}

async fn contact_page_shows_devices_companies_and_hits(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    let (id, _) = hit(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2Fp%3Fq%3D%3Cx%3E&page_title=%3Cscript%3Ealert(1)%3C%2Fscript%3E%20Pricing&page_referrer=https%3A%2F%2Fsearch.example%2F&page_language=de-DE&email=ann%40example.org&companyname=%3Cb%3EAcme%3C%2Fb%3E",
        None,
    )
    .await;
    let mut tx = s.state().store.begin().await.unwrap();
    magpie::store::events::insert(
        &mut tx,
        &[NewEvent::new(
            id,
            "page.hit",
            magpie::time::now_ms() - 1000,
            json!({"url": "javascript:alert(6)", "title": "Sneaky"}),
        )],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let web = Web::admin(&s).await;
    let page = web.get(&format!("/contacts/{id}")).await;
    assert_eq!(page.status, 200);
    let devices = &page.body[page.body.find("id=\"devices\"").expect("a Devices section")..];
    let devices = &devices[..devices.find("</section>").unwrap()];
    assert!(
        devices.contains("Desktop")
            && devices.contains("Linux")
            && devices.contains("Chrome")
            && devices.contains("last seen"),
        "{devices}"
    );
    let body = unify_entities(&page.body);
    let companies = &body[body.find("id=\"companies\"").expect("a Companies section")..];
    let companies = &companies[..companies.find("</section>").unwrap()];
    assert!(
        companies.contains("&lt;b&gt;Acme&lt;/b&gt;") && companies.contains("primary"),
        "{companies}"
    );
    assert!(companies.contains("href=\"/companies/"));
    // The page hit in the history: title and URL, escaped; a link only for http(s).
    let history = &body[body.find("id=\"timeline\"").unwrap()..];
    assert!(
        history.contains("&lt;script&gt;alert(1)&lt;/script&gt; Pricing"),
        "the title"
    );
    assert!(
        history.contains("https://shop.example/p?q=&lt;x&gt;"),
        "the URL"
    );
    assert!(
        history.contains("href=\"https://shop.example/p?q=&lt;x&gt;\""),
        "an http(s) page links"
    );
    assert!(
        history.contains("https://search.example/") && history.contains("de-DE"),
        "referrer and language"
    );
    assert!(
        history.contains("Sneaky") && !history.contains("href=\"javascript:"),
        "other schemes never link"
    );
    assert!(!page.body.contains("<script>alert") && !page.body.contains("<b>Acme"));
    // Without devices or companies the sections are absent.
    let plain = s.create_contact(json!({"firstname": "Plain"})).await;
    let page = web.get(&format!("/contacts/{plain}")).await;
    assert!(!page.body.contains("id=\"devices\"") && !page.body.contains("id=\"companies\""));
    s.stop().await;
}

async fn companies_pages(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::admin(&s).await;
    assert!(
        web.get("/companies")
            .await
            .body
            .contains("No companies yet")
    );
    let acme = s.post("/api/companies/new", json!({"companyname": "Acme <Corp>", "companyemail": "hi@acme.example", "companywebsite": "https://acme.example", "companycity": "Lyon", "companynumber_of_employees": 1200})).await.expect(201)["company"]["id"].as_i64().unwrap();
    s.post("/api/companies/new", json!({"companyname": "Beta"}))
        .await
        .expect(201);
    let ada = s
        .create_contact(json!({"firstname": "Ada", "email": "ada@example.org"}))
        .await;
    s.post(
        &format!("/api/companies/{acme}/contact/{ada}/add"),
        json!({}),
    )
    .await
    .expect(200);
    let page = web.get("/companies").await;
    assert_eq!(page.status, 200);
    assert!(unify_entities(&page.body).contains("Acme &lt;Corp&gt;") && page.body.contains("Beta"));
    assert!(page.body.contains("href=\"https://acme.example\""));
    let row = &page.body[page
        .body
        .find(&format!("data-company-id=\"{acme}\""))
        .unwrap()..];
    assert!(
        row[..row.find("</tr>").unwrap()].contains("<td class=\"num\">1</td>"),
        "one contact"
    );
    let page = web.get("/companies?q=acme").await;
    assert!(page.body.contains("Acme") && !page.body.contains(">Beta<"));
    let page = web.get(&format!("/companies/{acme}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Lyon")
            && page.body.contains("1,200")
            && page.body.contains("mailto:hi@acme.example")
    );
    assert!(
        page.body.contains(&format!("href=\"/contacts/{ada}\"")) && page.body.contains("primary")
    );
    for path in ["/companies/999999", "/companies/x"] {
        assert_eq!(web.get(path).await.status, 404, "{path}");
    }
    s.stop().await;
}

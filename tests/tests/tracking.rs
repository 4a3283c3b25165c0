//! Website tracking end to end: the pixel and the event endpoint, identity, merges on
//! identification, exclusions, CORS, signed tokens, forms — on both databases.

mod common;

use magpie_tests::{Backend, TestServer, Value, both_backends, json};

both_backends!(
    anonymous_then_returning_visitor,
    public_fields_tags_utm_and_company,
    identification_merges_anonymous_into_known,
    two_known_contacts_are_never_merged,
    exclusions,
    cors,
    signed_tracking_tokens,
    hostile_parameters_are_answered_and_contained,
    forms_identify_and_merge,
    required_fields_bind_the_api_not_visitors,
);

/// A required field is a rule for contacts people state (API, admin, import); a visitor
/// is tracked without it, known or not, as in Mautic.
async fn required_fields_bind_the_api_not_visitors(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    s.post(
        "/api/fields/contact/new",
        json!({"label": "Member number", "alias": "member_no", "type": "text", "isRequired": true}),
    )
    .await
    .expect(201);
    let (anonymous, _) = event(&s, "page_url=https%3A%2F%2Fshop.example%2Fa", None).await;
    assert_eq!(anonymous["success"], 1, "{anonymous}");
    let (known, _) = event(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2Fb&email=ada%40example.org",
        None,
    )
    .await;
    assert_eq!(known["success"], 1, "{known}");
    let id = known["id"].as_i64().unwrap();
    let c = s.get(&format!("/api/contacts/{id}")).await.expect(200);
    assert_eq!(c["contact"]["fields"]["all"]["email"], "ada@example.org");
    assert_eq!(
        s.activity(id, "filters[includeEvents][]=page.hit").await["total"],
        1
    );
    // The API is still held to it.
    let r = s
        .post("/api/contacts/new", json!({"email": "bob@example.org"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("member_no"), "{}", r.text);
    s.stop().await;
}

/// A returning device whose hit names no one is answered once its hit is journaled, as
/// the pixel is, however long the applier's backlog; a hit that may switch contacts (a
/// unique identifier) waits until it is applied. Here the test holds SQLite's one writer,
/// so nothing is applied until it lets go.
#[tokio::test]
async fn returning_devices_do_not_wait_for_the_applier() {
    let s = TestServer::start_with(Backend::Sqlite, TRACK_LOCAL).await;
    let known = s.create_contact(json!({"email": "ada@example.org"})).await;
    let (first, _) = event(&s, "page_url=https%3A%2F%2Fshop.example%2Fa", None).await;
    let anonymous = first["id"].as_i64().unwrap();
    let device = first["device_id"].as_str().unwrap().to_owned();
    // Straight requests: the harness's own wait for applied hits would wait for the writer.
    let post = |form: &str| {
        s.client
            .post(s.url("/mtc/event"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", BROWSER)
            .header("cookie", format!("mautic_device_id={device}"))
            .body(form.to_owned())
            .send()
    };

    let writer = s.state().store.begin().await.unwrap();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        post("page_url=https%3A%2F%2Fshop.example%2Fb"),
    )
    .await
    .expect("answered while nothing can be applied")
    .unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["id"], anonymous);
    assert_eq!(r["device_id"], device.as_str());

    let identifying = tokio::spawn(post(
        "page_url=https%3A%2F%2Fshop.example%2Fc&email=ada%40example.org",
    ));
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert!(
        !identifying.is_finished(),
        "a hit that may switch contacts waits until it is applied"
    );
    drop(writer);
    let r: Value = identifying.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(r["id"], known, "the visitor became the known contact");
    let hits = activity(&s, known, "page.hit").await;
    assert_eq!(hits.len(), 3, "every hit recorded, in order: {hits:?}");
    assert_eq!(hits[1]["extra"]["url"], "https://shop.example/b");
    s.stop().await;
}

/// An API call first waits for the pixel hits answered before it, as with Mautic, which
/// applies a hit before answering it (the PHP library's tests track a visit and read the
/// activity at once); it waits two seconds at most, so a stuck applier delays the API but
/// never stops it. The test holds SQLite's one writer, so nothing is applied until it
/// lets go.
#[tokio::test]
async fn api_calls_follow_the_hits_answered_before_them() {
    let s = TestServer::start_with(Backend::Sqlite, TRACK_LOCAL).await;
    let activity = || {
        s.client
            .get(s.url("/api/contacts/activity?filters[includeEvents][]=page.hit"))
            .basic_auth("admin", Some(magpie_tests::ADMIN_PASSWORD))
            .send()
    };
    let pixel = |page: &str| {
        s.client
            .get(s.url(&format!(
                "/mtracking.gif?url=https%3A%2F%2Fshop.example%2F{page}"
            )))
            .header("user-agent", BROWSER)
            .send()
    };

    let writer = s.state().store.begin().await.unwrap();
    assert_eq!(pixel("a").await.unwrap().status(), 200);
    let reading = tokio::spawn(activity());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !reading.is_finished(),
        "the call waits for the answered hit"
    );
    drop(writer);
    let r: Value = reading.await.unwrap().unwrap().json().await.unwrap();
    assert_eq!(
        r["total"], 1,
        "the hit answered before the call is in it: {r}"
    );
    assert_eq!(r["events"][0]["extra"]["url"], "https://shop.example/a");

    // A stuck applier: the call answers after its bounded wait, without the hit.
    let writer = s.state().store.begin().await.unwrap();
    assert_eq!(pixel("b").await.unwrap().status(), 200);
    let started = std::time::Instant::now();
    let r: Value = tokio::time::timeout(std::time::Duration::from_secs(10), activity())
        .await
        .expect("answered while nothing can be applied")
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500));
    assert_eq!(r["total"], 1, "{r}");
    drop(writer);
    assert_eq!(
        activity().await.unwrap().json::<Value>().await.unwrap()["total"],
        2
    );

    // A burst (more than one applier batch waiting): the call does not wait at all, or
    // every call during the burst would take the whole bound.
    let writer = s.state().store.begin().await.unwrap();
    for i in 0..2001 {
        assert_eq!(pixel(&format!("burst-{i}")).await.unwrap().status(), 200);
    }
    let started = std::time::Instant::now();
    let r: Value = activity().await.unwrap().json().await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "answered without the bounded wait"
    );
    assert_eq!(r["total"], 2, "{r}");
    drop(writer);
    s.settled().await;
    assert_eq!(
        activity().await.unwrap().json::<Value>().await.unwrap()["total"],
        2003
    );
    s.stop().await;
}

const TRACK_LOCAL: &str =
    "[tracking]\ntrack_private_ip_ranges = true\nidentify_by_tracking_url = true\n";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

/// A bare pixel hit through a proxy that names `ip` as the client.
async fn pixel_forwarded_for(s: &TestServer, ip: &str) {
    s.send(
        s.client
            .get(s.url("/mtracking.gif"))
            .header("user-agent", BROWSER)
            .header("x-forwarded-for", ip),
    )
    .await;
}

/// How many anonymous contacts have been seen at `ip` (the API's `total`).
async fn anonymous_at(s: &TestServer, ip: &str) -> Value {
    s.get(&format!("/api/contacts?search=is:anonymous%20ip:{ip}"))
        .await
        .expect(200)["total"]
        .clone()
}

async fn event(s: &TestServer, form: &str, cookie: Option<&str>) -> (Value, Option<String>) {
    let mut req = s
        .client
        .post(s.url("/mtc/event"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", BROWSER)
        .body(form.to_owned());
    if let Some(c) = cookie {
        req = req.header("cookie", format!("mautic_device_id={c}"));
    }
    let r = s.send(req).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let set_cookie = r
        .headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.body, set_cookie)
}

async fn activity(s: &TestServer, id: i64, kind: &str) -> Vec<Value> {
    let r = s
        .get(&format!(
            "/api/contacts/{id}/activity?limit=100&filters[includeEvents][]={kind}"
        ))
        .await
        .expect(200);
    r["events"].as_array().unwrap().clone()
}

async fn anonymous_then_returning_visitor(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    let r = s
        .send(
            s.client
                .get(
                    s.url("/mtracking.gif?page_url=https%3A%2F%2Fshop.example%2Fa&page_title=Home"),
                )
                .header("user-agent", BROWSER),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "image/gif");
    assert!(
        r.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    let cookie = r.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("Max-Age=31536000") && cookie.contains("SameSite=None"),
        "{cookie}"
    );
    let device = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("mautic_device_id=")
        .to_owned();
    assert_eq!(device.len(), 48, "128 random bits and a 64-bit signature");
    let raw = s
        .client
        .get(s.url("/mtracking.gif"))
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(raw.len(), 43);

    // The same device (cookie, then parameter) is the same contact. A second later, so
    // the last-active check below can tell the hits apart.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (first, _) = event(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2Fb&page_title=B",
        Some(&device),
    )
    .await;
    let contact = first["id"].as_i64().unwrap();
    assert_eq!(first["success"], 1);
    assert_eq!(first["device_id"], device.as_str());
    assert_eq!(first["sid"], device.as_str());
    assert_eq!(first["events"], json!([]));
    let (second, _) = event(
        &s,
        &format!("page_url=https%3A%2F%2Fshop.example%2Fc&mautic_device_id={device}"),
        None,
    )
    .await;
    assert_eq!(second["id"], contact);
    // Without any device id: a new visitor each time (no cookie support).
    let (other, _) = event(&s, "page_url=https%3A%2F%2Fshop.example%2Fd", None).await;
    assert_ne!(other["id"], contact);
    // A forged device id is a new device, never adopted.
    let (forged, set) = event(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2Fe",
        Some("ffffffffffffffffffffffffffffffff"),
    )
    .await;
    assert_ne!(forged["device_id"], "ffffffffffffffffffffffffffffffff");
    assert!(set.unwrap().contains(forged["device_id"].as_str().unwrap()));

    let hits = activity(&s, contact, "page.hit").await;
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["extra"]["url"], "https://shop.example/c");
    assert!(
        hits[1]["extra"]["date_left"].is_number(),
        "the previous hit gets its date left: {}",
        hits[1]
    );
    assert_eq!(hits[2]["extra"]["title"], "Home");
    assert_eq!(hits[0]["extra"]["device"]["browser"], "Chrome");
    let c = s.get(&format!("/api/contacts/{contact}")).await.expect(200);
    assert_eq!(
        c["contact"]["dateIdentified"],
        Value::Null,
        "still anonymous"
    );
    // Last active moves in steps of a minute: the device's first hit set it; the next one,
    // moments later, left it.
    let second_of = |v: &Value| {
        v.as_str()
            .unwrap_or_default()
            .chars()
            .take(19)
            .collect::<String>()
    };
    assert_eq!(
        second_of(&c["contact"]["lastActive"]),
        second_of(&hits[2]["timestamp"]),
        "last active is the first hit's time: {c}"
    );
    assert!(c["contact"]["ipAddresses"]["127.0.0.1"].is_object());
    let devices = s
        .get(&format!("/api/contacts/{contact}/devices"))
        .await
        .expect(200);
    assert_eq!(devices["devices"][0]["trackingId"], device.as_str());
    assert_eq!(
        s.get("/api/contacts?search=is:anonymous").await.expect(200)["total"],
        "4"
    );
    s.stop().await;
}

async fn public_fields_tags_utm_and_company(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    let (r, _) = event(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2Foffer%3Futm_source%3Dnewsletter%26utm_campaign%3Dspring&email=visitor%40example.org&firstname=Mallory&tags=lead,-none&companyname=Acme%20Corp&companywebsite=https%3A%2F%2Facme.example&companyemployees=50",
        None,
    )
    .await;
    let id = r["id"].as_i64().unwrap();
    let c = s.get(&format!("/api/contacts/{id}")).await.expect(200)["contact"].clone();
    assert_eq!(
        c["fields"]["all"]["email"], "visitor@example.org",
        "email is publicly updatable"
    );
    assert_eq!(
        c["fields"]["all"]["firstname"],
        Value::Null,
        "firstname is not publicly updatable"
    );
    assert!(c["dateIdentified"].is_string());
    assert_eq!(c["tags"][0]["tag"], "lead");
    assert_eq!(c["utmtags"][0]["utmSource"], "newsletter");
    assert_eq!(c["utmtags"][0]["utmCampaign"], "spring");
    assert_eq!(activity(&s, id, "lead.utmtagsadded").await.len(), 1);
    let companies = s
        .get(&format!("/api/contacts/{id}/companies"))
        .await
        .expect(200);
    assert_eq!(companies["companies"][0]["companyname"], "Acme Corp");
    assert_eq!(companies["companies"][0]["is_primary"], "1");
    let company_id = companies["companies"][0]["company_id"].as_i64().unwrap();
    let company = s
        .get(&format!("/api/companies/{company_id}"))
        .await
        .expect(200);
    assert_eq!(
        company["company"]["fields"]["all"]["companywebsite"],
        "https://acme.example"
    );
    assert_eq!(
        company["company"]["fields"]["all"]["companynumber_of_employees"],
        50
    );
    // An invalid public value is ignored silently, the hit still counts.
    let (r, _) = event(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2F&email=not-an-email",
        None,
    )
    .await;
    assert_eq!(r["success"], 1);
    // Making firstname publicly updatable lets the next hit set it.
    let fields = s.get("/api/fields/contact").await.expect(200);
    let firstname_id = fields["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["alias"] == "firstname")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    s.patch(
        &format!("/api/fields/contact/{firstname_id}/edit"),
        json!({"isPubliclyUpdatable": true}),
    )
    .await
    .expect(200);
    let device = s
        .get(&format!("/api/contacts/{id}/devices"))
        .await
        .expect(200)["devices"][0]["trackingId"]
        .as_str()
        .unwrap()
        .to_owned();
    event(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2F&firstname=Mallory",
        Some(&device),
    )
    .await;
    assert_eq!(
        s.get(&format!("/api/contacts/{id}")).await.expect(200)["contact"]["fields"]["all"]["firstname"],
        "Mallory"
    );
    s.stop().await;
}

async fn identification_merges_anonymous_into_known(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    let known = s
        .create_contact(json!({"email": "ada@example.org", "firstname": "Ada", "points": 3}))
        .await;
    let (anon, _) = event(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2Fpricing&tags=curious",
        None,
    )
    .await;
    let anon_id = anon["id"].as_i64().unwrap();
    let device = anon["device_id"].as_str().unwrap().to_owned();
    event(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2Ffeatures",
        Some(&device),
    )
    .await;
    let (r, _) = event(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2Fsignup&email=ADA%40example.org",
        Some(&device),
    )
    .await;
    assert_eq!(r["id"], known, "the visitor became the known contact");
    assert_eq!(r["device_id"], device.as_str(), "same device");
    assert_eq!(
        s.get(&format!("/api/contacts/{anon_id}")).await.expect(200)["contact"]["id"],
        known,
        "the anonymous id resolves to the known contact"
    );
    let hits = activity(&s, known, "page.hit").await;
    assert_eq!(
        hits.len(),
        3,
        "the anonymous visitor's hits moved to the known contact"
    );
    let c = s.get(&format!("/api/contacts/{known}")).await.expect(200)["contact"].clone();
    assert_eq!(
        c["fields"]["all"]["firstname"], "Ada",
        "the known contact survives with its data"
    );
    assert!(
        c["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tag"] == "curious")
    );
    assert_eq!(activity(&s, known, "lead.merged").await.len(), 1);
    assert!(!activity(&s, known, "lead.identified").await.is_empty());
    let (next, _) = event(
        &s,
        "page_url=https%3A%2F%2Fshop.example%2Fthanks",
        Some(&device),
    )
    .await;
    assert_eq!(next["id"], known);
    s.stop().await;
}

async fn two_known_contacts_are_never_merged(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    let a = s.create_contact(json!({"email": "a@example.org"})).await;
    let b = s.create_contact(json!({"email": "b@example.org"})).await;
    let (r, _) = event(
        &s,
        "page_url=https%3A%2F%2Fx.example%2F&email=a%40example.org",
        None,
    )
    .await;
    assert_eq!(r["id"], a);
    let device = r["device_id"].as_str().unwrap().to_owned();
    let (r, _) = event(
        &s,
        "page_url=https%3A%2F%2Fx.example%2F&email=b%40example.org",
        Some(&device),
    )
    .await;
    assert_eq!(r["id"], b, "the hit is recorded on the matched contact");
    assert_eq!(
        s.get(&format!("/api/contacts/{a}")).await.expect(200)["contact"]["id"],
        a,
        "a still exists on its own"
    );
    assert_eq!(
        s.get(&format!("/api/contacts/{b}/devices"))
            .await
            .expect(200)["devices"][0]["trackingId"],
        device.as_str(),
        "the device moved"
    );
    assert_eq!(
        s.get(&format!("/api/contacts/{a}/devices"))
            .await
            .expect(200)["total"],
        0
    );
    s.stop().await;
}

async fn exclusions(backend: Backend) {
    // Loopback is private: not tracked by default.
    let s = TestServer::start(backend).await;
    let (r, set) = event(&s, "page_url=https%3A%2F%2Fx.example%2F", None).await;
    assert_eq!(
        r,
        json!({"success": 1, "id": null, "sid": null, "device_id": null, "events": []})
    );
    assert!(set.is_none());
    assert_eq!(
        s.get("/api/contacts?search=is:anonymous").await.expect(200)["total"],
        "0"
    );
    s.stop().await;

    let s = TestServer::start_with(backend, "[tracking]\ntrack_private_ip_ranges = true\ndo_not_track_ips = [\"203.0.113.0/24\"]\nhonor_do_not_track = true\n").await;
    let send = |headers: Vec<(&'static str, &'static str)>| {
        let mut req = s
            .client
            .get(s.url("/mtracking.gif?page_url=https%3A%2F%2Fx.example%2F"));
        if !headers.iter().any(|(k, _)| *k == "user-agent") {
            req = req.header("user-agent", BROWSER);
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req
    };
    for headers in [
        vec![(
            "user-agent",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        )],
        vec![("x-forwarded-for", "203.0.113.50")],
        vec![("dnt", "1")],
        vec![("sec-gpc", "1")],
    ] {
        let r = s.send(send(headers.clone())).await;
        assert_eq!(r.status, 200, "the pixel is always answered");
        assert!(
            r.headers.get("set-cookie").is_none(),
            "{headers:?} must not be tracked"
        );
    }
    assert_eq!(
        s.get("/api/contacts?search=is:anonymous").await.expect(200)["total"],
        "0"
    );
    // A public address behind a local proxy is tracked, stored as given (no anonymising).
    let r = s
        .send(send(vec![("x-forwarded-for", "198.51.100.7")]))
        .await;
    assert!(r.headers.get("set-cookie").is_some());
    let list = s
        .get("/api/contacts?search=ip:198.51.100.7")
        .await
        .expect(200);
    assert_eq!(
        list["total"], "0",
        "anonymous contacts stay hidden unless asked for"
    );
    assert_eq!(anonymous_at(&s, "198.51.100.7").await, "1");
    s.stop().await;

    let s = TestServer::start_with(
        backend,
        "[tracking]\ntrack_private_ip_ranges = true\nanonymize_ip = true\n",
    )
    .await;
    pixel_forwarded_for(&s, "198.51.100.77").await;
    assert_eq!(
        anonymous_at(&s, "198.51.100.0").await,
        "1",
        "the host part is dropped"
    );
    assert_eq!(anonymous_at(&s, "198.51.100.77").await, "0");
    s.stop().await;

    // Only the proxies `[server] trusted_proxies` lists name the client: with none, the
    // header is not read and the hit is the peer's own (the test's loopback).
    let s = TestServer::start_with(
        backend,
        "[server]\ntrusted_proxies = []\n[tracking]\ntrack_private_ip_ranges = true\n",
    )
    .await;
    pixel_forwarded_for(&s, "198.51.100.88").await;
    assert_eq!(
        anonymous_at(&s, "198.51.100.88").await,
        "0",
        "a forwarded address from an untrusted peer is not believed"
    );
    assert_eq!(anonymous_at(&s, "127.0.0.1").await, "1");
    s.stop().await;
}

async fn cors(backend: Backend) {
    let s = TestServer::start_with(backend, "[tracking]\ntrack_private_ip_ranges = true\ncors_allowed_origins = [\"https://shop.example\", \"https://*.example.org\"]\n").await;
    for (origin, allowed) in [
        ("https://shop.example", true),
        ("https://www.example.org", true),
        ("https://evil.example", false),
    ] {
        let pre = s
            .send(
                s.client
                    .request(reqwest::Method::OPTIONS, s.url("/mtc/event"))
                    .header("origin", origin)
                    .header("access-control-request-method", "POST")
                    .header("access-control-request-headers", "content-type"),
            )
            .await;
        assert_eq!(pre.status, 204);
        assert_eq!(
            pre.headers
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            allowed.then_some(origin),
            "{origin}"
        );
        if allowed {
            assert_eq!(pre.headers["access-control-allow-credentials"], "true");
        }
        let r = s
            .send(
                s.client
                    .post(s.url("/mtc/event"))
                    .header("origin", origin)
                    .header("user-agent", BROWSER)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("page_url=https%3A%2F%2Fshop.example%2F"),
            )
            .await;
        assert_eq!(
            r.headers
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap()),
            allowed.then_some(origin)
        );
    }
    let js = s.send(s.client.get(s.url("/mtc.js"))).await;
    assert_eq!(js.status, 200);
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    let etag = js.headers["etag"].to_str().unwrap().to_owned();
    assert!(js.text.contains("MauticTrackingObject") && js.text.contains("/mtc/event"));
    let again = s
        .send(
            s.client
                .get(s.url("/mtc.js"))
                .header("if-none-match", &etag),
        )
        .await;
    assert_eq!(again.status, 304);
    s.stop().await;
}

async fn signed_tracking_tokens(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    let known = s
        .create_contact(json!({"email": "token@example.org"}))
        .await;
    let token = s
        .get(&format!("/api/contacts/{known}/tracking-token"))
        .await
        .expect(200)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (r, _) = event(
        &s,
        &format!("page_url=https%3A%2F%2Fx.example%2F&ct={token}"),
        None,
    )
    .await;
    assert_eq!(r["id"], known, "a valid token names the contact");
    let forged = token.replacen(&format!("v1.{known}."), "v1.999.", 1);
    let (r, _) = event(
        &s,
        &format!("page_url=https%3A%2F%2Fx.example%2F&ct={forged}"),
        None,
    )
    .await;
    assert_ne!(r["id"], known);
    let tampered_sig = format!("{}AAAA", &token[..token.len() - 4]);
    let (r, _) = event(
        &s,
        &format!("page_url=https%3A%2F%2Fx.example%2F&ct={tampered_sig}"),
        None,
    )
    .await;
    assert_ne!(r["id"], known);
    let (r, _) = event(
        &s,
        "page_url=https%3A%2F%2Fx.example%2F&ct=YToxOntzOjQ6ImxlYWQiO2k6MTt9",
        None,
    )
    .await;
    assert_ne!(r["id"], known, "Mautic-style unsigned tokens are ignored");
    s.stop().await;
    // Off by default: even a valid token is ignored.
    let s = TestServer::start_with(backend, "[tracking]\ntrack_private_ip_ranges = true\n").await;
    let known = s
        .create_contact(json!({"email": "token@example.org"}))
        .await;
    let token = s
        .get(&format!("/api/contacts/{known}/tracking-token"))
        .await
        .expect(200)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (r, _) = event(&s, &format!("ct={token}"), None).await;
    assert_ne!(r["id"], known);
    s.stop().await;
}

async fn hostile_parameters_are_answered_and_contained(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    let many: String = (0..10_000)
        .map(|i| format!("p{i}=v"))
        .collect::<Vec<_>>()
        .join("&");
    let (r, _) = event(&s, &many, None).await;
    assert_eq!(r["success"], 1);
    let huge = format!(
        "page_title={}&page_url=https%3A%2F%2Fx.example%2F",
        "A".repeat(200_000)
    );
    let (r, _) = event(&s, &huge, None).await;
    let id = r["id"].as_i64().unwrap();
    let hit = &activity(&s, id, "page.hit").await[0];
    assert_eq!(hit["extra"]["title"].as_str().unwrap().len(), 512);
    let r = s
        .send(
            s.client
                .post(s.url("/mtc/event"))
                .header("user-agent", BROWSER)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(vec![
                    b'p', b'a', b'g', b'e', b'_', b't', b'i', b't', b'l', b'e', b'=', 0xff, 0xfe,
                    b'%', b'F', b'F',
                ]),
        )
        .await;
    assert_eq!(r.status, 200);
    let (r, _) = event(
        &s,
        "page_title=%3Cscript%3Ealert(1)%3C%2Fscript%3E&page_url=javascript%3Aalert(1)",
        None,
    )
    .await;
    let hit = &activity(&s, r["id"].as_i64().unwrap(), "page.hit").await[0];
    assert_eq!(
        hit["extra"]["title"], "<script>alert(1)</script>",
        "stored as text; pages escape it"
    );
    assert!(
        hit["extra"].get("url").is_none(),
        "a javascript: URL is not a page URL"
    );
    let r = s.send(s.client.post(s.url("/mtc/event")).header("user-agent", BROWSER).header("content-type", "application/json").body("{\"page_url\": \"https://app.example/screen\", \"email\": 5, \"tags\": [\"app\"]}")).await;
    assert_eq!(r.status, 200);
    let r = s
        .send(
            s.client
                .post(s.url("/mtc/event"))
                .header("user-agent", BROWSER)
                .header("content-type", "text/plain")
                .body("\u{0}\u{1}garbage"),
        )
        .await;
    assert_eq!(r.status, 200);
    // A parameter that is not UTF-8 once decoded is left out, as any invalid value: no
    // tag or name of replacement characters.
    let (r, _) = event(
        &s,
        "email=utf8%40example.org&tags=ok%FF%FE&page_title=Bad%FF&page_url=https%3A%2F%2Fx.example%2Fgood",
        None,
    )
    .await;
    let id = r["id"].as_i64().unwrap();
    let c = s.get(&format!("/api/contacts/{id}")).await.expect(200)["contact"].clone();
    assert_eq!(c["fields"]["all"]["email"], "utf8@example.org");
    assert_eq!(c["tags"], json!([]), "{c}");
    let hit = &activity(&s, id, "page.hit").await[0];
    assert_eq!(hit["extra"]["url"], "https://x.example/good", "{hit}");
    assert!(hit["extra"].get("title").is_none(), "{hit}");
    // A body larger than a hit can be is refused whole (413): nothing of it is tracked.
    let anonymous = "/api/contacts?search=is:anonymous&limit=1";
    let before = s.get(anonymous).await.expect(200)["total"].clone();
    let r = s
        .send(
            s.client
                .post(s.url("/mtc/event"))
                .header("user-agent", BROWSER)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "email=big%40example.org&page_title={}",
                    "A".repeat(300 * 1024)
                )),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.body["success"], 0);
    assert_eq!(s.get(anonymous).await.expect(200)["total"], before);
    assert_eq!(
        s.get("/api/contacts?search=email:big@example.org")
            .await
            .expect(200)["total"],
        "0",
        "nothing of the refused hit"
    );
    s.stop().await;
}

async fn forms_identify_and_merge(backend: Backend) {
    let s = TestServer::start_with(backend, TRACK_LOCAL).await;
    let form = s
        .post("/api/forms/new", json!({"name": "Newsletter", "fields": [{"alias": "email", "label": "Email", "contactField": "email"}, {"alias": "first", "label": "First name", "contactField": "firstname"}, {"alias": "comment", "label": "Comment"}]}))
        .await;
    assert_eq!(form.status, 201, "{}", form.text);
    let form_id = form.body["form"]["id"].as_i64().unwrap();
    assert_eq!(
        s.post(
            "/api/forms/new",
            json!({"name": "Bad", "fields": [{"alias": "x", "contactField": "nope"}]})
        )
        .await
        .status,
        422
    );

    let known = s
        .create_contact(json!({"email": "grace@example.org", "lastname": "Hopper"}))
        .await;
    let (anon, _) = event(&s, "page_url=https%3A%2F%2Fsite.example%2F", None).await;
    let device = anon["device_id"].as_str().unwrap().to_owned();
    let body = format!(
        "mauticform%5Bemail%5D=grace%40example.org&mauticform%5Bfirst%5D=Grace&mauticform%5Bcomment%5D=%3Cb%3Ehi%3C%2Fb%3E&mauticform%5BformId%5D={form_id}&mauticform%5Breturn%5D=https%3A%2F%2Fsite.example%2Fcontact%3Futm_source%3Dads"
    );
    let r = s
        .send(
            s.client
                .post(s.url(&format!("/form/submit?formId={form_id}&ajax=1")))
                .header("cookie", format!("mautic_device_id={device}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("user-agent", BROWSER)
                .body(body.clone()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["success"], 1);
    let c = s.get(&format!("/api/contacts/{known}")).await.expect(200)["contact"].clone();
    assert_eq!(
        c["fields"]["all"]["firstname"], "Grace",
        "mapped fields update the contact"
    );
    assert_eq!(c["fields"]["all"]["lastname"], "Hopper");
    assert_eq!(
        c["utmtags"][0]["utmSource"], "ads",
        "UTM tags from the page are recorded"
    );
    let submitted = activity(&s, known, "form.submitted").await;
    assert_eq!(submitted[0]["extra"]["data"]["comment"], "<b>hi</b>");
    assert_eq!(submitted[0]["extra"]["form_name"], "Newsletter");
    assert_eq!(
        s.get(&format!("/api/contacts/{}", anon["id"]))
            .await
            .expect(200)["contact"]["id"],
        known,
        "the anonymous visitor was merged in"
    );
    assert_eq!(activity(&s, known, "page.hit").await.len(), 1);

    // Plain posts redirect back to the page; errors say what is wrong.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .post(s.url("/form/submit"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://site.example")
        .body(body.replace("grace%40example.org", "new%40example.org"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "https://site.example/contact?utm_source=ads"
    );
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("mautic_device_id=")
    );
    let r = no_redirect
        .post(s.url("/form/submit"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("referer", "https://site.example/contact")
        .body(body.replace("grace%40example.org", "broken"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .contains("mauticError=")
    );
    // Only back to the site that posted: a return address elsewhere, or a post that
    // says nothing of where it came from, gets the thank-you page (no open redirect).
    let elsewhere = body.replace("https%3A%2F%2Fsite.example", "https%3A%2F%2Fevil.example");
    for (origin, body) in [
        (Some("https://site.example"), &elsewhere),
        (Some("https://evil.example.site.example"), &elsewhere),
        (None, &body),
    ] {
        let mut post = no_redirect
            .post(s.url("/form/submit"))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(o) = origin {
            post = post.header("origin", o);
        }
        let r = post.body(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200, "{origin:?}");
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains("Thank you"));
    }
    // A page in a legacy charset posts its form in it: what is not UTF-8 is read as
    // Windows-1252, so the visitor's name is kept, not refused or garbled.
    let r = s
        .send(
            s.client
                .post(s.url(&format!("/form/submit?formId={form_id}&ajax=1")))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("mauticform%5Bemail%5D=jose%40x.example&mauticform%5Bfirst%5D=Jos%E9"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mp = reqwest::multipart::Form::new()
        .text("mauticform[email]", "zoe@x.example")
        .part(
            "mauticform[first]",
            reqwest::multipart::Part::bytes(b"Zo\xeb".to_vec()),
        )
        .text("mauticform[formId]", form_id.to_string());
    let r = s
        .send(s.client.post(s.url("/form/submit?ajax=1")).multipart(mp))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for (email, name) in [
        ("jose@x.example", "Jos\u{e9}"),
        ("zoe@x.example", "Zo\u{eb}"),
    ] {
        let c = &common::by_email(&s, email).await[0];
        assert_eq!(c["fields"]["all"]["firstname"], name, "{c}");
    }
    let r = s
        .send(
            s.client
                .post(s.url("/form/submit?ajax=1"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("mauticform%5BformId%5D=424242"),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["success"], 0);
    // Multipart, as Mautic's embedded forms post.
    let mp = reqwest::multipart::Form::new()
        .text("mauticform[email]", "multi@example.org")
        .text("mauticform[formId]", form_id.to_string());
    let r = s
        .send(s.client.post(s.url("/form/submit?ajax=1")).multipart(mp))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        s.get("/api/contacts?search=email:multi@").await.expect(200)["total"],
        "1"
    );
    s.stop().await;
}

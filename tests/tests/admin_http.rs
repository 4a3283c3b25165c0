//! The web admin over plain HTTP, on SQLite and PostgreSQL: sessions and their cookie,
//! CSRF refusals, login redirects (no open redirect), throttling, disabled users, HTML
//! error pages, uploads, settings pages and the engagement chart's numbers.

use chrono::{Datelike, TimeZone, Utc};
use magpie::timeline::NewEvent;
use magpie_tests::{ADMIN_PASSWORD, Backend, TestServer, both_backends, json};
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

both_backends!(
    unauthenticated_visits_go_to_login_and_back,
    forms_without_csrf_token_are_refused,
    error_pages_headers_and_assets,
    session_cookie_and_validity,
    disabled_users_cannot_log_in_or_use_the_api,
    login_is_throttled,
    uploads_are_checked,
    settings_pages,
    chart_counts_events_per_month,
    anonymous_visitors_show_by_ip,
    duplicate_warnings_before_saving,
    list_totals_stay_exact,
    admins_browsing_are_not_tracked,
);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

fn cookie_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn value_of(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

fn csrf_in(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// A logged-in browser-like client.
struct Web {
    base: String,
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> String {
        self.headers
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
}

async fn fetch(req: reqwest::RequestBuilder) -> Page {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Page {
        status,
        headers,
        body: r.text().await.unwrap(),
    }
}

/// Posts the login form; returns the response (a redirect on success).
async fn post_login(base: &str, username: &str, password: &str, next: &str) -> Page {
    let http = client();
    let page = fetch(http.get(format!("{base}/login"))).await;
    let token = csrf_in(&page.body);
    let cookie =
        value_of(&cookie_of(&page.headers, "magpie_login_csrf").expect("login csrf cookie"));
    fetch(
        http.post(format!("{base}/login"))
            .header(COOKIE, format!("magpie_login_csrf={cookie}"))
            .form(&[
                ("_csrf", token.as_str()),
                ("username", username),
                ("password", password),
                ("next", next),
            ]),
    )
    .await
}

impl Web {
    async fn login(s: &TestServer, username: &str, password: &str) -> Web {
        let r = post_login(&s.base, username, password, "").await;
        assert_eq!(r.status, 303, "login failed: {}", r.body);
        let cookie = value_of(&cookie_of(&r.headers, "magpie_session").expect("session cookie"));
        let mut web = Web {
            base: s.base.clone(),
            http: client(),
            cookie,
            csrf: String::new(),
        };
        let page = web.get("/contacts").await;
        assert_eq!(page.status, 200);
        web.csrf = csrf_in(&page.body);
        web
    }
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(COOKIE, format!("magpie_session={}", self.cookie))
    }
    async fn get(&self, path: &str) -> Page {
        fetch(self.req(reqwest::Method::GET, path)).await
    }
    /// A form post with the CSRF token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        fetch(self.req(reqwest::Method::POST, path).form(&all)).await
    }
    async fn multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, &[u8])>,
        with_token: bool,
    ) -> Page {
        let boundary = "----magpieboundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        let mut part = |name: &str, filename: Option<&str>, data: &[u8]| {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match filename {
                Some(f) => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes()),
                None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        };
        if with_token {
            part("_csrf", None, self.csrf.as_bytes());
        }
        for (k, v) in fields {
            part(k, None, v.as_bytes());
        }
        if let Some((name, data)) = file {
            part("_avatar", Some(name), data);
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        fetch(
            self.req(reqwest::Method::POST, path)
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body),
        )
        .await
    }
}

async fn unauthenticated_visits_go_to_login_and_back(backend: Backend) {
    let s = TestServer::start(backend).await;
    let http = client();
    let r = fetch(http.get(s.url("/contacts/5?tab=notes"))).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/login?next=%2Fcontacts%2F5%3Ftab%3Dnotes");
    let r = fetch(
        http.post(s.url("/contacts/quick-add"))
            .form(&[("firstname", "x")]),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), "/login");
    for path in ["/", "/settings/fields", "/profile", "/contacts/1/avatar"] {
        let r = fetch(http.get(s.url(path))).await;
        assert_eq!(r.status, 303, "{path}");
        assert!(r.location().starts_with("/login"), "{path}");
    }
    // The login page carries `next` along; only local paths are followed.
    let r = fetch(http.get(s.url("/login?next=%2Fcontacts%3Fq%3Dtag%253Avip"))).await;
    assert!(
        r.body
            .contains("name=\"next\" value=\"/contacts?q=tag%3Avip\""),
        "{}",
        r.body
    );
    let r = post_login(&s.base, "admin", ADMIN_PASSWORD, "/contacts?q=tag%3Avip").await;
    assert_eq!(r.location(), "/contacts?q=tag%3Avip");
    for evil in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "evil",
    ] {
        let r = post_login(&s.base, "admin", ADMIN_PASSWORD, evil).await;
        assert_eq!(r.status, 303);
        assert_eq!(r.location(), "/contacts", "no open redirect through {evil}");
    }
    s.stop().await;
}

async fn forms_without_csrf_token_are_refused(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let before = s.get("/api/contacts").await.expect(200)["total"].clone();
    // No token, a wrong token: 403 page, nothing written.
    let r = fetch(
        web.req(reqwest::Method::POST, "/contacts/quick-add")
            .form(&[("firstname", "Eve"), ("email", "eve@example.org")]),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("Request refused") && r.body.contains("<html"),
        "an HTML page: {}",
        r.body
    );
    let r = fetch(
        web.req(reqwest::Method::POST, "/contacts/quick-add")
            .form(&[("_csrf", "forged"), ("firstname", "Eve")]),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = web
        .multipart("/contacts/new", &[("firstname", "Eve")], None, false)
        .await;
    assert_eq!(r.status, 403, "multipart forms need the token too");
    let r = fetch(web.req(reqwest::Method::POST, "/logout")).await;
    assert_eq!(r.status, 403);
    // The login form's double submit holds only tokens this server issued: a cookie
    // planted by someone else (a sibling domain) cannot pair with a field they chose.
    let r = fetch(
        client()
            .post(s.url("/login"))
            .header(COOKIE, "magpie_login_csrf=chosen.by-the-attacker")
            .form(&[
                ("_csrf", "chosen.by-the-attacker"),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
            ]),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(cookie_of(&r.headers, "magpie_session").is_none());
    // Nor can a page of another site post a login with a pair it fetched itself.
    let http = client();
    let page = fetch(http.get(s.url("/login"))).await;
    let cookie = value_of(&cookie_of(&page.headers, "magpie_login_csrf").unwrap());
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let r = fetch(
            http.post(s.url("/login"))
                .header(COOKIE, format!("magpie_login_csrf={cookie}"))
                .header(name, value)
                .form(&[
                    ("_csrf", csrf_in(&page.body).as_str()),
                    ("username", "admin"),
                    ("password", ADMIN_PASSWORD),
                ]),
        )
        .await;
        assert_eq!(r.status, 403, "{name}: {value}");
        assert!(cookie_of(&r.headers, "magpie_session").is_none());
    }
    let r = fetch(
        web.req(reqwest::Method::POST, "/settings/contacts")
            .form(&[("operator", "or")]),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(s.get("/api/contacts").await.expect(200)["total"], before);
    // A token of another session is refused as well.
    let other = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let r = fetch(
        web.req(reqwest::Method::POST, "/contacts/quick-add")
            .form(&[("_csrf", other.csrf.as_str()), ("firstname", "Eve")]),
    )
    .await;
    assert_eq!(r.status, 403);
    // The right token in the form, or in the X-CSRF-Token header (fetch requests), works.
    let r = web
        .post(
            "/contacts/quick-add",
            &[("firstname", "Eve"), ("email", "eve@example.org")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = fetch(
        web.req(reqwest::Method::POST, "/contacts/quick-add")
            .header("x-csrf-token", &web.csrf)
            .form(&[("firstname", "Mallory")]),
    )
    .await;
    assert_eq!(r.status, 303);
    // The login form's double-submit token.
    let r = fetch(
        client()
            .post(s.url("/login"))
            .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)]),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(cookie_of(&r.headers, "magpie_session").is_none());
    s.stop().await;
}

async fn error_pages_headers_and_assets(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    for path in [
        "/contacts/999999",
        "/contacts/abc",
        "/contacts/999999/edit",
        "/nope",
        "/settings/fields/999999/edit",
        "/settings/users/999/edit",
        "/contacts/1/avatar",
    ] {
        let r = web.get(path).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.body.contains("Page not found"),
            "{path}: an HTML 404 page"
        );
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    let id = s.create_contact(json!({"email": "a@example.org"})).await;
    let r = web
        .post(&format!("/contacts/{id}/notes/12345/delete"), &[])
        .await;
    assert_eq!(r.status, 404);
    let r = web.post("/contacts/999999/delete", &[]).await;
    assert_eq!(r.status, 404);
    // The API keeps its JSON errors.
    let r = s.get("/api/nope").await;
    assert_eq!(r.status, 404);
    assert!(r.body["errors"][0]["code"] == 404);
    // Headers of admin pages.
    let r = web.get("/contacts").await;
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["cache-control"], "no-store");
    assert!(
        !r.body.contains("<script>") && !r.body.contains(" onclick="),
        "no inline script"
    );
    // Static files: embedded, cached, typed.
    let js = fetch(client().get(s.url("/static/app.js?v=1"))).await;
    assert_eq!(js.status, 200);
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        js.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    let css = fetch(client().get(s.url("/static/app.css"))).await;
    assert_eq!(css.status, 200);
    assert_eq!(
        fetch(client().get(s.url("/static/../Cargo.toml")))
            .await
            .status,
        404
    );
    assert_eq!(
        fetch(client().get(s.url("/static/nope.js"))).await.status,
        404
    );
    s.stop().await;
}

async fn session_cookie_and_validity(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = post_login(&s.base, "admin", ADMIN_PASSWORD, "").await;
    let set = cookie_of(&r.headers, "magpie_session").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: not Secure");
    let token = value_of(&set);
    assert!(token.len() >= 43, "256 random bits");
    // Behind a TLS proxy the cookie is Secure.
    let http = client();
    let page = fetch(
        http.get(s.url("/login"))
            .header("x-forwarded-proto", "https"),
    )
    .await;
    assert!(
        cookie_of(&page.headers, "magpie_login_csrf")
            .unwrap()
            .contains("Secure")
    );
    let login_cookie = value_of(&cookie_of(&page.headers, "magpie_login_csrf").unwrap());
    let r = fetch(
        http.post(s.url("/login"))
            .header("x-forwarded-proto", "https")
            .header(COOKIE, format!("magpie_login_csrf={login_cookie}"))
            .form(&[
                ("_csrf", csrf_in(&page.body).as_str()),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
            ]),
    )
    .await;
    assert!(
        cookie_of(&r.headers, "magpie_session")
            .unwrap()
            .contains("Secure")
    );
    // The token is not stored as such.
    let state = s.state();
    let mut headers = HeaderMap::new();
    headers.insert("cookie", format!("magpie_session={token}").parse().unwrap());
    assert!(magpie::web::has_valid_session(state, &headers).await);
    let mut forged = HeaderMap::new();
    forged.insert("cookie", "magpie_session=forged".parse().unwrap());
    assert!(!magpie::web::has_valid_session(state, &forged).await);
    assert!(!magpie::web::has_valid_session(state, &HeaderMap::new()).await);
    // Logging out ends it.
    let web = Web {
        base: s.base.clone(),
        http: client(),
        cookie: token.clone(),
        csrf: String::new(),
    };
    let page = web.get("/contacts").await;
    let web = Web {
        csrf: csrf_in(&page.body),
        ..web
    };
    let r = web.post("/logout", &[]).await;
    assert_eq!(r.location(), "/login");
    assert!(
        cookie_of(&r.headers, "magpie_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert!(!magpie::web::has_valid_session(state, &headers).await);
    assert_eq!(web.get("/contacts").await.status, 303);
    s.stop().await;
}

async fn disabled_users_cannot_log_in_or_use_the_api(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let r = admin
        .post(
            "/settings/users/new",
            &[
                ("username", "bob"),
                ("first_name", "Bob"),
                ("role", "user"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("at least 8 characters"));
    let r = admin
        .post(
            "/settings/users/new",
            &[
                ("username", "bob"),
                ("first_name", "Bob"),
                ("email", "bob@example.org"),
                ("role", "user"),
                ("password", "bob-password"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let users = admin.get("/settings/users").await.body;
    assert!(users.contains("data-username=\"bob\""));
    let bob = Web::login(&s, "bob", "bob-password").await;
    assert_eq!(
        bob.get("/settings/fields").await.status,
        403,
        "settings are for admins"
    );
    let api = |user: &str, pass: &str| {
        s.client
            .get(s.url("/api/contacts"))
            .basic_auth(user, Some(pass))
    };
    assert_eq!(
        api("bob", "bob-password").send().await.unwrap().status(),
        200
    );

    let bob_id = {
        let mut db = s.state().store.read().await.unwrap();
        magpie::store::users::by_username(&mut db, "bob")
            .await
            .unwrap()
            .unwrap()
            .id
    };
    // An admin cannot disable themself.
    let admin_id = 1;
    let r = admin
        .post(
            &format!("/settings/users/{admin_id}/edit"),
            &[("role", "user"), ("is_active", "1")],
        )
        .await;
    assert_eq!(r.status, 422);
    let r = admin
        .post(
            &format!("/settings/users/{bob_id}/edit"),
            &[("role", "user"), ("first_name", "Bob"), ("is_active", "0")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(admin.get("/settings/users").await.body.contains("disabled"));
    assert_eq!(
        bob.get("/contacts").await.status,
        303,
        "the disabled user's session ended"
    );
    let r = post_login(&s.base, "bob", "bob-password", "").await;
    assert_eq!(r.status, 401);
    assert!(cookie_of(&r.headers, "magpie_session").is_none());
    assert_eq!(
        api("bob", "bob-password").send().await.unwrap().status(),
        401
    );
    // Enabled again with an admin role.
    let r = admin
        .post(
            &format!("/settings/users/{bob_id}/edit"),
            &[("role", "admin"), ("is_active", "0"), ("is_active", "1")],
        )
        .await;
    assert_eq!(r.status, 303);
    let bob = Web::login(&s, "bob", "bob-password").await;
    assert_eq!(bob.get("/settings/fields").await.status, 200);
    s.stop().await;
}

async fn login_is_throttled(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = post_login(&s.base, "nobody", "whatever", "").await;
    assert_eq!(r.status, 401, "unknown users get the same answer");
    assert!(r.body.contains("Wrong user name or password"));
    for _ in 0..magpie::web::session::MAX_FAILURES {
        post_login(&s.base, "admin", "wrong", "").await;
    }
    let r = post_login(&s.base, "admin", ADMIN_PASSWORD, "").await;
    assert_eq!(
        r.status, 429,
        "locked out for a while after repeated failures"
    );
    assert!(r.body.contains("Too many failed attempts"));
    assert_eq!(r.headers["retry-after"], "900", "the limiter's window");
    assert!(cookie_of(&r.headers, "magpie_session").is_none());
    s.stop().await;
}

async fn uploads_are_checked(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let id = s
        .create_contact(json!({"firstname": "Ada", "email": "ada@example.org"}))
        .await;
    let path = format!("/contacts/{id}/edit");
    let fields = [
        ("firstname", "Ada"),
        ("email", "ada@example.org"),
        ("_image", "custom"),
    ];
    let r = web
        .multipart(
            &path,
            &fields,
            Some(("evil.png", b"<html><script>alert(1)</script>")),
            true,
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("not a PNG, JPEG, GIF or WebP image"),
        "{}",
        r.body
    );
    let mut big = b"GIF89a".to_vec();
    big.resize(2 * 1024 * 1024 + 1, 0);
    let r = web
        .multipart(&path, &fields, Some(("big.gif", &big)), true)
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("too big"));
    let r = web.multipart(&path, &fields, None, true).await;
    assert_eq!(r.status, 422, "custom without an image");
    let mut huge = b"GIF89a".to_vec();
    huge.resize(9 * 1024 * 1024, 0);
    let r = web
        .multipart(&path, &fields, Some(("huge.gif", &huge)), true)
        .await;
    assert_eq!(r.status, 413, "far too big: refused before reading it");
    assert!(r.body.contains("larger than"));
    assert!(
        !s.data_dir
            .join("avatars")
            .join(format!("{id}.img"))
            .exists(),
        "nothing stored"
    );

    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let r = web
        .multipart(&path, &fields, Some(("a.txt", gif)), true)
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        s.data_dir
            .join("avatars")
            .join(format!("{id}.img"))
            .exists()
    );
    let img = web.get(&format!("/contacts/{id}/avatar")).await;
    assert_eq!(img.status, 200);
    assert_eq!(
        img.headers["content-type"], "image/gif",
        "typed by its bytes, not its name"
    );
    assert_eq!(img.headers["x-content-type-options"], "nosniff");
    let contact = s.get(&format!("/api/contacts/{id}")).await.expect(200);
    assert_eq!(contact["contact"]["fields"]["all"]["firstname"], "Ada");
    assert!(
        web.get(&format!("/contacts/{id}"))
            .await
            .body
            .contains(&format!("/contacts/{id}/avatar"))
    );
    // Deleting the contact removes the image.
    assert_eq!(
        web.post(&format!("/contacts/{id}/delete"), &[])
            .await
            .status,
        303
    );
    assert!(
        !s.data_dir
            .join("avatars")
            .join(format!("{id}.img"))
            .exists()
    );
    s.stop().await;
}

async fn settings_pages(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    // A select field with options, in a new group.
    let r = web
        .post(
            "/settings/fields/new",
            &[
                ("label", "Colour"),
                ("type", "select"),
                ("group", "core"),
                ("group_new", "preferences"),
                ("options", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "a select needs options");
    assert!(r.body.contains("at least one option"));
    let r = web
        .post(
            "/settings/fields/new",
            &[
                ("label", "Colour"),
                ("type", "select"),
                ("group", "core"),
                ("group_new", "preferences"),
                ("options", "Red = red\nblue"),
                ("isShortVisible", "1"),
                ("isPublished", "1"),
                ("isListable", "1"),
                ("isVisible", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let f = s.get("/api/fields/contact").await.expect(200);
    let colour = f["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["alias"] == "colour")
        .expect("created")
        .clone();
    assert_eq!(colour["group"], "preferences");
    assert_eq!(
        colour["properties"]["list"],
        json!([{"label": "Red", "value": "red"}, {"label": "blue", "value": "blue"}])
    );
    assert_eq!(colour["isShortVisible"], true);
    let fid = colour["id"].as_i64().unwrap();
    // It shows in quick add and in its own tab of the contact form.
    assert!(web.get("/contacts").await.body.contains("name=\"colour\""));
    assert!(
        web.get("/contacts/new")
            .await
            .body
            .contains("data-tab=\"preferences\"")
    );
    // Edit, reorder, delete.
    let r = web
        .post(
            &format!("/settings/fields/{fid}/edit"),
            &[
                ("label", "Favourite colour"),
                ("type", "select"),
                ("group", "preferences"),
                ("options", "Red = red\nblue\ngreen"),
                ("isPublished", "1"),
                ("isRequired", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let order_before = colour["order"].as_i64().unwrap();
    assert_eq!(
        web.post(&format!("/settings/fields/{fid}/move"), &[("dir", "up")])
            .await
            .status,
        303
    );
    let moved = s
        .get(&format!("/api/fields/contact/{fid}"))
        .await
        .expect(200);
    assert_eq!(moved["field"]["label"], "Favourite colour");
    assert_eq!(moved["field"]["isRequired"], true);
    assert!(
        moved["field"]["order"].as_i64().unwrap() < order_before,
        "moved up"
    );
    let email_id = f["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["alias"] == "email")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = web
        .post(&format!("/settings/fields/{email_id}/delete"), &[])
        .await;
    assert_eq!(r.status, 303);
    assert!(
        web.get("/settings/fields")
            .await
            .body
            .contains("cannot be deleted"),
        "default fields stay, with a message"
    );
    assert_eq!(
        web.post(&format!("/settings/fields/{fid}/delete"), &[])
            .await
            .status,
        303
    );
    assert_eq!(
        s.get(&format!("/api/fields/contact/{fid}")).await.status,
        404
    );

    // Contact settings: the unique-identifier operator.
    let r = web.post("/settings/contacts", &[("operator", "or")]).await;
    assert_eq!(r.status, 303);
    {
        let mut db = s.state().store.read().await.unwrap();
        assert_eq!(
            s.state().operator(&mut db).await.unwrap(),
            magpie::config::UniqueIdentifierOperator::Or
        );
    }
    assert!(
        web.get("/settings/contacts")
            .await
            .body
            .contains("value=\"or\" id=\"operator-or\" checked")
    );

    // The profile: name, email, password change.
    let r = web
        .post(
            "/profile",
            &[
                ("first_name", "Ada"),
                ("last_name", "Admin"),
                ("email", "nope"),
                ("new_password", ""),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    let r = web
        .post(
            "/profile",
            &[
                ("first_name", "Ada"),
                ("last_name", "Admin"),
                ("email", "ada@example.org"),
                ("current_password", "wrong"),
                ("new_password", "new-password-1"),
                ("confirm_password", "new-password-1"),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("is not your current password"));
    let r = web
        .post(
            "/profile",
            &[
                ("first_name", "Ada"),
                ("last_name", "Admin"),
                ("email", "ada@example.org"),
                ("current_password", ADMIN_PASSWORD),
                ("new_password", "new-password-1"),
                ("confirm_password", "new-password-1"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let page = web.get("/profile").await;
    assert!(page.body.contains("Your password was changed"));
    assert!(
        page.body.contains("Ada Admin"),
        "the navigation bar shows the new name"
    );
    assert_eq!(
        post_login(&s.base, "admin", ADMIN_PASSWORD, "")
            .await
            .status,
        401
    );
    assert_eq!(
        post_login(&s.base, "admin", "new-password-1", "")
            .await
            .status,
        303
    );
    s.stop().await;
}

async fn chart_counts_events_per_month(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let id = s
        .create_contact(json!({"email": "chart@example.org"}))
        .await;
    let now = Utc::now();
    let this_month = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 12, 0, 0)
        .unwrap();
    let last_month = this_month - chrono::Duration::days(20);
    let long_ago = this_month - chrono::Duration::days(400);
    let ev = |t: chrono::DateTime<Utc>, kind: &str, props: serde_json::Value| {
        NewEvent::new(id, kind, t.timestamp_millis(), props)
    };
    let mut tx = s.state().store.begin().await.unwrap();
    magpie::store::events::insert(
        &mut tx,
        &[
            ev(this_month, "page.hit", json!({})),
            ev(this_month, "page.hit", json!({})),
            ev(this_month, "point.gained", json!({"delta": 7, "points": 7})),
            ev(
                last_month,
                "point.gained",
                json!({"delta": -2, "points": 5}),
            ),
            ev(long_ago, "page.hit", json!({})),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let body = web.get(&format!("/contacts/{id}")).await.body;
    let label = |t: chrono::DateTime<Utc>| t.format("%b %Y").to_string();
    // The contact's own events count too (created, added through the API, identified).
    assert!(
        body.contains(&format!("{}: 6 engagements, 7 points", label(this_month))),
        "{body}"
    );
    assert!(body.contains(&format!("{}: 1 engagements, -2 points", label(last_month))));
    assert!(
        !body.contains(&label(long_ago)) || label(long_ago) == label(this_month),
        "older than 6 months is not shown"
    );
    assert!(
        body.contains("7 engagements and 5 points in the last 6 months"),
        "the event of 400 days ago is not counted"
    );
    s.stop().await;
}

async fn anonymous_visitors_show_by_ip(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let id = s
        .create_contact(json!({"ipAddress": "192.0.2.7", "city": "Paris"}))
        .await;
    s.create_contact(json!({"firstname": "Known", "email": "known@example.org"}))
        .await;
    let list = web.get("/contacts").await.body;
    assert!(
        list.contains("Known") && !list.contains("192.0.2.7"),
        "anonymous visitors are hidden unless asked for"
    );
    let list = web.get("/contacts?q=is%3Aanonymous").await.body;
    assert!(
        list.contains("Visitor 192.0.2.7") && !list.contains("Known"),
        "{list}"
    );
    let page = web.get(&format!("/contacts/{id}")).await.body;
    assert!(page.contains("<title>192.0.2.7 · Magpie</title>"), "{page}");
    assert!(page.contains("anonymous visitor"));
    s.stop().await;
}

async fn duplicate_warnings_before_saving(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let ada = s
        .create_contact(json!({"firstname": "Ada", "email": "ada@example.org"}))
        .await;
    let other = s
        .create_contact(json!({"firstname": "Other", "email": "other@example.org"}))
        .await;
    let count = || async {
        s.get("/api/contacts").await.expect(200)["total"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Quick add: warned, nothing saved; confirmed, created.
    let r = web
        .post(
            "/contacts/quick-add",
            &[("firstname", "Ada2"), ("email", "ADA@example.org")],
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.body.contains("already exists") && r.body.contains(&format!("href=\"/contacts/{ada}\"")),
        "{}",
        r.body
    );
    assert_eq!(count().await, "2");
    let r = web
        .post(
            "/contacts/quick-add",
            &[
                ("firstname", "Ada2"),
                ("email", "ADA@example.org"),
                ("_confirm", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(count().await, "3");
    // Editing a contact to another's email: warned, nothing changed.
    let r = web
        .multipart(
            &format!("/contacts/{other}/edit"),
            &[
                ("firstname", "Other"),
                ("email", "ada@example.org"),
                ("_image", "gravatar"),
            ],
            None,
            true,
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(r.body.contains("Possible duplicate"));
    assert_eq!(
        s.get(&format!("/api/contacts/{other}")).await.expect(200)["contact"]["fields"]["all"]["email"],
        "other@example.org"
    );
    // With the OR operator, a match on any identifier is enough; with AND, all must match.
    s.post("/api/fields/contact/new", json!({"label": "Customer number", "alias": "customer_no", "type": "text", "isUniqueIdentifier": true})).await.expect(201);
    let form = [
        ("firstname", "New"),
        ("email", "ada@example.org"),
        ("customer_no", "C-1"),
        ("_image", "gravatar"),
    ];
    let r = web.multipart("/contacts/new", &form, None, true).await;
    assert_eq!(
        r.status, 303,
        "AND: the customer number differs, no duplicate"
    );
    assert_eq!(
        web.post("/settings/contacts", &[("operator", "or")])
            .await
            .status,
        303
    );
    let form = [
        ("firstname", "Newer"),
        ("email", "ada@example.org"),
        ("customer_no", "C-2"),
        ("_image", "gravatar"),
    ];
    let r = web.multipart("/contacts/new", &form, None, true).await;
    assert_eq!(r.status, 409, "OR: the email alone matches");
    s.stop().await;
}

async fn list_totals_stay_exact(backend: Backend) {
    let s = TestServer::start(backend).await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let known: Vec<serde_json::Value> = (0..30)
        .map(|i| json!({"email": format!("k{i}@example.org")}))
        .collect();
    s.post("/api/contacts/batch/new", json!(known))
        .await
        .expect(201);
    let mut anonymous = Vec::new();
    for i in 0..5 {
        anonymous.push(
            s.create_contact(json!({"ipAddress": format!("192.0.2.{i}")}))
                .await,
        );
    }
    // Identifying a visitor moves it from one total to the other; deleting lowers them.
    s.patch(
        &format!("/api/contacts/{}/edit", anonymous[0]),
        json!({"email": "found@example.org"}),
    )
    .await
    .expect(200);
    s.delete(&format!(
        "/api/contacts/batch/delete?ids={},{}",
        anonymous[1], anonymous[2]
    ))
    .await
    .expect(200);
    let ids: Vec<String> = s.get("/api/contacts?limit=3&orderBy=id").await.expect(200)["contacts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    s.delete(&format!("/api/contacts/batch/delete?ids={}", ids.join(",")))
        .await
        .expect(200);
    // A schema change (a new column) keeps the triggers working.
    s.post(
        "/api/fields/contact/new",
        json!({"label": "Extra", "type": "text"}),
    )
    .await
    .expect(201);
    s.create_contact(json!({"email": "late@example.org", "extra": "x"}))
        .await;
    let api_known = s.get("/api/contacts?limit=1").await.expect(200)["total"]
        .as_str()
        .unwrap()
        .to_owned();
    let api_anon = s
        .get("/api/contacts?limit=1&search=is%3Aanonymous")
        .await
        .expect(200)["total"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        (api_known.as_str(), api_anon.as_str()),
        ("29", "2"),
        "30 + 1 identified - 3 deleted + 1; 5 - 1 - 2"
    );
    let page = web.get("/contacts").await.body;
    assert!(
        page.contains("<span class=\"count\" id=\"total\">29</span>"),
        "the unfiltered list's total comes from the counters"
    );
    let page = web.get("/contacts?q=is%3Aanonymous").await.body;
    assert!(page.contains("<span class=\"count\" id=\"total\">2</span>"));
    let mut db = s.state().store.read().await.unwrap();
    assert_eq!(
        magpie::store::contacts::counts(&mut db).await.unwrap(),
        (29, 2)
    );
    drop(db);
    s.stop().await;
}

async fn admins_browsing_are_not_tracked(backend: Backend) {
    let s = TestServer::start_with(backend, "[tracking]\ntrack_private_ip_ranges = true\n").await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
    let hit = |cookie: Option<String>| {
        let mut req = client()
            .post(format!("{}/mtc/event", s.base))
            .header("user-agent", ua)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("page_url=https%3A%2F%2Fsite.example%2F");
        if let Some(c) = cookie {
            req = req.header(COOKIE, c);
        }
        req
    };
    let r = hit(Some(format!("magpie_session={}", web.cookie)))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"success": 0}),
        "a logged-in admin is not a visitor"
    );
    let r = hit(Some("magpie_session=forged-or-expired".into()))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["id"].is_number(),
        "a stale session cookie does not exempt a visitor: {body}"
    );
    s.stop().await;
}

/// An admin page first waits for the pixel hits answered before it, as the API does: the
/// contact page opened right after a visit shows the visit. The test holds SQLite's one
/// writer, so nothing is applied until it lets go.
#[tokio::test]
async fn admin_pages_follow_the_hits_answered_before_them() {
    let s = TestServer::start_with(
        Backend::Sqlite,
        "[tracking]\ntrack_private_ip_ranges = true\n",
    )
    .await;
    let ada = s.create_contact(json!({"email": "ada@example.org"})).await;
    let web = Web::login(&s, "admin", ADMIN_PASSWORD).await;
    let writer = s.state().store.begin().await.unwrap();
    let pixel = client()
        .get(format!(
            "{}/mtracking.gif?email=ada%40example.org&url=https%3A%2F%2Fshop.example%2Fvisited-page",
            s.base
        ))
        .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0")
        .send()
        .await
        .unwrap();
    assert_eq!(pixel.status(), 200);
    let page = tokio::spawn(async move { web.get(&format!("/contacts/{ada}")).await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!page.is_finished(), "the page waits for the answered hit");
    drop(writer);
    let page = page.await.unwrap();
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("shop.example/visited-page"),
        "the visit is on the contact page"
    );
    s.stop().await;
}

//! A logged-in admin over plain HTTP (no redirects followed): the session cookie, the
//! CSRF token, and form posts as a browser sends them.

use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use crate::{ADMIN_PASSWORD, TestServer};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().expect("client")
}

pub fn cookie_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").split_once('=').map(|(_, v)| v.to_owned()).unwrap_or_default())
}

/// The first CSRF token in a page.
pub fn csrf_in(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..start + html[start..].find('"').expect("end of token")].to_owned()
}

pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> String {
        self.headers.get(LOCATION).map(|v| v.to_str().unwrap_or("").to_owned()).unwrap_or_default()
    }
}

pub async fn fetch(req: reqwest::RequestBuilder) -> Page {
    let r = req.send().await.expect("request sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Page { status, headers, body: r.text().await.expect("body") }
}

pub struct Web {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
}

impl Web {
    /// Logs in as `admin` through the login form.
    pub async fn admin(s: &TestServer) -> Web {
        Web::login(s, "admin", ADMIN_PASSWORD).await
    }

    pub async fn login(s: &TestServer, username: &str, password: &str) -> Web {
        let http = client();
        let page = fetch(http.get(s.url("/login"))).await;
        let token = csrf_in(&page.body);
        let login_cookie = cookie_of(&page.headers, "magpie_login_csrf").expect("login csrf cookie");
        let r = fetch(
            http.post(s.url("/login"))
                .header(COOKIE, format!("magpie_login_csrf={login_cookie}"))
                .form(&[("_csrf", token.as_str()), ("username", username), ("password", password), ("next", "")]),
        )
        .await;
        assert_eq!(r.status, 303, "login failed: {}", r.body);
        let cookie = cookie_of(&r.headers, "magpie_session").expect("session cookie");
        let mut web = Web { base: s.base.clone(), http, cookie, csrf: String::new() };
        let page = web.get("/contacts").await;
        assert_eq!(page.status, 200);
        web.csrf = csrf_in(&page.body);
        web
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).header(COOKIE, format!("magpie_session={}", self.cookie))
    }

    pub async fn get(&self, path: &str) -> Page {
        fetch(self.req(reqwest::Method::GET, path)).await
    }

    /// A form post with the session's CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        fetch(self.req(reqwest::Method::POST, path).form(&all)).await
    }

    /// A form post without any CSRF token.
    pub async fn post_without_token(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        fetch(self.req(reqwest::Method::POST, path).form(fields)).await
    }

    /// Follows a redirect (GET), returning the page it leads to.
    pub async fn follow(&self, page: &Page) -> Page {
        let to = page.location();
        assert!(to.starts_with('/'), "expected a local redirect, got {} ({to:?})", page.status);
        self.get(&to).await
    }
}

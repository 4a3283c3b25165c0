//! The web admin over plain HTTP, as a browser without script would use it: log in
//! through the login form, keep the session cookie, send forms with the CSRF token
//! (url-encoded or multipart), never follow redirects (tests look at them).

use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use crate::{ADMIN_PASSWORD, TestServer};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// The value of a `Set-Cookie` named `name`.
pub fn cookie_of(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .split_once('=')
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default()
        })
}

/// The first form's CSRF token in a page.
pub fn csrf_in(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..start + html[start..].find('"').expect("end of the token")].to_owned()
}

pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> String {
        self.headers
            .get(LOCATION)
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    }
}

pub async fn fetch(req: reqwest::RequestBuilder) -> Page {
    let r = req.send().await.expect("request sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Page {
        status,
        headers,
        body: r.text().await.expect("body"),
    }
}

/// A logged-in browser-like client.
pub struct Web {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
}

impl Web {
    /// Logs in as `admin`, the administrator every test server starts with.
    pub async fn admin(s: &TestServer) -> Web {
        Web::login(s, "admin", ADMIN_PASSWORD).await
    }

    /// Logs in through the login form (panics when it fails).
    pub async fn login(s: &TestServer, username: &str, password: &str) -> Web {
        let http = client();
        let page = fetch(http.get(s.url("/login"))).await;
        let token = csrf_in(&page.body);
        let login_cookie =
            cookie_of(&page.headers, "magpie_login_csrf").expect("login csrf cookie");
        let r = fetch(
            http.post(s.url("/login"))
                .header(COOKIE, format!("magpie_login_csrf={login_cookie}"))
                .form(&[
                    ("_csrf", token.as_str()),
                    ("username", username),
                    ("password", password),
                    ("next", ""),
                ]),
        )
        .await;
        assert_eq!(r.status, 303, "login failed: {}", r.body);
        let cookie = cookie_of(&r.headers, "magpie_session").expect("session cookie");
        let mut web = Web {
            base: s.base.clone(),
            http,
            cookie,
            csrf: String::new(),
        };
        let page = web.get("/profile").await;
        assert_eq!(page.status, 200);
        web.csrf = csrf_in(&page.body);
        web
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(COOKIE, format!("magpie_session={}", self.cookie))
    }

    pub async fn get(&self, path: &str) -> Page {
        fetch(self.req(reqwest::Method::GET, path)).await
    }

    /// A url-encoded form post with the CSRF token.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all = vec![("_csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        fetch(self.req(reqwest::Method::POST, path).form(&all)).await
    }

    /// A url-encoded form post without the CSRF token.
    pub async fn post_without_token(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        fetch(self.req(reqwest::Method::POST, path).form(fields)).await
    }

    /// Follows a redirect (GET), returning the page it leads to.
    pub async fn follow(&self, page: &Page) -> Page {
        let to = page.location();
        assert!(
            to.starts_with('/'),
            "expected a local redirect, got {} ({to:?})",
            page.status
        );
        self.get(&to).await
    }

    /// A multipart post: text fields, and one file as (field, file name, bytes).
    pub async fn multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, &str, &[u8])>,
        with_token: bool,
    ) -> Page {
        let boundary = "----magpieboundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        let mut part = |name: &str, filename: Option<&str>, data: &[u8]| {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match filename {
                Some(f) => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                ),
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
        if let Some((field, name, data)) = file {
            part(field, Some(name), data);
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

/// Creates a user directly in the store (`admin` or `user` role).
pub async fn create_user(
    s: &TestServer,
    username: &str,
    password: &str,
    role: magpie::users::Role,
) {
    let hash = magpie::users::hash_password(password).expect("hash");
    let mut tx = s.state().store.begin().await.expect("begin");
    let user = magpie::store::users::NewUser {
        username,
        email: "",
        first_name: username,
        last_name: "",
        role,
        password_hash: &hash,
    };
    magpie::store::users::insert(&mut tx, &user, magpie::time::now_ms())
        .await
        .expect("insert user");
    tx.commit().await.expect("commit");
}

/// The character an HTML character reference stands for (`lt`, `#60`, `#x3C` …), for
/// the references templates and the form embed produce.
fn entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "amp" => Some('&'),
        _ => {
            let n = name.strip_prefix('#')?;
            let code = match n.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => n.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Rewrites every character reference in `html` through `f` (one pass, so `&amp;lt;`
/// stays the text `&lt;`); unknown ones are kept as they are.
fn map_entities(html: &str, f: impl Fn(char) -> String) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest[1..]
            .find(';')
            .filter(|end| *end <= 10)
            .and_then(|end| Some((entity(&rest[1..=end])?, end + 2)));
        match decoded {
            Some((c, len)) => {
                out.push_str(&f(c));
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes HTML character references: the text a browser shows (e.g. a textarea's value).
pub fn decode_entities(html: &str) -> String {
    map_entities(html, String::from)
}

/// Spells every escaped `<`, `>`, `"`, `'` and `&` one way (`&lt;`, `&gt;`, `&quot;`,
/// `&#39;`, `&amp;`) whatever the template engine wrote (askama writes `&#60;` …), so a
/// test can check that text is escaped without depending on how. Other references are
/// decoded; nothing is unescaped into markup.
pub fn unify_entities(html: &str) -> String {
    map_entities(html, |c| match c {
        '<' => "&lt;".into(),
        '>' => "&gt;".into(),
        '"' => "&quot;".into(),
        '\'' => "&#39;".into(),
        '&' => "&amp;".into(),
        c => c.to_string(),
    })
}

/// The text of the `<textarea>` with this id, as the browser shows it.
pub fn textarea(html: &str, id: &str) -> String {
    let open = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let start = open + html[open..].find('>').expect("end of the textarea tag") + 1;
    let end = start + html[start..].find("</textarea>").expect("</textarea>");
    decode_entities(&html[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities(
                "&#60;b&#62; &lt;i&gt; &#x27;&#34;&quot; &#38;lt; &amp;amp; & a&b; &#xZZ;"
            ),
            "<b> <i> '\"\" &lt; &amp; & a&b; &#xZZ;"
        );
        assert_eq!(
            unify_entities("<b>&#60;x&#62;&#38;&#34;&#39;&#x27;&eacute;&#233;</b>"),
            "<b>&lt;x&gt;&amp;&quot;&#39;&#39;&eacute;é</b>"
        );
    }
}

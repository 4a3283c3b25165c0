//! Helpers shared by the import and export tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use magpie_tests::{TestServer, Value};

/// Uploads `bytes` as a raw body named `name`; returns the response.
pub async fn upload_raw(s: &TestServer, name: &str, bytes: Vec<u8>) -> magpie_tests::Response {
    s.raw(
        reqwest::Method::POST,
        &format!("/api/imports?filename={name}"),
        "text/csv",
        bytes,
    )
    .await
}

/// Uploads and expects a 201; returns the import JSON.
pub async fn upload(s: &TestServer, name: &str, bytes: impl Into<Vec<u8>>) -> Value {
    let r = upload_raw(s, name, bytes.into()).await;
    assert_eq!(r.status, 201, "upload: {}", r.text);
    r.body["import"].clone()
}

/// Polls an import until it is done, failed or paused.
pub async fn wait_import(s: &TestServer, id: i64) -> Value {
    let started = Instant::now();
    loop {
        let r = s
            .get(&format!("/api/imports/{id}?preview=0"))
            .await
            .expect(200);
        let status = r["import"]["status"].as_str().unwrap_or("").to_owned();
        if ["done", "failed", "paused"].contains(&status.as_str()) {
            return r["import"].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "import {id} did not finish: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts an import with `body` and waits for it.
pub async fn run_import(s: &TestServer, id: i64, body: Value) -> Value {
    let r = s.post(&format!("/api/imports/{id}/start"), body).await;
    assert_eq!(r.status, 202, "start: {}", r.text);
    wait_import(s, id).await
}

/// Creates a user directly in the store; returns its id.
pub async fn add_user(
    s: &TestServer,
    username: &str,
    password: &str,
    email: &str,
    admin: bool,
) -> i64 {
    let hash = magpie::users::hash_password(password).unwrap();
    let mut tx = s.state().store.begin().await.unwrap();
    let id = magpie::store::users::insert(
        &mut tx,
        &magpie::store::users::NewUser {
            username,
            email,
            first_name: username,
            last_name: "",
            role: if admin {
                magpie::users::Role::Admin
            } else {
                magpie::users::Role::User
            },
            password_hash: &hash,
        },
        magpie::time::now_ms(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A GET as another user.
pub async fn get_as(
    s: &TestServer,
    user: &str,
    password: &str,
    path: &str,
) -> magpie_tests::Response {
    s.send(s.client.get(s.url(path)).basic_auth(user, Some(password)))
        .await
}

pub async fn post_as(
    s: &TestServer,
    user: &str,
    password: &str,
    path: &str,
    body: Value,
) -> magpie_tests::Response {
    s.send(
        s.client
            .post(s.url(path))
            .basic_auth(user, Some(password))
            .json(&body),
    )
    .await
}

/// Every contact, anonymous or not.
pub async fn count_contacts(s: &TestServer) -> i64 {
    let r = s
        .get("/api/contacts?search=is:anonymous%20OR%20!is:anonymous&limit=1")
        .await
        .expect(200);
    r["total"].as_str().unwrap().parse().unwrap()
}

/// The contacts with this exact email.
pub async fn by_email(s: &TestServer, email: &str) -> Vec<Value> {
    let r = s
        .get(&format!(
            "/api/contacts?search=email:%2B{}&limit=100",
            urlencode(email)
        ))
        .await
        .expect(200);
    r["contacts"]
        .as_object()
        .unwrap()
        .values()
        .cloned()
        .collect()
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A small, independent RFC 4180 parser for checking exported files.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                c => field.push(c),
            }
        } else {
            match c {
                '"' => quoted = true,
                ',' => row.push(std::mem::take(&mut field)),
                '\r' => {}
                '\n' => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                c => field.push(c),
            }
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// Rows of a parsed CSV as maps from header to value.
pub fn records(rows: &[Vec<String>]) -> Vec<std::collections::HashMap<String, String>> {
    let header = &rows[0];
    rows[1..]
        .iter()
        .map(|r| header.iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}

/// A tiny SMTP receiver on a free port: accepts every message and hands it over.
pub async fn smtp_receiver() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read);
                let _ = write.write_all(b"220 test.local ESMTP ready\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-test.local\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("HELO")
                        || cmd.starts_with("MAIL")
                        || cmd.starts_with("RCPT")
                        || cmd.starts_with("RSET")
                        || cmd.starts_with("NOOP")
                    {
                        b"250 OK\r\n"
                    } else if cmd.starts_with("DATA") {
                        let _ = write.write_all(b"354 go ahead\r\n").await;
                        let mut message = String::new();
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" || line == ".\n" {
                                break;
                            }
                            message.push_str(
                                line.strip_prefix('.')
                                    .filter(|_| line.starts_with(".."))
                                    .unwrap_or(&line),
                            );
                        }
                        let _ = tx.send(message);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"502 not implemented\r\n"
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    (port, rx)
}

/// The text of a plain-text email: its body decoded (7bit, quoted-printable or base64).
pub fn email_text(message: &str) -> String {
    use base64::Engine;
    let message = message.replace("\r\n", "\n");
    let (head, body) = message.split_once("\n\n").unwrap_or((&message, ""));
    let encoding = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-transfer-encoding:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    match encoding.as_str() {
        "base64" => {
            let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(clean)
                    .unwrap(),
            )
            .unwrap()
        }
        "quoted-printable" => {
            let joined = body.replace("=\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'='
                    && i + 3 <= bytes.len()
                    && let Ok(b) = u8::from_str_radix(
                        std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                        16,
                    )
                {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(bytes[i]);
                i += 1;
            }
            String::from_utf8_lossy(&out).into_owned()
        }
        _ => body.to_owned(),
    }
}

/// The first `http…/api/exports/N/download?token=…` link in an email or a text.
pub fn find_link(text: &str) -> Option<String> {
    let decoded = if text.contains("Content-Transfer-Encoding") {
        email_text(text)
    } else {
        text.to_owned()
    };
    let text = decoded.as_str();
    let start = text.find("http://")?;
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    link.contains("/download?token=").then_some(link)
}

/// The path and query of a link.
pub fn path_of(link: &str) -> String {
    let rest = link.strip_prefix("http://").unwrap_or(link);
    rest[rest.find('/').unwrap_or(0)..].to_owned()
}

/// The API's form of an emailed download link (`/exports/…` is the admin's page, followed
/// with a session; `/api/exports/…` takes the same token with Basic auth).
pub fn api_path_of(link: &str) -> String {
    format!("/api{}", path_of(link))
}

/// The id of the contact field `alias`.
pub async fn field_id(s: &TestServer, alias: &str) -> i64 {
    s.get("/api/fields/contact").await.expect(200)["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["alias"] == alias)
        .unwrap_or_else(|| panic!("no field {alias}"))["id"]
        .as_i64()
        .unwrap()
}

/// Deletes the contact field `alias` through the API.
pub async fn delete_field(s: &TestServer, alias: &str) {
    let id = field_id(s, alias).await;
    s.delete(&format!("/api/fields/contact/{id}/delete"))
        .await
        .expect(200);
}

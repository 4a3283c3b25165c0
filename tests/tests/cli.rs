//! The `magpie` binary as an operator uses it: flags, environment, `migrate`,
//! `user add`, the first-start admin, a clean stop on SIGTERM, and on SIGINT with a request
//! in flight.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use magpie_tests::magpie_binary;
use magpie_tests::process::free_port;

fn magpie() -> Command {
    let mut c = Command::new(magpie_binary!());
    c.env_remove("MAGPIE_ADMIN_PASSWORD")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    c
}

/// Starts `magpie serve`, collecting its log lines, and waits for /healthz.
fn serve(
    data_dir: &std::path::Path,
    port: u16,
    env: &[(&str, &str)],
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = magpie();
    cmd.arg("serve")
        .env("MAGPIE_DATA_DIR", data_dir)
        .env("MAGPIE_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn magpie");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    loop {
        if http_status(port, "/healthz", None) == Some(200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not become healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, rx)
}

/// A minimal blocking HTTP/1.1 GET; returns the status.
fn http_status(port: u16, path: &str, basic: Option<&str>) -> Option<u16> {
    use base64::Engine;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let auth = basic
        .map(|b| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(b)
            )
        })
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < within, "process did not exit in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &Child) {
    signal(child, "-TERM");
}

fn signal(child: &Child, which: &str) {
    let ok = Command::new("kill")
        .arg(which)
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn first_start_prints_a_random_admin_password_that_works_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (mut child, logs) = serve(dir.path(), port, &[]);
    let mut password = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while password.is_none() && Instant::now() < deadline {
        if let Ok(line) = logs.recv_timeout(Duration::from_millis(200))
            && let Some(rest) = line.split("with password ").nth(1)
        {
            password = rest.split_whitespace().next().map(str::to_owned);
        }
    }
    let password = password.expect("the random admin password is printed once");
    assert_eq!(password.len(), 20);
    assert_eq!(
        http_status(port, "/api/contacts", Some(&format!("admin:{password}"))),
        Some(200)
    );
    assert_eq!(
        http_status(port, "/api/contacts", Some("admin:wrong")),
        Some(401)
    );
    assert!(
        dir.path().join("magpie.db").exists(),
        "default database under the data dir"
    );
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "exit 0 after SIGTERM, got {status:?}");
    let rest: Vec<String> = logs.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "logs: {rest:?}");
    assert!(
        !rest.iter().any(|l| l.contains(&password)),
        "the password is printed only once"
    );

    // Second start: no new admin, no password printed.
    let (mut child, logs) = serve(dir.path(), port, &[]);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
    assert!(!logs.try_iter().any(|l| l.contains("with password")));
}

#[test]
fn migrate_and_user_add() {
    let dir = tempfile::tempdir().unwrap();
    let out = magpie()
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("magpie.db").exists());
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("password"),
        "migrating creates no administrator: {said}"
    );

    let add = |name: &str, password: &str, role: &str| {
        let mut child = magpie()
            .args([
                "user",
                "add",
                "--username",
                name,
                "--role",
                role,
                "--password-stdin",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    // A plain user alone on a fresh install: the server still creates `admin` (there is
    // no administrator) at its start.
    let plain_only = tempfile::tempdir().unwrap();
    let out = magpie()
        .args(["migrate", "--data-dir"])
        .arg(plain_only.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut child = magpie()
        .args([
            "user",
            "add",
            "--username",
            "dora",
            "--role",
            "user",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(plain_only.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "dora-password-1").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let port = free_port();
    let (mut server, _logs) = serve(
        plain_only.path(),
        port,
        &[("MAGPIE_ADMIN_PASSWORD", "first-admin-pw")],
    );
    assert_eq!(
        http_status(port, "/api/contacts", Some("admin:first-admin-pw")),
        Some(200)
    );
    assert_eq!(
        http_status(port, "/api/contacts", Some("dora:dora-password-1")),
        Some(200)
    );
    sigterm(&server);
    assert!(wait_exit(&mut server, Duration::from_secs(20)).success());

    // The operator's own administrator on a fresh install: the server then creates no
    // `admin` of its own.
    let out = add("admin", "admin-password-1", "admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = add("bob", "bob-password-1", "user");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = add("bob", "another-password", "user");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = add("carol", "short", "admin");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 8"));
    let out = add("bad name", "long-enough-pw", "admin");
    assert!(!out.status.success());

    let port = free_port();
    let (mut child, logs) = serve(
        dir.path(),
        port,
        &[("MAGPIE_ADMIN_PASSWORD", "ignored-now")],
    );
    assert_eq!(
        http_status(port, "/api/contacts", Some("bob:bob-password-1")),
        Some(200)
    );
    assert_eq!(
        http_status(port, "/api/contacts", Some("bob:wrong")),
        Some(401)
    );
    assert_eq!(
        http_status(port, "/api/contacts", Some("admin:admin-password-1")),
        Some(200)
    );
    assert_eq!(
        http_status(port, "/api/contacts", Some("admin:ignored-now")),
        Some(401),
        "an administrator exists: MAGPIE_ADMIN_PASSWORD creates no one"
    );
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
    let lines: Vec<String> = logs.try_iter().collect();
    assert!(
        !lines.iter().any(|l| l.contains("bob-password-1")),
        "no secrets in logs"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("request") && l.contains("status=200") && l.contains("latency_ms")),
        "one line per request: {lines:?}"
    );
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("magpie.toml");
    std::fs::write(&config, "[tracking]\ntrack_private = true\n").unwrap();
    let out = magpie()
        .arg("migrate")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid config file") && err.contains("track_private"),
        "{err}"
    );
    let out = magpie()
        .arg("migrate")
        .arg("--database-url")
        .arg("mysql://nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
}

/// Opens `POST /api/contacts/batch/new` with `Expect: 100-continue` for a body of
/// `body_len` bytes and reads the server's "continue": the request is then surely in
/// flight, its body still to send.
fn open_batch_request(
    port: u16,
    auth: &str,
    body_len: usize,
) -> (std::net::TcpStream, BufReader<std::net::TcpStream>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /api/contacts/batch/new HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    reader.read_line(&mut line).unwrap(); // the empty line after it
    (s, reader)
}

/// `GET path` with Basic auth; the whole answer, headers and body.
fn get_answer(port: u16, auth: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
    answer
}

/// SIGINT while a request is in flight (its body half sent): the server stops accepting,
/// answers that request in full, then exits 0; what it acknowledged is there after a
/// restart.
#[test]
fn sigint_finishes_the_request_in_flight() {
    use base64::Engine;
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = [("MAGPIE_ADMIN_PASSWORD", "interrupt-password-1")];
    let (mut child, _logs) = serve(dir.path(), port, &env);
    let body = br#"[{"email": "inflight@x.org", "firstname": "Half"}]"#;
    let auth = base64::engine::general_purpose::STANDARD.encode("admin:interrupt-password-1");
    // The server says "continue" once the handler reads the body, so the request is
    // surely in flight when the signal comes.
    let (mut s, mut reader) = open_batch_request(port, &auth, body.len());
    let half = body.len() / 2;
    s.write_all(&body[..half]).unwrap();
    s.flush().unwrap();

    signal(&child, "-INT");
    let started = Instant::now();
    while http_status(port, "/healthz", None).is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "new connections are still accepted after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server waits for the request in flight"
    );
    s.write_all(&body[half..]).unwrap();
    let mut answer = String::new();
    reader.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("inflight@x.org"), "{answer}");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "exit 0 after SIGINT, got {status:?}");

    let (mut child, _logs) = serve(dir.path(), port, &env);
    let answer = get_answer(port, &auth, "/api/contacts?search=email:inflight@x.org");
    assert!(answer.contains(r#""total":"1""#), "{answer}");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
}

/// A client that never sends the rest of its body does not keep the server from
/// stopping: after `[server] shutdown_grace_seconds` it is not waited for any more, the
/// server exits 0 after flushing, and nothing of its request was written.
#[test]
fn a_stalled_request_is_dropped_after_the_shutdown_grace() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("magpie.toml");
    std::fs::write(&config, "[server]\nshutdown_grace_seconds = 1\n").unwrap();
    let port = free_port();
    let config_env = config.display().to_string();
    let env = [
        ("MAGPIE_ADMIN_PASSWORD", "stalled-password-1"),
        ("MAGPIE_CONFIG", config_env.as_str()),
    ];
    let (mut child, logs) = serve(dir.path(), port, &env);
    let body = br#"[{"email": "stalled@x.org"}]"#;
    let auth = base64::engine::general_purpose::STANDARD.encode("admin:stalled-password-1");
    let (mut s, _reader) = open_batch_request(port, &auth, body.len());
    s.write_all(&body[..5]).unwrap();
    s.flush().unwrap();

    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(
        status.success(),
        "exit 0 after the grace period, got {status:?}"
    );
    let logged: String = logs.iter().collect::<Vec<_>>().join("\n");
    assert!(logged.contains("shutdown grace period"), "{logged}");

    let (mut child, _logs) = serve(dir.path(), port, &env);
    let answer = get_answer(port, &auth, "/api/contacts?search=email:stalled");
    assert!(answer.contains(r#""total":"0""#), "{answer}");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
}

/// `magpie` alone serves (the default job), and `--listen`/`--data-dir` flags work as
/// their variables do.
#[test]
fn bare_magpie_serves_with_flags() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = magpie()
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .env("MAGPIE_ADMIN_PASSWORD", "bare-password-1")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while http_status(port, "/healthz", None) != Some(200) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "magpie exited instead of serving"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        http_status(port, "/api/contacts", Some("admin:bare-password-1")),
        Some(200)
    );
    assert!(dir.path().join("magpie.db").exists());
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
}

//! Hostile: tries to get out — host functions without the capability, HTTP to hosts
//! not granted and to 127.0.0.1, files, environment, sockets. Each attempt's outcome
//! is the webhook's message, so the tests can read it.

use magpie_sdk::prelude::*;

struct Escape;

fn outcome<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Ok(v) => format!("ok: {v:?}"),
        Err(e) => format!("err: {}: {}", e.kind(), e.message()),
    }
}

fn io<T: std::fmt::Debug>(r: std::io::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok: {v:?}"),
        Err(e) => format!("err: {e}"),
    }
}

impl EventTypes for Escape {
    fn describe() -> PluginInfo {
        plugin_info!()
            .title("Escape (test)")
            .capability(Capability::ReadContacts)
            .capability(Capability::Http("http://127.0.0.1:*".into()))
            .setting(Setting::text("greeting", "Greeting").default_value("hi"))
            .setting(Setting::secret("token", "API token"))
            .setting(
                Setting::select("mode", "Mode", &["a", "b"])
                    .required()
                    .default_value("a"),
            )
    }
    fn event_types() -> Vec<EventType> {
        vec![EventType::new(
            "escape.attempt",
            "Escape attempt",
            "fa-unlock",
            "Escape",
        )]
    }
    fn ingest(request: WebhookRequest) -> Result<IngestResult> {
        let id: i64 = request
            .query("id")
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let message = match request.path.as_str() {
            "contact" => outcome(host::get_contact(id).map(|c| c.map(|c| c.id))),
            "find" => outcome(host::find_contact(&ContactRef::Email(
                request.query("email").unwrap_or("").into(),
            ))),
            "fields" => outcome(host::update_fields(
                id,
                &[Field::text("firstname", "Mallory")],
            )),
            "tags" => outcome(host::change_tags(id, &["owned".into()], &[])),
            "event" => outcome(host::record_event(&NewEvent::new(
                id,
                "escape.attempt",
                json!({}),
            ))),
            "http" => outcome(
                host::http::get(request.query("url").unwrap_or("")).map(|r| (r.status, r.text())),
            ),
            "storage" => {
                let set = host::storage::set("k", "v");
                outcome(set.and_then(|_| host::storage::get("k")))
            }
            "config" => format!(
                "ok: {}",
                host::config::all()
                    .iter()
                    .map(|p| format!("{}={}", p.name, p.value))
                    .collect::<Vec<_>>()
                    .join(";")
            ),
            "files" => {
                let read = std::fs::read_to_string("/etc/passwd").map(|s| s.len());
                let list = std::fs::read_dir("/").map(|d| d.count());
                let write = std::fs::write("/tmp/magpie-escape", b"x");
                format!("read {} list {} write {}", io(read), io(list), io(write))
            }
            "env" => format!(
                "vars {} args {}",
                std::env::vars().count(),
                std::env::args().count()
            ),
            "socket" => io(std::net::TcpStream::connect(
                request.query("addr").unwrap_or("127.0.0.1:80"),
            )
            .map(|_| ())),
            other => format!("unknown attempt {other}"),
        };
        Ok(IngestResult::events(vec![]).message(message))
    }
}

export_plugin!(Escape: EventTypes);

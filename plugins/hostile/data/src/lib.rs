//! Hostile: returns huge or malformed data. The host must cap, validate and drop.

use magpie_sdk::prelude::*;

struct Data;

impl EventTypes for Data {
    fn describe() -> PluginInfo {
        plugin_info!()
            .title("Data (test)")
            .capability(Capability::RecordEvents)
    }
    fn event_types() -> Vec<EventType> {
        let mut v: Vec<EventType> = ["ok", "huge", "many", "wrongcount", "badlink", "html"]
            .iter()
            .map(|k| {
                EventType::new(
                    &format!("data.{k}"),
                    &format!("Data {k}"),
                    "fa-database",
                    "Data",
                )
            })
            .collect();
        v.push(EventType::new("Bad Key!", "Bad key", "fa-x", "Data"));
        v.push(EventType::new("lead.create", "Hijacked", "fa-x", "Data"));
        v.push(EventType::new(
            "data.longlabel",
            &"L".repeat(10_000),
            "fa-x\" onclick=\"x",
            "Data",
        ));
        v
    }
    fn render_page(events: Vec<Event>) -> Vec<Result<Rendered>> {
        if events.iter().any(|e| e.event_type == "data.wrongcount") {
            return vec![Ok(Rendered::new("only one"))];
        }
        events.iter().map(render).collect()
    }
    fn ingest(request: WebhookRequest) -> Result<IngestResult> {
        let email = request
            .query("email")
            .unwrap_or("nobody@example.org")
            .to_owned();
        let who = ContactRef::Email(email);
        Ok(match request.path.as_str() {
            "undeclared" => {
                IngestResult::events(vec![IngestedEvent::new(who, "lead.create", json!({}))])
            }
            "badjson" => IngestResult::events(vec![IngestedEvent {
                contact: who,
                event_type: "data.ok".into(),
                occurred_at: None,
                properties: "{not json".into(),
            }]),
            "notobject" => IngestResult::events(vec![IngestedEvent {
                contact: who,
                event_type: "data.ok".into(),
                occurred_at: None,
                properties: "[1,2]".into(),
            }]),
            "flood" => IngestResult::events(
                (0..20_000)
                    .map(|_| IngestedEvent::new(who.clone(), "data.ok", json!({})))
                    .collect(),
            ),
            "hugemessage" => IngestResult::events(vec![]).message("M".repeat(5 << 20)),
            _ => IngestResult::events(vec![IngestedEvent::new(who, "data.ok", json!({"n": 1}))]),
        })
    }
}

fn render(e: &Event) -> Result<Rendered> {
    Ok(match e.event_type.as_str() {
        "data.huge" => Rendered::new("S".repeat(4 << 20)),
        "data.many" => (0..50_000).fold(Rendered::new("many rows"), |r, i| {
            r.row(format!("row {i}"), "v")
        }),
        "data.badlink" => Rendered::new("bad link").link("javascript:alert(1)", "click"),
        "data.html" => Rendered::new("<script>alert(1)</script>").row("<b>", "<i>"),
        _ => Rendered::new("ok"),
    })
}

export_plugin!(Data: EventTypes);

//! `video-events`: "Video view" on the timeline, reported by a video player (or its
//! analytics) through the plugin's webhook:
//!
//! ```text
//! POST /plugins/video-events/hook/view?secret=…
//! {"email": "ada@example.org", "url": "https://videos.example.org/intro",
//!  "title": "Intro", "seconds": 95, "percentage": 75, "referrer": "https://example.org/"}
//! ```
//!
//! The contact is named by `email`, `device_id` (the tracking script's device) or
//! `contact_id`. A body may also be a list of such objects, or `{"views": [...]}`.

use magpie_sdk::prelude::*;

pub const VIEW: &str = "video.view";
/// Views per webhook request.
pub const MAX_VIEWS: usize = 500;

pub struct VideoEvents;

impl EventTypes for VideoEvents {
    fn describe() -> PluginInfo {
        plugin_info!()
            .title("Video views")
            .capability(Capability::RecordEvents)
    }

    fn event_types() -> Vec<EventType> {
        vec![EventType::new(
            VIEW,
            "Video view",
            "fa-play-circle",
            "Video",
        )]
    }

    fn render(event: &Event) -> Result<Rendered> {
        Ok(render(&event.props()))
    }

    fn ingest(request: WebhookRequest) -> Result<IngestResult> {
        let body = request.json()?;
        let views: Vec<&Json> = match &body {
            Json::Array(a) => a.iter().collect(),
            Json::Object(o) if o.contains_key("views") => o["views"]
                .as_array()
                .ok_or_else(|| Error::invalid("views must be a list"))?
                .iter()
                .collect(),
            Json::Object(_) => vec![&body],
            _ => {
                return Err(Error::invalid(
                    "the body must be a JSON object or a list of objects",
                ));
            }
        };
        if views.len() > MAX_VIEWS {
            return Err(Error::invalid(format!(
                "at most {MAX_VIEWS} views per request"
            )));
        }
        let events = views
            .iter()
            .enumerate()
            .map(|(i, v)| view(v).map_err(|m| Error::invalid(format!("view {i}: {m}"))))
            .collect::<Result<Vec<_>>>()?;
        let n = events.len();
        Ok(IngestResult::events(events).message(format!("{n} video view(s) received")))
    }
}

export_plugin!(VideoEvents: EventTypes);

fn view(v: &Json) -> std::result::Result<IngestedEvent, String> {
    let contact = if let Some(email) = v["email"].as_str().filter(|s| !s.trim().is_empty()) {
        ContactRef::Email(email.trim().to_owned())
    } else if let Some(device) = v["device_id"].as_str().filter(|s| !s.trim().is_empty()) {
        ContactRef::DeviceId(device.trim().to_owned())
    } else if let Some(id) = v["contact_id"].as_i64() {
        ContactRef::Id(id)
    } else {
        return Err("email, device_id or contact_id is required".into());
    };
    let url = v["url"]
        .as_str()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .ok_or("url must be an http(s) URL")?;
    let seconds = number(&v["seconds"]).ok_or("seconds must be a number")?;
    if !(0.0..=86_400.0 * 7.0).contains(&seconds) {
        return Err("seconds is out of range".into());
    }
    let percentage = match &v["percentage"] {
        Json::Null => None,
        p => Some(
            number(p)
                .filter(|p| (0.0..=100.0).contains(p))
                .ok_or("percentage must be between 0 and 100")?,
        ),
    };
    let mut props = json!({ "url": url, "seconds": seconds.round() as i64 });
    if let Some(p) = percentage {
        props["percentage"] = json!((p * 10.0).round() / 10.0);
    }
    for key in ["title", "referrer", "player"] {
        if let Some(s) = v[key].as_str().filter(|s| !s.is_empty()) {
            props[key] = json!(s.chars().take(2000).collect::<String>());
        }
    }
    if let Some(d) = number(&v["duration"]) {
        props["duration"] = json!(d.round() as i64);
    }
    let mut event = IngestedEvent::new(contact, VIEW, props);
    if let Some(ts) = v["timestamp"].as_i64() {
        event = event.at(ts);
    }
    Ok(event)
}

fn number(v: &Json) -> Option<f64> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|f| f.is_finite())
}

fn duration(secs: i64) -> String {
    match secs {
        s if s >= 3600 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{s} s"),
    }
}

pub fn render(p: &Json) -> Rendered {
    let url = p["url"].as_str().unwrap_or("").to_owned();
    let title = p["title"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| url.clone());
    let pct = p["percentage"].as_f64();
    let summary = match (title.is_empty(), pct) {
        (true, _) => "Video view".to_owned(),
        (false, Some(pc)) => format!("Watched \u{201c}{title}\u{201d} ({pc} %)"),
        (false, None) => format!("Watched \u{201c}{title}\u{201d}"),
    };
    let mut r = Rendered::new(summary)
        .row("Video", url.clone())
        .row_opt("Watched", p["seconds"].as_i64().map(duration))
        .row_opt("Percentage", pct.map(|p| format!("{p} %")))
        .row_opt("Duration", p["duration"].as_i64().map(duration))
        .row_opt("Referrer", p["referrer"].as_str())
        .row_opt("Player", p["player"].as_str());
    if url.starts_with("http://") || url.starts_with("https://") {
        r = r.link(url, "Open the video");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> WebhookRequest {
        WebhookRequest {
            method: "POST".into(),
            path: "view".into(),
            query: vec![],
            headers: vec![],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn ingests_views_by_email_or_device() {
        let r = VideoEvents::ingest(request(
            r#"[{"email":"a@example.org","url":"https://v.example/1","seconds":95,"percentage":"75","referrer":"https://example.org/"},
               {"device_id":"abc","url":"https://v.example/2","seconds":"3"}]"#,
        ))
        .unwrap();
        assert_eq!(r.events.len(), 2);
        assert_eq!(
            r.events[0].contact,
            ContactRef::Email("a@example.org".into())
        );
        assert_eq!(r.events[1].contact, ContactRef::DeviceId("abc".into()));
        let p: Json = magpie_sdk::serde_json::from_str(&r.events[0].properties).unwrap();
        assert_eq!(
            p,
            json!({"url": "https://v.example/1", "seconds": 95, "percentage": 75.0, "referrer": "https://example.org/"})
        );
    }

    #[test]
    fn refuses_bad_views() {
        for body in [
            "nope",
            "42",
            r#"{"url":"https://v.example/1","seconds":1}"#,
            r#"{"email":"a@b.c","url":"javascript:x","seconds":1}"#,
            r#"{"email":"a@b.c","url":"https://v.example/1"}"#,
            r#"{"email":"a@b.c","url":"https://v.example/1","seconds":1,"percentage":140}"#,
        ] {
            assert!(
                matches!(
                    VideoEvents::ingest(request(body)),
                    Err(Error::InvalidInput(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn renders_a_view() {
        let r = render(
            &json!({"url": "https://v.example/1", "title": "Intro", "seconds": 95, "percentage": 75.0}),
        );
        assert_eq!(r.summary, "Watched \u{201c}Intro\u{201d} (75 %)");
        assert!(
            r.rows
                .iter()
                .any(|p| p.name == "Watched" && p.value == "1 min 35 s")
        );
        assert_eq!(r.link.unwrap().url, "https://v.example/1");
    }
}

//! `core-events`: the timeline event types Magpie records, and how they read.
//!
//! Every type the host records now or will record (contacts, tracking, emails, forms,
//! campaigns, points, stages, segments, messages) is declared here with its label,
//! icon and source group, and rendered from its stored properties as a summary line
//! and label/value rows. Missing or odd properties never fail a render: they are
//! simply left out.

use magpie_sdk::prelude::*;

/// Email read details kept (and shown) per email: the most recent 1,000.
pub const MAX_READ_DETAILS: usize = 1_000;

pub struct CoreEvents;

/// (key, label, icon, group)
pub const TYPES: &[(&str, &str, &str, &str)] = &[
    ("lead.create", "Contact created", "fa-user-plus", "Contacts"),
    (
        "lead.source.created",
        "Created by source",
        "fa-user-plus",
        "Contacts",
    ),
    (
        "lead.identified",
        "Contact identified",
        "fa-user",
        "Contacts",
    ),
    (
        "lead.source.identified",
        "Identified by source",
        "fa-user",
        "Contacts",
    ),
    (
        "lead.apiadded",
        "Added through API",
        "fa-cloud-upload",
        "Contacts",
    ),
    ("lead.ipadded", "Accessed from IP", "fa-globe", "Contacts"),
    ("lead.donotcontact", "Do not contact", "fa-ban", "Contacts"),
    (
        "lead.utmtagsadded",
        "UTM tags recorded",
        "fa-tag",
        "Contacts",
    ),
    ("lead.tags", "Tags changed", "fa-tags", "Contacts"),
    ("lead.note", "Note", "fa-file-text", "Contacts"),
    ("lead.imported", "Imported", "fa-download", "Contacts"),
    ("lead.merged", "Contacts merged", "fa-compress", "Contacts"),
    (
        "asset.download",
        "Asset downloaded",
        "fa-download",
        "Assets",
    ),
    (
        "campaign.event",
        "Campaign action triggered",
        "fa-clock-o",
        "Campaigns",
    ),
    (
        "campaign.event.scheduled",
        "Campaign event scheduled",
        "fa-calendar",
        "Campaigns",
    ),
    (
        "campaign_membership.change",
        "Campaign membership change",
        "fa-clock-o",
        "Campaigns",
    ),
    (
        "dynamic.content.sent",
        "Dynamic content sent",
        "fa-puzzle-piece",
        "Dynamic content",
    ),
    (
        "email.failed",
        "Email failed",
        "fa-exclamation-triangle",
        "Emails",
    ),
    ("email.read", "Email read", "fa-envelope-open-o", "Emails"),
    ("email.replied", "Email replied", "fa-reply", "Emails"),
    ("email.sent", "Email sent", "fa-envelope", "Emails"),
    (
        "form.submitted",
        "Form submitted",
        "fa-pencil-square-o",
        "Forms",
    ),
    (
        "integration_sync_issues",
        "Integration sync notice",
        "fa-refresh",
        "Integrations",
    ),
    ("message.queue", "Message queue", "fa-list", "Messages"),
    ("page.hit", "Page hit", "fa-link", "Tracking"),
    ("point.gained", "Point gained", "fa-trophy", "Points"),
    (
        "segment_membership",
        "Segment membership change",
        "fa-pie-chart",
        "Segments",
    ),
    ("stage.changed", "Stage changed", "fa-tachometer", "Stages"),
    (
        "sms_reply",
        "Text message received",
        "fa-commenting",
        "Text messages",
    ),
];

impl EventTypes for CoreEvents {
    fn describe() -> PluginInfo {
        plugin_info!().title("Core timeline events")
    }

    fn event_types() -> Vec<EventType> {
        TYPES
            .iter()
            .map(|(k, l, i, g)| EventType::new(k, l, i, g))
            .collect()
    }

    fn render(event: &Event) -> Result<Rendered> {
        Ok(render(&event.event_type, &event.props()))
    }
}

export_plugin!(CoreEvents: EventTypes);

fn label(key: &str) -> &'static str {
    TYPES.iter().find(|t| t.0 == key).map_or("Event", |t| t.1)
}

/// A property as display text: strings as they are, numbers and booleans formatted,
/// arrays joined, null/missing empty.
fn text(p: &Json, key: &str) -> String {
    show(&p[key])
}

fn show(v: &Json) -> String {
    match v {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Json::Array(a) => a
            .iter()
            .map(show)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// A device as tracking records it (`{type, os, browser, id}`): "desktop · Linux · Chrome".
fn device(v: &Json) -> String {
    match v {
        Json::Object(m) => ["type", "os", "browser"]
            .iter()
            .filter_map(|k| m.get(*k).and_then(Json::as_str))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" · "),
        other => show(other),
    }
}

fn first(p: &Json, keys: &[&str]) -> String {
    keys.iter()
        .map(|k| text(p, k))
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

fn web_link(url: &str) -> Option<String> {
    (url.starts_with("http://") || url.starts_with("https://")).then(|| url.to_owned())
}

fn dnc_reason(v: &Json) -> String {
    match v.as_i64() {
        Some(1) => "unsubscribed".into(),
        Some(2) => "bounced".into(),
        Some(3) => "manual".into(),
        _ => show(v),
    }
}

/// How one event reads. Pure: the unit tests call it directly.
pub fn render(key: &str, p: &Json) -> Rendered {
    let base = label(key);
    match key {
        "lead.create" | "lead.source.created" | "lead.identified" | "lead.source.identified" => {
            let source = first(p, &["source", "channel"]);
            let summary = if source.is_empty() {
                base.to_owned()
            } else {
                format!("{base} ({source})")
            };
            Rendered::new(summary)
                .row("Source", source)
                .row("Source id", text(p, "source_id"))
        }
        "lead.apiadded" => Rendered::new(base).row("User", text(p, "user")),
        "lead.ipadded" => {
            let ip = text(p, "ip");
            Rendered::new(if ip.is_empty() {
                base.to_owned()
            } else {
                format!("Accessed from {ip}")
            })
            .row("IP address", ip)
        }
        "lead.donotcontact" => {
            let channel = text(p, "channel");
            if p["removed"].as_bool() == Some(true) {
                Rendered::new(format!("Contactable again on {channel}")).row("Channel", channel)
            } else {
                let reason = dnc_reason(&p["reason"]);
                Rendered::new(format!("Do not contact on {channel} ({reason})"))
                    .row("Channel", channel)
                    .row("Reason", reason)
                    .row("Comments", text(p, "comments"))
            }
        }
        "lead.utmtagsadded" => {
            let parts: Vec<String> = ["utm_source", "utm_medium", "utm_campaign"]
                .iter()
                .map(|k| text(p, k))
                .filter(|s| !s.is_empty())
                .collect();
            let mut r = Rendered::new(if parts.is_empty() {
                base.to_owned()
            } else {
                format!("UTM tags: {}", parts.join(" / "))
            });
            for (k, l) in [
                ("utm_source", "Source"),
                ("utm_medium", "Medium"),
                ("utm_campaign", "Campaign"),
                ("utm_content", "Content"),
                ("utm_term", "Term"),
                ("url", "URL"),
                ("referer", "Referrer"),
            ] {
                r = r.row(l, text(p, k));
            }
            r
        }
        "lead.tags" => {
            let added = text(p, "added");
            let removed = text(p, "removed");
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("added {added}"));
            }
            if !removed.is_empty() {
                parts.push(format!("removed {removed}"));
            }
            Rendered::new(if parts.is_empty() {
                base.to_owned()
            } else {
                format!("Tags {}", parts.join("; "))
            })
            .row("Added", added)
            .row("Removed", removed)
        }
        "lead.note" => {
            let kind = text(p, "type");
            let body = text(p, "text");
            let short: String = body.chars().take(120).collect();
            let summary = match (kind.is_empty(), short.is_empty()) {
                (_, true) => base.to_owned(),
                (true, false) => short,
                (false, false) => format!("{}: {short}", capitalise(&kind)),
            };
            Rendered::new(summary)
                .row("Type", kind)
                .row("Note", body)
                .row("Date", text(p, "dateTime"))
        }
        "lead.imported" => {
            let file = first(p, &["file", "import"]);
            Rendered::new(if file.is_empty() {
                base.to_owned()
            } else {
                format!("Imported from {file}")
            })
            .row("File", file)
            .row("Row", text(p, "row"))
            .row("Action", text(p, "action"))
        }
        "lead.merged" => {
            let from = first(p, &["merged_id", "from"]);
            Rendered::new(if from.is_empty() {
                base.to_owned()
            } else {
                format!("Merged with contact #{from}")
            })
            .row("Merged contact", from)
            .row("Merged contact's name", text(p, "merged_name"))
        }
        "asset.download" => {
            let asset = first(p, &["asset", "title", "name"]);
            let r = Rendered::new(if asset.is_empty() {
                base.to_owned()
            } else {
                format!("Downloaded {asset}")
            })
            .row("Asset", asset)
            .row("Referrer", text(p, "referer"));
            with_link(r, &text(p, "url"), "Open the asset")
        }
        "campaign.event" | "campaign.event.scheduled" => {
            let event = first(p, &["event", "event_name", "name"]);
            let campaign = first(p, &["campaign", "campaign_name"]);
            let summary = match (event.is_empty(), campaign.is_empty()) {
                (false, false) => format!("{event} ({campaign})"),
                (false, true) => event.clone(),
                _ => base.to_owned(),
            };
            let mut r = Rendered::new(summary)
                .row("Campaign", campaign)
                .row("Event", event);
            if key == "campaign.event.scheduled" {
                r = r.row(
                    "Scheduled for",
                    first(p, &["trigger_date", "scheduled_for"]),
                );
            }
            r.row("Result", first(p, &["result", "status"]))
                .row("Reason", text(p, "reason"))
        }
        "campaign_membership.change" | "segment_membership" => {
            let what = if key == "segment_membership" {
                "segment"
            } else {
                "campaign"
            };
            let name = first(p, &[what, "name"]);
            let action = first(p, &["action", "change"]);
            let verb = match action.as_str() {
                "added" | "add" | "joined" => "Added to",
                "removed" | "remove" | "left" => "Removed from",
                _ => "Membership changed:",
            };
            Rendered::new(if name.is_empty() {
                base.to_owned()
            } else {
                format!("{verb} {what} {name}")
            })
            .row(capitalise(what), name)
            .row("Change", action)
            .row("Reason", text(p, "reason"))
        }
        "dynamic.content.sent" => {
            let name = first(p, &["name", "dynamic_content"]);
            Rendered::new(if name.is_empty() {
                base.to_owned()
            } else {
                format!("Dynamic content sent: {name}")
            })
            .row("Content", name)
            .row("Slot", text(p, "slot"))
        }
        "email.sent" | "email.failed" | "email.replied" => {
            let subject = first(p, &["subject", "email", "name"]);
            let verb = match key {
                "email.sent" => "Sent",
                "email.failed" => "Failed to send",
                _ => "Reply to",
            };
            Rendered::new(if subject.is_empty() {
                base.to_owned()
            } else {
                format!("{verb} \u{201c}{subject}\u{201d}")
            })
            .row("Subject", subject)
            .row("Email id", text(p, "email_id"))
            .row("Reason", first(p, &["reason", "error"]))
            .row("Reply", text(p, "reply"))
        }
        "email.read" => render_email_read(p),
        "form.submitted" => {
            let form = first(p, &["form", "form_name", "name"]);
            let mut r = Rendered::new(if form.is_empty() {
                base.to_owned()
            } else {
                format!("Submitted {form}")
            })
            .row("Form", form);
            if let Some(values) = p["values"].as_object().or_else(|| p["results"].as_object()) {
                for (k, v) in values.iter().take(100) {
                    r = r.row(k.clone(), show(v));
                }
            }
            with_link(r, &first(p, &["page_url", "url"]), "Page of the form")
        }
        "integration_sync_issues" => {
            let integration = first(p, &["integration", "name"]);
            let message = first(p, &["message", "issue"]);
            Rendered::new(match (integration.is_empty(), message.is_empty()) {
                (false, false) => format!("{integration}: {message}"),
                (true, false) => message.clone(),
                _ => base.to_owned(),
            })
            .row("Integration", integration)
            .row("Object", text(p, "object"))
            .row("Message", message)
        }
        "message.queue" => {
            let channel = text(p, "channel");
            let status = text(p, "status");
            Rendered::new(if channel.is_empty() {
                base.to_owned()
            } else {
                format!("Message queued on {channel}")
            })
            .row("Channel", channel)
            .row("Status", status)
            .row("Attempts", text(p, "attempts"))
            .row("Scheduled for", text(p, "scheduled_for"))
        }
        "page.hit" => {
            let url = first(p, &["url", "page_url"]);
            let title = first(p, &["title", "page_title"]);
            let summary = if !title.is_empty() {
                title.clone()
            } else if !url.is_empty() {
                url.clone()
            } else {
                base.to_owned()
            };
            let r = Rendered::new(summary)
                .row("URL", url.clone())
                .row("Title", title)
                .row(
                    "Referrer",
                    first(p, &["referrer", "referer", "page_referrer"]),
                )
                .row("Language", first(p, &["language", "page_language"]))
                .row("Device", device(&p["device"]))
                .row("IP address", text(p, "ip"))
                .row("Time on page", secs(&p["time_on_page"]))
                .row("Source", text(p, "source"));
            with_link(r, &url, "Open the page")
        }
        "point.gained" => {
            let delta = p["delta"].as_i64();
            let total = text(p, "points");
            let summary = match delta {
                Some(d) if d >= 0 => format!("+{d} points"),
                Some(d) => format!("{d} points"),
                None => base.to_owned(),
            };
            Rendered::new(summary)
                .row("Total", total)
                .row("Action", first(p, &["action", "reason"]))
        }
        "stage.changed" => {
            let to = first(p, &["to_name", "stage", "to"]);
            Rendered::new(if to.is_empty() {
                "Stage cleared".to_owned()
            } else {
                format!("Moved to stage {to}")
            })
            .row("From", first(p, &["from_name", "from"]))
            .row("To", to)
        }
        "sms_reply" => {
            let message = first(p, &["message", "text"]);
            let short: String = message.chars().take(120).collect();
            Rendered::new(if short.is_empty() {
                base.to_owned()
            } else {
                format!("Text message: {short}")
            })
            .row("From", text(p, "from"))
            .row("Message", message)
        }
        _ => {
            let mut r = Rendered::new(base);
            magpie_sdk::event_types::flatten("", p, &mut r.rows);
            r
        }
    }
}

/// `email.read`: the reads (newest first), at most `MAX_READ_DETAILS` of them.
fn render_email_read(p: &Json) -> Rendered {
    let subject = first(p, &["subject", "email", "name"]);
    let reads: Vec<&Json> = p["reads"]
        .as_array()
        .or_else(|| p["openDetails"].as_array())
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let count = p["read_count"].as_u64().unwrap_or(reads.len() as u64);
    let summary = match (subject.is_empty(), count) {
        (true, _) => "Email read".to_owned(),
        (false, 0 | 1) => format!("Read \u{201c}{subject}\u{201d}"),
        (false, n) => format!("Read \u{201c}{subject}\u{201d} {n} times"),
    };
    let mut r = Rendered::new(summary).row("Subject", subject.clone()).row(
        "Reads",
        if count > 0 {
            count.to_string()
        } else {
            String::new()
        },
    );
    // Newest last in storage; shown newest first, capped.
    let shown = reads.iter().rev().take(MAX_READ_DETAILS);
    for (i, read) in shown.enumerate() {
        let when = first(read, &["datetime", "date", "at"]);
        let agent = first(read, &["useragent", "user_agent"]);
        let value = if agent.is_empty() {
            when
        } else {
            format!("{when} \u{2014} {agent}")
        };
        r = r.row(format!("Read {}", i + 1), value);
    }
    if reads.len() > MAX_READ_DETAILS {
        r = r.row(
            "Older reads",
            format!("{} not shown", reads.len() - MAX_READ_DETAILS),
        );
    }
    r
}

fn secs(v: &Json) -> String {
    match v.as_i64() {
        Some(s) if s >= 60 => format!("{} min {} s", s / 60, s % 60),
        Some(s) => format!("{s} s"),
        None => String::new(),
    }
}

fn with_link(r: Rendered, url: &str, label: &str) -> Rendered {
    match web_link(url) {
        Some(u) => r.link(u, label),
        None => r,
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row<'a>(r: &'a Rendered, label: &str) -> Option<&'a str> {
        r.rows
            .iter()
            .find(|p| p.name == label)
            .map(|p| p.value.as_str())
    }

    #[test]
    fn every_type_renders_from_empty_and_odd_properties() {
        for (key, label, ..) in TYPES {
            for p in [
                json!({}),
                json!(null),
                json!({"source": 5, "reads": "x", "values": [1]}),
            ] {
                let r = render(key, &p);
                assert!(!r.summary.is_empty(), "{key} has a summary");
                let _ = label;
            }
        }
    }

    #[test]
    fn reads_the_properties_the_host_records() {
        let cases: &[(&str, Json, &str)] = &[
            (
                "lead.create",
                json!({"source": "api"}),
                "Contact created (api)",
            ),
            (
                "lead.ipadded",
                json!({"ip": "1.2.3.4"}),
                "Accessed from 1.2.3.4",
            ),
            (
                "lead.donotcontact",
                json!({"channel": "email", "reason": 2, "comments": ""}),
                "Do not contact on email (bounced)",
            ),
            (
                "lead.donotcontact",
                json!({"channel": "email", "removed": true}),
                "Contactable again on email",
            ),
            (
                "lead.utmtagsadded",
                json!({"utm_source": "news", "utm_campaign": "spring"}),
                "UTM tags: news / spring",
            ),
            (
                "lead.tags",
                json!({"added": ["a", "b"], "removed": ["c"]}),
                "Tags added a, b; removed c",
            ),
            (
                "lead.note",
                json!({"text": "Called", "type": "call"}),
                "Call: Called",
            ),
            (
                "point.gained",
                json!({"delta": 10, "points": 17, "action": "api"}),
                "+10 points",
            ),
            (
                "point.gained",
                json!({"delta": -3, "points": 14}),
                "-3 points",
            ),
            (
                "stage.changed",
                json!({"from": null, "to": 4}),
                "Moved to stage 4",
            ),
            (
                "page.hit",
                json!({"url": "https://example.org/p", "title": "Pricing"}),
                "Pricing",
            ),
            (
                "email.sent",
                json!({"subject": "Hello"}),
                "Sent \u{201c}Hello\u{201d}",
            ),
            (
                "segment_membership",
                json!({"segment": "VIP", "action": "added"}),
                "Added to segment VIP",
            ),
        ];
        for (key, p, summary) in cases {
            assert_eq!(render(key, p).summary, *summary, "{key} {p}");
        }
        let hit = render("page.hit", &json!({"url": "https://example.org/p"}));
        assert_eq!(hit.link.unwrap().url, "https://example.org/p");
        let tracked = render(
            "page.hit",
            &json!({"url": "https://example.org/p", "device": {"type": "desktop", "os": "Linux", "browser": "Chrome", "id": "ab12"}, "ip": "192.0.2.1"}),
        );
        assert_eq!(row(&tracked, "Device"), Some("desktop · Linux · Chrome"));
        assert_eq!(row(&tracked, "IP address"), Some("192.0.2.1"));
        let bad = render("page.hit", &json!({"url": "javascript:alert(1)"}));
        assert!(bad.link.is_none(), "only http(s) links");
        assert_eq!(
            row(
                &render("lead.donotcontact", &json!({"channel": "sms", "reason": 1})),
                "Reason"
            ),
            Some("unsubscribed")
        );
    }

    #[test]
    fn email_reads_are_capped() {
        let reads: Vec<Json> = (0..1500)
            .map(|i| json!({"datetime": format!("read {i}")}))
            .collect();
        let r = render("email.read", &json!({"subject": "News", "reads": reads}));
        assert_eq!(r.summary, "Read \u{201c}News\u{201d} 1500 times");
        let details = r
            .rows
            .iter()
            .filter(|p| p.name.starts_with("Read "))
            .count();
        assert_eq!(details, MAX_READ_DETAILS);
        assert_eq!(row(&r, "Read 1"), Some("read 1499"), "newest first");
        assert_eq!(row(&r, "Older reads"), Some("500 not shown"));
    }
}

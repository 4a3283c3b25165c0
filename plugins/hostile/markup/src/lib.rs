//! Hostile: everything it says about itself is markup — its title, description, setting
//! labels, help texts, options and defaults, event type labels and groups — so the
//! tests can check that the admin's Plugins page shows it as text and runs none of it.
//! It also declares a setting of every kind, for the configuration form.

use magpie_sdk::prelude::*;

struct Markup;

const SCRIPT: &str = "<script>window.__xss=1;alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=\"window.__xss=2;alert(2)\">";

impl EventTypes for Markup {
    fn describe() -> PluginInfo {
        plugin_info!()
            .title(format!("Markup {SCRIPT}"))
            .description(format!(
                "Says {IMG} and \u{202E}txet desrever, then goes on: {}",
                "and on ".repeat(300)
            ))
            .capability(Capability::RecordEvents)
            .capability(Capability::ReadContacts)
            .capability(Capability::Http("https://api.example.com".into()))
            .setting(
                Setting::text("greeting", format!("Greeting {IMG}"))
                    .help(format!("Help {SCRIPT}"))
                    .default_value(IMG),
            )
            .setting(Setting::secret("api_key", "API key").required())
            .setting(Setting::new("retries", "Retries", SettingKind::Integer).default_value("3"))
            .setting(Setting::new("ratio", "Ratio", SettingKind::Number))
            .setting(Setting::boolean("verbose", "Verbose").default_value("1"))
            .setting(Setting::url("endpoint", "Endpoint"))
            .setting(Setting::new("contact", "Contact email", SettingKind::Email))
            .setting(Setting::select("mode", format!("Mode {SCRIPT}"), &["fast", IMG]).required())
            .setting(Setting::new("notes", "Notes", SettingKind::Textarea))
    }

    fn event_types() -> Vec<EventType> {
        vec![EventType::new(
            "markup.thing",
            &format!("Thing {SCRIPT}"),
            "fa-code\" onclick=\"alert(3)",
            IMG,
        )]
    }

    fn render(_event: &Event) -> Result<Rendered> {
        Ok(Rendered::new(SCRIPT)
            .row(IMG, SCRIPT)
            .link("javascript:alert(4)", IMG))
    }
}

export_plugin!(Markup: EventTypes);

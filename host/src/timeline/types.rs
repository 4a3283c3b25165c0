//! The catalogue of timeline event types: key → label, icon and source group, and how an
//! event's details read (a summary line, key/value rows, an optional link). The types
//! and their rendering come from plugins (`core-events` provides the host's own); the
//! plugin registry feeds the catalogue and renders through the `Renderer` it registers.
//! An event whose type no plugin provides, or whose plugin is missing or failing, still
//! shows: labelled by its key, its properties rendered raw and marked so.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock, Weak};

use serde_json::Value as Json;

use super::Event;

/// One event type as the admin and the activity API show it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventType {
    pub key: String,
    pub label: String,
    pub icon: String,
    /// The source group the admin's filter list shows it under.
    pub group: String,
}

/// An event's details, as structured data: the host turns it into escaped HTML.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Rendered {
    pub summary: String,
    pub rows: Vec<(String, String)>,
    pub link: Option<String>,
    /// True when no renderer knew the type (or it failed): rows are the raw properties.
    pub raw: bool,
}

/// Renders events of a provider's types; implemented by the plugin registry. Blocking:
/// async code goes through `Catalogue::render_page`.
pub trait Renderer: Send + Sync {
    /// One result per event, in order; `None` where the provider could not render it.
    fn render(&self, provider: &str, events: &[Event]) -> Result<Vec<Option<Rendered>>, String>;
}

#[derive(Default)]
struct Snapshot {
    types: Vec<EventType>,
    /// key → index in `types`
    index: HashMap<String, usize>,
    /// key → the plugin that provides it
    providers: HashMap<String, String>,
}

/// Every known event type and how to render events. Held in `AppState`; the plugin
/// registry replaces its types when plugins change (hot swap).
#[derive(Default)]
pub struct Catalogue {
    snapshot: RwLock<Arc<Snapshot>>,
    renderer: OnceLock<Weak<dyn Renderer>>,
}

impl Catalogue {
    /// An empty catalogue: types arrive with the plugins.
    pub fn built_in() -> Catalogue {
        Catalogue::default()
    }

    fn snap(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the types: (type, providing plugin), in display order.
    pub fn set_types(&self, types: Vec<(EventType, String)>) {
        let mut s = Snapshot::default();
        for (t, provider) in types {
            if s.index.contains_key(&t.key) {
                continue;
            }
            s.index.insert(t.key.clone(), s.types.len());
            s.providers.insert(t.key.clone(), provider);
            s.types.push(t);
        }
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
    }

    pub fn set_renderer(&self, renderer: Weak<dyn Renderer>) {
        let _ = self.renderer.set(renderer);
    }

    pub fn types(&self) -> Vec<EventType> {
        self.snap().types.clone()
    }

    pub fn find(&self, key: &str) -> Option<EventType> {
        let s = self.snap();
        s.index.get(key).map(|i| s.types[*i].clone())
    }

    /// The plugin that provides a type.
    pub fn provider(&self, key: &str) -> Option<String> {
        self.snap().providers.get(key).cloned()
    }

    pub fn label(&self, key: &str) -> String {
        self.find(key).map_or_else(|| key.to_owned(), |t| t.label)
    }

    pub fn icon(&self, key: &str) -> String {
        self.find(key)
            .map_or_else(|| "fa-circle".to_owned(), |t| t.icon)
    }

    /// The raw rendering: label (or key) and the properties as rows, marked raw.
    pub fn render_raw(&self, e: &Event) -> Rendered {
        Rendered {
            summary: self.label(&e.event_type),
            rows: flatten(&e.properties),
            link: None,
            raw: true,
        }
    }

    /// One event's details (blocking: runs the plugin on this thread). Async code
    /// renders pages with `render_page`.
    pub fn render(&self, e: &Event) -> Rendered {
        self.render_blocking(std::slice::from_ref(e))
            .pop()
            .unwrap_or_else(|| self.render_raw(e))
    }

    /// Renders events (one plugin call per provider), on this thread.
    pub fn render_blocking(&self, events: &[Event]) -> Vec<Rendered> {
        let snap = self.snap();
        let mut out: Vec<Option<Rendered>> = vec![None; events.len()];
        let renderer = self.renderer.get().and_then(Weak::upgrade);
        if let Some(renderer) = renderer {
            let mut by_provider: HashMap<&str, Vec<usize>> = HashMap::new();
            for (i, e) in events.iter().enumerate() {
                if let Some(p) = snap.providers.get(&e.event_type) {
                    by_provider.entry(p.as_str()).or_default().push(i);
                }
            }
            for (provider, idx) in by_provider {
                let batch: Vec<Event> = idx.iter().map(|i| events[*i].clone()).collect();
                match renderer.render(provider, &batch) {
                    Ok(results) => {
                        for (i, r) in idx.iter().zip(results) {
                            out[*i] = r;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(plugin = provider, %error, "rendering events failed; they are shown raw")
                    }
                }
            }
        }
        out.into_iter()
            .zip(events)
            .map(|(r, e)| r.unwrap_or_else(|| self.render_raw(e)))
            .collect()
    }

    /// A page of events, rendered off the async workers (a plugin that loops is
    /// stopped at its deadline without holding up other requests). Never fails:
    /// what cannot be rendered is shown raw.
    pub async fn render_page(self: &Arc<Self>, events: Vec<Event>) -> Vec<Rendered> {
        let this = self.clone();
        let fallback: Vec<Rendered> = events.iter().map(|e| self.render_raw(e)).collect();
        tokio::task::spawn_blocking(move || this.render_blocking(&events))
            .await
            .unwrap_or(fallback)
    }
}

/// Properties as `key: text` rows (nested objects become `a.b`).
pub fn flatten(v: &Json) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Json, out: &mut Vec<(String, String)>) {
        match v {
            Json::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            Json::Null => {}
            Json::String(s) => out.push((prefix.to_owned(), s.clone())),
            Json::Array(a) => out.push((
                prefix.to_owned(),
                a.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out.truncate(100);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fails;
    impl Renderer for Fails {
        fn render(&self, _: &str, _: &[Event]) -> Result<Vec<Option<Rendered>>, String> {
            Err("boom".into())
        }
    }

    fn event(key: &str) -> Event {
        Event {
            id: 1,
            contact_id: 1,
            event_type: key.into(),
            source: None,
            occurred_at: 0,
            ref_id: None,
            properties: serde_json::json!({"a": {"b": 1}}),
        }
    }

    #[test]
    fn unknown_and_failing_types_render_raw() {
        let c = Arc::new(Catalogue::default());
        c.set_types(vec![(
            EventType {
                key: "x.y".into(),
                label: "X".into(),
                icon: "fa-x".into(),
                group: "G".into(),
            },
            "p".into(),
        )]);
        let fails: Arc<dyn Renderer> = Arc::new(Fails);
        c.set_renderer(Arc::downgrade(&fails));
        let r = c.render_blocking(&[event("x.y"), event("nope.z")]);
        assert!(r[0].raw && r[1].raw);
        assert_eq!(r[0].summary, "X");
        assert_eq!(r[1].summary, "nope.z");
        assert_eq!(r[0].rows, vec![("a.b".to_owned(), "1".to_owned())]);
        assert_eq!(c.label("x.y"), "X");
        assert_eq!(c.provider("x.y").as_deref(), Some("p"));
    }
}

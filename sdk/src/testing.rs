//! Testing a plugin without the server: a fake host for native `cargo test`.
//!
//! On your machine (not wasm32) the SDK's host calls go to the `FakeHost` installed for
//! the current thread. Fill it with contacts, configuration and an HTTP responder, call
//! your plugin's trait methods directly, then look at what it recorded.
//!
//! ```
//! use magpie_sdk::prelude::*;
//! use magpie_sdk::testing::FakeHost;
//!
//! let mut host = FakeHost::new();
//! host.config_set("greeting", "hello");
//! let _guard = host.install();
//! assert_eq!(magpie_sdk::host::config::get("greeting").as_deref(), Some("hello"));
//! magpie_sdk::host::record_event(&NewEvent::new(1, "demo.thing", json!({"a": 1}))).unwrap();
//! let recorded = magpie_sdk::testing::with_host(|h| h.events.clone());
//! assert_eq!(recorded[0].event_type, "demo.thing");
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::types::*;

type Responder = Box<dyn FnMut(&HttpRequest) -> Result<HttpResponse>>;

/// An in-memory host. Every capability is granted unless `granted` says otherwise.
pub struct FakeHost {
    pub contacts: BTreeMap<i64, Contact>,
    /// Events recorded through `record_event`.
    pub events: Vec<NewEvent>,
    pub storage: BTreeMap<String, String>,
    pub config: Vec<Pair>,
    /// `None`: everything granted. `Some(list)`: only these.
    pub granted: Option<Vec<Capability>>,
    pub logs: Vec<(LogLevel, String)>,
    /// Requests sent through `http::fetch`.
    pub requests: Vec<HttpRequest>,
    pub now: Timestamp,
    responder: Option<Responder>,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost::new()
    }
}

thread_local! {
    static HOST: RefCell<Option<FakeHost>> = const { RefCell::new(None) };
}

/// Removes the fake host when dropped.
pub struct Installed(());

impl Drop for Installed {
    fn drop(&mut self) {
        HOST.with(|h| h.borrow_mut().take());
    }
}

/// Runs `f` with the installed fake host (installs a default one if none is).
pub fn with_host<R>(f: impl FnOnce(&mut FakeHost) -> R) -> R {
    HOST.with(|h| {
        let mut h = h.borrow_mut();
        f(h.get_or_insert_with(FakeHost::new))
    })
}

impl FakeHost {
    pub fn new() -> FakeHost {
        FakeHost {
            contacts: BTreeMap::new(),
            events: Vec::new(),
            storage: BTreeMap::new(),
            config: Vec::new(),
            granted: None,
            logs: Vec::new(),
            requests: Vec::new(),
            now: 1_700_000_000_000,
            responder: None,
        }
    }

    /// Makes this the host of the current thread until the guard is dropped.
    pub fn install(self) -> Installed {
        HOST.with(|h| *h.borrow_mut() = Some(self));
        Installed(())
    }

    pub fn config_set(&mut self, key: &str, value: &str) {
        self.config.retain(|p| p.name != key);
        self.config.push(Pair::new(key, value));
    }

    /// Adds a contact with an email (and answers its id).
    pub fn add_contact(&mut self, email: &str) -> i64 {
        let id = self.contacts.keys().last().copied().unwrap_or(0) + 1;
        self.contacts.insert(
            id,
            Contact {
                id,
                date_added: self.now,
                date_modified: self.now,
                date_identified: Some(self.now),
                last_active: None,
                points: 0,
                owner_id: None,
                stage_id: None,
                tags: Vec::new(),
                fields: vec![Field::text("email", email)],
            },
        );
        id
    }

    /// Answers outbound HTTP requests.
    pub fn on_http(
        &mut self,
        responder: impl FnMut(&HttpRequest) -> Result<HttpResponse> + 'static,
    ) {
        self.responder = Some(Box::new(responder));
    }

    fn check(&self, wanted: &Capability) -> Result<()> {
        match &self.granted {
            None => Ok(()),
            Some(list) if list.contains(wanted) => Ok(()),
            Some(_) => Err(Error::Denied(format!(
                "capability {wanted:?} is not granted"
            ))),
        }
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: &str) {
        self.logs.push((level, message.to_owned()));
    }

    pub(crate) fn get_contact(&mut self, id: i64) -> Result<Option<Contact>> {
        self.check(&Capability::ReadContacts)?;
        Ok(self.contacts.get(&id).cloned())
    }

    pub(crate) fn find_contact(&mut self, who: &ContactRef) -> Result<Option<i64>> {
        self.check(&Capability::ReadContacts)?;
        Ok(match who {
            ContactRef::Id(id) => self.contacts.contains_key(id).then_some(*id),
            ContactRef::Email(e) => self
                .contacts
                .values()
                .find(|c| c.email().is_some_and(|m| m.eq_ignore_ascii_case(e)))
                .map(|c| c.id),
            ContactRef::DeviceId(_) => None,
        })
    }

    pub(crate) fn update_fields(&mut self, id: i64, fields: &[Field]) -> Result<()> {
        self.check(&Capability::WriteFields)?;
        let c = self
            .contacts
            .get_mut(&id)
            .ok_or_else(|| Error::NotFound(format!("contact {id}")))?;
        for f in fields {
            c.fields.retain(|x| x.alias != f.alias);
            c.fields.push(f.clone());
        }
        Ok(())
    }

    pub(crate) fn change_tags(&mut self, id: i64, add: &[String], remove: &[String]) -> Result<()> {
        self.check(&Capability::WriteTags)?;
        let c = self
            .contacts
            .get_mut(&id)
            .ok_or_else(|| Error::NotFound(format!("contact {id}")))?;
        for t in add {
            if !c.tags.contains(t) {
                c.tags.push(t.clone());
            }
        }
        c.tags.retain(|t| !remove.contains(t));
        Ok(())
    }

    pub(crate) fn record_event(&mut self, event: &NewEvent) -> Result<i64> {
        self.check(&Capability::RecordEvents)?;
        serde_json::from_str::<serde_json::Value>(&event.properties)?;
        self.events.push(event.clone());
        Ok(self.events.len() as i64)
    }

    pub(crate) fn http_fetch(&mut self, request: &HttpRequest) -> Result<HttpResponse> {
        if let Some(list) = &self.granted {
            let allowed = list
                .iter()
                .any(|c| matches!(c, Capability::Http(p) if origin_matches(p, &request.url)));
            if !allowed {
                return Err(Error::Denied(format!(
                    "{} is not an allowed origin",
                    request.url
                )));
            }
        }
        self.requests.push(request.clone());
        match &mut self.responder {
            Some(r) => r(request),
            None => Err(Error::Unavailable(
                "no HTTP responder installed in the fake host".into(),
            )),
        }
    }
}

/// A simplified origin check for tests: the URL starts with the pattern (exact host).
fn origin_matches(pattern: &str, url: &str) -> bool {
    url.strip_prefix(pattern)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with(':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host;
    use serde_json::json;

    #[test]
    fn the_fake_host_answers_like_the_real_one() {
        let mut fake = FakeHost::new();
        let id = fake.add_contact("ada@example.org");
        fake.config_set("greeting", "hello");
        fake.on_http(|r| {
            Ok(HttpResponse {
                status: 200,
                headers: vec![],
                body: r.url.clone().into_bytes(),
            })
        });
        let _guard = fake.install();

        assert_eq!(host::config::get("greeting").as_deref(), Some("hello"));
        assert!(host::config::require("missing").is_err());
        assert_eq!(
            host::find_contact(&ContactRef::Email("ADA@example.org".into())).unwrap(),
            Some(id)
        );
        host::change_tags(id, &["vip".into()], &[]).unwrap();
        host::update_fields(id, &[Field::text("firstname", "Ada")]).unwrap();
        let c = host::get_contact(id).unwrap().unwrap();
        assert_eq!(c.tags, vec!["vip"]);
        assert_eq!(c.display_name(), "Ada");
        host::record_event(&NewEvent::new(id, "demo.thing", json!({"a": 1}))).unwrap();
        assert!(
            host::record_event(&NewEvent {
                properties: "{oops".into(),
                ..NewEvent::new(id, "demo.thing", json!({}))
            })
            .is_err()
        );
        host::storage::set_json("k", &json!({"n": 1})).unwrap();
        assert_eq!(host::storage::get_json("k").unwrap(), Some(json!({"n": 1})));
        assert_eq!(host::storage::keys("", None, 10).unwrap(), vec!["k"]);
        assert_eq!(
            host::http::get("https://api.example.com/x").unwrap().text(),
            "https://api.example.com/x"
        );
        host::info("done");
        with_host(|h| {
            assert_eq!(h.events.len(), 1);
            assert_eq!(h.requests.len(), 1);
            assert_eq!(h.logs, vec![(LogLevel::Info, "done".to_owned())]);
        });
    }

    #[test]
    fn capabilities_can_be_withheld() {
        let mut fake = FakeHost::new();
        let id = fake.add_contact("ada@example.org");
        fake.granted = Some(vec![
            Capability::ReadContacts,
            Capability::Http("https://api.example.com".into()),
        ]);
        let _guard = fake.install();
        assert!(host::get_contact(id).unwrap().is_some());
        assert!(matches!(
            host::change_tags(id, &["x".into()], &[]),
            Err(Error::Denied(_))
        ));
        assert!(matches!(
            host::record_event(&NewEvent::new(id, "a.b", json!({}))),
            Err(Error::Denied(_))
        ));
        assert!(matches!(
            host::http::get("https://evil.example.com/"),
            Err(Error::Denied(_))
        ));
        assert!(
            matches!(
                host::http::get("https://api.example.com/v1"),
                Err(Error::Unavailable(_))
            ),
            "granted, but no responder"
        );
    }
}

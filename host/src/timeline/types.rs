//! The catalogue of timeline event types: key → label, icon and source group. The
//! host's own types live here until plugins declare theirs; an unknown key still shows,
//! labelled by its key.

pub struct EventType {
    pub key: &'static str,
    pub label: &'static str,
    pub icon: &'static str,
    /// The group the admin's filter list shows it under.
    pub group: &'static str,
}

const fn t(key: &'static str, label: &'static str, icon: &'static str, group: &'static str) -> EventType {
    EventType { key, label, icon, group }
}

pub const BUILT_IN: &[EventType] = &[
    t("lead.create", "Contact created", "fa-user-plus", "Contacts"),
    t("lead.apiadded", "Added through API", "fa-cloud-upload", "Contacts"),
    t("lead.identified", "Contact identified", "fa-user", "Contacts"),
    t("lead.ipadded", "Accessed from IP", "fa-globe", "Contacts"),
    t("lead.donotcontact", "Do not contact", "fa-ban", "Contacts"),
    t("lead.utmtagsadded", "UTM tags recorded", "fa-tag", "Contacts"),
    t("lead.tags", "Tags changed", "fa-tags", "Contacts"),
    t("lead.note", "Note", "fa-file-text", "Contacts"),
    t("lead.imported", "Imported", "fa-download", "Contacts"),
    t("lead.merged", "Contacts merged", "fa-compress", "Contacts"),
    t("point.gained", "Point gained", "fa-trophy", "Points"),
    t("stage.changed", "Stage changed", "fa-tachometer", "Stages"),
    t("page.hit", "Page hit", "fa-link", "Tracking"),
    t("form.submitted", "Form submitted", "fa-pencil-square-o", "Forms"),
];

pub fn find(key: &str) -> Option<&'static EventType> {
    BUILT_IN.iter().find(|t| t.key == key)
}

pub fn label(key: &str) -> String {
    find(key).map_or_else(|| key.to_owned(), |t| t.label.to_owned())
}

pub fn icon(key: &str) -> &'static str {
    find(key).map_or("fa-circle", |t| t.icon)
}

//! `/settings/tracking` (administrators): the ready tracking snippet for this instance
//! (Mautic's loader snippet with this server's `mtc.js`, scheme and host as the browser
//! addressed the admin), a pixel example, and the `[tracking]` options of `magpie.toml`
//! (read-only: they change in the file, with a restart).

use askama::Template;
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::error::{WebError, WebResult};
use super::layout::{Chrome, render};
use super::session::Session;
use crate::state::SharedState;

/// Mautic's loader snippet (CONTRACT.md §3) for the script at `script_url`.
pub fn snippet(script_url: &str) -> String {
    format!(
        "<script>\n(function(w,d,t,u,n,a,m){{w['MauticTrackingObject']=n;\n w[n]=w[n]||function(){{(w[n].q=w[n].q||[]).push(arguments)}},a=d.createElement(t),\n m=d.getElementsByTagName(t)[0];a.async=1;a.src=u;m.parentNode.insertBefore(a,m)\n}})(window,document,'script','{script_url}','mt');\nmt('send', 'pageview');\n</script>"
    )
}

/// One row of the options table.
pub struct OptionRow {
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
    pub on: Option<bool>,
    pub help: &'static str,
}

#[derive(Template)]
#[template(path = "settings_tracking.html")]
struct TrackingPage {
    chrome: Chrome,
    section: &'static str,
    base: String,
    snippet: String,
    pixel_url: String,
    pixel_tag: String,
    options: Vec<OptionRow>,
}

fn list<T: std::fmt::Display>(items: &[T], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items
            .iter()
            .map(T::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub async fn page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
) -> WebResult<Response> {
    if !session.user.is_admin() {
        return Err(WebError::Forbidden(
            "Only administrators can change settings.".into(),
        ));
    }
    let base = crate::http::tracking::base_url(&headers);
    let t = &state.config.file.tracking;
    let flag = |key, label, on: bool, help| OptionRow {
        key,
        label,
        value: if on { "on".into() } else { "off".into() },
        on: Some(on),
        help,
    };
    let options = vec![
        flag(
            "track_private_ip_ranges",
            "Track private and loopback addresses",
            t.track_private_ip_ranges,
            "Visitors from 10.x, 192.168.x, 127.x … are ignored unless on.",
        ),
        OptionRow {
            key: "cors_allowed_origins",
            label: "Sites allowed to send hits (CORS)",
            value: list(&t.cors_allowed_origins, "any origin"),
            on: None,
            help: "Exact origins or wildcards such as https://*.example.com; empty allows any site.",
        },
        flag(
            "identify_by_tracking_url",
            "Identify visitors by tracking URL",
            t.identify_by_tracking_url,
            "Accept signed ct tokens in links; unsigned or altered tokens are always ignored.",
        ),
        flag(
            "anonymize_ip",
            "Anonymize IP addresses",
            t.anonymize_ip,
            "Store IPv4 addresses without their last byte, IPv6 without their last 80 bits.",
        ),
        OptionRow {
            key: "do_not_track_ips",
            label: "Addresses never tracked",
            value: list(&t.do_not_track_ips, "none"),
            on: None,
            help: "IP addresses and CIDR blocks, e.g. your office.",
        },
        flag(
            "honor_do_not_track",
            "Honour Do Not Track",
            t.honor_do_not_track,
            "Skip browsers that send DNT: 1 or Sec-GPC: 1.",
        ),
        OptionRow {
            key: "apply_lag_seconds",
            label: "Longest recording delay in a burst",
            value: match t.apply_lag_seconds {
                0 => "none".to_owned(),
                n => format!("{n} s"),
            },
            on: None,
            help: "While hits arrive faster than they can be recorded, recording steps aside for up to this long so visitors are answered first; the hits wait, already durable, in the journal.",
        },
    ];
    let pixel_url = format!(
        "{base}/mtracking.gif?page_url=https%3A%2F%2Fyour-site.example%2Fpricing&page_title=Pricing"
    );
    Ok(render(&TrackingPage {
        chrome: Chrome::new(&session, "settings"),
        section: "tracking",
        snippet: snippet(&format!("{base}/mtc.js")),
        pixel_tag: format!(
            "<img src=\"{}\" alt=\"\" width=\"1\" height=\"1\" style=\"display:none\">",
            pixel_url.replace('&', "&amp;")
        ),
        pixel_url,
        base,
        options,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_snippet_is_mautics() {
        let expected = "<script>\n(function(w,d,t,u,n,a,m){w['MauticTrackingObject']=n;\n w[n]=w[n]||function(){(w[n].q=w[n].q||[]).push(arguments)},a=d.createElement(t),\n m=d.getElementsByTagName(t)[0];a.async=1;a.src=u;m.parentNode.insertBefore(a,m)\n})(window,document,'script','https://magpie.example.com/mtc.js','mt');\nmt('send', 'pageview');\n</script>";
        assert_eq!(
            super::snippet("https://magpie.example.com/mtc.js"),
            expected
        );
    }
}

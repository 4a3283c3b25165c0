//! What every admin page shows around its content: the navigation bar (with the user),
//! the flash message, the CSRF token for forms, the asset version for cache busting.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::session::Session;

/// The frame of a page. Templates extend `base.html`, which reads `chrome`.
pub struct Chrome {
    pub user_name: String,
    pub user_initials: String,
    pub is_admin: bool,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// Which navigation entry is current: "contacts", "companies", "forms", "settings", "profile",
    /// "notifications".
    pub nav: &'static str,
    pub asset_version: &'static str,
    pub logged_in: bool,
    /// Unread notifications (the navigation's indicator).
    pub unread: i64,
}

pub struct Flash {
    pub kind: &'static str,
    pub text: String,
}

impl Flash {
    /// Flashes are stored as `kind:text`.
    pub fn parse(stored: &str) -> Flash {
        let (kind, text) = match stored.split_once(':') {
            Some(("error", t)) => ("error", t),
            Some(("success", t)) => ("success", t),
            Some(("info", t)) => ("info", t),
            _ => ("info", stored),
        };
        Flash {
            kind,
            text: text.to_owned(),
        }
    }
}

impl Chrome {
    pub fn new(session: &Session, nav: &'static str) -> Chrome {
        let name = session.user.full_name();
        Chrome {
            user_initials: super::display::initials(&name),
            user_name: name,
            is_admin: session.user.is_admin(),
            csrf: session.csrf.clone(),
            flash: session.flash.as_deref().map(Flash::parse),
            nav,
            asset_version: super::assets::version(),
            logged_in: true,
            unread: session.unread,
        }
    }

    /// For pages outside a session (login, errors before login).
    pub fn anonymous(csrf: String) -> Chrome {
        Chrome {
            user_name: String::new(),
            user_initials: String::new(),
            is_admin: false,
            csrf,
            flash: None,
            nav: "",
            asset_version: super::assets::version(),
            logged_in: false,
            unread: 0,
        }
    }
}

/// Renders a template as an HTML response.
pub fn render(t: &impl askama::Template) -> Response {
    render_status(StatusCode::OK, t)
}

pub fn render_status(status: StatusCode, t: &impl askama::Template) -> Response {
    match t.render() {
        Ok(body) => {
            let mut r = (status, Html(body)).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side; it has been logged.",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Flash;

    #[test]
    fn flash_kinds() {
        for (stored, kind, text) in [
            ("success:Saved.", "success", "Saved."),
            (
                "info:Contact #2 was merged.",
                "info",
                "Contact #2 was merged.",
            ),
            ("error:No: really", "error", "No: really"),
            ("Note: plain", "info", "Note: plain"),
        ] {
            let f = Flash::parse(stored);
            assert_eq!((f.kind, f.text.as_str()), (kind, text), "{stored}");
        }
    }
}

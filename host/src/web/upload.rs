//! Custom contact avatars: checked by size and by their first bytes (PNG, JPEG, GIF,
//! WebP — never by the name or the browser's type), stored under `<data-dir>/avatars/`,
//! and served to logged-in users only, with their sniffed type and `nosniff`.

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{WebError, WebResult};
use crate::state::{AppState, SharedState};

/// Largest accepted image.
pub const MAX_AVATAR_BYTES: usize = 2 * 1024 * 1024;

/// The image type of some bytes, from their signature.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Checks an upload; the message is for the form.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    if bytes.len() > MAX_AVATAR_BYTES {
        return Err(format!(
            "the image is too big ({} KB); the limit is 2 MB",
            bytes.len() / 1024
        ));
    }
    if sniff(bytes).is_none() {
        return Err("the file is not a PNG, JPEG, GIF or WebP image".into());
    }
    Ok(())
}

fn path(state: &AppState, contact_id: i64) -> PathBuf {
    state
        .config
        .data_dir
        .join("avatars")
        .join(format!("{contact_id}.img"))
}

pub fn exists(state: &AppState, contact_id: i64) -> bool {
    path(state, contact_id).is_file()
}

/// Stores a checked image (written aside, then renamed into place).
pub async fn store(state: &AppState, contact_id: i64, bytes: Vec<u8>) -> WebResult<()> {
    let target = path(state, contact_id);
    let dir = target.parent().expect("avatars dir").to_path_buf();
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| WebError::Internal(e.into()))?;
    let tmp = dir.join(format!(
        "{contact_id}.{}.tmp",
        super::session::random_token()
    ));
    tokio::fs::write(&tmp, bytes)
        .await
        .map_err(|e| WebError::Internal(e.into()))?;
    tokio::fs::rename(&tmp, &target)
        .await
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(())
}

pub async fn remove(state: &AppState, contact_id: i64) {
    let _ = tokio::fs::remove_file(path(state, contact_id)).await;
}

pub async fn serve_avatar(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or(WebError::NotFound)?;
    let bytes = tokio::fs::read(path(&state, id))
        .await
        .map_err(|_| WebError::NotFound)?;
    let content_type = sniff(&bytes).ok_or(WebError::NotFound)?;
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_images_only() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"<svg xmlns=...>"), None);
        assert_eq!(sniff(b"<html><script>"), None);
        assert!(check(b"").is_err());
        assert!(check(&vec![0xFF; MAX_AVATAR_BYTES + 1]).is_err());
        assert!(check(b"GIF89a").is_ok());
    }
}

//! The console's static files, embedded in the binary: htmx and the stylesheet. Their
//! URLs carry a version or a content hash, so they are served to be cached for a year.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// htmx 2.0.11, `dist/htmx.min.js` of the npm registry's `htmx.org` package, unchanged.
/// Tarball `htmx.org-2.0.11.tgz` sha256
/// 165a2655073e9e6e55e307a7c74e8ebcdb76afb7701f9c16cfd106a13add408e; this file's sha256
/// d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717 (checked by a test).
const HTMX: &[u8] = include_bytes!("../../console/htmx-2.0.11.min.js");
const HTMX_NAME: &str = "htmx-2.0.11.min.js";
/// The hand-written stylesheet.
const CSS: &str = include_str!("../../console/console.css");

/// The stylesheet's file name: `console-<first 12 hex digits of its sha256>.css`.
fn css_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let digest = Sha256::digest(CSS.as_bytes());
        let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("console-{hex}.css")
    })
}

/// The stylesheet's URL.
pub fn css_path() -> String {
    format!("/console/static/{}", css_name())
}

/// htmx's URL.
pub fn htmx_path() -> String {
    format!("/console/static/{HTMX_NAME}")
}

/// `GET /console/static/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (content_type, body): (&str, &'static [u8]) = if file == HTMX_NAME {
        ("text/javascript; charset=utf-8", HTMX)
    } else if file == css_name() {
        ("text/css; charset=utf-8", CSS.as_bytes())
    } else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_htmx_is_the_published_one() {
        let hex: String = Sha256::digest(HTMX)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
        );
        assert!(css_path().starts_with("/console/static/console-"));
    }
}

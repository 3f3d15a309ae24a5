//! The API reference page (`/docs`): the OpenAPI document (`/v1/openapi.json`)
//! rendered in the browser by Stoplight Elements, vendored in `assets/` (version and
//! checksums in `assets/README.md`) and served from the binary.
//!
//! Nothing is fetched from another host: the renderer's script and stylesheet come
//! from this server under a versioned path (cached for a year), and the page's
//! Content-Security-Policy allows only this origin. The one inline stylesheet the
//! renderer injects (Font Awesome's icon CSS, constant for a given version) is allowed
//! by its hash, not by `'unsafe-inline'`. "Try it" is hidden: its request editor
//! injects styles that differ on every render (only `'unsafe-inline'` would allow
//! them), and a reference page has no business holding a key; the request samples
//! (curl and others) stay. Without JavaScript the page links to the document itself.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

/// The vendored Stoplight Elements version; part of the asset URLs, so a new version
/// is a new URL and the long cache never serves a stale renderer.
pub const ELEMENTS_VERSION: &str = "9.0.25";

/// Where the renderer's script is served.
pub const SCRIPT_PATH: &str = "/assets/elements-9.0.25/web-components.min.js";
/// Where the renderer's stylesheet is served.
pub const STYLES_PATH: &str = "/assets/elements-9.0.25/styles.min.css";

/// npm `@stoplight/elements@9.0.25`, `web-components.min.js`, unmodified.
const SCRIPT: &str = include_str!("../assets/elements-web-components.min.js");
/// npm `@stoplight/elements@9.0.25`, `styles.min.css`, unmodified.
const STYLES: &str = include_str!("../assets/elements-styles.min.css");

/// Scripts, styles, the document and the favicon from this origin only. The style
/// hash is the `<style>` element Elements 9.0.25 injects (Font Awesome's CSS); a new
/// version may change it (the browser test fails on any CSP violation).
const CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'sha256-MBVp6JYxbC/wICelYC6eULCRpgi9kGezXXSaq/TS2+I='; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dialtone API reference</title>
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/assets/elements-9.0.25/styles.min.css">
<script src="/assets/elements-9.0.25/web-components.min.js"></script>
</head>
<body>
<noscript>
<h1>dialtone API reference</h1>
<p>This reference is rendered with JavaScript. Without it, read the OpenAPI 3.1
document directly: <a href="/v1/openapi.json">/v1/openapi.json</a>.</p>
</noscript>
<elements-api apiDescriptionUrl="/v1/openapi.json" router="hash" layout="sidebar" hideTryIt="true"></elements-api>
</body>
</html>
"#;

/// `/docs` and the renderer's assets.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/docs", get(page))
        .route(SCRIPT_PATH, get(script))
        .route(STYLES_PATH, get(styles))
}

/// The reference page: a shell the renderer fills from `/v1/openapi.json`.
pub async fn page() -> Response {
    let mut resp = Html(PAGE).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The URL names the version: cache for a year, never revalidate.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn styles() -> Response {
    asset("text/css; charset=utf-8", STYLES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_the_versioned_assets_and_links_the_document_without_javascript() {
        assert!(SCRIPT_PATH.contains(ELEMENTS_VERSION));
        assert!(STYLES_PATH.contains(ELEMENTS_VERSION));
        assert!(PAGE.contains(&format!("src=\"{SCRIPT_PATH}\"")));
        assert!(PAGE.contains(&format!("href=\"{STYLES_PATH}\"")));
        let start = PAGE.find("<noscript>").expect("a noscript part");
        let end = PAGE.find("</noscript>").expect("its end");
        let noscript = &PAGE[start..end];
        assert!(noscript.contains("href=\"/v1/openapi.json\""));
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
    }
}

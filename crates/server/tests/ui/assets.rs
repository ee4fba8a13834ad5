//! The page and its assets as served: types, caching and the security policy.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use crate::support;

async fn get(app: &axum::Router, path: &str, etag: Option<&str>) -> axum::response::Response {
    let mut req = Request::get(path);
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_types_validators_and_a_strict_policy() {
    let db = store::testing::TestDb::migrated().await;
    // With a key set, the page still loads: it is what asks for the key.
    let app = support::app(&db, Some("k"));
    for (path, ty) in [
        ("/", "text/html; charset=utf-8"),
        ("/ui/main.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        let r = get(&app, path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers();
        assert_eq!(h["content-type"], ty, "{path}");
        assert_eq!(h["cache-control"], "no-cache", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self';"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        let etag = h["etag"].to_str().unwrap().to_string();
        let again = get(&app, path, Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    assert_eq!(
        get(&app, "/ui/nope.js", None).await.status(),
        StatusCode::NOT_FOUND
    );
    // The API keeps its paths and its key.
    let r = get(&app, "/api/query", None).await;
    assert_ne!(r.status(), StatusCode::OK);
}

#[test]
fn no_asset_has_inline_script_or_style() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<style"), "inline <style>");
    assert!(!lower.contains(" style="), "inline style attribute");
    let handler = lower.match_indices(" on").any(|(i, _)| {
        let rest = &lower[i + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    });
    assert!(!handler, "inline event handler");
    for (i, _) in lower.match_indices("<script") {
        let tag = &lower[i..i + lower[i..].find('>').unwrap()];
        assert!(tag.contains("src="), "inline script: {tag}");
    }
    // Every module is preloaded with the page, not discovered one import level at a time.
    for f in std::fs::read_dir(&dir).unwrap() {
        let name = f.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".js") && name != "main.js" {
            assert!(
                html.contains(&format!("<link rel=\"modulepreload\" href=\"/ui/{name}\">")),
                "index.html does not preload {name}"
            );
        }
    }
    // Nothing from the network: every URL the page names is its own.
    for f in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
        assert!(!text.contains("https://"), "a remote URL in an asset");
    }
}

//! `GET /` and `GET /assets/{name}`: the dashboard, compiled into the binary so the slug needs
//! nothing beside it, served with headers that let the page run only its own code.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use super::ApiError;

/// Only the page's own files may run or style it, it may call only this origin, and no other
/// site may frame it (clickjacking) or learn its URL (the referrer).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'";

/// One file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../../static/index.html"),
};

/// The page's scripts and style sheet, in the order the page loads them.
const ASSETS: [Asset; 6] = [
    script("core.js", include_str!("../../static/core.js")),
    script("overview.js", include_str!("../../static/overview.js")),
    script("jobs.js", include_str!("../../static/jobs.js")),
    script("forms.js", include_str!("../../static/forms.js")),
    script("main.js", include_str!("../../static/main.js")),
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../static/app.css"),
    },
];

const fn script(name: &'static str, body: &'static str) -> Asset {
    Asset {
        name,
        content_type: "text/javascript; charset=utf-8",
        body,
    }
}

fn serve(asset: &Asset) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        // Revalidated on every load, so a deploy is seen at once; they are small.
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    for (name, value) in security_headers() {
        response.insert_header((name, value));
    }
    response.body(asset.body)
}

/// The headers every dashboard file carries.
fn security_headers() -> [(header::HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

/// The dashboard page (it asks for the API token and calls the JSON API).
pub(super) async fn index() -> HttpResponse {
    serve(&INDEX)
}

/// One of the page's scripts or its style sheet.
pub(super) async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == name.as_str())
        .map(serve)
        .ok_or_else(|| ApiError::NotFound(format!("no asset {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_every_asset_and_nothing_inline() {
        for asset in &ASSETS {
            let path = format!("/assets/{}", asset.name);
            assert!(
                INDEX.body.contains(&path),
                "index.html does not load {path}"
            );
        }
        assert!(!INDEX.body.contains("<script>"), "inline script");
        assert!(!INDEX.body.contains("<style"), "inline style");
        assert!(!INDEX.body.contains("style=\""), "inline style attribute");
    }

    #[test]
    fn the_api_description_names_every_asset() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("openapi.json")).expect("openapi.json");
        let names = &doc["paths"]["/assets/{name}"]["get"]["parameters"][0]["schema"]["enum"];
        let expected: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        assert_eq!(names, &serde_json::json!(expected));
    }
}

//! `GET /openapi.json`: the API's OpenAPI 3.1 description, written by hand in `openapi.json`
//! beside this file and compiled in. `tests/openapi.rs` keeps it true: every route it lists
//! answers, and every route `mod.rs` registers is in it.

use actix_web::HttpResponse;
use actix_web::http::header;

const DOCUMENT: &str = include_str!("openapi.json");

/// The document (public, like `/health`: it holds no data).
pub(super) async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(DOCUMENT)
}

//! `GET /`: the dashboard, compiled into the binary so the slug needs nothing beside it.

use actix_web::HttpResponse;
use actix_web::http::header;

const INDEX: &str = include_str!("../../static/index.html");

/// The dashboard page (it asks for the API token and calls the JSON API).
pub(super) async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(INDEX)
}

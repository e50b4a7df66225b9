//! HTTP: the route table and shared state. One file per resource; auth and request logging are
//! middleware; every error becomes JSON in `error.rs`.

mod auth;
mod body;
mod bulk;
mod dashboard;
mod error;
mod health;
mod jobs;
mod lists;
mod manage;
mod metrics;
mod openapi;
mod processes;
mod queues;
mod request_log;
mod schedules;

use std::sync::Arc;

use actix_web::guard;
use actix_web::middleware::from_fn;
use actix_web::web::{self, ServiceConfig};

pub use error::ApiError;

use crate::config::Config;
use crate::jobs::Registry;
use crate::queue::Queue;
use crate::shutdown::Shutdown;

/// What every request handler can reach.
pub struct AppState {
    /// The job queue.
    pub queue: Queue,
    /// Job kinds, to check `kind` and `args` before a job is accepted.
    pub registry: Arc<Registry>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The shutdown signal (health answers 503 while draining).
    pub shutdown: Shutdown,
    /// The periodic jobs, for `GET /schedules`.
    pub schedules: Arc<crate::schedule::Schedules>,
}

/// Builds the actix `App` for one HTTP worker thread.
pub fn app(
    state: web::Data<AppState>,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    actix_web::App::new()
        .app_data(state)
        .configure(routes)
        .wrap(from_fn(auth::authorize))
        .wrap(from_fn(request_log::log_request))
}

/// Answers 405 with the resource's own methods in `Allow`.
fn method_not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move {
        Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed { allow })
    })
}

/// GET, and HEAD answered by the same handler: actix drops the body of a HEAD response and keeps
/// its headers, so uptime monitors that send `HEAD /health` see what GET would.
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// The route table.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default().error_handler(|e, _| ApiError::Invalid(e.to_string()).into()),
    )
    // Extractor errors get the API's JSON body instead of actix's plain text.
    .app_data(web::PathConfig::default().error_handler(|e, req| {
        ApiError::NotFound(format!("no route for {} {}: {e}", req.method(), req.path())).into()
    }))
    .app_data(
        web::JsonConfig::default()
            .error_handler(|e, _| ApiError::MalformedJson(e.to_string()).into()),
    )
    .service(
        web::resource("/")
            .route(get_or_head().to(dashboard::index))
            .default_service(method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/health")
            .route(get_or_head().to(health::health))
            .default_service(method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/jobs")
            .route(web::post().to(jobs::enqueue))
            .route(get_or_head().to(lists::list))
            .default_service(method_not_allowed("GET, HEAD, POST")),
    )
    // Before `/jobs/{id}`, which would take `retry` for an id.
    .service(
        web::resource("/jobs/retry")
            .route(web::post().to(manage::retry_many))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::resource("/queues")
            .route(get_or_head().to(queues::queues))
            .default_service(method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/schedules")
            .route(get_or_head().to(schedules::schedules))
            .default_service(method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/processes")
            .route(get_or_head().to(processes::processes))
            .default_service(method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/kinds")
            .route(get_or_head().to(processes::kinds))
            .default_service(method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/stats/minutes")
            .route(get_or_head().to(processes::minutes))
            .default_service(method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/metrics")
            .route(get_or_head().to(metrics::metrics))
            .default_service(method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/openapi.json")
            .route(get_or_head().to(openapi::openapi))
            .default_service(method_not_allowed("GET, HEAD")),
    )
    // Routes are tried in this order, and a pattern with a `{segment}` is a regex match: the
    // static paths come first, so `POST /jobs`, `GET /health` and the rest match before any
    // regex runs.
    .service(
        web::resource("/assets/{name}")
            .route(get_or_head().to(dashboard::asset))
            .default_service(method_not_allowed("GET, HEAD")),
    )
    .service(
        web::resource("/jobs/{id}")
            .route(get_or_head().to(jobs::get))
            .route(web::delete().to(manage::delete))
            .default_service(method_not_allowed("GET, HEAD, DELETE")),
    )
    .service(
        web::resource("/jobs/{id}/retry")
            .route(web::post().to(jobs::retry))
            .default_service(method_not_allowed("POST")),
    )
    .default_service(web::to(|req: actix_web::HttpRequest| async move {
        Err::<actix_web::HttpResponse, _>(ApiError::NotFound(format!(
            "no route for {} {}",
            req.method(),
            req.path()
        )))
    }));
}

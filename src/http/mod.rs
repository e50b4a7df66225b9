//! HTTP: the route table and shared state. One file per resource; auth and request logging are
//! middleware; every error becomes JSON in `error.rs`.

mod auth;
mod body;
mod dashboard;
mod error;
mod health;
mod jobs;
mod queues;
mod request_log;

use std::sync::Arc;

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

fn method_not_allowed() -> actix_web::Route {
    web::to(|| async { Err::<actix_web::HttpResponse, _>(ApiError::MethodNotAllowed) })
}

/// The route table.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default().error_handler(|e, _| ApiError::Invalid(e.to_string()).into()),
    )
    .service(
        web::resource("/")
            .route(web::get().to(dashboard::index))
            .default_service(method_not_allowed()),
    )
    .service(
        web::resource("/health")
            .route(web::get().to(health::health))
            .default_service(method_not_allowed()),
    )
    .service(
        web::resource("/jobs")
            .route(web::post().to(jobs::enqueue))
            .route(web::get().to(jobs::list))
            .default_service(method_not_allowed()),
    )
    .service(
        web::resource("/jobs/{id}")
            .route(web::get().to(jobs::get))
            .route(web::delete().to(jobs::cancel))
            .default_service(method_not_allowed()),
    )
    .service(
        web::resource("/jobs/{id}/retry")
            .route(web::post().to(jobs::retry))
            .default_service(method_not_allowed()),
    )
    .service(
        web::resource("/queues")
            .route(web::get().to(queues::queues))
            .default_service(method_not_allowed()),
    )
    .default_service(web::to(|req: actix_web::HttpRequest| async move {
        Err::<actix_web::HttpResponse, _>(ApiError::NotFound(format!(
            "no route for {} {}",
            req.method(),
            req.path()
        )))
    }));
}

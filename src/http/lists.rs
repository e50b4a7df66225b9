//! `GET /jobs?status=...`: one page of the jobs in a status, as summaries (the whole record is
//! `GET /jobs/{id}`), so a response stays small whatever the jobs hold.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::queue::{JobStatus, ListCursor, ListRequest};

/// Jobs on a page unless `limit` says otherwise, and the most it may say.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

/// Query of `GET /jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    status: JobStatus,
    queue: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /jobs?status=S&queue=&kind=&limit=&cursor=`: `{"status", "jobs", "next_cursor"}`.
pub(super) async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(text) => Some(ListCursor::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!("cursor {text:?} is not one a list returned"))
        })?),
        None => None,
    };
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let request = ListRequest {
        status: query.status,
        queue: nonempty(query.queue),
        kind: nonempty(query.kind),
        limit: query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
        cursor,
    };
    let page = state.queue.list_jobs(&request).await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": query.status,
        "jobs": page.jobs,
        "next_cursor": page.next.map(|c| c.to_string()),
    })))
}

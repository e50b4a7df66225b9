//! Authentication: a bearer token when `API_TOKEN` is set, loopback clients only when it is not.

use std::net::IpAddr;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Version, header};
use actix_web::middleware::Next;
use actix_web::web;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};

/// Paths served to anyone: the health check (Heroku and uptime monitors), the API description,
/// and the dashboard's page and its scripts and styles, which hold no data and ask the user for
/// the token to call the API with.
fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/" | "/openapi.json") || path.starts_with("/assets/")
}

/// Rejects a request that is not authorised, before any handler runs.
pub(super) async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Err(refusal) = check(&req) {
        // Answered here (not raised), so the request log still sees and tags the response.
        return Ok(req.error_response(refusal).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

fn check(req: &ServiceRequest) -> Result<(), ApiError> {
    if !is_public(req.path()) {
        let token = req
            .app_data::<web::Data<AppState>>()
            .and_then(|state| state.config.api_token.clone());
        match token {
            Some(expected) => {
                let given = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(bearer_token)
                    .unwrap_or("");
                if !token_matches(given, &expected) {
                    return Err(ApiError::Unauthorized("missing or wrong bearer token"));
                }
            }
            None => {
                if !req.peer_addr().is_some_and(|a| is_loopback(a.ip())) {
                    return Err(ApiError::Unauthorized(
                        "API_TOKEN is not set, so only loopback clients are served",
                    ));
                }
                check_loopback_host(req)?;
            }
        }
    }
    Ok(())
}

/// A page on another site can reach a loopback port through a name that it has pointed at
/// 127.0.0.1 (DNS rebinding); the browser then sends that name as `Host`. Without a token, only
/// names that mean this machine are served.
fn check_loopback_host(req: &ServiceRequest) -> Result<(), ApiError> {
    match req.headers().get(header::HOST) {
        Some(host) => host
            .to_str()
            .ok()
            .filter(|h| is_loopback_host(h))
            .map(|_| ())
            .ok_or(ApiError::Forbidden(
                "API_TOKEN is not set, so only Host localhost, 127.0.0.1 or [::1] is served",
            )),
        // actix already refuses an HTTP/1.1 request without Host; HTTP/1.0 may omit it, and a
        // browser never does, so no rebinding can hide behind its absence.
        None if req.version() < Version::HTTP_11 => Ok(()),
        None => Err(ApiError::BadRequest("missing Host header".into())),
    }
}

/// `localhost`, `127.0.0.1` or `[::1]`, with any port, in any case.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        // `[::1]` has colons of its own; only a colon after the bracket starts a port.
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.starts_with('[') || name.ends_with(']')) =>
        {
            name
        }
        _ => host,
    };
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|allowed| name.eq_ignore_ascii_case(allowed))
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares in constant time, so response timing does not reveal how much of a guess was right.
fn token_matches(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_match_exactly() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("", "s3cret"));
        assert!(!token_matches("S3cret", "s3cret"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn only_loopback_addresses_count_as_local() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("127.8.9.10".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("10.1.2.3".parse().unwrap()));
        assert!(!is_loopback("54.1.2.3".parse().unwrap()));
        assert!(!is_loopback("::ffff:10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn only_names_of_this_machine_pass_the_host_check() {
        for host in [
            "localhost",
            "LocalHost:5000",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "localhost.",
            "localhost.:80",
            "evil.example",
            "evil.example:80",
            "127.0.0.2",
            "::1",
            "[::1",
            "localhost:",
            "localhost:80:80",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn health_and_the_dashboard_page_are_public() {
        assert!(is_public("/health") && is_public("/") && is_public("/assets/core.js"));
        assert!(!is_public("/jobs") && !is_public("/queues"));
    }
}

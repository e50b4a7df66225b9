//! The settings that may hold secrets: `API_TOKEN` and the Redis URL, and how they are redacted.

use super::ConfigError;
use super::parse::invalid;

/// Trims `API_TOKEN` (a pasted token often brings a newline) and refuses one a client could not
/// send in a header. Errors never show the token.
pub(super) fn parse_api_token(
    token: Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ConfigError> {
    let Some(token) = token else {
        return Ok(None);
    };
    let trimmed = token.trim();
    if trimmed.len() != token.len() {
        warnings.push("API_TOKEN had surrounding whitespace; it was trimmed".to_string());
    }
    let reason = if !trimmed.is_ascii() {
        Some("must be ASCII")
    } else if trimmed.bytes().any(|b| b.is_ascii_control()) {
        Some("must not contain control characters")
    } else if trimmed.bytes().any(|b| b == b' ') {
        Some("must not contain whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::Redacted {
            var: "API_TOKEN",
            reason,
        }),
        None => Ok(Some(trimmed.to_string())),
    }
}

/// The Redis URL the client opens, checked whole now so a typo stops start-up, not a later connect.
pub(super) fn parse_redis_url(
    tls: Option<String>,
    plain: Option<String>,
) -> Result<String, ConfigError> {
    let (var, url) = match (tls, plain) {
        (Some(url), _) => ("REDIS_TLS_URL", url),
        (None, Some(url)) => ("REDIS_URL", url),
        (None, None) => ("REDIS_URL", "redis://127.0.0.1:6379".to_string()),
    };
    let url = redis_url_for_client(&url).map_err(|e| match e {
        ConfigError::Invalid { value, reason, .. } => ConfigError::Invalid { var, value, reason },
        other => other,
    })?;
    redis::IntoConnectionInfo::into_connection_info(url.as_str())
        .map_err(|e| invalid(var, &redact_url(&url), &e.to_string()))?;
    Ok(url)
}

/// Turns a configured Redis URL into the one the client opens.
///
/// Heroku Redis serves TLS with a self-signed certificate, so a `rediss://` URL without a fragment
/// gets `#insecure` (encrypted, not verified), which is what Heroku documents for its add-on. A URL
/// that already has a fragment is left as the user wrote it.
pub fn redis_url_for_client(url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(invalid(
            "REDIS_URL",
            &redact_url(url),
            "expected redis://host:port or rediss://host:port",
        ));
    };
    match scheme {
        "redis" | "redis+unix" | "unix" => Ok(url.to_string()),
        "rediss" if url.contains('#') => Ok(url.to_string()),
        "rediss" => Ok(format!("{url}#insecure")),
        _ => Err(invalid(
            "REDIS_URL",
            &redact_url(url),
            "the scheme must be redis:// or rediss://",
        )),
    }
}

/// `url` with any password replaced by `***`, fit for logs and error messages.
///
/// `user:password@` becomes `user:***@`, a lone `secret@` becomes `***@` (Redis takes it as the
/// password on some servers), and a `pass=`/`password=` query value (unix sockets) becomes `***`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => rest.to_string(),
    };
    format!("{scheme}{}", redact_query_password(&rest))
}

fn redact_query_password(url: &str) -> String {
    let Some((path, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key == "pass" || key == "password" => format!("{key}=***"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::super::test_config as config;
    use super::*;

    #[test]
    fn api_token_is_trimmed_with_a_warning() {
        let c = config(&[("API_TOKEN", " abc-123\n")]).unwrap();
        assert_eq!(c.api_token.as_deref(), Some("abc-123"));
        assert_eq!(c.warnings().len(), 1);
        assert!(c.warnings()[0].contains("API_TOKEN"), "{:?}", c.warnings());
        assert!(!c.warnings()[0].contains("abc-123"), "{:?}", c.warnings());
        let c = config(&[("API_TOKEN", "abc-123")]).unwrap();
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn unusable_api_tokens_are_refused_without_showing_them() {
        for (token, problem) in [
            ("s3cret tok", "whitespace"),
            ("s3cret\ttok", "control"),
            ("s3cret\u{7f}tok", "control"),
            ("s3cretétok", "ASCII"),
        ] {
            let err = config(&[("API_TOKEN", token)]).unwrap_err().to_string();
            assert!(
                err.contains("API_TOKEN=<redacted>") && err.contains(problem),
                "{token:?}: {err}"
            );
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn redis_url_errors_hide_the_password() {
        let err = config(&[("REDIS_URL", "redis://:pw@host:notaport")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("REDIS_URL") && err.contains("host"), "{err}");
        assert!(!err.contains("pw"), "{err}");
        let err = config(&[("REDIS_TLS_URL", "http://user:hunter2@host:1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("REDIS_TLS_URL") && err.contains("user:***@host"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        assert!(config(&[("REDIS_URL", "redis://:pw@host:6379/notadb")]).is_err());
    }

    #[test]
    fn redact_url_hides_every_form_of_password() {
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact_url("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(
            redact_url("rediss://u:p@ss@h:1#insecure"),
            "rediss://u:***@h:1#insecure"
        );
        assert_eq!(redact_url("redis://secret@h:1"), "redis://***@h:1");
        assert_eq!(redact_url("pw@h:1"), "***@h:1");
        assert_eq!(
            redact_url("redis+unix:///tmp/r.sock?db=1&pass=secret"),
            "redis+unix:///tmp/r.sock?db=1&pass=***"
        );
    }

    #[test]
    fn tls_url_wins_and_accepts_self_signed_certificates() {
        let c = config(&[
            ("REDIS_URL", "redis://h:1"),
            ("REDIS_TLS_URL", "rediss://:pw@h:2"),
        ])
        .unwrap();
        assert_eq!(c.redis_url, "rediss://:pw@h:2#insecure");
        let c = config(&[("REDIS_URL", "rediss://h:2")]).unwrap();
        assert_eq!(c.redis_url, "rediss://h:2#insecure");
    }

    #[test]
    fn redis_urls_are_checked() {
        assert_eq!(
            redis_url_for_client("redis://h:1/0").unwrap(),
            "redis://h:1/0"
        );
        assert_eq!(
            redis_url_for_client("rediss://h:1/#insecure").unwrap(),
            "rediss://h:1/#insecure"
        );
        let err = redis_url_for_client("http://h:1").unwrap_err().to_string();
        assert!(
            err.contains("REDIS_URL") && err.contains("http://h:1"),
            "{err}"
        );
        assert!(redis_url_for_client("h:1").is_err());
        // The rewritten URL must be one the redis client accepts, with TLS verification off.
        let info = redis::IntoConnectionInfo::into_connection_info(
            redis_url_for_client("rediss://:pw@example.com:6380")
                .unwrap()
                .as_str(),
        )
        .unwrap();
        match info.addr() {
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                assert_eq!(
                    (host.as_str(), *port, *insecure),
                    ("example.com", 6380, true)
                );
            }
            other => panic!("expected TLS, got {other:?}"),
        }
    }
}

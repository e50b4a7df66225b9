//! The one HTTP client every `http` job shares: pooled connections over rustls, no proxy, a
//! resolver that hands reqwest only addresses the guard allows, and a redirect policy that
//! checks every hop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Attempt, Policy};

use super::guard::{Blocked, Guard};

/// Redirects followed before a request gives up.
pub(crate) const MAX_REDIRECTS: usize = 5;
/// How long establishing a connection may take (the request's own `timeout` also bounds it).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled connection is kept for the next job to the same host.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A redirect chain longer than [`MAX_REDIRECTS`], or a redirect to something that is not HTTP.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedirectRefused {
    /// Too many hops.
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooMany,
    /// A hop to another scheme.
    #[error("redirect to a {0} URL; only http and https are followed")]
    Scheme(String),
}

/// Builds the shared client.
pub(crate) fn build(guard: Arc<Guard>) -> Result<reqwest::Client, reqwest::Error> {
    let hops = guard.clone();
    reqwest::Client::builder()
        .user_agent(concat!("onedyno/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { guard }))
        .redirect(Policy::custom(move |attempt| next_hop(&hops, attempt)))
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build()
}

/// Follows a redirect only to http(s), within [`MAX_REDIRECTS`], and to an address the guard
/// allows when the new host is a literal (a name goes through the resolver like the first hop).
fn next_hop(guard: &Guard, attempt: Attempt<'_>) -> reqwest::redirect::Action {
    // `previous` holds every URL requested so far, the first one included.
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(RedirectRefused::TooMany);
    }
    let scheme = attempt.url().scheme();
    if !matches!(scheme, "http" | "https") {
        let scheme = scheme.to_string();
        return attempt.error(RedirectRefused::Scheme(scheme));
    }
    match guard.check_url(attempt.url()) {
        Ok(()) => attempt.follow(),
        Err(blocked) => attempt.error(blocked),
    }
}

/// Resolves names with the system resolver (through tokio) and keeps only the addresses the guard
/// allows, so the connection goes to a checked address however the name's DNS answers change.
struct GuardedResolver {
    guard: Arc<Guard>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = lookup(&host).await?;
            let allowed = allowed_addresses(&guard, &host, found)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The addresses of `host`. A trailing dot is dropped (`localhost.` is `localhost`), and
/// `localhost` and its subdomains are loopback without asking DNS (RFC 6761), so no resolver
/// configuration can send them elsewhere or make them fail.
async fn lookup(host: &str) -> std::io::Result<Vec<SocketAddr>> {
    let name = host.strip_suffix('.').unwrap_or(host);
    let lower = name.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
        ]);
    }
    Ok(tokio::net::lookup_host((name, 0)).await?.collect())
}

/// The addresses the guard allows, or the first refused one when none is allowed.
fn allowed_addresses(
    guard: &Guard,
    host: &str,
    found: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let mut refused: Option<Blocked> = None;
    let mut allowed = Vec::with_capacity(found.len());
    for address in found {
        match guard.check(address.ip(), Some(host)) {
            Ok(()) => allowed.push(address),
            Err(blocked) => {
                refused.get_or_insert(blocked);
            }
        }
    }
    match (allowed.is_empty(), refused) {
        (true, Some(blocked)) => Err(Box::new(blocked)),
        (true, None) => Err(format!("{host} resolved to no address").into()),
        (false, _) => Ok(allowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|ip| SocketAddr::new(ip.parse().unwrap(), 0))
            .collect()
    }

    #[test]
    fn only_allowed_addresses_are_handed_to_the_connector() {
        let guard = Guard::default();
        let found = addresses(&["10.0.0.5", "93.184.215.14", "::1", "2606:2800::1"]);
        let kept = allowed_addresses(&guard, "mixed.example", found).unwrap();
        assert_eq!(kept, addresses(&["93.184.215.14", "2606:2800::1"]));
    }

    #[test]
    fn a_name_with_only_refused_addresses_names_the_first_one() {
        let guard = Guard::default();
        let found = addresses(&["169.254.169.254", "10.0.0.1"]);
        let err = allowed_addresses(&guard, "rebind.example", found).unwrap_err();
        let blocked = err.downcast_ref::<Blocked>().expect("a Blocked error");
        assert_eq!(blocked.address.to_string(), "169.254.169.254");
        assert_eq!(blocked.host.as_deref(), Some("rebind.example"));
        let err = allowed_addresses(&guard, "empty.example", vec![]).unwrap_err();
        assert!(err.to_string().contains("no address"), "{err}");
    }

    #[tokio::test]
    async fn localhost_in_any_spelling_is_loopback() {
        for host in [
            "localhost",
            "localhost.",
            "LocalHost",
            "api.localhost",
            "a.b.localhost.",
        ] {
            let found = lookup(host).await.unwrap();
            assert!(
                found.iter().all(|a| a.ip().is_loopback()),
                "{host}: {found:?}"
            );
            assert!(allowed_addresses(&Guard::default(), host, found).is_err());
        }
        let allow = Guard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        let kept = allowed_addresses(&allow, "localhost", lookup("localhost").await.unwrap());
        assert_eq!(kept.unwrap(), addresses(&["127.0.0.1"]));
    }
}

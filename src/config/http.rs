//! `HTTP_ALLOW_NETWORKS`: the networks the `http` kind's SSRF guard lets jobs reach although
//! they are not public (a service on the private network, a test server on loopback).

use ipnet::IpNet;

use super::ConfigError;
use super::parse::invalid;

const VAR: &str = "HTTP_ALLOW_NETWORKS";
/// The most networks `HTTP_ALLOW_NETWORKS` may list; every connection checks them all.
pub(super) const ALLOW_NETWORKS_LIMIT: usize = 64;

/// Parses a comma-separated list of CIDRs (`10.1.0.0/16,fd00::/8`); a bare address is that one
/// address, and host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`). A list that allows every
/// address warns, as it turns the guard off.
pub(super) fn parse_allow_networks(
    value: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Vec<IpNet>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut networks = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let network = entry
            .parse::<IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                invalid(
                    VAR,
                    value,
                    &format!("{entry:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8"),
                )
            })?;
        let network = network.trunc();
        if network.prefix_len() == 0 {
            warnings.push(format!(
                "{VAR} includes {network}: the SSRF guard is off for every {} address",
                if network.addr().is_ipv4() {
                    "IPv4"
                } else {
                    "IPv6"
                }
            ));
        }
        if !networks.contains(&network) {
            networks.push(network);
        }
    }
    if networks.len() > ALLOW_NETWORKS_LIMIT {
        return Err(invalid(
            VAR,
            value,
            &format!(
                "lists {} networks, at most {ALLOW_NETWORKS_LIMIT}",
                networks.len()
            ),
        ));
    }
    Ok(networks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Vec<String>, String> {
        parse_allow_networks(Some(value), &mut Vec::new())
            .map(|nets| nets.iter().map(ToString::to_string).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn cidrs_and_bare_addresses_are_read() {
        assert_eq!(parse_allow_networks(None, &mut Vec::new()).unwrap(), vec![]);
        assert_eq!(
            parse(" 127.0.0.0/8, 10.1.2.3/16 ,fd00::/8,192.168.1.7,::1,,127.0.0.0/8").unwrap(),
            vec![
                "127.0.0.0/8",
                "10.1.0.0/16",
                "fd00::/8",
                "192.168.1.7/32",
                "::1/128"
            ]
        );
    }

    #[test]
    fn a_bad_entry_names_the_setting_and_the_entry() {
        for bad in [
            "127.0.0.0/33",
            "localhost",
            "10.0.0.0/8;11.0.0.0/8",
            "fe80::/129",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.contains("HTTP_ALLOW_NETWORKS") && err.contains("is not a CIDR"),
                "{err}"
            );
        }
        let many: Vec<String> = (0..=ALLOW_NETWORKS_LIMIT)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        let err = parse(&many.join(",")).unwrap_err();
        assert!(err.contains("at most 64"), "{err}");
    }

    #[test]
    fn allowing_everything_warns() {
        let mut warnings = Vec::new();
        parse_allow_networks(Some("0.0.0.0/0,10.0.0.0/8"), &mut warnings).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("guard is off for every IPv4"),
            "{warnings:?}"
        );
    }
}

//! The guard's unit tests: every refused range, the embedded IPv4 forms, odd spellings as the
//! `url` crate normalises them, and the allow-list.

use super::*;

fn guard() -> Guard {
    Guard::default()
}

fn refused(text: &str) -> &'static str {
    let ip: IpAddr = text.parse().unwrap();
    match guard().check(ip, None) {
        Err(blocked) => {
            assert_eq!(blocked.address, ip);
            blocked.range
        }
        Ok(()) => panic!("{text} was allowed"),
    }
}

fn allowed(text: &str) -> bool {
    guard().check(text.parse().unwrap(), None).is_ok()
}

#[test]
fn ipv4_ranges_that_are_not_the_internet_are_refused() {
    for (ip, range) in [
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.100.100.200", "carrier-grade NAT"), // Alibaba Cloud metadata
        ("100.127.255.255", "carrier-grade NAT"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("169.254.169.254", "link-local, cloud metadata"),
        ("169.254.0.1", "link-local, cloud metadata"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.0.0.192", "IETF protocol assignments"), // Oracle Cloud metadata
        ("192.0.2.1", "documentation"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("192.168.1.1", "private"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
    ] {
        assert_eq!(refused(ip), range, "{ip}");
    }
}

#[test]
fn public_ipv4_neighbours_of_refused_ranges_are_allowed() {
    for ip in [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
    ] {
        assert!(allowed(ip), "{ip}");
    }
}

#[test]
fn ipv6_ranges_that_are_not_the_internet_are_refused() {
    for (ip, range) in [
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("::8.8.8.8", "IPv4-compatible"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("100::1", "discard-only"),
        ("2001:db8::1", "documentation"),
        ("2001::1", "IETF protocol assignments"),   // Teredo
        ("2001:2::1", "IETF protocol assignments"), // benchmarking
        ("3fff::1", "documentation"),
        ("fc00::1", "unique-local"),
        ("fd00:ec2::254", "unique-local"), // AWS metadata over IPv6
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("4000::1", "reserved"),
        ("1::1", "reserved"),
    ] {
        assert_eq!(refused(ip), range, "{ip}");
    }
    for ip in [
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "2001:4860::8888",
    ] {
        assert!(allowed(ip), "{ip}");
    }
}

#[test]
fn ipv6_forms_embedding_ipv4_are_judged_by_the_ipv4_address() {
    for (ip, range) in [
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:7f00:1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local, cloud metadata"),
        ("::ffff:0:192.168.0.1", "private"),
        ("64:ff9b::127.0.0.1", "loopback"),
        ("64:ff9b::a9fe:a9fe", "link-local, cloud metadata"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a00:1::5", "private"),
    ] {
        assert_eq!(refused(ip), range, "{ip}");
    }
    for ip in ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"] {
        assert!(allowed(ip), "{ip}");
    }
}

#[test]
fn odd_spellings_reach_the_guard_as_the_address_they_mean() {
    for (url, ip) in [
        ("http://2130706433/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://017700000001/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://0/", "0.0.0.0"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),
        ("http://[0:0:0:0:0:ffff:7f00:1]:8080/", "::ffff:7f00:1"),
        ("http://[::1]/", "::1"),
        (
            "http://169.254.169.254./latest/meta-data/",
            "169.254.169.254",
        ),
        ("https://2852039166/", "169.254.169.254"),
    ] {
        let url = Url::parse(url).unwrap();
        let want: IpAddr = ip.parse().unwrap();
        assert_eq!(literal_ip(&url), Some(want), "{url}");
        let err = guard().check_url(&url).unwrap_err();
        assert!(err.to_string().contains(&want.to_string()), "{err}");
    }
}

#[test]
fn names_are_left_to_the_resolver() {
    for url in [
        "http://example.com/",
        "http://localhost./",
        "http://xn--e1afmkfd.xn--p1ai/",
    ] {
        let url = Url::parse(url).unwrap();
        assert_eq!(literal_ip(&url), None, "{url}");
        assert_eq!(guard().check_url(&url), Ok(()));
    }
}

#[test]
fn the_allow_list_lifts_the_guard_for_its_networks_only() {
    let guard = Guard::new(vec![
        "127.0.0.0/8".parse().unwrap(),
        "fd00:ec2::/32".parse().unwrap(),
    ]);
    for ip in [
        "127.0.0.1",
        "127.9.9.9",
        "::ffff:127.0.0.1",
        "64:ff9b::7f00:1",
        "fd00:ec2::254",
    ] {
        assert_eq!(guard.check(ip.parse().unwrap(), None), Ok(()), "{ip}");
    }
    for ip in ["10.0.0.1", "169.254.169.254", "::1", "fd00:ec3::1"] {
        assert!(guard.check(ip.parse().unwrap(), None).is_err(), "{ip}");
    }
}

#[test]
fn the_error_names_the_address_the_host_and_the_setting() {
    let err = guard()
        .check("127.0.0.1".parse().unwrap(), Some("localhost"))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "blocked address 127.0.0.1 (loopback) for host localhost: the SSRF guard refuses it \
         unless HTTP_ALLOW_NETWORKS allows it"
    );
}

//! Where the server may send requests on a persona's behalf (its HTTP
//! tools): the policy against server-side request forgery, as pure
//! functions over URLs, names and addresses.
//!
//! A persona is written by whoever can reach the personas API, and its
//! tools are called from inside the server's network. Without a policy, a
//! tool URL is a way to read the cloud metadata service or an admin port on
//! localhost. So destinations that are not on the public internet are
//! refused: loopback, private, link-local, unique-local, shared (CGNAT),
//! multicast, unspecified, broadcast and reserved addresses, the cloud
//! metadata endpoints, and IPv6 forms that embed such an IPv4 address.
//!
//! The shell applies the policy twice: to the URL as written when a
//! persona is saved ([`check_url`], so mistakes are reported at once), and
//! to every address the host name resolves to when the tool is called
//! ([`check_resolved`]), because a name that resolved to a public address
//! yesterday may resolve to 127.0.0.1 today. Operators whose tools run on
//! their own network opt hosts back in with [`AllowedHosts`].

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// AWS, GCP, Azure, Oracle and others serve instance metadata (and
/// credentials) here.
const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// AWS's IPv6 instance metadata endpoint.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
/// Host names of metadata services; they resolve to [`METADATA_V4`] inside
/// the cloud, but are refused by name so the reason is clear everywhere.
const METADATA_NAMES: [&str; 2] = ["metadata.google.internal", "metadata"];

/// What kind of destination is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressKind {
    /// This host (127.0.0.0/8, ::1, `localhost`).
    Loopback,
    /// RFC 1918 private networks (10/8, 172.16/12, 192.168/16) and
    /// deprecated IPv6 site-local fec0::/10.
    Private,
    /// 169.254.0.0/16 and fe80::/10.
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// 100.64.0.0/10, the carrier-grade NAT range (RFC 6598).
    SharedAddressSpace,
    /// 224.0.0.0/4 and ff00::/8.
    Multicast,
    /// 0.0.0.0/8 and ::. Linux connects 0.0.0.0 to the local host.
    Unspecified,
    /// 255.255.255.255.
    Broadcast,
    /// Ranges never on the public internet: 192.0.0.0/24 (protocol
    /// assignments), 198.18.0.0/15 (benchmarking), 240.0.0.0/4.
    Reserved,
    /// A cloud provider's instance metadata service.
    CloudMetadata,
}

impl AddressKind {
    /// The kind as a phrase, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            AddressKind::Loopback => "a loopback address",
            AddressKind::Private => "a private address",
            AddressKind::LinkLocal => "a link-local address",
            AddressKind::UniqueLocal => "a unique local address",
            AddressKind::SharedAddressSpace => "a shared (carrier-grade NAT) address",
            AddressKind::Multicast => "a multicast address",
            AddressKind::Unspecified => "the unspecified address",
            AddressKind::Broadcast => "the broadcast address",
            AddressKind::Reserved => "a reserved address",
            AddressKind::CloudMetadata => "a cloud metadata endpoint",
        }
    }
}

/// A destination the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ForbiddenDestination {
    /// The host as the URL names it.
    pub host: String,
    /// The refused address a name resolved to; `None` when the host itself
    /// (a literal address or a reserved name) is refused.
    pub resolved: Option<IpAddr>,
    /// Why it is refused.
    pub kind: AddressKind,
}

impl fmt::Display for ForbiddenDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resolved {
            Some(address) => write!(
                f,
                "{} resolves to {address}, {}",
                self.host,
                self.kind.describe()
            ),
            None => write!(f, "{} is {}", self.host, self.kind.describe()),
        }
    }
}

/// What kind of refused destination `address` is; `None` for a public
/// address.
pub fn forbidden_kind(address: IpAddr) -> Option<AddressKind> {
    match address {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }
}

fn v4_kind(address: Ipv4Addr) -> Option<AddressKind> {
    let [a, b, c, _] = address.octets();
    let kind = if address == METADATA_V4 {
        AddressKind::CloudMetadata
    } else if address.is_broadcast() {
        AddressKind::Broadcast
    } else if a == 0 {
        AddressKind::Unspecified
    } else if a == 127 {
        AddressKind::Loopback
    } else if address.is_private() {
        AddressKind::Private
    } else if address.is_link_local() {
        AddressKind::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        AddressKind::SharedAddressSpace
    } else if address.is_multicast() {
        AddressKind::Multicast
    } else if a >= 240 || (a == 192 && b == 0 && c == 0) || (a == 198 && (b == 18 || b == 19)) {
        AddressKind::Reserved
    } else {
        return None;
    };
    Some(kind)
}

fn v6_kind(address: Ipv6Addr) -> Option<AddressKind> {
    // Before the embedded forms: :: and ::1 are also "IPv4-compatible".
    if address.is_unspecified() {
        return Some(AddressKind::Unspecified);
    }
    if address.is_loopback() {
        return Some(AddressKind::Loopback);
    }
    if let Some(v4) = embedded_v4(address) {
        return v4_kind(v4);
    }
    let first = address.segments()[0];
    let kind = if address == METADATA_V6 {
        AddressKind::CloudMetadata
    } else if first & 0xffc0 == 0xfe80 {
        AddressKind::LinkLocal
    } else if first & 0xffc0 == 0xfec0 {
        AddressKind::Private
    } else if first & 0xfe00 == 0xfc00 {
        AddressKind::UniqueLocal
    } else if first & 0xff00 == 0xff00 {
        AddressKind::Multicast
    } else {
        return None;
    };
    Some(kind)
}

/// The IPv4 address an IPv6 address stands for, where the network would
/// deliver it to that IPv4 host: IPv4-mapped (::ffff:a.b.c.d),
/// IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and 6to4
/// (2002:AABB:CCDD::).
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = address.segments();
    let from = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    let mapped_or_compatible = s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff);
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if mapped_or_compatible || nat64 {
        Some(from(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(from(s[1], s[2]))
    } else {
        None
    }
}

/// What kind of refused destination the host name `name` is: `localhost`
/// and its subdomains (RFC 6761), and the metadata services' names.
pub fn forbidden_name(name: &str) -> Option<AddressKind> {
    let name = normalize_name(name);
    if name == "localhost" || name.ends_with(".localhost") {
        Some(AddressKind::Loopback)
    } else if METADATA_NAMES.contains(&name.as_str()) {
        Some(AddressKind::CloudMetadata)
    } else {
        None
    }
}

/// Lower case, without the trailing dot of a fully qualified name.
fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Hosts the operator allows whatever their addresses: names (matched
/// exactly, case-insensitively) and addresses (an allowed address is
/// allowed whether the URL writes it or a name resolves to it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    names: BTreeSet<String>,
    addresses: BTreeSet<IpAddr>,
}

impl AllowedHosts {
    /// Parses a comma-separated list of host names and IP addresses
    /// (IPv6 with or without brackets); blanks are ignored.
    ///
    /// # Errors
    /// An entry that is neither (a URL, a port, a wildcard), named.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut allowed = AllowedHosts::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bare = entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .unwrap_or(entry);
            if let Ok(address) = bare.parse::<IpAddr>() {
                allowed.addresses.insert(address);
            } else if entry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
            {
                allowed.names.insert(normalize_name(entry));
            } else {
                return Err(format!(
                    "{entry:?} is not a host name or IP address (no scheme, port or wildcard)"
                ));
            }
        }
        Ok(allowed)
    }

    /// Whether nothing is allowed beyond the policy.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.addresses.is_empty()
    }

    fn allows_name(&self, name: &str) -> bool {
        self.names.contains(&normalize_name(name))
    }

    fn allows_address(&self, address: IpAddr) -> bool {
        self.addresses.contains(&address) || self.addresses.contains(&canonical(address))
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is, so that an
/// allowed `10.0.0.5` also allows `::ffff:10.0.0.5`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// Checks the host of `url` as written: an address literal against the
/// address policy, a name against the names that are never public. A name
/// that passes is checked again, on its addresses, by [`check_resolved`]
/// when the request is made.
///
/// # Errors
/// The host is refused and not allowed.
pub fn check_url(url: &Url, allowed: &AllowedHosts) -> Result<(), ForbiddenDestination> {
    let (host, kind) = match url.host() {
        None => return Ok(()),
        Some(Host::Domain(name)) => {
            if allowed.allows_name(name) {
                return Ok(());
            }
            (name.to_owned(), forbidden_name(name))
        }
        Some(Host::Ipv4(v4)) => literal(IpAddr::V4(v4), allowed),
        Some(Host::Ipv6(v6)) => literal(IpAddr::V6(v6), allowed),
    };
    match kind {
        Some(kind) => Err(ForbiddenDestination {
            host,
            resolved: None,
            kind,
        }),
        None => Ok(()),
    }
}

fn literal(address: IpAddr, allowed: &AllowedHosts) -> (String, Option<AddressKind>) {
    let kind = if allowed.allows_address(address) {
        None
    } else {
        forbidden_kind(address)
    };
    (address.to_string(), kind)
}

/// Checks the addresses the host name `host` resolved to. One refused
/// address refuses them all, rather than connecting to the rest: a public
/// name has no business resolving inside the network, and an answer that
/// mixes the two is how DNS rebinding attacks look.
///
/// # Errors
/// The name is not allowed and one of its addresses is refused.
pub fn check_resolved(
    host: &str,
    addresses: &[IpAddr],
    allowed: &AllowedHosts,
) -> Result<(), ForbiddenDestination> {
    if allowed.allows_name(host) {
        return Ok(());
    }
    if let Some(kind) = forbidden_name(host) {
        return Err(ForbiddenDestination {
            host: host.to_owned(),
            resolved: None,
            kind,
        });
    }
    for &address in addresses {
        if allowed.allows_address(address) {
            continue;
        }
        if let Some(kind) = forbidden_kind(address) {
            return Err(ForbiddenDestination {
                host: host.to_owned(),
                resolved: Some(address),
                kind,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(address: &str) -> Option<AddressKind> {
        forbidden_kind(address.parse().expect("an address"))
    }

    #[test]
    fn every_refused_range_is_refused_with_its_reason() {
        use AddressKind::*;
        let cases = [
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("::1", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.254", Private),
            ("192.168.1.1", Private),
            ("fec0::1", Private),
            ("169.254.1.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("198.18.0.1", Reserved),
            ("192.0.0.170", Reserved),
            ("169.254.169.254", CloudMetadata),
            ("fd00:ec2::254", CloudMetadata),
            // IPv6 forms of IPv4 addresses are the IPv4 address.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:169.254.169.254", CloudMetadata),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:100.64.0.1", SharedAddressSpace),
            ("::127.0.0.1", Loopback),
            ("64:ff9b::10.0.0.1", Private),
            ("2002:7f00:1::", Loopback),
        ];
        for (address, expected) in cases {
            assert_eq!(kind(address), Some(expected), "{address}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
        ] {
            assert_eq!(kind(address), None, "{address}");
        }
    }

    fn url(text: &str) -> Url {
        Url::parse(text).expect("a URL")
    }

    #[test]
    fn urls_are_checked_as_the_http_client_reads_them() {
        let none = AllowedHosts::default();
        for text in [
            "http://127.0.0.1:8080/x",
            "http://localhost/",
            "http://LocalHost./",
            "http://api.localhost/",
            "http://169.254.169.254/latest/meta-data/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://[::1]/",
            "http://[::ffff:7f00:1]/",
            "http://[fd00:ec2::254]/",
            // WHATWG URL parsing reads these as 127.0.0.1, as reqwest does.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
        ] {
            assert!(check_url(&url(text), &none).is_err(), "{text}");
        }
        assert!(check_url(&url("https://api.example.com/tool"), &none).is_ok());
        // A name is only refused once it resolves somewhere refused.
        assert!(check_url(&url("http://internal.example/"), &none).is_ok());
    }

    #[test]
    fn a_refusal_says_what_and_why() {
        let none = AllowedHosts::default();
        let refused = check_url(&url("http://169.254.169.254/"), &none).expect_err("refused");
        assert_eq!(
            refused.to_string(),
            "169.254.169.254 is a cloud metadata endpoint"
        );
        let refused = check_resolved("tools.example", &["127.0.0.1".parse().expect("ip")], &none)
            .expect_err("refused");
        assert_eq!(
            refused.to_string(),
            "tools.example resolves to 127.0.0.1, a loopback address"
        );
    }

    #[test]
    fn one_refused_address_refuses_the_name() {
        let none = AllowedHosts::default();
        let public: IpAddr = "93.184.216.34".parse().expect("ip");
        let private: IpAddr = "10.0.0.7".parse().expect("ip");
        assert!(check_resolved("tools.example", &[public], &none).is_ok());
        let refused =
            check_resolved("tools.example", &[public, private], &none).expect_err("refused");
        assert_eq!(refused.resolved, Some(private));
        assert_eq!(refused.kind, AddressKind::Private);
    }

    #[test]
    fn allowed_hosts_opt_names_and_addresses_back_in() {
        let allowed =
            AllowedHosts::parse(" tools.internal , 10.0.0.5,[fd00::5],, Localhost").expect("valid");
        let private: IpAddr = "10.0.0.5".parse().expect("ip");
        let other: IpAddr = "10.0.0.6".parse().expect("ip");
        assert!(check_url(&url("http://10.0.0.5:9000/"), &allowed).is_ok());
        assert!(check_url(&url("http://[::ffff:10.0.0.5]/"), &allowed).is_ok());
        assert!(check_url(&url("http://[fd00::5]/"), &allowed).is_ok());
        assert!(check_url(&url("http://10.0.0.6/"), &allowed).is_err());
        assert!(check_url(&url("http://localhost:3000/"), &allowed).is_ok());
        assert!(check_resolved("TOOLS.internal.", &[other], &allowed).is_ok());
        assert!(check_resolved("elsewhere.example", &[private], &allowed).is_ok());
        assert!(check_resolved("elsewhere.example", &[other], &allowed).is_err());
        assert!(AllowedHosts::parse("").expect("empty").is_empty());
        for bad in ["http://tools.internal", "tools.internal:8080", "*.internal"] {
            assert!(AllowedHosts::parse(bad).is_err(), "{bad}");
        }
    }
}

//! Which browser origins may open sockets and send requests, and which
//! `Host` names the server answers to (DNS rebinding).

use std::collections::HashSet;
use std::net::SocketAddr;

use voxgate_core::access::{Origin, split_host_port};

use crate::config::Config;

/// The origins and host names this server accepts, worked out once from
/// the configuration.
#[derive(Debug, Clone)]
pub struct Allowed {
    origins: HashSet<Origin>,
    hosts: HashSet<String>,
}

impl Allowed {
    /// Origins: the configured ones, the public URL's, and the listen
    /// address's own (`localhost`, the loopback addresses and the listen
    /// IP at its port). Hosts: the public URL's, the listen IP, localhost
    /// and the loopback addresses, and the configured extras.
    pub fn from_config(config: &Config, bound: SocketAddr) -> Self {
        let mut origins = HashSet::new();
        let mut hosts: HashSet<String> = ["localhost", "127.0.0.1", "[::1]"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        for configured in &config.access.allowed_origins {
            if let Ok(origin) = Origin::parse(configured) {
                origins.insert(origin);
            }
        }
        for host in &config.access.allowed_hosts {
            hosts.insert(host.to_ascii_lowercase());
        }
        if let Some(public) = &config.public_url {
            let scheme = if public.secure { "https" } else { "http" };
            if let Ok(origin) = Origin::parse(&format!("{scheme}://{}", public.authority)) {
                origins.insert(origin);
            }
            if let Some((host, _)) = split_host_port(&public.authority) {
                hosts.insert(host.to_ascii_lowercase());
            }
        }
        let port = bound.port();
        let ip = bound.ip();
        let listen_host = match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            std::net::IpAddr::V4(v4) => v4.to_string(),
        };
        let mut own = vec!["localhost".to_owned(), "127.0.0.1".into(), "[::1]".into()];
        if !ip.is_unspecified() {
            hosts.insert(listen_host.clone());
            own.push(listen_host);
        }
        for host in own {
            if let Ok(origin) = Origin::parse(&format!("http://{host}:{port}")) {
                origins.insert(origin);
            }
        }
        Self { origins, hosts }
    }

    /// Whether a request carrying this `Origin` header may go on.
    pub fn origin(&self, raw: &str) -> bool {
        Origin::parse(raw).is_ok_and(|origin| self.origins.contains(&origin))
    }

    /// Whether a request carrying this `Host` header is for this server.
    pub fn host(&self, raw: &str) -> bool {
        split_host_port(raw)
            .is_some_and(|(host, _)| self.hosts.contains(&host.to_ascii_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PublicUrl;

    #[test]
    fn own_and_public_origins_and_hosts_are_allowed() {
        let config = Config {
            public_url: Some(PublicUrl::parse("https://voice.example.com").expect("url")),
            ..Config::default()
        };
        let allowed = Allowed::from_config(&config, "127.0.0.1:8080".parse().expect("addr"));
        assert!(allowed.origin("https://voice.example.com"));
        assert!(allowed.origin("http://localhost:8080"));
        assert!(allowed.origin("http://127.0.0.1:8080"));
        assert!(!allowed.origin("https://evil.example"));
        assert!(!allowed.origin("http://localhost:9999"));
        assert!(allowed.host("voice.example.com"));
        assert!(allowed.host("LOCALHOST:8080"));
        assert!(allowed.host("[::1]:8080"));
        assert!(!allowed.host("rebind.evil.example:8080"));
        assert!(!allowed.host("a:b:c"));
    }
}

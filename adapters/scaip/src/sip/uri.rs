//! The parts of a `sip:`/`sips:` URI the receiver uses: the user (a unit's account), where to
//! reach it (host, port) and its transport. Read from `From`, `To`, `Contact` and request URIs.

use std::net::{IpAddr, SocketAddr};

/// A SIP URI, reduced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uri {
    pub secure: bool,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The `transport` parameter, lower-cased.
    pub transport: Option<String>,
}

impl Uri {
    /// Reads a bare URI or a name-addr (`"Name" <sip:…>;tag=…`).
    pub fn parse(value: &str) -> Option<Uri> {
        let v = value.trim();
        let inner = match (v.find('<'), v.find('>')) {
            (Some(a), Some(b)) if a < b => &v[a + 1..b],
            _ => v.split(';').next().unwrap_or(v),
        };
        let (secure, rest) = if let Some(r) = inner.strip_prefix("sips:") {
            (true, r)
        } else {
            (false, inner.strip_prefix("sip:")?)
        };
        let (addr, params) = rest.split_once(';').unwrap_or((rest, ""));
        let addr = addr.split('?').next().unwrap_or(addr);
        let (user, hostport) = match addr.rsplit_once('@') {
            Some((u, h)) => (Some(u.split(':').next().unwrap_or(u).to_owned()), h),
            None => (None, addr),
        };
        let (host, port) = split_hostport(hostport)?;
        if host.is_empty() {
            return None;
        }
        let transport = params.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.eq_ignore_ascii_case("transport")
                .then(|| v.to_ascii_lowercase())
        });
        Some(Uri {
            secure,
            user: user.filter(|u| !u.is_empty()),
            host: host.to_owned(),
            port,
            transport,
        })
    }

    /// The socket address when the host is an IP literal (we resolve no names: units on a
    /// LAN register with addresses, and a DNS lookup per alarm is a delay we do not need).
    pub fn socket_addr(&self, default_port: u16) -> Option<SocketAddr> {
        let ip: IpAddr = self
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        Some(SocketAddr::new(ip, self.port.unwrap_or(default_port)))
    }
}

fn split_hostport(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &s[..end + 2];
        let port = match &rest[end + 1..] {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addrs_and_bare_uris_parse() {
        let u = Uri::parse("\"Unit\" <sip:678@127.0.0.1:15061;transport=TCP>;tag=1").unwrap();
        assert_eq!(u.user.as_deref(), Some("678"));
        assert_eq!(u.port, Some(15061));
        assert_eq!(u.transport.as_deref(), Some("tcp"));
        assert_eq!(
            u.socket_addr(5060),
            Some("127.0.0.1:15061".parse().unwrap())
        );
        let b = Uri::parse("sips:arc@[::1]").unwrap();
        assert!(b.secure);
        assert_eq!(b.socket_addr(5061), Some("[::1]:5061".parse().unwrap()));
        assert_eq!(Uri::parse("tel:+441234"), None);
        assert_eq!(
            Uri::parse("sip:host.example").unwrap().socket_addr(5060),
            None
        );
    }
}

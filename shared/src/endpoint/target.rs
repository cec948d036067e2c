//! The endpoint the platform moves to, and byte-preserving edits of connection URIs:
//! only the `host:port` (and, when asked, the `user:password@`) part of a URI changes.

use std::fmt;
use std::ops::Range;

/// A database server address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// Whether `host` can be written everywhere a move writes it (URIs, `pgbouncer.ini`
    /// tokens, environment): a DNS name, an IPv4 address or an IPv6 address without
    /// brackets. Whitespace, controls and delimiters (`/@?#,'`…) would end a token or a
    /// line of `pgbouncer.ini`, or move the host within a URI.
    pub fn is_valid_host(host: &str) -> bool {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
    }

    /// Whether `host` names this endpoint's host (DNS names are case-insensitive).
    pub fn same_host(&self, host: &str) -> bool {
        self.host.eq_ignore_ascii_case(host)
    }

    /// `host:port` as it goes into a URI (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority())
    }
}

/// Byte ranges of the parts of a URI's authority.
struct UriParts {
    /// `user:password` without the `@`.
    userinfo: Option<Range<usize>>,
    /// `host:port` (brackets included for IPv6).
    hostport: Range<usize>,
    /// The host without brackets.
    host: Range<usize>,
    /// The port digits.
    port: Option<Range<usize>>,
}

fn split_uri(uri: &str) -> Option<UriParts> {
    let start = uri.find("://")? + 3;
    // Where the connection parser sees the authority (connection.rs): up to the first `?`,
    // the last `@` ends the user part (a raw `@`, `/` or `#` in a password is tolerated),
    // then the first `/` outside IPv6 brackets ends the host.
    let before_query = uri[start..].find('?').map_or(uri.len(), |i| start + i);
    let host_start = uri[start..before_query]
        .rfind('@')
        .map_or(start, |at| start + at + 1);
    let mut in_brackets = false;
    let end = uri[host_start..before_query]
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '[' => in_brackets = true,
                ']' => in_brackets = false,
                _ => {}
            }
            c == '/' && !in_brackets
        })
        .map_or(before_query, |(i, _)| host_start + i);
    let authority = &uri[start..end];
    let (userinfo, hp_start) = match authority.rfind('@') {
        Some(at) => (Some(start..start + at), start + at + 1),
        None => (None, start),
    };
    let hostport = &uri[hp_start..end];
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let close = rest.find(']')?;
        let host = hp_start + 1..hp_start + 1 + close;
        let after = &rest[close + 1..];
        let port = after.strip_prefix(':').map(|_| hp_start + close + 3..end);
        (host, port)
    } else {
        match hostport.rfind(':') {
            Some(colon) => (hp_start..hp_start + colon, Some(hp_start + colon + 1..end)),
            None => (hp_start..end, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some(UriParts {
        userinfo,
        hostport: hp_start..end,
        host,
        port,
    })
}

/// Host and port of a connection URI (`postgres://`, `postgresql://`, `db+postgresql://`);
/// a missing port is 5432. `None` if the text is not such a URI.
pub fn uri_endpoint(uri: &str) -> Option<Endpoint> {
    let parts = split_uri(uri)?;
    let port = match parts.port {
        Some(range) => uri[range].parse().ok()?,
        None => 5432,
    };
    Some(Endpoint {
        host: uri[parts.host].to_owned(),
        port,
    })
}

/// The raw (still percent-encoded) `user:password` of a URI.
pub fn uri_userinfo(uri: &str) -> Option<&str> {
    split_uri(uri)?.userinfo.map(|r| &uri[r])
}

/// Points a URI at `endpoint`, and replaces its `user:password` when `userinfo` is given.
/// Scheme, database path, query (`?schema=…`, `sslmode`) and fragment stay byte for byte.
pub fn rewrite_uri(uri: &str, endpoint: &Endpoint, userinfo: Option<&str>) -> Option<String> {
    let parts = split_uri(uri)?;
    let mut out = String::with_capacity(uri.len() + 16);
    match (userinfo, parts.userinfo) {
        (Some(new), Some(old)) => {
            out.push_str(&uri[..old.start]);
            out.push_str(new);
            out.push_str(&uri[old.end..parts.hostport.start]);
        }
        (Some(new), None) => {
            out.push_str(&uri[..parts.hostport.start]);
            out.push_str(new);
            out.push('@');
        }
        (None, _) => out.push_str(&uri[..parts.hostport.start]),
    }
    out.push_str(&endpoint.authority());
    out.push_str(&uri[parts.hostport.end..]);
    Some(out)
}

/// The URI with its password replaced by `***` (for diffs and messages).
pub fn redact_uri(uri: &str) -> String {
    let Some(parts) = split_uri(uri) else {
        return if uri.is_empty() {
            String::new()
        } else {
            "***".into()
        };
    };
    let Some(info) = parts.userinfo else {
        return uri.to_owned();
    };
    match uri[info.clone()].find(':') {
        Some(colon) => format!("{}:***{}", &uri[..info.start + colon], &uri[info.end..]),
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUSTON: &str = "postgres://astro_admin:Sup3r%21Secret@astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com:5432/astronomer_houston?schema=houston%24default";

    fn dr() -> Endpoint {
        Endpoint {
            host: "astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com".into(),
            port: 5433,
        }
    }

    #[test]
    fn keeps_path_query_and_credentials() {
        assert_eq!(
            rewrite_uri(HOUSTON, &dr(), None).unwrap(),
            "postgres://astro_admin:Sup3r%21Secret@astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com:5433/astronomer_houston?schema=houston%24default"
        );
        assert_eq!(
            rewrite_uri(HOUSTON, &dr(), Some("new%40user:p%3Ass")).unwrap(),
            "postgres://new%40user:p%3Ass@astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com:5433/astronomer_houston?schema=houston%24default"
        );
        let bootstrap = "postgres://u:p@old:5432";
        assert_eq!(
            rewrite_uri(bootstrap, &dr(), None).unwrap(),
            "postgres://u:p@astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com:5433"
        );
        assert_eq!(
            rewrite_uri("db+postgresql://u:p@h/db", &dr(), None).unwrap(),
            "db+postgresql://u:p@astro-dr.c9z8y7x6.us-west-2.rds.amazonaws.com:5433/db"
        );
    }

    #[test]
    fn reads_endpoints() {
        assert_eq!(
            uri_endpoint(HOUSTON).unwrap(),
            Endpoint {
                host: "astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com".into(),
                port: 5432
            }
        );
        assert_eq!(uri_endpoint("postgres://u@h/db").unwrap().port, 5432);
        let v6 = uri_endpoint("postgresql://u:p@[2001:db8::1]:6543/x").unwrap();
        assert_eq!(v6.host, "2001:db8::1");
        assert_eq!(v6.port, 6543);
        assert_eq!(
            rewrite_uri("postgresql://u:p@[2001:db8::1]:6543/x", &v6, None).unwrap(),
            "postgresql://u:p@[2001:db8::1]:6543/x"
        );
        assert!(uri_endpoint("k3Zq9").is_none());
        assert_eq!(uri_userinfo(HOUSTON), Some("astro_admin:Sup3r%21Secret"));
    }

    #[test]
    fn finds_the_host_where_the_connection_parser_does() {
        // Found by shared/tests/properties: a raw `#` or `/` in a password moved the host
        // the rewriter saw, so it rewrote part of the password and left the host.
        for uri in [
            "postgres://u:p#w@old.example/db",
            "postgres://u:p/w@old.example:5432/db?sslmode=require",
        ] {
            let out = rewrite_uri(uri, &dr(), None).unwrap();
            let parsed = crate::connection::PgConnection::parse(&out).unwrap();
            assert_eq!(
                (parsed.host(), parsed.port()),
                (dr().host.as_str(), 5433),
                "{out}"
            );
            assert_eq!(uri_userinfo(&out), uri_userinfo(uri));
        }
    }

    #[test]
    fn valid_hosts() {
        for h in ["db.example.com", "10.0.0.5", "2001:db8::1", "pg_1"] {
            assert!(Endpoint::is_valid_host(h), "{h}");
        }
        for h in [
            "", "a b", "a\nb", "a/b", "a@b", "a?b", "a#b", "a,b", "a'b", "[::1]",
        ] {
            assert!(!Endpoint::is_valid_host(h), "{h:?}");
        }
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_uri(HOUSTON),
            "postgres://astro_admin:***@astro-prod.c1x2y3z4.us-east-1.rds.amazonaws.com:5432/astronomer_houston?schema=houston%24default"
        );
        assert_eq!(redact_uri("k3Zq9"), "***");
        assert_eq!(redact_uri("postgres://h:5432"), "postgres://h:5432");
    }

    proptest::proptest! {
        #[test]
        fn rewrite_is_idempotent(host in "[a-z][a-z0-9.-]{0,20}", port in 1u16.., path in "(/[a-z_]{1,10})?(\\?[a-z=%0-9&]{0,20})?") {
            let uri = format!("postgres://u:p%21@old.example:5432{path}");
            let ep = Endpoint { host, port };
            let once = rewrite_uri(&uri, &ep, None).unwrap();
            proptest::prop_assert_eq!(rewrite_uri(&once, &ep, None).unwrap(), once.clone());
            proptest::prop_assert_eq!(uri_endpoint(&once).unwrap(), ep);
            proptest::prop_assert!(once.ends_with(&path));
        }
    }
}

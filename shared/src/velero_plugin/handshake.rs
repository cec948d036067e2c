//! The go-plugin handshake: the magic cookie Velero sets, and the one line a plugin
//! prints on stdout (`CORE|APP|NETWORK|ADDRESS|grpc`), with the client's own checks.

use std::fmt;

/// Environment variable of Velero's magic cookie.
pub const COOKIE_KEY: &str = "VELERO_PLUGIN";
/// Its value.
pub const COOKIE_VALUE: &str = "hello";
/// go-plugin core protocol version.
pub const CORE_PROTOCOL: u32 = 1;
/// Velero's app protocol version.
pub const APP_PROTOCOL: u32 = 2;

/// The environment go-plugin's client adds when Velero launches a plugin.
pub const VELERO_ENV: [(&str, &str); 4] = [
    (COOKIE_KEY, COOKIE_VALUE),
    ("PLUGIN_MIN_PORT", "10000"),
    ("PLUGIN_MAX_PORT", "25000"),
    ("PLUGIN_PROTOCOL_VERSIONS", "2"),
];

/// Handshake problems (plugin side: missing cookie; host side: a bad line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Run by hand, not by Velero.
    #[error(
        "this binary is a Velero plugin, not a command: Velero starts it from its plugins \
         directory (install it with `velero plugin add IMAGE`); {COOKIE_KEY} is not set to the expected value"
    )]
    NoCookie,
    /// Fewer than 4 `|`-separated fields.
    #[error("unrecognized handshake line {0:?}")]
    Unrecognized(String),
    /// A field the client rejects.
    #[error("handshake field {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// Checks the magic cookie as go-plugin servers do (the value of [`COOKIE_KEY`]).
pub fn check_cookie(value: Option<&str>) -> Result<(), HandshakeError> {
    match value {
        Some(COOKIE_VALUE) => Ok(()),
        _ => Err(HandshakeError::NoCookie),
    }
}

/// Transport of the plugin's gRPC server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A unix socket (what Go plugins use on Linux).
    Unix,
    /// `127.0.0.1:PORT`.
    Tcp,
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::Unix => "unix",
            Network::Tcp => "tcp",
        })
    }
}

/// A parsed handshake line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Transport.
    pub network: Network,
    /// Socket path or `host:port`.
    pub address: String,
}

impl Handshake {
    /// The line, without newline. Never a 6th (certificate) field: a long one makes
    /// Velero's client dereference its nil TLS config and crash the server.
    pub fn line(&self) -> String {
        format!(
            "{CORE_PROTOCOL}|{APP_PROTOCOL}|{}|{}|grpc",
            self.network, self.address
        )
    }

    /// Parses and validates a line as go-plugin v1.6's client does (as Velero configures it).
    pub fn parse(line: &str) -> Result<Self, HandshakeError> {
        let parts: Vec<&str> = line.trim().split('|').collect();
        if parts.len() < 4 {
            return Err(HandshakeError::Unrecognized(line.to_owned()));
        }
        let field = |field, reason: String| HandshakeError::Field { field, reason };
        if parts[0] != CORE_PROTOCOL.to_string() {
            return Err(field("core protocol", format!("{:?} is not 1", parts[0])));
        }
        if parts[1] != APP_PROTOCOL.to_string() {
            return Err(field("app protocol", format!("{:?} is not 2", parts[1])));
        }
        let network = match parts[2] {
            "unix" => Network::Unix,
            "tcp" => Network::Tcp,
            other => return Err(field("network", format!("{other:?} is not tcp or unix"))),
        };
        if parts[3].is_empty() {
            return Err(field("address", "empty".into()));
        }
        // Absent means netrpc, which Velero does not allow.
        if parts.get(4) != Some(&"grpc") {
            return Err(field("protocol", format!("{:?} is not grpc", parts.get(4))));
        }
        if parts.get(5).is_some_and(|cert| cert.len() > 50) {
            return Err(field(
                "server cert",
                "present: Velero has AutoMTLS off and would crash".into(),
            ));
        }
        Ok(Handshake {
            network,
            address: parts[3].to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_round_trips_and_matches_go_format() {
        let h = Handshake {
            network: Network::Unix,
            address: "/tmp/plugin123".into(),
        };
        assert_eq!(h.line(), "1|2|unix|/tmp/plugin123|grpc");
        assert_eq!(Handshake::parse(&format!("{}\n", h.line())).unwrap(), h);
        // What a Go plugin prints (empty 6th field) is accepted too.
        assert!(Handshake::parse("1|2|unix|/tmp/plugin1|grpc|").is_ok());
        assert!(Handshake::parse("1|2|tcp|127.0.0.1:10001|grpc").is_ok());
    }

    #[test]
    fn bad_lines_are_rejected() {
        for bad in [
            "",
            "hello",
            "1|2|unix",
            "2|2|unix|/s|grpc",
            "1|1|unix|/s|grpc",
            "1|2|udp|/s|grpc",
            "1|2|unix|/s",
            "1|2|unix|/s|netrpc",
            "1|2|unix||grpc",
        ] {
            assert!(Handshake::parse(bad).is_err(), "{bad:?}");
        }
        let cert = "x".repeat(51);
        assert!(Handshake::parse(&format!("1|2|unix|/s|grpc|{cert}")).is_err());
    }

    #[test]
    fn cookie() {
        assert!(check_cookie(Some("hello")).is_ok());
        assert_eq!(check_cookie(None), Err(HandshakeError::NoCookie));
        assert_eq!(check_cookie(Some("hi")), Err(HandshakeError::NoCookie));
    }
}

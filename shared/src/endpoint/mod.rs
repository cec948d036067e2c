//! `kubectl astro restore endpoint`: point the platform and every deployment at a new
//! database endpoint (or Cloud SQL instance), saving originals first; safe to re-run.

pub mod apply;
pub mod diff;
pub mod originals;
pub mod plan;
pub mod target;

use self::originals::OriginalsError;
use self::plan::{PlanError, Target};
use self::target::{Endpoint, uri_endpoint, uri_userinfo};
use crate::sqlproxy::InstanceName;

/// What the user asked to move to, as given (validated by [`target_from`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointRequest {
    /// New database host.
    pub db_host: Option<String>,
    /// New database port.
    pub db_port: Option<u16>,
    /// New admin connection URI.
    pub db_connection: Option<String>,
    /// New Cloud SQL instance.
    pub sqlproxy_instance: Option<String>,
    /// The Cloud SQL instance to replace.
    pub from_instance: Option<String>,
}

impl EndpointRequest {
    /// Whether any move was asked for.
    pub fn wants_move(&self) -> bool {
        self.db_host.is_some() || self.db_connection.is_some() || self.sqlproxy_instance.is_some()
    }
}

/// Errors of an endpoint move.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Bad flags.
    #[error("{0}")]
    Target(String),
    /// The cluster is not in a state we can plan from.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The originals file.
    #[error(transparent)]
    Originals(#[from] OriginalsError),
    /// No TTY and no `--yes`.
    #[error("refusing to change the database endpoint without confirmation (no terminal)")]
    NotConfirmed,
    /// The user said no.
    #[error("cancelled; nothing was changed")]
    Declined,
    /// Some patches failed.
    #[error("{failed} of {total} changes failed")]
    Partial {
        /// How many failed.
        failed: usize,
        /// How many were tried.
        total: usize,
    },
}

/// Builds the target from the request; `current_port` fills in a missing `--db-port`.
pub fn target_from(
    args: &EndpointRequest,
    current_port: Option<u16>,
) -> Result<Target, EndpointError> {
    let mut target = Target::default();
    let not_a_host = |flag: &str, host: &str| {
        EndpointError::Target(format!("{flag} {host:?} is not a host name or IP address"))
    };
    if let Some(host) = &args.db_host {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if !Endpoint::is_valid_host(bare) {
            return Err(not_a_host("--db-host", host));
        }
        target.endpoint = Some(Endpoint {
            host: bare.to_owned(),
            port: args.db_port.or(current_port).unwrap_or(5432),
        });
    }
    if let Some(uri) = &args.db_connection {
        let parsed = crate::connection::PgConnection::parse(uri)
            .map_err(|e| EndpointError::Target(format!("--db-connection: {e}")))?;
        if !Endpoint::is_valid_host(parsed.host()) {
            return Err(not_a_host("--db-connection host", parsed.host()));
        }
        target.endpoint = Some(Endpoint {
            host: parsed.host().to_owned(),
            port: uri_endpoint(uri).map_or(parsed.port(), |e| e.port),
        });
        target.userinfo = uri_userinfo(uri).map(str::to_owned);
    }
    if let Some(to) = &args.sqlproxy_instance {
        let to = InstanceName::parse(to).map_err(|e| EndpointError::Target(e.to_string()))?;
        let from = args
            .from_instance
            .as_deref()
            .map(InstanceName::parse)
            .transpose()
            .map_err(|e| EndpointError::Target(e.to_string()))?;
        target.sqlproxy = Some((from, to));
    }
    if target.endpoint.is_none() && target.sqlproxy.is_none() {
        return Err(EndpointError::Target("no new endpoint given".into()));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_cannot_be_written_are_refused() {
        // A decoded `%0A` would start a new line in pgbouncer.ini.
        for (db_host, db_connection) in [
            (Some("db\nhost"), None),
            (Some("db,other"), None),
            (None, Some("postgres://u:p@evil%0Ahost/db")),
        ] {
            let request = EndpointRequest {
                db_host: db_host.map(str::to_owned),
                db_connection: db_connection.map(str::to_owned),
                ..EndpointRequest::default()
            };
            assert!(
                matches!(target_from(&request, None), Err(EndpointError::Target(_))),
                "{request:?}"
            );
        }
        let request = EndpointRequest {
            db_host: Some("[2001:db8::1]".into()),
            ..EndpointRequest::default()
        };
        let target = target_from(&request, Some(6432)).unwrap();
        assert_eq!(
            target.endpoint,
            Some(Endpoint {
                host: "2001:db8::1".into(),
                port: 6432
            })
        );
    }
}

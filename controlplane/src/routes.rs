//! The config's static sessions, turned into worker commands.
//!
//! Owns the mapping from the config's named endpoints, streams and subscriptions to data-plane commands: each
//! stream goes to the worker that owns its SSRC (the one the kernel steers it to), with its source policy from
//! the endpoint (a declared address, or latching), and each subscription goes to the same worker with its
//! destination, sending socket and header rewrite. Pure: installing them is [`install`]'s job.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ringfwd_dataplane::core::{owner_of, Command, Rewrite, SourcePolicy, StreamId, SubscriptionId};
use ringfwd_tuning::{Config, EndpointSpec};

use crate::commands::{CommandClient, ExecError};

/// Clock rate given to static streams. The data plane uses a stream's clock rate only to keep timestamps
/// continuous when a subscription switches streams, which static routes never do.
pub const STATIC_CLOCK_RATE_HZ: u32 = 90_000;

/// One command and the worker it goes to, with a name for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Target worker.
    pub worker: usize,
    /// What to apply.
    pub command: Command,
    /// Config path of what it installs, e.g. `sessions[0].streams[1]`.
    pub origin: String,
}

/// Why static routes could not be planned or installed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A subscriber's address family has no media socket.
    #[error("{origin}: no media address of the same family as {dest}")]
    NoSocket {
        /// Config path.
        origin: String,
        /// The subscriber's address.
        dest: SocketAddr,
    },
    /// A worker refused or did not acknowledge.
    #[error("{origin}: {source}")]
    Install {
        /// Config path.
        origin: String,
        /// What went wrong.
        #[source]
        source: ExecError,
    },
}

/// Plans every stream, then every subscription, of the config's static sessions.
///
/// `media` are the bound media addresses (the sending socket of a subscription is the first one of its
/// destination's family); `workers` the number of workers. The config was validated, so names resolve.
pub fn plan(
    config: &Config,
    media: &[SocketAddr],
    workers: usize,
) -> Result<Vec<Planned>, RouteError> {
    let latch_window = Duration::from_millis(config.media.latch_window_ms);
    let mut planned = Vec::new();
    let mut next_stream = 1u64;
    let mut next_subscription = 1u64;
    for (si, session) in config.sessions.iter().enumerate() {
        let endpoints: HashMap<&str, &EndpointSpec> = session
            .endpoints
            .iter()
            .map(|e| (e.id.as_str(), e))
            .collect();
        let mut streams = HashMap::new();
        for (i, stream) in session.streams.iter().enumerate() {
            let id = StreamId(next_stream);
            next_stream += 1;
            let endpoint = endpoints[stream.endpoint.as_str()];
            let source = match (endpoint.latching, endpoint.address) {
                (false, Some(address)) => SourcePolicy::Fixed(address),
                (_, fallback) => SourcePolicy::Latch {
                    window: latch_window,
                    fallback,
                },
            };
            let worker = owner_of(stream.ssrc, workers);
            streams.insert(stream.id.as_str(), (id, worker));
            let command = Command::AddStream {
                id,
                ssrc: stream.ssrc,
                source,
                clock_rate_hz: STATIC_CLOCK_RATE_HZ,
            };
            planned.push(Planned {
                worker,
                command,
                origin: format!("sessions[{si}].streams[{i}]"),
            });
        }
        for (i, sub) in session.subscriptions.iter().enumerate() {
            let origin = format!("sessions[{si}].subscriptions[{i}]");
            let (stream, worker) = streams[sub.stream.as_str()];
            let dest = endpoints[sub.endpoint.as_str()]
                .address
                .expect("validated: subscribers have an address");
            let socket = media
                .iter()
                .position(|m| m.is_ipv4() == dest.is_ipv4())
                .ok_or_else(|| RouteError::NoSocket {
                    origin: origin.clone(),
                    dest,
                })?;
            let mut rewrite = Rewrite {
                out_ssrc: sub.out_ssrc,
                seq_offset: sub.seq_offset,
                ts_offset: sub.ts_offset,
                ..Rewrite::default()
            };
            for &[from, to] in &sub.payload_type_map {
                rewrite.payload_type_map[usize::from(from)] = to;
            }
            let id = SubscriptionId(next_subscription);
            next_subscription += 1;
            let command = Command::AddSubscription {
                id,
                stream,
                dest,
                socket,
                rewrite,
            };
            planned.push(Planned {
                worker,
                command,
                origin,
            });
        }
    }
    Ok(planned)
}

/// Sends each planned command, in order, and waits for every acknowledgement.
pub async fn install(client: &CommandClient, planned: Vec<Planned>) -> Result<usize, RouteError> {
    let count = planned.len();
    for p in planned {
        client
            .execute(p.worker, p.command)
            .await
            .map_err(|source| RouteError::Install {
                origin: p.origin,
                source,
            })?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::from_toml_str(
            r#"
            [[sessions]]
            id = "call"
            endpoints = [
              { id = "alice", address = "127.0.0.1:5000" },
              { id = "bob", address = "127.0.0.1:5002" },
              { id = "carol", address = "[::1]:5004" },
              { id = "dave", latching = true },
            ]
            streams = [
              { id = "a-audio", endpoint = "alice", ssrc = 11 },
              { id = "d-audio", endpoint = "dave", ssrc = 12 },
            ]
            subscriptions = [
              { stream = "a-audio", endpoint = "bob", out_ssrc = 99, payload_type_map = [[96, 100]] },
              { stream = "a-audio", endpoint = "carol" },
            ]
            "#,
        )
        .expect("valid test config")
    }

    #[test]
    fn streams_go_to_their_owner_with_their_subscriptions() {
        let media: Vec<SocketAddr> = vec![
            "127.0.0.1:40000".parse().unwrap(),
            "[::1]:40000".parse().unwrap(),
        ];
        let planned = plan(&config(), &media, 2).unwrap();
        assert_eq!(planned.len(), 4);
        assert_eq!(planned[0].worker, 1, "ssrc 11 % 2");
        assert_eq!(planned[1].worker, 0, "ssrc 12 % 2");
        assert!(matches!(
            planned[1].command,
            Command::AddStream {
                source: SourcePolicy::Latch { fallback: None, .. },
                ..
            }
        ));
        let Command::AddSubscription {
            socket,
            ref rewrite,
            dest,
            ..
        } = planned[2].command
        else {
            panic!()
        };
        assert_eq!((socket, dest), (0, "127.0.0.1:5002".parse().unwrap()));
        assert_eq!(rewrite.out_ssrc, Some(99));
        assert_eq!(rewrite.payload_type_map[96], 100);
        assert_eq!(rewrite.payload_type_map[97], 97);
        assert_eq!(planned[3].worker, 1, "subscriptions live with their stream");
        let Command::AddSubscription { socket, .. } = planned[3].command else {
            panic!()
        };
        assert_eq!(socket, 1, "IPv6 subscriber sends from the IPv6 socket");
    }

    #[test]
    fn a_family_without_a_media_socket_is_an_error_naming_the_subscription() {
        let media: Vec<SocketAddr> = vec!["127.0.0.1:40000".parse().unwrap()];
        let err = plan(&config(), &media, 1).unwrap_err();
        assert!(
            err.to_string().contains("sessions[0].subscriptions[1]"),
            "{err}"
        );
    }
}

//! Who may call what: one tower service around the whole `ringfwd.v1.Ringfwd` service that checks every call's
//! bearer token before the call reaches the service, against one table of the access each RPC needs.
//!
//! Owns [`RPC_ACCESS`] (every method of the service: [`Access::Read`] or [`Access::Write`]) and [`Authorized`],
//! which answers UNAUTHENTICATED for a missing or bad token and PERMISSION_DENIED for a read-only token on a
//! writing call, without decoding the request. A path the table does not name needs an admin token (fail closed:
//! the service itself then answers UNIMPLEMENTED). The unit test below holds the table to the proto descriptor,
//! so an RPC added to the schema cannot be served unguarded. Must never wrap the health or reflection services
//! (see [`super::probes`]), never let a call through whose token it did not verify, and never put a token into a
//! status or a log.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ringfwd_proto::v1::ringfwd_server::SERVICE_NAME;
use tonic::server::NamedService;
use tonic::Status;
use tower_service::Service;

use super::status;
use crate::auth::Verifier;

/// What an RPC does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads (Get, List, Watch, statistics, GetNodeInfo): any valid token.
    Read,
    /// Changes something: an admin token.
    Write,
}

/// The access every method of `ringfwd.v1.Ringfwd` needs, by its bare name.
pub const RPC_ACCESS: [(&str, Access); 36] = [
    ("CreateSession", Access::Write),
    ("GetSession", Access::Read),
    ("ListSessions", Access::Read),
    ("DeleteSession", Access::Write),
    ("CreateEndpoint", Access::Write),
    ("GetEndpoint", Access::Read),
    ("ListEndpoints", Access::Read),
    ("UpdateEndpoint", Access::Write),
    ("DeleteEndpoint", Access::Write),
    ("CreateStream", Access::Write),
    ("GetStream", Access::Read),
    ("ListStreams", Access::Read),
    ("UpdateStream", Access::Write),
    ("DeleteStream", Access::Write),
    ("GetStreamStats", Access::Read),
    ("GetSessionStats", Access::Read),
    ("GetEndpointStats", Access::Read),
    ("CreateSubscription", Access::Write),
    ("GetSubscription", Access::Read),
    ("ListSubscriptions", Access::Read),
    ("UpdateSubscription", Access::Write),
    ("DeleteSubscription", Access::Write),
    ("GetNodeInfo", Access::Read),
    ("LocateStream", Access::Read),
    ("RelaySubscribe", Access::Write),
    ("ListRelays", Access::Read),
    ("RelayCancel", Access::Write),
    ("RelayFinish", Access::Write),
    ("Drain", Access::Write),
    ("LoadPlugin", Access::Write),
    ("UnloadPlugin", Access::Write),
    ("SetMetadata", Access::Write),
    ("DeleteMetadata", Access::Write),
    ("GetMetadata", Access::Read),
    ("WatchMetadata", Access::Read),
    ("WatchEvents", Access::Read),
];

/// The access a request for `path` (`/ringfwd.v1.Ringfwd/<Method>`) needs: the table's, else [`Access::Write`].
pub fn access_of(path: &str) -> Access {
    let method = path.strip_prefix('/').and_then(|p| p.strip_prefix(SERVICE_NAME)).and_then(|p| p.strip_prefix('/'));
    method.and_then(|m| RPC_ACCESS.iter().find(|(name, _)| *name == m)).map_or(Access::Write, |(_, access)| *access)
}

/// Whether the `authorization` header value grants `access` at `now_unix_s`; the refusal as the status to answer.
pub fn check(verifier: &Verifier, header: Option<&str>, access: Access, now_unix_s: u64) -> Result<(), Status> {
    let claims = verifier.verify(header, now_unix_s).map_err(status::auth)?;
    if access == Access::Write && !claims.grant.allows_write() {
        return Err(Status::permission_denied(format!(
            "token of {:?} has the read-only grant; this call needs an admin token",
            claims.sub
        )));
    }
    Ok(())
}

/// `S` (the `ringfwd.v1.Ringfwd` server) behind the token check of [`check`], by [`access_of`] the request path.
#[derive(Clone)]
pub struct Authorized<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S> Authorized<S> {
    /// `inner`, its calls checked against `verifier`.
    pub fn new(inner: S, verifier: Arc<Verifier>) -> Self {
        Authorized { inner, verifier }
    }
}

impl<S: NamedService> NamedService for Authorized<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for Authorized<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let access = access_of(request.uri().path());
        match check(&self.verifier, header, access, crate::clock::unix_s()) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(refused) => Box::pin(std::future::ready(Ok(refused.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::{mint, Grant, Keys};

    #[test]
    fn every_method_of_the_service_has_an_entry_and_every_entry_a_method() {
        let pool = prost_reflect::DescriptorPool::decode(ringfwd_proto::FILE_DESCRIPTOR_SET).expect("descriptor");
        let service = pool.get_service_by_name(SERVICE_NAME).expect("the API service");
        let methods: Vec<String> = service.methods().map(|m| m.name().to_owned()).collect();
        for method in &methods {
            let entries = RPC_ACCESS.iter().filter(|(name, _)| name == method).count();
            assert_eq!(entries, 1, "{method} needs exactly one entry in RPC_ACCESS");
        }
        for (name, _) in RPC_ACCESS {
            assert!(methods.iter().any(|m| m == name), "RPC_ACCESS names {name}, which the service does not have");
        }
    }

    #[test]
    fn paths_map_to_their_access_and_anything_else_needs_admin() {
        assert_eq!(access_of("/ringfwd.v1.Ringfwd/GetSession"), Access::Read);
        assert_eq!(access_of("/ringfwd.v1.Ringfwd/Drain"), Access::Write);
        assert_eq!(access_of("/ringfwd.v1.Ringfwd/NoSuchCall"), Access::Write);
        assert_eq!(access_of("/other.Service/GetSession"), Access::Write);
        assert_eq!(access_of("/ringfwd.v1.RingfwdGetSession"), Access::Write);
        assert_eq!(access_of(""), Access::Write);
    }

    #[test]
    fn tokens_are_checked_for_the_access() {
        let (keys, id) = Keys::generate_dev();
        let now = 1_700_000_000;
        let ttl = Duration::from_secs(60);
        let admin = format!("Bearer {}", mint(&keys, &id, Grant::Admin, "a", ttl, now).expect("mint"));
        let reader = format!("Bearer {}", mint(&keys, &id, Grant::ReadOnly, "r", ttl, now).expect("mint"));
        let verifier = Verifier::new(keys);
        let code = |header: Option<&str>, access| check(&verifier, header, access, now).map_err(|s| s.code());
        assert_eq!(code(Some(&admin), Access::Write), Ok(()));
        assert_eq!(code(Some(&reader), Access::Read), Ok(()));
        assert_eq!(code(Some(&reader), Access::Write), Err(tonic::Code::PermissionDenied));
        assert_eq!(code(None, Access::Read), Err(tonic::Code::Unauthenticated));
        assert_eq!(code(Some("Bearer garbage"), Access::Read), Err(tonic::Code::Unauthenticated));
    }
}

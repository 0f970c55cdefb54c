//! The standard gRPC services beside the API on its listener: health checking (`grpc.health.v1.Health`) for
//! Kubernetes gRPC probes and `grpc_health_probe`, and server reflection (`grpc.reflection.v1` and `v1alpha`)
//! for `grpcurl` and other generic clients.
//!
//! Owns the serving status of the overall server (`""`) and of `ringfwd.v1.Ringfwd`: SERVING while the daemon
//! is up, NOT_SERVING while it drains (the `Drain` RPC; cancelling the drain makes it SERVING again) and, for
//! good, once shutdown has begun. The status is written under the registry lock, so it follows the order of
//! the `Drain` calls. Neither service asks for a token: a probe carries none, the status says no more than
//! whether a connection would be worth it, and reflection answers only the public schema. They are separate
//! gRPC services, so the token check of `ringfwd.v1.Ringfwd` (the [`super::auth`] layer around that service
//! alone) is not weakened by them. Must never serve anything of the registry, the config or the keys.

use std::sync::atomic::{AtomicBool, Ordering};

use ringfwd_proto::v1::ringfwd_server::SERVICE_NAME as API_SERVICE;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use super::Api;

/// The services whose status [`HealthStatus`] reports: the overall server (`""`) and the API.
pub const REPORTED_SERVICES: [&str; 2] = ["", API_SERVICE];

/// The fully qualified methods (`<service>/<method>`) of the services this module adds, for the request
/// metrics.
pub const METHODS: [&str; 4] = [
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Why the reflection services could not be built from the compiled-in descriptor sets.
#[derive(Debug, thiserror::Error)]
#[error("gRPC server reflection: {0}")]
pub struct ReflectionError(#[from] tonic_reflection::server::Error);

/// The health status the `grpc.health.v1.Health` service answers.
#[derive(Debug)]
pub struct HealthStatus {
    reporter: HealthReporter,
    /// Set once shutdown has begun; never cleared.
    stopping: AtomicBool,
    /// Set when the API starts serving.
    open: AtomicBool,
}

impl HealthStatus {
    /// A status that answers SERVING for the overall server only, until [`HealthStatus::publish`] runs.
    pub fn new() -> HealthStatus {
        HealthStatus { reporter: HealthReporter::new(), stopping: AtomicBool::new(false), open: AtomicBool::new(false) }
    }

    /// Answers SERVING for every reported service when the daemon is not `draining` and not stopping, and
    /// NOT_SERVING otherwise; watchers see the change.
    pub async fn publish(&self, draining: bool) {
        let serving = !draining && !self.stopping.load(Ordering::Acquire);
        let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
        for service in REPORTED_SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
    }

    /// The `grpc.health.v1.Health` service answering this status.
    fn server(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService::from_health_reporter(self.reporter.clone()))
    }
}

impl Default for HealthStatus {
    fn default() -> Self {
        HealthStatus::new()
    }
}

impl Api {
    /// Publishes the health status of the current draining state (under the registry lock).
    pub(super) async fn publish_health(&self) {
        let registry = self.registry.lock().await;
        self.health.publish(registry.draining()).await;
    }

    /// Marks shutdown as begun: from now on every reported service is NOT_SERVING, whatever `Drain` says.
    pub async fn begin_shutdown(&self) {
        let registry = self.registry.lock().await;
        self.health.stopping.store(true, Ordering::Release);
        self.health.publish(registry.draining()).await;
    }
}

/// The health service, its status published for the current state; from now on the API counts as open.
pub(super) async fn health_service(api: &Api) -> HealthServer<HealthService> {
    api.publish_health().await;
    api.health.open.store(true, Ordering::Release);
    api.health.server()
}

impl Api {
    /// Why this node should not be given new work now, `None` when it may: the API not serving yet, shutdown
    /// begun, or draining (the HTTP `/readyz` probe answers this; the gRPC health service says the same).
    pub async fn not_ready(&self) -> Option<&'static str> {
        if !self.health.open.load(Ordering::Acquire) {
            return Some("the API is not serving yet");
        }
        if self.health.stopping.load(Ordering::Acquire) {
            return Some("shutting down");
        }
        if self.registry.lock().await.draining() {
            return Some("draining: new sessions are refused");
        }
        None
    }
}

/// The v1 and v1alpha reflection services, describing the API, the health service and reflection itself.
pub(super) fn reflection_services() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    ReflectionError,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(ringfwd_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_method_names_are_those_of_the_services() {
        use tonic::server::NamedService;
        let health = <HealthServer<HealthService> as NamedService>::NAME;
        let (v1, v1alpha) = reflection_services().expect("the compiled-in descriptors are valid");
        fn name_of<S: NamedService>(_: &S) -> &'static str {
            S::NAME
        }
        let expected = [
            format!("{health}/Check"),
            format!("{health}/Watch"),
            format!("{}/ServerReflectionInfo", name_of(&v1)),
            format!("{}/ServerReflectionInfo", name_of(&v1alpha)),
        ];
        assert_eq!(METHODS.map(String::from), expected);
    }

    #[tokio::test]
    async fn draining_and_stopping_are_not_serving_and_stopping_is_final() {
        use tonic_health::pb::health_server::Health;
        let status = HealthStatus::new();
        let server = HealthService::from_health_reporter(status.reporter.clone());
        let check = |service: &str| {
            let request = tonic::Request::new(tonic_health::pb::HealthCheckRequest { service: service.into() });
            let server = &server;
            async move { server.check(request).await.map(|r| r.into_inner().status) }
        };
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;
        status.publish(false).await;
        for service in REPORTED_SERVICES {
            assert_eq!(check(service).await.expect("reported"), serving, "{service:?}");
        }
        status.publish(true).await;
        for service in REPORTED_SERVICES {
            assert_eq!(check(service).await.expect("reported"), not_serving, "{service:?}");
        }
        status.publish(false).await;
        assert_eq!(check(API_SERVICE).await.expect("reported"), serving);
        status.stopping.store(true, Ordering::Release);
        status.publish(false).await;
        for service in REPORTED_SERVICES {
            assert_eq!(check(service).await.expect("reported"), not_serving, "{service:?}");
        }
        assert_eq!(check("other.Service").await.expect_err("unknown").code(), tonic::Code::NotFound);
    }
}

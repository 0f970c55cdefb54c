#!/usr/bin/env python3
"""A standard third-party gRPC client of ringfwd's health service and server reflection, for the end-to-end
test tests/tests/api_health.rs: Python's grpcio with grpcio-health-checking and grpcio-reflection (installed
into a project-local venv by tests/scripts/install-grpc-python.sh). It sends no token, ever.

Usage: grpc_probe.py [TLS OPTIONS] HOST:PORT COMMAND [ARGS]

TLS options (without them the channel is plaintext):
  --ca FILE          TLS: verify the server against the CA certificates (PEM) in FILE
                     (grpc.ssl_channel_credentials(root_certificates=...))
  --cert FILE        mutual TLS: this client certificate chain (PEM); needs --key
  --key FILE         the private key (PEM) of --cert

Commands (each prints JSON lines on stdout, one per observation, and exits 0 unless the client itself fails):
  check              Health/Check of "" and "ringfwd.v1.Ringfwd":
                     {"check": SERVICE, "status": "SERVING" | "NOT_SERVING" | ...} or {"check": ..., "code": CODE}
  reflect            For reflection v1 and v1alpha, the services listed:
                     {"reflection": "v1" | "v1alpha", "services": [...]} or {"reflection": ..., "code": CODE};
                     then, through grpcio-reflection's descriptor database (v1alpha), the file that defines
                     ringfwd.v1.Ringfwd: {"service": ..., "file": NAME, "methods": [...]}
  no-token           ringfwd.v1.Ringfwd/GetNodeInfo without a token: {"call": PATH, "code": CODE, "details": ...}
  watch SERVICE N    Health/Watch of SERVICE: {"watch": SERVICE, "status": ...} per update, until N updates
                     were seen or the stream ends ({"watch": SERVICE, "end": CODE}); gives up after 60 s.
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

API_SERVICE = "ringfwd.v1.Ringfwd"
# Every call is bounded: a unary call, a reflection exchange and a whole watch.
RPC_TIMEOUT_S = 10
WATCH_TIMEOUT_S = 60
# The v1 and v1alpha reflection messages are identical on the wire, so the v1alpha classes serve both.
REFLECTION_PATHS = {
    "v1": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "v1alpha": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}


def emit(record):
    print(json.dumps(record, sort_keys=True), flush=True)


def status_name(status):
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def check(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", API_SERVICE):
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=RPC_TIMEOUT_S)
            emit({"check": service, "status": status_name(response.status)})
        except grpc.RpcError as error:
            emit({"check": service, "code": error.code().name, "details": error.details()})


def reflect(channel):
    for version, path in REFLECTION_PATHS.items():
        call = channel.stream_stream(
            path,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        try:
            responses = list(call(iter([request]), timeout=RPC_TIMEOUT_S))
            services = [s.name for r in responses for s in r.list_services_response.service]
            emit({"reflection": version, "services": sorted(services)})
        except grpc.RpcError as error:
            emit({"reflection": version, "code": error.code().name, "details": error.details()})
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName(API_SERVICE)
    emit({"service": service.full_name, "file": service.file.name, "methods": [m.name for m in service.methods]})


def no_token(channel):
    path = "/" + API_SERVICE + "/GetNodeInfo"
    call = channel.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        call(b"", timeout=RPC_TIMEOUT_S)
        emit({"call": path, "code": "OK"})
    except grpc.RpcError as error:
        emit({"call": path, "code": error.code().name, "details": error.details()})


def watch(channel, service, updates):
    stub = health_pb2_grpc.HealthStub(channel)
    stream = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=WATCH_TIMEOUT_S)
    seen = 0
    try:
        for response in stream:
            emit({"watch": service, "status": status_name(response.status)})
            seen += 1
            if seen >= updates:
                stream.cancel()
                return
        emit({"watch": service, "end": "OK"})
    except grpc.RpcError as error:
        emit({"watch": service, "end": error.code().name, "details": error.details()})


TLS_OPTIONS = ("--ca", "--cert", "--key")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def channel_for(address, tls):
    """A plaintext channel, or a TLS one when --ca was given (with a client certificate when --cert/--key were)."""
    if not tls:
        return grpc.insecure_channel(address)
    if "--ca" not in tls or ("--cert" in tls) != ("--key" in tls):
        sys.exit("grpc_probe.py: TLS needs --ca, and --cert and --key go together\n%s" % __doc__)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(tls["--ca"]),
        private_key=read(tls["--key"]) if "--key" in tls else None,
        certificate_chain=read(tls["--cert"]) if "--cert" in tls else None,
    )
    return grpc.secure_channel(address, credentials)


def main(argv):
    argv = list(argv)
    tls = {}
    while len(argv) > 2 and argv[1] in TLS_OPTIONS:
        tls[argv[1]] = argv[2]
        del argv[1:3]
    if len(argv) < 3:
        sys.exit(__doc__)
    address, command, args = argv[1], argv[2], argv[3:]
    with channel_for(address, tls) as channel:
        if command == "check" and not args:
            check(channel)
        elif command == "reflect" and not args:
            reflect(channel)
        elif command == "no-token" and not args:
            no_token(channel)
        elif command == "watch" and len(args) == 2 and args[1].isdigit() and int(args[1]) > 0:
            watch(channel, args[0], int(args[1]))
        else:
            sys.exit("grpc_probe.py: bad command %r\n%s" % (argv[2:], __doc__))


if __name__ == "__main__":
    main(sys.argv)

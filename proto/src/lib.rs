//! The ringfwd control API schema: the single source of truth for the wire between a signaling controller and
//! ringfwd.
//!
//! Owns the versioned protobuf package `ringfwd.v1` (`proto/ringfwd/v1/ringfwd.proto`, where every field's
//! meaning, unit and limits are documented) and the Rust types and tonic client/server generated from it at
//! build time by a pure-Rust protobuf compiler (no system `protoc`). Nothing in this crate does I/O.

#![forbid(unsafe_code)]

/// The API package name every message and service of the schema lives in.
pub const API_PACKAGE: &str = "ringfwd.v1";

/// The compiled schema (a serialized `FileDescriptorSet`), for gRPC server reflection and the protobuf JSON
/// mapping.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ringfwd_v1_descriptor.bin"));

/// Generated messages, client and server of `ringfwd.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("ringfwd.v1");
}

#[cfg(test)]
mod tests {
    use super::v1;
    use prost::Message;

    #[test]
    fn messages_round_trip_on_the_wire() {
        let request = v1::CreateSubscriptionRequest {
            session_id: "call".into(),
            subscription_id: "bob-video".into(),
            stream_id: "alice-video".into(),
            endpoint_id: "bob".into(),
            out_ssrc: 7,
            payload_type_map: vec![v1::PayloadTypeMapping { from: 96, to: 100 }],
            paused: true,
            interceptors: Some(v1::InterceptorChain { names: vec!["stats".into(), "sender_reports".into()] }),
            rtx: Some(v1::Rtx { ssrc: 0xabc, payload_type: 97 }),
        };
        let bytes = request.encode_to_vec();
        assert_eq!(v1::CreateSubscriptionRequest::decode(bytes.as_slice()).unwrap(), request);
    }

    #[test]
    fn the_descriptor_set_describes_the_service() {
        let fds = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        let file = fds.file.iter().find(|f| f.package() == super::API_PACKAGE).expect("ringfwd.v1");
        assert!(file.service.iter().any(|s| s.name() == "Ringfwd"));
    }

    #[test]
    fn watch_metadata_is_server_streaming_and_creates_carry_metadata() {
        let fds = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        let file = fds.file.iter().find(|f| f.package() == super::API_PACKAGE).expect("ringfwd.v1");
        let service = file.service.iter().find(|s| s.name() == "Ringfwd").expect("Ringfwd");
        let watch = service.method.iter().find(|m| m.name() == "WatchMetadata").expect("WatchMetadata");
        assert!(watch.server_streaming() && !watch.client_streaming());
        for create in ["CreateSessionRequest", "CreateEndpointRequest", "CreateStreamRequest"] {
            let message = file.message_type.iter().find(|m| m.name() == create).expect(create);
            assert!(message.field.iter().any(|f| f.name() == "metadata"), "{create} has no metadata");
        }
    }
}

//! Why the registry refused a request.
//!
//! Owns [`RegistryError`]: one variant per gRPC status class the API answers with, each carrying what the
//! caller needs to fix its request (the protobuf field and the reason, the kind and id, the config key of a
//! limit and its value). Must never carry an internal index or anything the client did not name.

/// A refused registry request. Every variant maps to one gRPC status of the same name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A request field is malformed or contradicts the registry (`INVALID_ARGUMENT`).
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The protobuf request field, e.g. `media_address` or `payload_type_map[1].to`.
        field: String,
        /// What is wrong with it, with the offending value.
        reason: String,
    },
    /// A named resource does not exist (`NOT_FOUND`).
    #[error("{kind} {id} not found")]
    NotFound {
        /// `session`, `endpoint`, `stream` or `subscription`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The resource exists with a different spec, or the SSRC is taken (`ALREADY_EXISTS`).
    #[error("{kind} {id} already exists{}", if *.kind == "ssrc" { " on this node" } else { " with a different spec" })]
    AlreadyExists {
        /// `session`, `endpoint`, `stream`, `subscription` or `ssrc`.
        kind: &'static str,
        /// The id (or the SSRC, in decimal).
        id: String,
    },
    /// An admission limit is reached (`RESOURCE_EXHAUSTED`).
    #[error("limit {limit} = {value} reached")]
    ResourceExhausted {
        /// The config key of the limit, e.g. `admission.max_sessions`.
        limit: &'static str,
        /// Its configured value.
        value: u32,
    },
    /// The request is valid but the registry's state does not allow it (`FAILED_PRECONDITION`).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The node refuses this for now, e.g. new sessions while draining (`UNAVAILABLE`).
    #[error("{0}")]
    Unavailable(String),
}

impl RegistryError {
    /// An `InvalidArgument` for `field`.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> RegistryError {
        RegistryError::InvalidArgument { field: field.into(), reason: reason.into() }
    }

    /// A `NotFound` for the `kind` named `id`.
    pub(crate) fn not_found(kind: &'static str, id: &str) -> RegistryError {
        RegistryError::NotFound { kind, id: id.to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field_the_id_and_the_limit() {
        assert_eq!(
            RegistryError::invalid("payload_type_map[1].to", "200 is not below 128").to_string(),
            "invalid payload_type_map[1].to: 200 is not below 128"
        );
        assert_eq!(RegistryError::not_found("stream", "cam").to_string(), "stream cam not found");
        assert_eq!(
            RegistryError::AlreadyExists { kind: "endpoint", id: "alice".into() }.to_string(),
            "endpoint alice already exists with a different spec"
        );
        assert_eq!(
            RegistryError::AlreadyExists { kind: "ssrc", id: "1234".into() }.to_string(),
            "ssrc 1234 already exists on this node"
        );
        assert_eq!(
            RegistryError::ResourceExhausted { limit: "admission.max_sessions", value: 3 }.to_string(),
            "limit admission.max_sessions = 3 reached"
        );
    }
}

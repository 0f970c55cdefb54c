//! Why a metadata write was refused.
//!
//! Owns [`MetadataError`]: one variant per reason, each naming the key (or the limit and its config key) and
//! the offending value, so the API can answer with the right status and the controller can fix its request.
//! Must never carry a value's content (it may be large or private): sizes only.

use super::version::Version;

/// A refused metadata write.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The key breaks the syntax, is too long or is reserved (`INVALID_ARGUMENT`).
    #[error("invalid metadata key {key:?}: {reason}")]
    InvalidKey {
        /// The key as written.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The value is longer than `metadata.max_value_bytes` (`INVALID_ARGUMENT`).
    #[error("value of metadata key {key:?} has {bytes} bytes, more than metadata.max_value_bytes = {limit}")]
    ValueTooLong {
        /// Its key.
        key: String,
        /// Its length.
        bytes: usize,
        /// `metadata.max_value_bytes`.
        limit: usize,
    },
    /// The write as a whole is malformed: empty, a key twice, a set-once deletion (`INVALID_ARGUMENT`).
    #[error("invalid metadata write: {0}")]
    InvalidWrite(String),
    /// The object's live metadata would exceed `metadata.max_object_bytes` (`RESOURCE_EXHAUSTED`).
    #[error("limit metadata.max_object_bytes = {limit} reached: the object's metadata would take {needed} bytes")]
    ObjectFull {
        /// `metadata.max_object_bytes`.
        limit: usize,
        /// What the write would make it.
        needed: usize,
    },
    /// A compare-and-set found another version (`FAILED_PRECONDITION`).
    #[error("metadata key {key:?} is at version {current}, not the expected {expected}")]
    VersionMismatch {
        /// The key.
        key: String,
        /// The version the write expected.
        expected: Version,
        /// The key's current version ([`Version::ZERO`]: not set).
        current: Version,
    },
    /// The key is set-once and already written (`FAILED_PRECONDITION`).
    #[error("metadata key {key:?} is set-once: it was written at version {current} and cannot change")]
    SetOnce {
        /// The key.
        key: String,
        /// Its version.
        current: Version,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_key_the_limit_and_the_version() {
        let v = Version { wall_us: 5, counter: 1, node_id: 2 };
        let e = MetadataError::VersionMismatch { key: "app.a".into(), expected: Version::ZERO, current: v };
        assert_eq!(e.to_string(), "metadata key \"app.a\" is at version 5.1.2, not the expected 0.0.0");
        let e = MetadataError::ObjectFull { limit: 100, needed: 101 };
        assert!(e.to_string().contains("metadata.max_object_bytes = 100"));
        let e = MetadataError::SetOnce { key: "sip.call_id".into(), current: v };
        assert!(e.to_string().contains("\"sip.call_id\"") && e.to_string().contains("5.1.2"));
    }
}

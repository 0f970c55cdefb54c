//! The gRPC status of every error the API can answer with.

use tonic::Status;

use crate::auth::AuthError;
use crate::commands::ExecError;
use crate::metadata::MetadataError;
use crate::registry::RegistryError;

/// A registry refusal: the status class it names, with its message.
pub fn registry(e: RegistryError) -> Status {
    let message = e.to_string();
    match e {
        RegistryError::InvalidArgument { .. } => Status::invalid_argument(message),
        RegistryError::NotFound { .. } => Status::not_found(message),
        RegistryError::AlreadyExists { .. } => Status::already_exists(message),
        RegistryError::ResourceExhausted { .. } => Status::resource_exhausted(message),
        RegistryError::FailedPrecondition(_) => Status::failed_precondition(message),
        RegistryError::Unavailable(_) => Status::unavailable(message),
    }
}

/// A worker that did not apply a command.
pub fn exec(e: ExecError) -> Status {
    let message = e.to_string();
    match e {
        ExecError::Timeout { .. } => Status::deadline_exceeded(message),
        ExecError::RingFull { .. } | ExecError::NoWorker { .. } => Status::unavailable(message),
        // The registry validated the request, so a refusal here is an internal inconsistency.
        ExecError::Refused { .. } => Status::internal(message),
    }
}

/// A missing or bad token.
pub fn auth(e: AuthError) -> Status {
    Status::unauthenticated(e.to_string())
}

/// An invalid request field.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("invalid {field}: {reason}"))
}

/// A refused metadata write: the key or the limit it names, with the current version where there is one.
pub fn metadata(e: MetadataError) -> Status {
    let message = e.to_string();
    match e {
        MetadataError::InvalidKey { .. } | MetadataError::ValueTooLong { .. } | MetadataError::InvalidWrite(_) => {
            Status::invalid_argument(message)
        }
        MetadataError::ObjectFull { .. } => Status::resource_exhausted(message),
        MetadataError::VersionMismatch { .. } | MetadataError::SetOnce { .. } => Status::failed_precondition(message),
    }
}

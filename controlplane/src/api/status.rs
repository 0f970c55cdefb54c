//! The gRPC status of every error the API can answer with.
//!
//! Every message is cut to [`MAX_MESSAGE_BYTES`]: a refused value is named in it, and a value of a megabyte echoed
//! whole would make the status larger than the client accepts in a header (so it would see a transport error in
//! place of the field's name).

use tonic::Status;

use crate::auth::AuthError;
use crate::commands::ExecError;
use crate::metadata::MetadataError;
use crate::registry::RegistryError;

/// The longest status message sent, in bytes (the field's name and the reason come first).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `message`, cut at a character boundary to at most [`MAX_MESSAGE_BYTES`] with a note of its full length.
fn bounded(message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let note = format!("… (cut, {} bytes in all)", message.len());
    let mut end = MAX_MESSAGE_BYTES - note.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{note}", &message[..end])
}

/// A registry refusal: the status class it names, with its message.
pub fn registry(e: RegistryError) -> Status {
    let message = bounded(e.to_string());
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
    let message = bounded(e.to_string());
    match e {
        ExecError::Timeout { .. } => Status::deadline_exceeded(message),
        ExecError::RingFull { .. } | ExecError::NoWorker { .. } => Status::unavailable(message),
        // The registry validated the request, so a refusal here is an internal inconsistency.
        ExecError::Refused { .. } => Status::internal(message),
    }
}

/// A missing or bad token.
pub fn auth(e: AuthError) -> Status {
    Status::unauthenticated(bounded(e.to_string()))
}

/// A precondition that does not hold, with `message` cut to the bound.
pub fn failed_precondition(message: String) -> Status {
    Status::failed_precondition(bounded(message))
}

/// An invalid request field.
pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(bounded(format!("invalid {field}: {reason}")))
}

/// A refused metadata write: the key or the limit it names, with the current version where there is one.
pub fn metadata(e: MetadataError) -> Status {
    let message = bounded(e.to_string());
    match e {
        MetadataError::InvalidKey { .. } | MetadataError::ValueTooLong { .. } | MetadataError::InvalidWrite(_) => {
            Status::invalid_argument(message)
        }
        MetadataError::ObjectFull { .. } => Status::resource_exhausted(message),
        MetadataError::VersionMismatch { .. } | MetadataError::SetOnce { .. } => Status::failed_precondition(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary_with_their_length() {
        assert_eq!(bounded("invalid x: short".into()), "invalid x: short");
        let long = format!("invalid media_address: {}", "é".repeat(600_000));
        let cut = bounded(long.clone());
        assert!(cut.len() <= MAX_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.starts_with("invalid media_address: é"));
        assert!(cut.ends_with(&format!("(cut, {} bytes in all)", long.len())), "{cut}");
    }
}

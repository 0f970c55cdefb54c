//! Who may call what: every RPC needs a valid bearer token; writes need an admin grant.

use tonic::{Request, Status};

use super::status;
use super::Api;

/// What an RPC does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Get, List, GetNodeInfo: any valid token.
    Read,
    /// Everything else: an admin token.
    Write,
}

impl Api {
    /// Checks the request's bearer token for `access`.
    pub(super) fn authorize<T>(&self, request: &Request<T>, access: Access) -> Result<(), Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let now = crate::clock::unix_s();
        let claims = self.verifier.verify(header, now).map_err(status::auth)?;
        if access == Access::Write && !claims.grant.allows_write() {
            return Err(Status::permission_denied(format!(
                "token of {:?} has the read-only grant; this call needs an admin token",
                claims.sub
            )));
        }
        Ok(())
    }
}

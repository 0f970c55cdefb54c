//! Bearer tokens of the control API: minting, verifying and the development key.
//!
//! A token is a JWT signed with HMAC-SHA256 (`HS256`); its `kid` header names the key that
//! signed it and its claims are [`Claims`]: a subject, a [`Grant`] (admin or read-only), when
//! it was issued and when it expires. Keys come from `[[auth.keys]]` ([`Keys::from_config`]) or,
//! when there are none, from a development key the daemon generates at start
//! ([`Keys::generate_dev`]), whose token it writes to the development token file ([`dev`]).
//!
//! - [`token`]: [`Grant`], [`Claims`], [`mint`] and [`Verifier`]; sans-IO, time passed in.
//! - [`keys`]: [`Keys`], the key id → secret table.
//! - [`dev`]: writing and reading the development token file; [`private_dir`]: its directory, private to the
//!   daemon's user or refused (the only file I/O here). Where the file is: `ringfwd_tuning::dev_token`.
//! - [`cli`]: the `ringfwd token` subcommand.
//! - [`error`]: the error type, [`AuthError`].
//!
//! This module never logs, and never puts a secret or a token into an error, a `Debug` output
//! or a log line: error messages may reach clients and logs as they are.

pub mod cli;
pub mod dev;
pub mod error;
pub mod keys;
pub mod private_dir;
pub mod token;

pub use cli::{run, TokenArgs};
pub use dev::{read_dev_token, write_dev_token};
pub use error::AuthError;
pub use keys::Keys;
pub use private_dir::DevTokenError;
pub use token::{mint, Claims, Grant, Verifier};

//! Config texts the end-to-end tests share.

use std::net::SocketAddr;

/// A config with one IPv4 media address on a free port, then `extra` (more TOML sections, may be empty), then one
/// session: endpoint `pub` publishing stream `s` with `ssrc` from `publisher` (or latching when `None`), and
/// endpoint `sub` at `subscriber` subscribed to it.
pub fn one_stream(extra: &str, publisher: Option<SocketAddr>, subscriber: SocketAddr, ssrc: u32) -> String {
    let source = match publisher {
        Some(address) => format!("address = \"{address}\", latching = false"),
        None => "latching = true".to_string(),
    };
    format!(
        "[media]\naddresses = [\"127.0.0.1:0\"]\n{extra}\n\
         [[sessions]]\nid = \"call\"\n\
         endpoints = [ {{ id = \"pub\", {source} }}, {{ id = \"sub\", address = \"{subscriber}\" }} ]\n\
         streams = [ {{ id = \"s\", endpoint = \"pub\", ssrc = {ssrc} }} ]\n\
         subscriptions = [ {{ stream = \"s\", endpoint = \"sub\" }} ]\n"
    )
}

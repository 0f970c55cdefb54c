//! The registry's side of loading and unloading plugins at run time.
//!
//! Owns reading and replacing the registered plugins every chain is checked against, and [`Registry::chains_naming`]
//! (which streams and subscriptions name a plugin, so that one still named is never unloaded). Must never load or
//! compile anything (the API does, outside the registry lock) nor talk to the workers.

use ringfwd_dataplane::control::Plugins;
use ringfwd_tuning::ChainName;

use super::Registry;

impl Registry {
    /// The registered plugins chains are checked against.
    pub fn plugins(&self) -> &Plugins {
        &self.interceptors.plugins
    }

    /// Checks chains against `plugins` from now on (a plugin was loaded or unloaded; the workers have it already).
    pub fn set_plugins(&mut self, plugins: Plugins) {
        self.interceptors.plugins = plugins;
    }

    /// Every stream and subscription whose chain names plugin `name`, as `stream S/X ingress` and
    /// `subscription S/X egress` (sessions, then objects, in id order).
    pub fn chains_naming(&self, name: &str) -> Vec<String> {
        let names = |chain: &[ChainName]| chain.iter().any(|c| c.plugin_name() == Some(name));
        let mut found = Vec::new();
        for (session_id, session) in &self.sessions {
            for (stream_id, stream) in &session.streams {
                if names(&stream.interceptors) {
                    found.push(format!("stream {session_id}/{stream_id} ingress"));
                }
            }
            for (subscription_id, subscription) in &session.subscriptions {
                if names(&subscription.interceptors) {
                    found.push(format!("subscription {session_id}/{subscription_id} egress"));
                }
            }
        }
        found
    }
}

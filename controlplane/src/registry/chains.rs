//! What the registry builds chains from: the `[interceptors]` parameters, the native plugins this binary
//! registered, and the default chains checked against them.
//!
//! Owns [`Chains`]. The default chains are resolved once, when the registry is made ([`Chains::new`] refuses a
//! config whose chains name a plugin this binary does not register, naming the key); every request's chain is
//! checked by the same function ([`ringfwd_tuning::resolve_chain`]) in `validate`. Must never change after the
//! registry is made.

use ringfwd_dataplane::control::Plugins;
use ringfwd_tuning::{ChainName, ConfigError, Interceptors};

/// The chain context of one registry.
#[derive(Debug, Clone)]
pub struct Chains {
    /// Every built-in's parameters (`[interceptors]`).
    pub params: Interceptors,
    /// The registered plugins.
    pub plugins: Plugins,
    /// The default ingress chain, in run order.
    pub ingress: Vec<ChainName>,
    /// The default egress chain, in run order.
    pub egress: Vec<ChainName>,
}

impl Chains {
    /// The config's chains, checked against `plugins`.
    pub fn new(params: Interceptors, plugins: Plugins) -> Result<Chains, ConfigError> {
        let (ingress, egress) = params.resolve_defaults(Some(&plugins))?;
        Ok(Chains { params, plugins, ingress, egress })
    }
}

impl Default for Chains {
    fn default() -> Chains {
        let params = Interceptors::default();
        let (ingress, egress) = params.resolve_defaults(None).unwrap_or_default();
        Chains { params, plugins: Plugins::none(), ingress, egress }
    }
}

//! How one chain runs one plugin: the options of an attachment, and their spelling in a chain's list of names.
//!
//! Owns [`Attach`] (the options: what a packet does once the plugin failed, inline or on the plugin's thread, and in
//! that case whether the packet goes on), [`Attachment`] (a plugin and its options, as a chain's plugin list holds
//! them), the paths and modes they choose between ([`FailurePath`], [`AttachMode`], [`AsyncPass`]), and the one
//! parser and printer of their spelling ([`parse`], [`Attach::spell`]): `NAME` or `NAME:KEY=VALUE[:KEY=VALUE...]`,
//! with the keys `on_failure` (`forward`, `drop`), `mode` (`sync`, `async`) and `async_pass` (`forward`,
//! `consume`). An option left out takes the plugin's own setting (its `[[plugins]]` entry or `LoadPlugin`). The
//! config's chains and the API's `interceptors.names` carry this spelling, so both are checked by this one parser.
//! Plain data: must hold no behaviour beyond its own syntax; what a plugin accepts is the registry's to say
//! ([`super::Plugins::check_attach`]).

/// What a packet does once a plugin's instance (or a native plugin's member) failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePath {
    /// It passes the plugin untouched (fail-open).
    #[default]
    Forward,
    /// It is dropped under the reason `plugin` (fail-closed).
    Drop,
}

/// Where a WebAssembly plugin's calls for one chain run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
    /// Inline on the worker: its verdict decides the packet's fate, it may rewrite the packet.
    #[default]
    Sync,
    /// On the plugin's own thread: the chain hands it a copy and goes on.
    Async,
}

/// What an async attachment's chain does with a packet once its copy is queued for the plugin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AsyncPass {
    /// The packet goes on through the chain (the plugin watches, and may add packets later).
    #[default]
    Forward,
    /// The packet stops here (consumed): the plugin re-emits what it means to, later (a jitter buffer, a
    /// transcoder). When the queue is full the packet is dropped (reason `plugin`).
    Consume,
}

/// One chain's options for one plugin; `None` takes the plugin's own setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attach {
    /// `on_failure`.
    pub on_failure: Option<FailurePath>,
    /// `mode` (WebAssembly plugins only).
    pub mode: Option<AttachMode>,
    /// `async_pass` (WebAssembly plugins only, and only where the attachment runs async).
    pub async_pass: Option<AsyncPass>,
}

/// A plugin in a chain's plugin list, with the chain's options for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attachment {
    /// The plugin.
    pub id: super::PluginId,
    /// The options.
    pub attach: Attach,
}

/// Why an attachment's spelling was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// An option is not `KEY=VALUE`.
    #[error("option {0:?} is not KEY=VALUE (keys: on_failure, mode, async_pass)")]
    NotKeyValue(String),
    /// An option key no attachment has.
    #[error("unknown option {0:?} (keys: on_failure, mode, async_pass)")]
    UnknownKey(String),
    /// A value the key does not take.
    #[error("{key}={value:?} is not one of {allowed}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What the key takes.
        allowed: &'static str,
    },
    /// A key given twice.
    #[error("option {0} is given twice")]
    Twice(&'static str),
    /// `async_pass` where the attachment runs inline.
    #[error("async_pass applies only with mode=async")]
    PassWithSync,
}

/// Splits `spelling` into the plugin's name and the attachment's options (the name unchecked: the registry checks
/// it). `"jitter"` has no options; `"jitter:mode=async:async_pass=consume"` two.
pub fn parse(spelling: &str) -> Result<(&str, Attach), AttachError> {
    let mut parts = spelling.split(':');
    let name = parts.next().unwrap_or_default();
    let mut attach = Attach::default();
    for option in parts {
        let (key, value) = option.split_once('=').ok_or_else(|| AttachError::NotKeyValue(option.to_owned()))?;
        let bad =
            |key: &'static str, allowed: &'static str| AttachError::BadValue { key, value: value.to_owned(), allowed };
        match key {
            "on_failure" => {
                let path = match value {
                    "forward" => FailurePath::Forward,
                    "drop" => FailurePath::Drop,
                    _ => return Err(bad("on_failure", "forward, drop")),
                };
                set(&mut attach.on_failure, "on_failure", path)?;
            }
            "mode" => {
                let mode = match value {
                    "sync" => AttachMode::Sync,
                    "async" => AttachMode::Async,
                    _ => return Err(bad("mode", "sync, async")),
                };
                set(&mut attach.mode, "mode", mode)?;
            }
            "async_pass" => {
                let pass = match value {
                    "forward" => AsyncPass::Forward,
                    "consume" => AsyncPass::Consume,
                    _ => return Err(bad("async_pass", "forward, consume")),
                };
                set(&mut attach.async_pass, "async_pass", pass)?;
            }
            _ => return Err(AttachError::UnknownKey(key.to_owned())),
        }
    }
    if attach.async_pass.is_some() && attach.mode == Some(AttachMode::Sync) {
        return Err(AttachError::PassWithSync);
    }
    Ok((name, attach))
}

fn set<T>(slot: &mut Option<T>, key: &'static str, value: T) -> Result<(), AttachError> {
    if slot.is_some() {
        return Err(AttachError::Twice(key));
    }
    *slot = Some(value);
    Ok(())
}

impl Attach {
    /// True when every option takes the plugin's own setting.
    pub fn is_default(&self) -> bool {
        *self == Attach::default()
    }

    /// The canonical spelling of plugin `name` with these options (keys in a fixed order, only those set): what
    /// [`parse`] reads back as the same name and options.
    pub fn spell(&self, name: &str) -> String {
        let mut spelled = name.to_owned();
        if let Some(path) = self.on_failure {
            spelled.push_str(match path {
                FailurePath::Forward => ":on_failure=forward",
                FailurePath::Drop => ":on_failure=drop",
            });
        }
        if let Some(mode) = self.mode {
            spelled.push_str(match mode {
                AttachMode::Sync => ":mode=sync",
                AttachMode::Async => ":mode=async",
            });
        }
        if let Some(pass) = self.async_pass {
            spelled.push_str(match pass {
                AsyncPass::Forward => ":async_pass=forward",
                AsyncPass::Consume => ":async_pass=consume",
            });
        }
        spelled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_has_no_options() {
        assert_eq!(parse("jitter"), Ok(("jitter", Attach::default())));
        assert!(Attach::default().is_default());
        assert_eq!(Attach::default().spell("jitter"), "jitter");
    }

    #[test]
    fn options_parse_and_spell_back_in_canonical_order() {
        let (name, attach) = parse("jitter:async_pass=consume:on_failure=drop:mode=async").expect("valid");
        assert_eq!(name, "jitter");
        assert_eq!(
            attach,
            Attach {
                on_failure: Some(FailurePath::Drop),
                mode: Some(AttachMode::Async),
                async_pass: Some(AsyncPass::Consume)
            }
        );
        let spelled = attach.spell(name);
        assert_eq!(spelled, "jitter:on_failure=drop:mode=async:async_pass=consume");
        assert_eq!(parse(&spelled), Ok((name, attach)), "the spelling reads back");
        assert_eq!(
            parse("t:on_failure=forward:mode=sync").map(|(_, a)| a.spell("t")).as_deref(),
            Ok("t:on_failure=forward:mode=sync")
        );
    }

    #[test]
    fn bad_options_are_refused_naming_what_is_wrong() {
        assert_eq!(parse("j:mode"), Err(AttachError::NotKeyValue("mode".into())));
        assert_eq!(parse("j:"), Err(AttachError::NotKeyValue(String::new())));
        assert_eq!(parse("j:speed=fast"), Err(AttachError::UnknownKey("speed".into())));
        assert_eq!(
            parse("j:mode=later"),
            Err(AttachError::BadValue { key: "mode", value: "later".into(), allowed: "sync, async" })
        );
        assert_eq!(parse("j:on_failure=drop:on_failure=forward"), Err(AttachError::Twice("on_failure")));
        assert_eq!(parse("j:mode=sync:async_pass=consume"), Err(AttachError::PassWithSync));
        let message = parse("j:on_failure=explode").unwrap_err().to_string();
        assert_eq!(message, "on_failure=\"explode\" is not one of forward, drop");
    }
}

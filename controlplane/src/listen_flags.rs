//! The daemon's command-line flags that put its listeners on other ports than the config says: `--api-listen`,
//! `--media-port` and `--metrics-listen`. An operator runs a second daemon beside a first one with them, and the
//! end-to-end tests run the built-in default config on free ports without writing a config file.
//!
//! Owns [`ListenFlags`] and [`ListenFlags::apply`], which writes them over the config before it is validated
//! (the flags win over the file). Must never bind anything: the daemon binds what the validated config says.

use std::net::SocketAddr;

use ringfwd_tuning::{Config, ConfigError};

/// The listener flags of the daemon (no subcommand); each one replaces the config key it names.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ListenFlags {
    /// Control API address, over the config's `api.listen` (port 0: a free port, shown on the ready line).
    #[arg(long, value_name = "ADDR")]
    pub api_listen: Option<SocketAddr>,
    /// UDP port of every media address, over the ports in the config's `media.addresses` (0: a free port for
    /// each address, shown on the ready line).
    #[arg(long, value_name = "PORT")]
    pub media_port: Option<u16>,
    /// Prometheus endpoint address, over the config's `metrics.listen` (port 0: a free port).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

impl ListenFlags {
    /// `config` with the flags written over it, validated again: an address a flag brings is checked by the same
    /// rules as one in the file (e.g. a non-loopback `--api-listen` needs `[[auth.keys]]`), and the error names
    /// the config key it set.
    pub fn apply(&self, mut config: Config) -> Result<Config, ConfigError> {
        if let Some(listen) = self.api_listen {
            config.api.listen = listen;
        }
        if let Some(port) = self.media_port {
            for address in &mut config.media.addresses {
                address.set_port(port);
            }
        }
        if let Some(listen) = self.metrics_listen {
            config.metrics.listen = listen;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        listen: ListenFlags,
    }

    fn parse(args: &[&str]) -> Result<ListenFlags, clap::Error> {
        Cli::try_parse_from(std::iter::once("ringfwd").chain(args.iter().copied())).map(|cli| cli.listen)
    }

    #[test]
    fn no_flags_leave_the_config_as_it_is() {
        assert_eq!(parse(&[]).unwrap().apply(Config::default()).unwrap(), Config::default());
    }

    #[test]
    fn each_flag_replaces_its_key() {
        let flags =
            parse(&["--api-listen", "127.0.0.1:0", "--media-port", "0", "--metrics-listen", "[::1]:9999"]).unwrap();
        let config = flags.apply(Config::default()).unwrap();
        assert_eq!(config.api.listen, "127.0.0.1:0".parse().unwrap());
        let media: Vec<String> = config.media.addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(media, ["127.0.0.1:0", "[::1]:0"], "every media address, its IP kept");
        assert_eq!(config.metrics.listen, "[::1]:9999".parse().unwrap());
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for args in [["--api-listen", "localhost"], ["--media-port", "65536"], ["--metrics-listen", "9464"]] {
            let err = parse(&args).unwrap_err().to_string();
            assert!(err.contains(args[0]) && err.contains(args[1]), "{err}");
        }
    }

    #[test]
    fn a_flag_is_validated_like_the_file() {
        // A development key may only serve loopback.
        let flags = parse(&["--api-listen", "0.0.0.0:50051"]).unwrap();
        let err = flags.apply(Config::default()).unwrap_err();
        assert_eq!(err.key(), Some("auth.keys"), "{err}");
        assert!(err.to_string().contains("0.0.0.0:50051"), "{err}");
    }
}

//! What a daemon serves and where: [`DaemonOptions`], built by hand
//! (loopback, any free port) or from a node's `config.toml`.

use super::DaemonError;
use crate::node::config::{
    ApiSettings, ConnectionSettings, GatewaySettings, NetSettings, S3Settings,
};
use crate::node::Config;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Where and how a [`Daemon`](super::Daemon) listens.
///
/// The default is loopback only on free ports (libp2p on TCP and QUIC, the
/// API on 127.0.0.1), no gateway, no bootstrap peers and no mDNS: several
/// daemons can run in one process and none is reachable from elsewhere.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// libp2p settings: listen multiaddrs, bootstrap peers, limits.
    pub net: NetSettings,
    /// RPC API address (port 0: any free port); `None` serves no API.
    pub api: Option<SocketAddr>,
    /// Who may call the API: `[api]` tokens (none: no authentication,
    /// allowed on loopback only) and allowed web origins; its connections'
    /// timeouts and caps. Its `listen` is not read; [`api`](Self::api) is
    /// the address.
    pub api_access: ApiSettings,
    /// The HTTP gateway; `None` serves none.
    pub gateway: Option<GatewayOptions>,
    /// The S3-compatible endpoint; `None` (the default) serves none.
    pub s3: Option<S3Options>,
    /// How long [`shutdown`](super::Daemon::shutdown) lets requests being
    /// answered finish before cutting them off.
    pub shutdown_grace: Duration,
}

/// The read-only HTTP gateway's address and behaviour.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// A response whose first byte is not ready within this ends in 504.
    pub timeout: Duration,
    /// Redirect `/ipfs/CID/...` on `localhost` to `CID.ipfs.localhost`.
    pub subdomain_redirect: bool,
    /// Timeouts and connection caps.
    pub connections: ConnectionSettings,
}

/// The S3 endpoint's address and connection limits.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Timeouts and connection caps.
    pub connections: ConnectionSettings,
}

impl Default for S3Options {
    /// Loopback, any free port, the default limits.
    fn default() -> Self {
        S3Options {
            listen: LOOPBACK_ANY_PORT,
            connections: S3Settings::default().connections,
        }
    }
}

/// Loopback, any free port.
const LOOPBACK_ANY_PORT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            net: NetSettings {
                listen: vec![
                    "/ip4/127.0.0.1/tcp/0".into(),
                    "/ip4/127.0.0.1/udp/0/quic-v1".into(),
                ],
                bootstrap: Vec::new(),
                mdns: false,
                ..NetSettings::default()
            },
            api: Some(LOOPBACK_ANY_PORT),
            api_access: ApiSettings::default(),
            gateway: None,
            s3: None,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Default for GatewayOptions {
    fn default() -> Self {
        let settings = GatewaySettings::default();
        GatewayOptions {
            listen: LOOPBACK_ANY_PORT,
            timeout: settings.timeout,
            subdomain_redirect: settings.subdomain_redirect,
            connections: settings.connections,
        }
    }
}

impl DaemonOptions {
    /// The options `config.toml` describes: `[net]`, `[api]`, `[gateway]`
    /// and `[s3]` (whose `listen` may be "" or "off" for none).
    pub fn from_config(config: &Config) -> Result<DaemonOptions, DaemonError> {
        let api_text = &config.api.listen;
        let api = crate::rpc::parse_api_addr(api_text).ok_or_else(|| DaemonError::ApiAddr {
            text: api_text.clone(),
        })?;
        let gateway = match config.gateway.listen.as_str() {
            "" | "off" => None,
            text => Some(GatewayOptions {
                listen: crate::rpc::parse_api_addr(text).ok_or_else(|| {
                    DaemonError::GatewayAddr {
                        text: text.to_string(),
                    }
                })?,
                timeout: config.gateway.timeout,
                subdomain_redirect: config.gateway.subdomain_redirect,
                connections: config.gateway.connections.clone(),
            }),
        };
        let s3 = match config.s3.listen.as_str() {
            "" | "off" => None,
            text => Some(S3Options {
                listen: crate::rpc::parse_api_addr(text).ok_or_else(|| DaemonError::S3Addr {
                    text: text.to_string(),
                })?,
                connections: config.s3.connections.clone(),
            }),
        };
        Ok(DaemonOptions {
            net: config.net.clone(),
            api: Some(api),
            api_access: config.api.clone(),
            gateway,
            s3,
            ..DaemonOptions::default()
        })
    }

    /// The bootstrap addresses, parsed; an empty one is refused rather than
    /// dialled as nothing.
    pub(super) fn bootstrap_addrs(&self) -> Result<Vec<libp2p::Multiaddr>, DaemonError> {
        self.net
            .bootstrap
            .iter()
            .map(|text| {
                let addr: libp2p::Multiaddr =
                    text.parse().map_err(|source| DaemonError::BootstrapAddr {
                        addr: text.clone(),
                        source,
                    })?;
                if addr.is_empty() {
                    return Err(DaemonError::EmptyBootstrapAddr { addr: text.clone() });
                }
                Ok(addr)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_stay_on_loopback() {
        let o = DaemonOptions::default();
        assert!(o.net.bootstrap.is_empty());
        assert!(!o.net.mdns);
        assert!(o
            .net
            .listen
            .iter()
            .all(|a| a.starts_with("/ip4/127.0.0.1/")));
        assert!(o.api.is_some_and(|a| a.ip().is_loopback()));
        assert!(o.gateway.is_none());
        assert!(o.s3.is_none());
        assert!(GatewayOptions::default().listen.ip().is_loopback());
        assert!(S3Options::default().listen.ip().is_loopback());
    }

    #[test]
    fn empty_bootstrap_address_is_refused() {
        let mut o = DaemonOptions::default();
        o.net.bootstrap = vec![String::new()];
        let err = o.bootstrap_addrs().unwrap_err();
        assert!(
            matches!(err, DaemonError::EmptyBootstrapAddr { .. }),
            "{err}"
        );
        o.net.bootstrap = vec!["not an address".into()];
        assert!(matches!(
            o.bootstrap_addrs(),
            Err(DaemonError::BootstrapAddr { .. })
        ));
        o.net.bootstrap = vec!["/ip4/127.0.0.1/tcp/1".into()];
        assert_eq!(o.bootstrap_addrs().unwrap().len(), 1);
    }

    #[test]
    fn config_addresses_are_read() {
        let mut c = Config::default();
        c.gateway.listen = "off".into();
        let o = DaemonOptions::from_config(&c).unwrap();
        assert!(o.gateway.is_none());
        assert_eq!(o.api, Some("127.0.0.1:5001".parse().unwrap()));
        assert!(o.s3.is_none(), "[s3] is off unless set");
        c.s3.listen = "127.0.0.1:9000".into();
        let o = DaemonOptions::from_config(&c).unwrap();
        assert_eq!(o.s3.unwrap().listen, "127.0.0.1:9000".parse().unwrap());
        c.s3.listen = "port nine thousand".into();
        assert!(matches!(
            DaemonOptions::from_config(&c),
            Err(DaemonError::S3Addr { .. })
        ));
        c.s3.listen = String::new();
        c.api.listen = "nowhere".into();
        assert!(matches!(
            DaemonOptions::from_config(&c),
            Err(DaemonError::ApiAddr { .. })
        ));
    }
}

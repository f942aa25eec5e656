//! IPNS on a node: `name publish` and `name resolve` offline (the records
//! this node keeps in its repo) and online (over the DHT), the republisher,
//! and the IPNS metrics.

use super::online::OnlineNode;
use super::{Node, NodeError};
use crate::names::dnslink::DnsLinkError;
use crate::names::ipns::pubsub::PubsubNames;
use crate::names::ipns::service::NamesStats;
use crate::names::ipns::IpnsValidator;
use crate::names::ipns::{IpnsError, IpnsRecord, PublishOptions, ResolveOptions};
use crate::net::NetError;
use libp2p::PeerId;
use std::sync::Arc;

impl Node {
    /// Publishes `value` without the network: only with `allow_offline`,
    /// the record is kept in the repo (a daemon puts it on the DHT when its
    /// republisher next runs).
    pub fn name_publish(
        &self,
        value: &str,
        opts: &PublishOptions,
        allow_offline: bool,
    ) -> Result<(PeerId, IpnsRecord), NodeError> {
        if !allow_offline {
            return Err(IpnsError::Offline.into());
        }
        let (name, _, rec) = self.names().publish_local(value, opts)?;
        Ok((name, rec))
    }

    /// Resolves a name from the records this node published (no DHT);
    /// DNSLink domains are looked up in DNS, on a runtime of their own
    /// (the DNS client needs one).
    pub fn name_resolve(&self, name: &str, opts: ResolveOptions) -> Result<String, NodeError> {
        let resolving = self.names().resolve(name, opts, None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DnsLinkError::Lookup {
                domain: name.to_string(),
                reason: format!("cannot start the DNS client: {e}"),
            })
            .map_err(IpnsError::from)?;
        Ok(rt.block_on(resolving)?)
    }
}

impl OnlineNode {
    /// Publishes `value` under `opts.key`'s name: the record is kept in
    /// the repo, then put on the DHT. With `allow_offline`, a DHT with no
    /// peer to take it is not an error.
    pub async fn name_publish(
        &self,
        value: &str,
        opts: PublishOptions,
        allow_offline: bool,
    ) -> Result<(PeerId, IpnsRecord), NodeError> {
        let names = Arc::clone(self.node().names());
        let value = value.to_string();
        let (name, bytes, rec) =
            tokio::task::spawn_blocking(move || names.publish_local(&value, &opts))
                .await
                .map_err(|e| NetError::TaskFailed {
                    task: "IPNS publish",
                    source: Arc::new(e),
                })??;
        match self
            .node()
            .names()
            .put(&self.net().swarm, &name, bytes)
            .await
        {
            Ok(()) => Ok((name, rec)),
            Err(IpnsError::Net(NetError::NoValuePeers)) if allow_offline => Ok((name, rec)),
            Err(e) => Err(e.into()),
        }
    }

    /// Resolves a name over the DHT (and the cache, unless `opts.nocache`).
    pub async fn name_resolve(
        &self,
        name: &str,
        opts: ResolveOptions,
    ) -> Result<String, NodeError> {
        let names = self.node().names();
        Ok(names.resolve(name, opts, Some(&self.net().swarm)).await?)
    }

    /// Starts the republisher and exposes the IPNS metrics.
    pub(super) fn start_names(&self) {
        let names = Arc::clone(self.node().names());
        {
            let mut registry = self.net().metrics.lock().unwrap_or_else(|e| e.into_inner());
            registry
                .sub_registry_with_prefix("cairn")
                .register_collector(Box::new(NamesCollector(
                    names.validator(),
                    Arc::clone(names.stats()),
                    Arc::clone(names.pubsub()),
                )));
        }
        let swarm = self.net().swarm.clone();
        self.net().swarm.spawn_task(names.run_republisher(swarm));
    }
}

/// Exposes the IPNS counters.
#[derive(Debug)]
struct NamesCollector(Arc<IpnsValidator>, Arc<NamesStats>, Arc<PubsubNames>);

impl prometheus_client::collector::Collector for NamesCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use crate::net::metrics::encode_counter;
        use std::sync::atomic::Ordering::Relaxed;
        encode_counter(
            &mut encoder,
            "ipns_records_refused",
            "IPNS records refused by the DHT record store (invalid, expired, forged, oversized)",
            self.0.refused(),
        )?;
        encode_counter(
            &mut encoder,
            "ipns_published",
            "IPNS records published",
            self.1.published.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "ipns_republished",
            "IPNS records republished",
            self.1.republished.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "ipns_records_corrected",
            "DHT peers sent the best IPNS record after answering an outdated one",
            self.1.corrected.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "ipns_cache_hits",
            "IPNS resolves answered from the cache",
            self.1.cache_hits.load(Relaxed),
        )?;
        let pubsub = self.2.stats();
        encode_counter(
            &mut encoder,
            "ipns_pubsub_taken",
            "IPNS records taken from pub/sub (newer than the one held)",
            pubsub.taken.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "ipns_pubsub_refused",
            "IPNS records from pub/sub refused (invalid, forged, expired, for another name)",
            pubsub.refused.load(Relaxed),
        )?;
        encode_counter(
            &mut encoder,
            "ipns_pubsub_sent",
            "IPNS records published on their name's pub/sub topic",
            pubsub.sent.load(Relaxed),
        )
    }
}

//! Prometheus metrics of the network layer, in the registry libp2p's own
//! metrics (transport bytes, connections, DHT queries, identify, ping) use.
//!
//! Bitswap figures are read from the engine's counters at each scrape (a
//! collector, so the hot path keeps plain atomics); block fetch latency is
//! a histogram the fetch sessions fill.

use super::bitswap::driver::Bitswap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;

/// Seconds buckets for block fetch latency: 1 ms to ~65 s.
pub fn fetch_latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 17,
    ))
}

/// Exposes a Bitswap engine's counters.
#[derive(Debug)]
pub struct BitswapCollector(pub Bitswap);

impl std::fmt::Debug for Bitswap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bitswap")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let m = encoder.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for BitswapCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        counter(
            &mut encoder,
            "bitswap_blocks_received",
            "Blocks received over Bitswap (verified)",
            s.blocks_received,
        )?;
        counter(
            &mut encoder,
            "bitswap_received_bytes",
            "Bytes of blocks received over Bitswap",
            s.bytes_received,
        )?;
        counter(
            &mut encoder,
            "bitswap_blocks_sent",
            "Blocks sent to peers over Bitswap",
            s.blocks_sent,
        )?;
        counter(
            &mut encoder,
            "bitswap_sent_bytes",
            "Bytes of blocks sent to peers over Bitswap",
            s.bytes_sent,
        )?;
        gauge(
            &mut encoder,
            "bitswap_sessions",
            "Fetch sessions running",
            s.active_sessions as i64,
        )?;
        Ok(())
    }
}

/// Writes a constant counter; for collectors of other layers.
pub fn encode_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    counter(encoder, name, help, value)
}

/// Writes a constant gauge; for collectors of other layers.
pub fn encode_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    gauge(encoder, name, help, value)
}

/// Exposes the node's reachability (AutoNAT) and DHT mode.
#[derive(Debug)]
pub struct ReachCollector(pub super::swarm::SwarmHandle);

impl Collector for ReachCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use super::swarm::Reachability;
        let r = self.0.reachability();
        gauge(
            &mut encoder,
            "reachability",
            "Whether peers can dial this node, as AutoNAT found: 0 unknown (AutoNAT off or no answer yet), 1 not reachable, 2 reachable",
            match r.status {
                Reachability::Unknown => 0,
                Reachability::Private => 1,
                Reachability::Public => 2,
            },
        )?;
        gauge(
            &mut encoder,
            "confirmed_addresses",
            "Addresses AutoNAT confirmed (peers dialled this node back there)",
            r.confirmed.len() as i64,
        )?;
        gauge(
            &mut encoder,
            "dht_server",
            "1 while the DHT runs as a server (answers queries), 0 as a client",
            i64::from(r.dht_server),
        )?;
        Ok(())
    }
}

//! Serde support (feature `serde`): each placement saves its configuration and membership,
//! and restoring rebuilds it through the same validated path as the builders, so a restored
//! placement answers exactly as the saved one did.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::key::StableHash;
use crate::{JumpHash, Ketama, KetamaVariant, Maglev, MultiProbe, Rendezvous, Ring};

#[derive(Serialize)]
struct WeightedRef<'a, N> {
    #[serde(skip_serializing_if = "Option::is_none")]
    vnodes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    table_size: Option<u32>,
    nodes: Vec<(&'a N, u32)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Weighted<N> {
    #[serde(default)]
    vnodes: Option<u32>,
    #[serde(default)]
    table_size: Option<u32>,
    nodes: Vec<(N, u32)>,
}

impl<N: Serialize> Serialize for Ring<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WeightedRef {
            vnodes: Some(self.vnodes()),
            table_size: None,
            nodes: self.iter().collect(),
        }
        .serialize(serializer)
    }
}

impl<'de, N: Deserialize<'de> + StableHash + Eq> Deserialize<'de> for Ring<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let saved = Weighted::<N>::deserialize(deserializer)?;
        let mut builder = Ring::builder();
        if let Some(vnodes) = saved.vnodes {
            builder = builder.vnodes(vnodes);
        }
        let mut ring = builder.build().map_err(D::Error::custom)?;
        ring.extend_weighted(saved.nodes)
            .map_err(D::Error::custom)?;
        Ok(ring)
    }
}

impl<N: Serialize> Serialize for Rendezvous<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WeightedRef {
            vnodes: None,
            table_size: None,
            nodes: self.iter().collect(),
        }
        .serialize(serializer)
    }
}

impl<'de, N: Deserialize<'de> + StableHash + Eq> Deserialize<'de> for Rendezvous<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let saved = Weighted::<N>::deserialize(deserializer)?;
        let mut hrw = Rendezvous::new();
        // One sorted merge, not one O(n) insertion a node; the same errors in the same order.
        hrw.extend_weighted(saved.nodes).map_err(D::Error::custom)?;
        Ok(hrw)
    }
}

impl<N: Serialize> Serialize for Maglev<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WeightedRef {
            vnodes: None,
            table_size: Some(self.table_size()),
            nodes: self.iter().collect(),
        }
        .serialize(serializer)
    }
}

impl<'de, N: Deserialize<'de> + StableHash + Eq> Deserialize<'de> for Maglev<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let saved = Weighted::<N>::deserialize(deserializer)?;
        let mut builder = Maglev::builder();
        if let Some(size) = saved.table_size {
            builder = builder.table_size(u64::from(size));
        }
        let mut maglev = builder.build().map_err(D::Error::custom)?;
        maglev
            .extend_weighted(saved.nodes)
            .map_err(D::Error::custom)?;
        Ok(maglev)
    }
}

/// Multi-probe saves its nodes, and their weights only when one is not 1, so a placement
/// saved before weights existed still loads, and an unweighted one saves as it did.
#[derive(Serialize)]
struct ProbesRef<'a, N> {
    probes: u32,
    nodes: Vec<&'a N>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weights: Option<Vec<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Probes<N> {
    probes: u32,
    nodes: Vec<N>,
    #[serde(default)]
    weights: Option<Vec<u32>>,
}

impl<N: Serialize> Serialize for MultiProbe<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let weighted = self.iter().any(|(_, weight)| weight != 1);
        ProbesRef {
            probes: self.probes(),
            nodes: self.iter().map(|(node, _)| node).collect(),
            weights: weighted.then(|| self.iter().map(|(_, weight)| weight).collect()),
        }
        .serialize(serializer)
    }
}

impl<'de, N: Deserialize<'de> + StableHash + Eq> Deserialize<'de> for MultiProbe<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let saved = Probes::<N>::deserialize(deserializer)?;
        let mut mp = MultiProbe::builder()
            .probes(saved.probes)
            .build()
            .map_err(D::Error::custom)?;
        match saved.weights {
            None => mp.extend(saved.nodes),
            Some(weights) if weights.len() == saved.nodes.len() => {
                mp.extend_weighted(saved.nodes.into_iter().zip(weights))
            }
            Some(weights) => {
                return Err(D::Error::custom(format_args!(
                    "{} weights for {} nodes",
                    weights.len(),
                    saved.nodes.len()
                )));
            }
        }
        .map_err(D::Error::custom)?;
        Ok(mp)
    }
}

/// Jump saves its buckets, tombstones included, because placement depends on them.
#[derive(Serialize)]
struct SlotsRef<'a, N> {
    slots: &'a [Option<N>],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Slots<N> {
    slots: Vec<Option<N>>,
}

impl<N: Serialize> Serialize for JumpHash<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SlotsRef {
            slots: self.slots(),
        }
        .serialize(serializer)
    }
}

impl<'de, N: Deserialize<'de> + StableHash + Eq> Deserialize<'de> for JumpHash<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let saved = Slots::<N>::deserialize(deserializer)?;
        JumpHash::from_slots(saved.slots).map_err(D::Error::custom)
    }
}

#[derive(Serialize)]
struct ServersRef<'a, N> {
    variant: KetamaVariant,
    servers: Vec<(&'a N, u32)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Servers<N> {
    variant: KetamaVariant,
    servers: Vec<(N, u32)>,
}

impl<N: Serialize> Serialize for Ketama<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ServersRef {
            variant: self.variant(),
            servers: self.iter().collect(),
        }
        .serialize(serializer)
    }
}

impl<'de, N: Deserialize<'de> + AsRef<str> + Eq> Deserialize<'de> for Ketama<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let saved = Servers::<N>::deserialize(deserializer)?;
        let mut ketama = Ketama::new(saved.variant);
        ketama
            .extend_weighted(saved.servers)
            .map_err(D::Error::custom)?;
        Ok(ketama)
    }
}

//! The API versions this client implements and the negotiation with a broker's ApiVersions.

use kafka_protocol::messages::ApiKey;

/// `(api, min, max)` for every API this client can encode and understand. The field sets used by
/// the client exist in all of these versions; newer versions switch to topic ids, which this
/// client does not use yet.
pub const IMPLEMENTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 1, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::ElectLeaders, 0, 2),
];

/// The version of each API to use on one connection: the highest both sides support.
#[derive(Debug, Clone, Default)]
pub struct NegotiatedVersions {
    chosen: Vec<(i16, i16)>,
}

impl NegotiatedVersions {
    /// Intersects [`IMPLEMENTED`] with the broker's advertised `(api_key, min, max)` list.
    pub fn negotiate(broker: impl IntoIterator<Item = (i16, i16, i16)>) -> Self {
        let mut chosen = Vec::new();
        for (key, bmin, bmax) in broker {
            if let Some(&(_, min, max)) = IMPLEMENTED.iter().find(|(k, _, _)| *k as i16 == key) {
                let hi = max.min(bmax);
                if hi >= min.max(bmin) {
                    chosen.push((key, hi));
                }
            }
        }
        NegotiatedVersions { chosen }
    }

    /// The version to use for `api`, or `None` if the two sides share none.
    pub fn version(&self, api: i16) -> Option<i16> {
        self.chosen.iter().find(|(k, _)| *k == api).map(|&(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_highest_common_version() {
        let v = NegotiatedVersions::negotiate([(0, 0, 7), (1, 0, 16), (3, 0, 4), (2, 5, 8)]);
        assert_eq!(v.version(0), Some(7));
        assert_eq!(v.version(1), Some(12));
        assert_eq!(v.version(3), Some(4));
        // broker offers ListOffsets 5..8, we implement 1..7
        assert_eq!(v.version(2), Some(7));
        assert_eq!(v.version(19), None);
    }

    #[test]
    fn disjoint_ranges_give_none() {
        let v = NegotiatedVersions::negotiate([(0, 10, 13)]);
        assert_eq!(v.version(0), None);
    }
}

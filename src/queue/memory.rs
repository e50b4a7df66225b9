//! Redis's memory, as `INFO memory` reports it: how full it is and what it does when full.

use serde::Serialize;

/// Redis's memory use, its limit and its eviction policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisMemory {
    /// Bytes in use (`used_memory`).
    pub used_bytes: u64,
    /// The limit in bytes (`maxmemory`); 0 means none.
    pub max_bytes: u64,
    /// What Redis does at the limit (`maxmemory_policy`).
    pub policy: String,
}

impl RedisMemory {
    /// Reads the fields of an `INFO memory` reply; missing ones read as 0 and `noeviction`.
    pub fn from_info(info: &str) -> RedisMemory {
        let mut memory = RedisMemory {
            used_bytes: 0,
            max_bytes: 0,
            policy: "noeviction".to_string(),
        };
        for line in info.lines() {
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            match key {
                "used_memory" => memory.used_bytes = value.parse().unwrap_or(0),
                "maxmemory" => memory.max_bytes = value.parse().unwrap_or(0),
                "maxmemory_policy" => memory.policy = value.to_string(),
                _ => {}
            }
        }
        memory
    }

    /// The memory of several nodes (a cluster's primaries) as one: bytes used add up, the limit
    /// is the sum of theirs (0, none, if any node has none), and the policy is the first one
    /// that may evict, since a single evicting node can lose jobs.
    pub fn total(nodes: impl IntoIterator<Item = RedisMemory>) -> RedisMemory {
        let mut total: Option<RedisMemory> = None;
        for node in nodes {
            total = Some(match total {
                None => node,
                Some(sum) => RedisMemory {
                    used_bytes: sum.used_bytes + node.used_bytes,
                    max_bytes: if sum.max_bytes == 0 || node.max_bytes == 0 {
                        0
                    } else {
                        sum.max_bytes + node.max_bytes
                    },
                    policy: if sum.may_evict() {
                        sum.policy
                    } else {
                        node.policy
                    },
                },
            });
        }
        total.unwrap_or_else(|| RedisMemory::from_info(""))
    }

    /// Whether Redis may delete keys to make room: then jobs can vanish, so onedyno wants
    /// `noeviction` (writes are refused when full, and every accepted job stays).
    pub fn may_evict(&self) -> bool {
        self.policy != "noeviction"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_memory_is_read() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:26214400\r\nmaxmemory_policy:allkeys-lru\r\n";
        let m = RedisMemory::from_info(info);
        assert_eq!(m.used_bytes, 1_048_576);
        assert_eq!(m.max_bytes, 26_214_400);
        assert!(m.may_evict());
        let m = RedisMemory::from_info("maxmemory:0\nmaxmemory_policy:noeviction\n");
        assert_eq!((m.max_bytes, m.may_evict()), (0, false));
    }

    #[test]
    fn a_clusters_primaries_add_up() {
        let node = |used, max, policy: &str| RedisMemory {
            used_bytes: used,
            max_bytes: max,
            policy: policy.to_string(),
        };
        let total = RedisMemory::total([
            node(10, 100, "noeviction"),
            node(20, 200, "allkeys-lru"),
            node(30, 300, "noeviction"),
        ]);
        assert_eq!(total, node(60, 600, "allkeys-lru"));
        let unlimited = RedisMemory::total([node(1, 100, "noeviction"), node(2, 0, "noeviction")]);
        assert_eq!(unlimited, node(3, 0, "noeviction"));
        assert_eq!(RedisMemory::total([]), node(0, 0, "noeviction"));
    }
}

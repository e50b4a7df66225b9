//! The queues a worker process works, and the order in which one fetch tries them (`QUEUES`).

/// How the worker pool chooses among its queues.
#[derive(Debug, Clone, PartialEq)]
pub enum QueuePolicy {
    /// Always the first non-empty queue in the order given.
    Strict(Vec<String>),
    /// Queues are tried in an order drawn at random, each weighted, so no queue starves.
    Weighted(Vec<(String, u32)>),
}

impl QueuePolicy {
    /// The queue names, in the configured order.
    pub fn names(&self) -> Vec<String> {
        match self {
            QueuePolicy::Strict(names) => names.clone(),
            QueuePolicy::Weighted(pairs) => pairs.iter().map(|(n, _)| n.clone()).collect(),
        }
    }

    /// The order in which to try the queues for one fetch.
    pub fn fetch_order(&self) -> Vec<String> {
        match self {
            QueuePolicy::Strict(names) => names.clone(),
            QueuePolicy::Weighted(pairs) => weighted_order(pairs, &mut rand::rng()),
        }
    }
}

/// Draws queues one by one without replacement, each with probability proportional to its weight
/// (Sidekiq's weighted mode): a queue of weight 5 comes first five times as often as one of weight 1,
/// and every queue comes somewhere, so a busy heavy queue cannot starve a light one.
fn weighted_order(pairs: &[(String, u32)], rng: &mut impl rand::Rng) -> Vec<String> {
    let mut left: Vec<&(String, u32)> = pairs.iter().collect();
    let mut order = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: u64 = left.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut pick = rng.random_range(0..total.max(1));
        let mut index = 0;
        for (i, (_, w)) in left.iter().enumerate() {
            if pick < u64::from(*w) {
                index = i;
                break;
            }
            pick -= u64::from(*w);
        }
        order.push(left.remove(index).0.clone());
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_order_follows_the_weights_and_starves_nobody() {
        use rand::SeedableRng;
        let pairs = vec![("a".to_string(), 3), ("b".to_string(), 1)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut a_first = 0;
        for _ in 0..4000 {
            let order = weighted_order(&pairs, &mut rng);
            assert_eq!(order.len(), 2);
            if order[0] == "a" {
                a_first += 1;
            }
        }
        // Expect 3000 of 4000; a wide band keeps the test about the rule, not the draw.
        assert!((2700..3300).contains(&a_first), "a first {a_first} times");
    }
}

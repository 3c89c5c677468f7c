//! The accuracy–cost Pareto frontier a deployment picks routes from (`snnet.md` §A7).

/// The indices of the points on the frontier, cheapest first: sorted by cost, a point is kept
/// when its accuracy beats every cheaper point's (ties in cost: the more accurate first).
pub fn pareto(costs: &[u64], accuracies: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| {
        costs[a]
            .cmp(&costs[b])
            .then(accuracies[b].total_cmp(&accuracies[a]))
    });
    let mut best = f64::NEG_INFINITY;
    order
        .into_iter()
        .filter(|&i| {
            let keep = accuracies[i] > best;
            best = best.max(accuracies[i]);
            keep
        })
        .collect()
}

/// The most accurate point of `frontier` whose cost fits `budget`, if any.
pub fn best_within(frontier: &[usize], costs: &[u64], budget: u64) -> Option<usize> {
    frontier.iter().copied().rfind(|&i| costs[i] <= budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frontier_keeps_points_no_cheaper_point_beats() {
        let costs = [10, 5, 7, 20, 7, 30];
        let accuracies = [0.8, 0.6, 0.7, 0.75, 0.65, 0.9];
        assert_eq!(pareto(&costs, &accuracies), vec![1, 2, 0, 5]);
        let frontier = pareto(&costs, &accuracies);
        assert_eq!(best_within(&frontier, &costs, 9), Some(2));
        assert_eq!(best_within(&frontier, &costs, 25), Some(0));
        assert_eq!(best_within(&frontier, &costs, 4), None);
    }
}

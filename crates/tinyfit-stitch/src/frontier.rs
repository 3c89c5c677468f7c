//! The accuracy–cost Pareto frontier a deployment picks routes from (`snnet.md` §A7).

use std::cmp::Ordering;

use crate::train::RouteScore;

/// Higher accuracy first; equal accuracies, lower loss (a saturated validation split leaves
/// many routes at 100 %).
fn better(a: &RouteScore, b: &RouteScore) -> Ordering {
    a.accuracy
        .total_cmp(&b.accuracy)
        .then(b.loss.total_cmp(&a.loss))
}

/// The indices of the points on the frontier, cheapest first: sorted by cost, a point is kept
/// when its score beats every cheaper point's (ties in cost: the better first).
pub fn pareto(costs: &[u64], scores: &[RouteScore]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[a].cmp(&costs[b]).then(better(&scores[b], &scores[a])));
    let mut best: Option<RouteScore> = None;
    order
        .into_iter()
        .filter(|&i| {
            let keep = best.is_none_or(|b| better(&scores[i], &b) == Ordering::Greater);
            if keep {
                best = Some(scores[i]);
            }
            keep
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frontier_keeps_points_no_cheaper_point_beats() {
        let costs = [10, 5, 7, 20, 7, 30, 40];
        let score = |accuracy, loss| RouteScore { accuracy, loss };
        let scores = [
            score(0.8, 0.5),
            score(0.6, 0.9),
            score(0.7, 0.8),
            score(0.75, 0.4),
            score(0.65, 0.7),
            score(0.9, 0.3),
            // As accurate as the cheaper point 5, with a lower loss.
            score(0.9, 0.2),
        ];
        let frontier = pareto(&costs, &scores);
        assert_eq!(frontier, vec![1, 2, 0, 5, 6]);
    }
}

//! Static arena planning: every tensor gets an offset in one caller-provided arena so that
//! tensors alive at the same time never overlap.
//!
//! Greedy by size, as TFLite Micro's `GreedyMemoryPlanner`: buffers are placed largest first,
//! each at the lowest aligned offset that clears every already-placed buffer whose lifetime
//! intersects its own. [`lower_bound`] is the most bytes alive at any one step, which no plan can
//! beat; the gap between the two is what a better planner could still win.
//!
//! No allocation: the caller lends the scratch slices, so the planner also runs on the device.

/// A tensor's size, the inclusive range of execution steps during which it must exist, and
/// the execution path it belongs to.
///
/// Paths model programs that run one of several branches (a routed model): steps are counted
/// along each path, so buffers of different branches may share steps and bytes, as they never
/// exist in the same run. Buffers of path 0 exist on every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Bytes.
    pub size: usize,
    /// First step that writes or reads it.
    pub first: usize,
    /// Last step that reads it.
    pub last: usize,
    /// 0 on every path, `k > 0` only on path `k`.
    pub path: usize,
}

impl Buffer {
    /// A buffer that exists on every path.
    pub fn new(size: usize, first: usize, last: usize) -> Buffer {
        Buffer {
            size,
            first,
            last,
            path: 0,
        }
    }

    fn coexists_with(&self, other: &Buffer) -> bool {
        self.first <= other.last
            && other.first <= self.last
            && (self.path == 0 || other.path == 0 || self.path == other.path)
    }

    fn alive(&self, step: usize, path: usize) -> bool {
        self.first <= step && step <= self.last && (self.path == 0 || self.path == path)
    }
}

/// Why a plan could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// The scratch or output slices are shorter than the buffer list, or an order is not a
    /// permutation of the buffers.
    ScratchTooSmall,
    /// A buffer ends before it starts.
    BadLifetime {
        /// Index of the buffer.
        buffer: usize,
    },
    /// `alignment` is zero or not a power of two.
    BadAlignment,
}

/// Places `buffers`, writing each one's byte offset into `offsets`; returns the arena size.
///
/// `order` is scratch of at least `buffers.len()` entries. Offsets are multiples of `alignment`.
pub fn plan(
    buffers: &[Buffer],
    alignment: usize,
    offsets: &mut [usize],
    order: &mut [usize],
) -> Result<usize, PlanError> {
    let n = buffers.len();
    if offsets.len() < n || order.len() < n {
        return Err(PlanError::ScratchTooSmall);
    }
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(PlanError::BadAlignment);
    }
    if let Some(buffer) = buffers.iter().position(|b| b.last < b.first) {
        return Err(PlanError::BadLifetime { buffer });
    }
    let order = &mut order[..n];
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    // Largest first; ties by earlier start, then index, so plans are deterministic.
    order.sort_unstable_by(|&a, &b| {
        buffers[b]
            .size
            .cmp(&buffers[a].size)
            .then(buffers[a].first.cmp(&buffers[b].first))
            .then(a.cmp(&b))
    });
    plan_in_order(buffers, alignment, offsets, order)
}

/// Places `buffers` one after another in the caller's `order` (a permutation of their
/// indices), each at the lowest aligned offset that clears the already-placed buffers alive at
/// the same time; returns the arena size. Callers try several orders and keep the best.
pub fn plan_in_order(
    buffers: &[Buffer],
    alignment: usize,
    offsets: &mut [usize],
    order: &[usize],
) -> Result<usize, PlanError> {
    let n = buffers.len();
    if offsets.len() < n || order.len() != n || order.iter().any(|&i| i >= n) {
        return Err(PlanError::ScratchTooSmall);
    }
    if alignment == 0 || !alignment.is_power_of_two() {
        return Err(PlanError::BadAlignment);
    }
    if let Some(buffer) = buffers.iter().position(|b| b.last < b.first) {
        return Err(PlanError::BadLifetime { buffer });
    }
    let mut arena = 0;
    for placed_count in 0..n {
        let this = order[placed_count];
        let b = buffers[this];
        // Try offsets at 0 and at the end of each conflicting placed buffer; keep the lowest fit.
        let fits = |offset: usize| {
            order[..placed_count].iter().all(|&other| {
                let o = buffers[other];
                !b.coexists_with(&o)
                    || offset + b.size <= offsets[other]
                    || offsets[other] + o.size <= offset
            })
        };
        let mut best = if fits(0) { Some(0) } else { None };
        for &other in &order[..placed_count] {
            let o = buffers[other];
            if !b.coexists_with(&o) {
                continue;
            }
            let candidate = align_up(offsets[other] + o.size, alignment);
            if best.is_none_or(|best| candidate < best) && fits(candidate) {
                best = Some(candidate);
            }
        }
        let offset = best.expect("the end of the highest conflicting buffer always fits");
        offsets[this] = offset;
        arena = arena.max(offset + b.size);
    }
    Ok(arena)
}

/// The most bytes that must be alive at one step of one path: no plan can use less arena.
pub fn lower_bound(buffers: &[Buffer]) -> usize {
    let last = buffers.iter().map(|b| b.last).max().unwrap_or(0);
    let paths = buffers.iter().map(|b| b.path).max().unwrap_or(0);
    (0..=last)
        .flat_map(|step| (0..=paths).map(move |path| (step, path)))
        .map(|(step, path)| live_bytes(buffers, step, path))
        .max()
        .unwrap_or(0)
}

/// Bytes alive at `step` of `path` (path 0: the buffers every path shares).
pub fn live_bytes(buffers: &[Buffer], step: usize, path: usize) -> usize {
    buffers
        .iter()
        .filter(|b| b.alive(step, path))
        .map(|b| b.size)
        .sum()
}

fn align_up(x: usize, alignment: usize) -> usize {
    (x + alignment - 1) & !(alignment - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(size: usize, first: usize, last: usize) -> Buffer {
        Buffer::new(size, first, last)
    }

    fn check(buffers: &[Buffer], alignment: usize) -> usize {
        let mut offsets = [0usize; 64];
        let mut order = [0usize; 64];
        let arena = plan(buffers, alignment, &mut offsets, &mut order).unwrap();
        for (i, a) in buffers.iter().enumerate() {
            assert_eq!(offsets[i] % alignment, 0);
            assert!(offsets[i] + a.size <= arena);
            for (j, b) in buffers.iter().enumerate().skip(i + 1) {
                let apart = offsets[i] + a.size <= offsets[j] || offsets[j] + b.size <= offsets[i];
                assert!(!a.coexists_with(b) || apart, "buffers {i} and {j} collide");
            }
        }
        assert!(arena >= lower_bound(buffers));
        arena
    }

    #[test]
    fn a_chain_needs_only_its_largest_adjacent_pair() {
        // x(100) → a(300) → b(200) → y(50): each tensor lives from its producer to its consumer.
        let chain = [
            buf(100, 0, 1),
            buf(300, 1, 2),
            buf(200, 2, 3),
            buf(50, 3, 4),
        ];
        assert_eq!(lower_bound(&chain), 500);
        assert_eq!(check(&chain, 1), 500);
    }

    #[test]
    fn disjoint_lifetimes_share_memory() {
        let b = [buf(64, 0, 0), buf(32, 1, 1), buf(48, 2, 2)];
        assert_eq!(check(&b, 16), 64);
    }

    #[test]
    fn a_skip_connection_stays_alive() {
        // in → c1 → c2 → add(c2, in): the input lives until the add.
        let b = [buf(100, 0, 3), buf(80, 1, 2), buf(80, 2, 3), buf(100, 3, 4)];
        assert_eq!(lower_bound(&b), 280);
        assert_eq!(check(&b, 4), 280);
    }

    #[test]
    fn random_plans_are_valid() {
        let mut s: u64 = 12345;
        let mut next = |m: u64| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) % m
        };
        for _ in 0..200 {
            let n = 1 + next(40) as usize;
            let mut b = [buf(0, 0, 0); 40];
            for x in b.iter_mut().take(n) {
                let first = next(30) as usize;
                *x = buf(1 + next(1000) as usize, first, first + next(6) as usize);
            }
            check(&b[..n], 16);
        }
    }

    #[test]
    fn branches_share_steps_and_bytes() {
        // A common input (path 0) read on both paths, and each path's own buffers at the same
        // steps: the two paths' buffers overlap, the shared one stays apart.
        let b = [
            buf(100, 0, 3),
            Buffer {
                path: 1,
                ..buf(80, 1, 2)
            },
            Buffer {
                path: 1,
                ..buf(60, 2, 3)
            },
            Buffer {
                path: 2,
                ..buf(90, 1, 3)
            },
        ];
        assert_eq!(lower_bound(&b), 240);
        assert_eq!(check(&b, 4), 240);
        assert_eq!(live_bytes(&b, 2, 1), 240);
        assert_eq!(live_bytes(&b, 2, 2), 190);
    }

    #[test]
    fn errors_instead_of_panics() {
        let mut o = [0usize; 1];
        let mut s = [0usize; 1];
        assert_eq!(
            plan(&[buf(1, 0, 0); 2], 1, &mut o, &mut s),
            Err(PlanError::ScratchTooSmall)
        );
        assert_eq!(
            plan(&[buf(1, 2, 1)], 1, &mut o, &mut s),
            Err(PlanError::BadLifetime { buffer: 0 })
        );
        assert_eq!(
            plan(&[buf(1, 0, 0)], 3, &mut o, &mut s),
            Err(PlanError::BadAlignment)
        );
    }
}

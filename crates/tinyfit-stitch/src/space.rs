//! The stitching space: which `(front block, end block)` stitches join two anchors and which
//! stitching layer each one uses, enumerated as the reference code does
//! (`snnet.md` §A4: `paired_stitching`, the unpaired nearest-interpolation map, nearest
//! stitching between anchors adjacent in size).

/// One stitch between two anchors: the front anchor runs through block `front` (inclusive),
/// stitching layer `layer` maps its activations, the end anchor runs from block `end` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stitch {
    /// Last block of the front anchor.
    pub front: usize,
    /// First block of the end anchor.
    pub end: usize,
    /// The stitching layer, shared by every stitch of a sliding window.
    pub layer: usize,
}

/// The stitches between one ordered pair of anchors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSpace {
    /// In the reference's order.
    pub stitches: Vec<Stitch>,
    /// Number of stitching layers the stitches share.
    pub layers: usize,
}

/// A sliding window over blocks: every stitch within one window shares a stitching layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Blocks per window (the reference's default 2).
    pub kernel: usize,
    /// Blocks the window moves by (default 1).
    pub stride: usize,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            kernel: 2,
            stride: 1,
        }
    }
}

/// Paired stitching of two anchors of equal `depth` (`paired_stitching` of the reference's
/// DeiT code): each window `{i, …, i + kernel − 1}` contributes every `(j, k)` of its blocks not
/// seen before, under a new stitching layer when it contributes any. `forward_only` keeps
/// only `j < k` (the reference's Swin and LeViT variant).
pub fn paired(depth: usize, window: Window, forward_only: bool) -> PairSpace {
    let (kernel, stride) = (window.kernel.max(1), window.stride.max(1));
    let mut stitches: Vec<Stitch> = Vec::new();
    let mut layers = 0;
    for start in (0..depth).step_by(stride) {
        let blocks = start..(start + kernel).min(depth);
        let mut added = false;
        for front in blocks.clone() {
            for end in blocks.clone() {
                let seen = stitches.iter().any(|s| (s.front, s.end) == (front, end));
                if seen || (forward_only && front >= end) {
                    continue;
                }
                stitches.push(Stitch {
                    front,
                    end,
                    layer: layers,
                });
                added = true;
            }
        }
        layers += usize::from(added);
    }
    PairSpace { stitches, layers }
}

/// Unpaired stitching of anchors of unequal depths. Front shallower than end (the reference):
/// end block `i` corresponds to front block `⌊i · front_depth / end_depth⌋` (nearest
/// interpolation), every such pair with the front block before the end block is a stitch, one
/// stitching layer per front block. Front deeper than end (Slow-to-Fast, which the reference
/// does not implement): the mirror image — each such correspondence (shallow block `a`, deep
/// block `b`) hands the deep anchor's block `b − 1` over to the shallow anchor's block
/// `a + 1`, one layer per shallow block.
pub fn unpaired(front_depth: usize, end_depth: usize) -> PairSpace {
    let correspondences = |shallow: usize, deep: usize| {
        (0..shallow).flat_map(move |a| {
            (0..deep)
                .filter(move |&b| b * shallow / deep == a && a < b)
                .map(move |b| (a, b))
        })
    };
    if front_depth <= end_depth {
        let stitches = correspondences(front_depth, end_depth)
            .map(|(front, end)| Stitch {
                front,
                end,
                layer: front,
            })
            .collect();
        return PairSpace {
            stitches,
            layers: front_depth,
        };
    }
    let stitches = correspondences(end_depth, front_depth)
        .filter(|&(a, _)| a + 1 < end_depth)
        .map(|(a, b)| Stitch {
            front: b - 1,
            end: a + 1,
            layer: a,
        })
        .collect();
    PairSpace {
        stitches,
        layers: end_depth,
    }
}

/// Which anchor a stitch starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// The smaller (faster) anchor in front, the larger behind: widths grow with depth, as
    /// models are usually designed (the reference's default and only implemented direction).
    #[default]
    FastToSlow,
    /// The larger anchor in front.
    SlowToFast,
}

/// A network of the family: an anchor alone, or a stitch of two anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Anchor `a` (anchors ordered from the smallest).
    Anchor(usize),
    /// `front` anchor, stitched to the `end` anchor by `stitch` of pair `pair`'s layers.
    Stitched {
        /// Index of the anchor pair (adjacent anchors, from the smallest pair).
        pair: usize,
        /// The anchor in front.
        front: usize,
        /// The anchor behind.
        end: usize,
        /// Where and with which layer.
        stitch: Stitch,
    },
}

/// The whole stitching space of a family: the anchors, then each pair of anchors adjacent in
/// size (nearest stitching) in `direction`, paired with `window` where depths are equal and
/// unpaired otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Space {
    /// Every route, anchors first.
    pub routes: Vec<Route>,
    /// Stitching layers per anchor pair.
    pub layers: Vec<usize>,
}

impl Space {
    /// The space of anchors with block counts `depths` (ordered from the smallest anchor).
    pub fn new(depths: &[usize], direction: Direction, window: Window) -> Space {
        let mut routes: Vec<Route> = (0..depths.len()).map(Route::Anchor).collect();
        let mut layers = Vec::new();
        for pair in 0..depths.len().saturating_sub(1) {
            let (front, end) = match direction {
                Direction::FastToSlow => (pair, pair + 1),
                Direction::SlowToFast => (pair + 1, pair),
            };
            let space = if depths[front] == depths[end] {
                paired(depths[front], window, false)
            } else {
                unpaired(depths[front], depths[end])
            };
            routes.extend(space.stitches.iter().map(|&stitch| Route::Stitched {
                pair,
                front,
                end,
                stitch,
            }));
            layers.push(space.layers);
        }
        Space { routes, layers }
    }

    /// This space with a stitching layer of its own for every stitch, instead of one per
    /// window. The reference shares a window's layer among its stitches (and averages their
    /// least-squares fits), which suits models whose neighbouring blocks carry one residual
    /// stream (ViTs); between the blocks of a plain CNN the activations differ too much for
    /// one map to serve several stitches.
    pub fn with_layer_per_stitch(mut self) -> Space {
        let mut next = vec![0; self.layers.len()];
        for route in &mut self.routes {
            if let Route::Stitched { pair, stitch, .. } = route {
                stitch.layer = next[*pair];
                next[*pair] += 1;
            }
        }
        self.layers = next;
        self
    }
}

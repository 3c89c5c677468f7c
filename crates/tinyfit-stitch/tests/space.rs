//! The stitching space reproduces the reference code's enumeration (`snnet.md` §A4): DeiT's
//! 12 blocks give 34 stitches and 11 layers per pair with the default window, 71 networks
//! with three anchors, and the other window settings the digest tabulates.

use tinyfit_stitch::space::{Direction, Route, Space, Stitch, Window, paired, unpaired};

#[test]
fn deit_paired_stitching_matches_the_reference_counts() {
    // (kernel, stride, layers per pair, networks with three anchors and nearest stitching)
    for (kernel, stride, layers, networks) in [
        (1, 1, 12, 27),
        (2, 1, 11, 71),
        (2, 2, 6, 51),
        (3, 1, 10, 111),
        (4, 1, 9, 147),
        (4, 2, 5, 131),
    ] {
        let window = Window { kernel, stride };
        let pair = paired(12, window, false);
        assert_eq!(pair.layers, layers, "k = {kernel}, s = {stride}");
        let space = Space::new(&[12, 12, 12], Direction::FastToSlow, window);
        assert_eq!(space.routes.len(), networks, "k = {kernel}, s = {stride}");
        assert_eq!(space.layers, vec![layers, layers]);
    }
}

#[test]
fn windows_contribute_their_new_stitches_under_one_layer() {
    let pair = paired(12, Window::default(), false);
    assert_eq!(pair.stitches.len(), 34);
    let first: Vec<(usize, usize, usize)> = pair.stitches[..7]
        .iter()
        .map(|s| (s.front, s.end, s.layer))
        .collect();
    assert_eq!(
        first,
        [
            (0, 0, 0),
            (0, 1, 0),
            (1, 0, 0),
            (1, 1, 0),
            (1, 2, 1),
            (2, 1, 1),
            (2, 2, 1)
        ]
    );
    // Stitched depths are 12, 13 or 14 blocks: (j + 1) + (12 − k).
    assert!(pair.stitches.iter().all(|s| {
        let depth = s.front + 1 + 12 - s.end;
        (12..=14).contains(&depth)
    }));
}

#[test]
fn forward_only_pairing_is_the_swin_variant() {
    let pair = paired(18, Window::default(), true);
    assert_eq!(pair.stitches.len(), 17);
    assert!(pair.stitches.iter().all(|s| s.end == s.front + 1));
    assert_eq!(paired(2, Window::default(), true).stitches.len(), 1);
}

#[test]
fn unequal_depths_stitch_by_nearest_interpolation() {
    let pair = unpaired(6, 18);
    assert_eq!(pair.layers, 6);
    let cfgs: Vec<(usize, usize)> = pair.stitches.iter().map(|s| (s.front, s.end)).collect();
    assert_eq!(cfgs.len(), 17);
    assert_eq!(&cfgs[..5], &[(0, 1), (0, 2), (1, 3), (1, 4), (1, 5)]);
    assert_eq!(&cfgs[14..], &[(5, 15), (5, 16), (5, 17)]);
    assert!(pair.stitches.iter().all(|s| s.layer == s.front));
}

#[test]
fn slow_to_fast_puts_the_larger_anchor_in_front() {
    let space = Space::new(&[2, 3], Direction::SlowToFast, Window::default());
    assert_eq!(space.routes[..2], [Route::Anchor(0), Route::Anchor(1)]);
    let stitched: Vec<(usize, usize, Stitch)> = space.routes[2..]
        .iter()
        .map(|r| match *r {
            Route::Stitched {
                front, end, stitch, ..
            } => (front, end, stitch),
            Route::Anchor(_) => panic!("anchors come first"),
        })
        .collect();
    assert!(
        stitched
            .iter()
            .all(|&(front, end, _)| (front, end) == (1, 0))
    );
    // Three front blocks onto two end blocks: shallow block 0 corresponds to deep block 1, so
    // the deep anchor's block 0 hands over to the shallow anchor's block 1.
    assert_eq!(
        stitched
            .iter()
            .map(|s| (s.2.front, s.2.end))
            .collect::<Vec<_>>(),
        [(0, 1)]
    );
}

#[test]
fn a_layer_per_stitch_gives_every_stitch_of_a_pair_its_own() {
    let shared = Space::new(&[12, 12, 12], Direction::FastToSlow, Window::default());
    let own = shared.clone().with_layer_per_stitch();
    assert_eq!(own.routes.len(), shared.routes.len());
    assert_eq!(own.layers, [34, 34]);
    for pair in 0..2 {
        let mut layers: Vec<usize> = own
            .routes
            .iter()
            .filter_map(|r| match *r {
                Route::Stitched {
                    pair: p, stitch, ..
                } if p == pair => Some(stitch.layer),
                _ => None,
            })
            .collect();
        layers.sort_unstable();
        assert_eq!(layers, (0..34).collect::<Vec<_>>());
    }
}

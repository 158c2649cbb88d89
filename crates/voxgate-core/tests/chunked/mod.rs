//! A stream cut into pieces of arbitrary sizes, for tests that check that
//! chunking does not change a result.

use proptest::prelude::*;

/// Piece sizes below `max`, zero allowed, with at least one non-zero size so
/// that cycling through them always reaches the end of the input.
pub(crate) fn piece_sizes(max: usize, count: usize) -> impl Strategy<Value = Vec<usize>> {
    (
        1..max,
        prop::collection::vec(0..max, 0..count),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(nonzero, mut sizes, at)| {
            let at = at.index(sizes.len() + 1);
            sizes.insert(at, nonzero);
            sizes
        })
}

/// `input` cut into consecutive pieces, cycling through `sizes`.
pub(crate) fn pieces<'a, T>(
    input: &'a [T],
    sizes: &'a [usize],
) -> impl Iterator<Item = &'a [T]> + 'a {
    assert!(
        sizes.iter().any(|&size| size > 0),
        "piece sizes must not all be zero"
    );
    let mut rest = input;
    sizes.iter().cycle().map_while(move |&size| {
        if rest.is_empty() {
            return None;
        }
        let (head, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(head)
    })
}

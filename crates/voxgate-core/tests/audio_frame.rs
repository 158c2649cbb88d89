//! 20 ms framing of arbitrarily chunked streams.

use std::num::NonZeroUsize;

use proptest::prelude::*;
use voxgate_core::audio::{Framer, SampleRate};

mod chunked;

/// Pushes `input` in pieces of the given sizes (cycled, 0 allowed) and
/// collects every frame popped along the way.
fn frame_in_chunks(framer: &mut Framer, input: &[i16], sizes: &[usize]) -> Vec<Vec<i16>> {
    let mut frames = Vec::new();
    for piece in chunked::pieces(input, sizes) {
        framer.push(piece);
        while let Some(frame) = framer.pop_frame() {
            frames.push(frame.to_vec());
        }
    }
    frames
}

#[test]
fn frame_lengths_follow_the_rate() {
    assert_eq!(Framer::new(SampleRate::HZ_8000).frame_len(), 160);
    assert_eq!(Framer::new(SampleRate::HZ_16000).frame_len(), 320);
    assert_eq!(Framer::new(SampleRate::HZ_24000).frame_len(), 480);
}

#[test]
fn keeps_the_remainder_and_pads_it_on_flush() {
    let mut framer = Framer::new(SampleRate::HZ_8000);
    let input: Vec<i16> = (1..=400).collect();
    framer.push(&input);
    assert_eq!(framer.frames_ready(), 2);
    assert_eq!(framer.pending(), 400);
    assert_eq!(framer.pop_frame(), Some(&input[..160]));
    assert_eq!(framer.pop_frame(), Some(&input[160..320]));
    assert_eq!(framer.pop_frame(), None);
    assert_eq!(framer.pending(), 80);
    assert_eq!(framer.remainder(), &input[320..]);

    assert_eq!(framer.flush_padded(), 80);
    let last = framer.pop_frame().expect("padded frame").to_vec();
    assert_eq!(&last[..80], &input[320..]);
    assert!(last[80..].iter().all(|&s| s == 0));
    assert_eq!(framer.pending(), 0);
    assert_eq!(framer.flush_padded(), 0);
    assert_eq!(framer.pop_frame(), None);
}

#[test]
fn clear_drops_everything() {
    let mut framer = Framer::new(SampleRate::HZ_8000);
    framer.push(&[1; 500]);
    framer.clear();
    assert_eq!(framer.pending(), 0);
    assert_eq!(framer.pop_frame(), None);
    framer.push(&[2; 160]);
    assert_eq!(framer.pop_frame(), Some(&[2; 160][..]));
}

#[test]
fn zero_sized_pieces_still_reach_the_end() {
    let input: Vec<i16> = (0..500).collect();
    let mut framer = Framer::new(SampleRate::HZ_8000);
    let frames = frame_in_chunks(&mut framer, &input, &[0, 0, 7, 0]);
    assert_eq!(frames.len(), 3);
    assert_eq!(framer.remainder(), &input[480..]);
}

proptest! {
    #[test]
    fn piece_sizes_always_make_progress(sizes in chunked::piece_sizes(700, 20)) {
        prop_assert!(sizes.iter().any(|&size| size > 0));
    }

    #[test]
    fn frames_plus_remainder_reassemble_the_input(
        input in prop::collection::vec(any::<i16>(), 0..3000),
        sizes in chunked::piece_sizes(700, 20),
        frame_len in 1usize..400,
    ) {
        let frame_len = NonZeroUsize::new(frame_len).expect("strategy starts at 1");
        let mut framer = Framer::with_frame_len(frame_len);
        let frames = frame_in_chunks(&mut framer, &input, &sizes);
        prop_assert!(frames.iter().all(|f| f.len() == frame_len.get()));
        prop_assert_eq!(frames.len(), input.len() / frame_len.get());
        prop_assert!(framer.remainder().len() < frame_len.get());
        prop_assert_eq!(framer.pending(), framer.remainder().len());

        let mut joined: Vec<i16> = frames.concat();
        joined.extend_from_slice(framer.remainder());
        prop_assert_eq!(&joined, &input);

        // The padded last frame carries the remainder then silence.
        let remainder = framer.remainder().to_vec();
        let padding = framer.flush_padded();
        if remainder.is_empty() {
            prop_assert_eq!(padding, 0);
            prop_assert_eq!(framer.pop_frame(), None);
        } else {
            prop_assert_eq!(padding + remainder.len(), frame_len.get());
            let last = framer.pop_frame().expect("padded frame").to_vec();
            prop_assert_eq!(&last[..remainder.len()], &remainder[..]);
            prop_assert!(last[remainder.len()..].iter().all(|&s| s == 0));
        }
    }
}

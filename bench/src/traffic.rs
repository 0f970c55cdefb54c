//! Frame-size models of the traffic generator: how big each video or screen-share frame is.
//!
//! Owns [`FrameSizes`] (fixed; video with a size distribution and periodic keyframes; screen share
//! with rare large bursts and small idle frames in between) and [`FrameSizer`], which draws the
//! sizes of one stream's frames in order from a seeded RNG: the same seed gives the same frames on
//! every run and machine. Splitting a frame into packets is [`crate::pace::Burst::split`].
//!
//! Must never read a clock or touch a socket; every draw is bounded by the model's maximum.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How big the frames of one stream are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrameSizes {
    /// Every frame has `bytes` of payload.
    Fixed {
        /// Payload bytes per frame.
        bytes: usize,
    },
    /// Video: frame `k` is a keyframe when `k % keyframe_interval == 0`; sizes are drawn uniformly
    /// within `± jitter` of their mean (`delta_bytes` or `keyframe_bytes`).
    Video {
        /// Mean payload bytes of a delta frame.
        delta_bytes: usize,
        /// Mean payload bytes of a keyframe.
        keyframe_bytes: usize,
        /// Frames from one keyframe to the next (at least 1).
        keyframe_interval: u32,
        /// Relative spread of sizes, 0 ..< 1.
        jitter: f64,
    },
    /// Screen share: idle frames of `idle_bytes`; a frame is a burst of `burst_bytes` with
    /// probability `burst_probability` (the first frame always is).
    Screen {
        /// Payload bytes of an idle frame.
        idle_bytes: usize,
        /// Payload bytes of a burst.
        burst_bytes: usize,
        /// Probability of a burst per frame.
        burst_probability: f64,
    },
}

impl FrameSizes {
    /// The largest frame the model can draw, in payload bytes.
    pub fn max_bytes(&self) -> usize {
        match *self {
            FrameSizes::Fixed { bytes } => bytes,
            FrameSizes::Video { delta_bytes, keyframe_bytes, jitter, .. } => {
                (delta_bytes.max(keyframe_bytes) as f64 * (1.0 + jitter.clamp(0.0, 0.99))).ceil() as usize
            }
            FrameSizes::Screen { idle_bytes, burst_bytes, .. } => idle_bytes.max(burst_bytes),
        }
    }

    /// Mean packets per frame when frames are split at `max_payload_bytes` (jitter ignored: the
    /// packet count of the mean size), for rates and plans.
    pub fn mean_packets(&self, max_payload_bytes: usize) -> f64 {
        let packets = |bytes: usize| bytes.div_ceil(max_payload_bytes.max(1)).max(1) as f64;
        match *self {
            FrameSizes::Fixed { bytes } => packets(bytes),
            FrameSizes::Video { delta_bytes, keyframe_bytes, keyframe_interval, .. } => {
                let n = f64::from(keyframe_interval.max(1));
                (packets(keyframe_bytes) + (n - 1.0) * packets(delta_bytes)) / n
            }
            FrameSizes::Screen { idle_bytes, burst_bytes, burst_probability } => {
                let p = burst_probability.clamp(0.0, 1.0);
                p * packets(burst_bytes) + (1.0 - p) * packets(idle_bytes)
            }
        }
    }
}

/// The sizes of one stream's frames, in order, from a seeded RNG.
#[derive(Debug, Clone)]
pub struct FrameSizer {
    sizes: FrameSizes,
    rng: StdRng,
    frame: u64,
}

impl FrameSizer {
    /// Frames of `sizes`, drawn from `seed`.
    pub fn new(sizes: FrameSizes, seed: u64) -> FrameSizer {
        FrameSizer { sizes, rng: StdRng::seed_from_u64(seed), frame: 0 }
    }

    /// Whether the next frame is a keyframe (video) or a burst (screen) — without drawing it.
    pub fn next_is_key(&self) -> bool {
        match self.sizes {
            FrameSizes::Fixed { .. } => false,
            FrameSizes::Video { keyframe_interval, .. } => {
                self.frame.is_multiple_of(u64::from(keyframe_interval.max(1)))
            }
            FrameSizes::Screen { .. } => self.frame == 0,
        }
    }

    /// Payload bytes of the next frame (at least 1, at most [`FrameSizes::max_bytes`]).
    pub fn next_frame_bytes(&mut self) -> usize {
        let key = self.next_is_key();
        self.frame += 1;
        let bytes = match self.sizes {
            FrameSizes::Fixed { bytes } => bytes,
            FrameSizes::Video { delta_bytes, keyframe_bytes, jitter, .. } => {
                let mean = if key { keyframe_bytes } else { delta_bytes } as f64;
                let j = jitter.clamp(0.0, 0.99);
                if j > 0.0 {
                    (mean * self.rng.random_range(1.0 - j..=1.0 + j)).round() as usize
                } else {
                    mean as usize
                }
            }
            FrameSizes::Screen { idle_bytes, burst_bytes, burst_probability } => {
                let burst = key || self.rng.random_bool(burst_probability.clamp(0.0, 1.0));
                if burst {
                    burst_bytes
                } else {
                    idle_bytes
                }
            }
        };
        bytes.clamp(1, self.sizes.max_bytes().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: FrameSizes =
        FrameSizes::Video { delta_bytes: 5000, keyframe_bytes: 30_000, keyframe_interval: 60, jitter: 0.3 };

    #[test]
    fn video_keyframes_come_periodically_and_sizes_stay_in_bounds() {
        let mut sizer = FrameSizer::new(VIDEO, 42);
        let sizes: Vec<usize> = (0..600).map(|_| sizer.next_frame_bytes()).collect();
        for (k, &b) in sizes.iter().enumerate() {
            if k % 60 == 0 {
                assert!((21_000..=39_000).contains(&b), "keyframe {k}: {b}");
            } else {
                assert!((3500..=6500).contains(&b), "delta frame {k}: {b}");
            }
        }
        // Ten keyframes in 600 frames, nothing else that large.
        assert_eq!(sizes.iter().filter(|&&b| b > 10_000).count(), 10);
        // The sizes are spread (not a constant) and their mean is near the model's.
        let deltas: Vec<f64> = sizes.iter().enumerate().filter(|(k, _)| k % 60 != 0).map(|(_, &b)| b as f64).collect();
        let mean = deltas.iter().sum::<f64>() / deltas.len() as f64;
        assert!((mean - 5000.0).abs() < 150.0, "{mean}");
        let (lo, hi) = deltas.iter().fold((f64::MAX, 0.0f64), |(l, h), &b| (l.min(b), h.max(b)));
        assert!(lo < 4000.0 && hi > 6000.0, "{lo}..{hi}");
        assert!(VIDEO.max_bytes() >= 39_000);
    }

    #[test]
    fn the_same_seed_gives_the_same_frames() {
        let draw = |seed| {
            let mut s = FrameSizer::new(VIDEO, seed);
            (0..100).map(|_| s.next_frame_bytes()).collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }

    #[test]
    fn screen_share_is_idle_with_rare_bursts() {
        let screen = FrameSizes::Screen { idle_bytes: 400, burst_bytes: 70_000, burst_probability: 0.05 };
        let mut sizer = FrameSizer::new(screen, 3);
        assert!(sizer.next_is_key());
        let sizes: Vec<usize> = (0..2000).map(|_| sizer.next_frame_bytes()).collect();
        assert_eq!(sizes[0], 70_000, "the first frame is a burst");
        assert!(sizes.iter().all(|&b| b == 400 || b == 70_000));
        let bursts = sizes.iter().filter(|&&b| b == 70_000).count();
        // 5% of 2000 = 100, binomial sd ≈ 10.
        assert!((60..=140).contains(&bursts), "{bursts}");
        // Idle in between: no two bursts in a row most of the time.
        let adjacent = sizes.windows(2).filter(|w| w[0] == 70_000 && w[1] == 70_000).count();
        assert!(adjacent < bursts / 4, "{adjacent} of {bursts}");
    }

    #[test]
    fn mean_packets_follow_the_split() {
        assert_eq!(FrameSizes::Fixed { bytes: 6000 }.mean_packets(1200), 5.0);
        // 59 delta frames of 5 packets, one keyframe of 25: (25 + 59 * 5) / 60.
        assert!((VIDEO.mean_packets(1200) - (25.0 + 59.0 * 5.0) / 60.0).abs() < 1e-9);
        let screen = FrameSizes::Screen { idle_bytes: 400, burst_bytes: 12_000, burst_probability: 0.5 };
        assert_eq!(screen.mean_packets(1200), 5.5);
    }
}

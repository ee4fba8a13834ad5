//! The generator's own random numbers.
//!
//! Written here rather than taken from `rand` so that the workload is a function of this
//! crate's code alone: a dependency upgrade must never change the spans a seed produces,
//! or benchmark figures stop comparing across time.

/// SplitMix64's output function: a bijection on `u64` with good avalanche.
///
/// Used to derive independent streams from `(seed, index)` and to make identifiers that are
/// distinct by construction (a bijection never maps two inputs to one output).
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The SplitMix64 increment (2^64 / golden ratio).
pub(crate) const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Derives the key of one stream from the workload seed, a trace index and a purpose, so
/// that trace `i` never depends on traces `0..i` and the purposes never share numbers.
pub(crate) const fn stream_key(seed: u64, index: u64, purpose: u64) -> u64 {
    mix64(mix64(seed ^ purpose.wrapping_mul(GOLDEN)).wrapping_add(index.wrapping_mul(GOLDEN)))
}

/// xoshiro256**: fast, small state, passes BigCrush; plenty for a workload.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Seeds the four state words from SplitMix64, as the xoshiro authors recommend; the
    /// state can never be all zero because SplitMix64 output words are not all zero for
    /// four consecutive steps.
    pub(crate) fn from_key(key: u64) -> Self {
        let mut x = key;
        let mut next = || {
            x = x.wrapping_add(GOLDEN);
            mix64(x)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    #[inline]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    #[inline]
    pub(crate) fn unit_open_zero(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift; the bias is below 2^-32 for the
    /// small `n` used here, far under anything a distribution test can see). `n == 0`
    /// yields 0 rather than panicking.
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform index into a slice of length `n`.
    #[inline]
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `p`.
    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponential with the given mean, by inverse transform.
    #[inline]
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit_open_zero().ln()
    }

    /// Standard normal by Box-Muller (one of the pair is discarded: simpler than caching the
    /// second, and the state stays a plain function of the draws made).
    #[inline]
    pub(crate) fn standard_normal(&mut self) -> f64 {
        let radius = (-2.0 * self.unit_open_zero().ln()).sqrt();
        let angle = std::f64::consts::TAU * self.unit();
        radius * angle.cos()
    }

    /// Log-normal given its median and the sigma of the underlying normal.
    #[inline]
    pub(crate) fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.standard_normal()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro_matches_reference_sequence() {
        // Reference output of xoshiro256** for state [1, 2, 3, 4] (from the authors' C code).
        let mut rng = Rng { s: [1, 2, 3, 4] };
        let expected = [
            11520u64,
            0,
            1509978240,
            1215971899390074240,
            1216172134540287360,
            607988272756665600,
        ];
        for want in expected {
            assert_eq!(rng.next_u64(), want);
        }
    }

    #[test]
    fn mix64_matches_splitmix_reference() {
        // First output of SplitMix64 seeded with 0 (state advanced by GOLDEN then mixed).
        assert_eq!(mix64(GOLDEN), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn unit_and_below_stay_in_range() {
        let mut rng = Rng::from_key(7);
        for _ in 0..10_000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            let v = rng.unit_open_zero();
            assert!(v > 0.0 && v <= 1.0);
            assert!(rng.below(6) < 6);
        }
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut rng = Rng::from_key(42);
        let n = 200_000;
        let (mut sum, mut sq) = (0.0, 0.0);
        for _ in 0..n {
            let z = rng.standard_normal();
            sum += z;
            sq += z * z;
        }
        let mean = sum / f64::from(n);
        let var = sq / f64::from(n) - mean * mean;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}

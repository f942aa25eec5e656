//! A small seeded random number generator (SplitMix64) and the
//! distributions scenarios draw from. Our own so that a seed means the same
//! numbers whatever crate versions are in the lock file.

use std::time::Duration;

/// A SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6A09_E667_F3BC_C908)
    }

    /// An independent stream for `(seed, label, n)`: the same inputs give
    /// the same stream wherever it is created.
    pub fn derive(seed: u64, label: &str, n: u64) -> Rng {
        let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
        for b in label.bytes().chain(n.to_le_bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01B3);
        }
        let mut r = Rng(h);
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n) (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with this median and shape σ.
    pub fn lognormal(&mut self, median: Duration, sigma: f64) -> Duration {
        let x = median.as_secs_f64() * (sigma * self.normal()).exp();
        Duration::from_secs_f64(x.clamp(0.0, 1e9))
    }

    /// `k` distinct indices from [0, n), in random order.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        let k = k.min(n);
        for i in 0..k {
            let j = i + self.below(n - i);
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }

    /// Deterministic bytes (a file's content from its seed).
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let a: Vec<u64> = (0..5).map(|_| Rng::new(7).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Rng::derive(1, "node", 3);
        let mut y = Rng::derive(1, "node", 3);
        let mut z = Rng::derive(1, "node", 4);
        assert_eq!(x.next_u64(), y.next_u64());
        assert_ne!(x.next_u64(), z.next_u64());
    }

    #[test]
    fn lognormal_median_is_the_median() {
        let mut r = Rng::new(1);
        let mut v: Vec<f64> = (0..20_001)
            .map(|_| r.lognormal(Duration::from_secs(100), 1.0).as_secs_f64())
            .collect();
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        assert!((90.0..110.0).contains(&median), "median {median}");
    }

    #[test]
    fn sample_is_distinct() {
        let mut r = Rng::new(3);
        let mut s = r.sample(100, 30);
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 30);
        assert!(s.iter().all(|&i| i < 100));
    }
}

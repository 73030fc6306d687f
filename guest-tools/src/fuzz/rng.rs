//! The fuzzer's PRNG (splitmix64) and the lengths it draws.

use super::Channel;

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The splitmix64 finalizer: a bijection on u64 that mixes every input bit into every output bit.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and every seed gives a full-period stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The stream of `channel` for a worker seed: distinct channels start at unrelated points.
    pub fn for_channel(seed: u64, channel: Channel) -> Self {
        Rng(mix64(seed ^ mix64(channel.salt())))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    pub fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in 0..n (0 when n is 0); multiply-shift, bias below 2^-32 for our n.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in lo..=hi (lo <= hi).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.next_u64(),
        }
    }

    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A random byte, never `:` or `#` (see the module documentation).
    pub fn byte(&mut self) -> u8 {
        match self.next_u64() as u8 {
            b':' | b'#' => b';',
            b => b,
        }
    }

    /// `n` random bytes, never `:` or `#`.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// A length in 0..=max, biased to the small sizes and the edges kchan cares about (the
/// sockopt message's 23 and 64, the proc buffer's 128, a page).
pub(super) fn gen_len(rng: &mut Rng, max: usize) -> usize {
    const EDGES: [usize; 16] = [
        0, 1, 15, 16, 17, 22, 23, 24, 63, 64, 65, 127, 128, 129, 4095, 4096,
    ];
    let v = match rng.below(100) {
        0..=4 => 0,
        5..=14 => rng.range(1, 8) as usize,
        15..=39 => rng.pick(&EDGES),
        40..=74 => rng.range(1, 130) as usize,
        _ => rng.range(0, max as u64) as usize,
    };
    v.min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference() {
        // The reference splitmix64 stream for seed 0.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn rng_bounds() {
        let mut r = Rng::new(42);
        for _ in 0..10_000 {
            assert!(r.below(7) < 7);
            let v = r.range(3, 5);
            assert!((3..=5).contains(&v));
            let b = r.byte();
            assert!(b != b':' && b != b'#');
        }
        assert_eq!(r.below(0), 0);
        let _ = r.range(0, u64::MAX);
        // Every value of a small range shows up.
        let mut seen = [false; 6];
        for _ in 0..1000 {
            seen[r.range(0, 5) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn channel_streams_differ() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::for_channel(1, Channel::Sockopt).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut firsts: Vec<u64> = Channel::ALL
            .iter()
            .map(|&c| Rng::for_channel(1, c).next_u64())
            .collect();
        firsts.push(Rng::for_channel(2, Channel::Sockopt).next_u64());
        let mut d = firsts.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), firsts.len());
    }
}

//! Portable, position-keyed random streams.
//!
//! Every random decision of this crate comes from a ChaCha8 stream whose 256-bit key is built
//! from the user's seed and the decision's coordinates (epoch, batch, row), so results do not
//! depend on thread scheduling, and resuming from a checkpoint needs only those coordinates.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream is for; keeps the sampler's and the augmentation's streams apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Purpose {
    Sampler = 0x5341_4d50_4c45_5200,
    Augment = 0x4155_474d_454e_5400,
    Synth = 0x5359_4e54_4800_0000,
}

/// A ChaCha8 generator keyed by `(seed, purpose, a, b)`.
pub(crate) fn keyed_rng(seed: u64, purpose: Purpose, first: u64, second: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(purpose as u64).to_le_bytes());
    key[16..24].copy_from_slice(&first.to_le_bytes());
    key[24..32].copy_from_slice(&second.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

//! Random mutations of valid files for the fuzz tests: bit flips, truncations, insertions,
//! overwrites, and 32-bit words set to values that length fields get wrong.
//!
//! Shared by the fuzz tests of ee-core, ee-data and ee-eval (each includes this file with
//! `#[path]`).

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::Index;

/// One edit of a file's bytes.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Flips one bit of one byte.
    Flip(Index, u8),
    /// Cuts the file at a position.
    Truncate(Index),
    /// Inserts bytes at a position.
    Insert(Index, Vec<u8>),
    /// Overwrites bytes from a position.
    Overwrite(Index, Vec<u8>),
    /// Sets a 4-byte aligned little-endian word (a length, a count, a type tag).
    SetWord(Index, u32),
}

/// A mutation; inserted and written bytes are random or drawn from `alphabet` (bytes or text
/// that matter to the format).
pub fn mutation(alphabet: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    let chunk = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..8),
        proptest::collection::vec(prop::sample::select(alphabet), 1..4)
            .prop_map(|tokens| tokens.concat().into_bytes()),
    ];
    let word = prop_oneof![
        Just(0u32),
        Just(1),
        Just(7),
        Just(8),
        Just(14),
        Just(15),
        Just(0x0004_0005),
        Just(0x7FFF_FFFF),
        Just(0x8000_0000),
        Just(0xFFFF_FFF0),
        Just(u32::MAX),
        any::<u32>(),
    ];
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        2 => (any::<Index>(), chunk.clone()).prop_map(|(i, c)| Mutation::Insert(i, c)),
        2 => (any::<Index>(), chunk).prop_map(|(i, c)| Mutation::Overwrite(i, c)),
        2 => (any::<Index>(), word).prop_map(|(i, w)| Mutation::SetWord(i, w)),
    ]
}

/// 1 to 3 mutations.
pub fn mutations(alphabet: &'static [&'static str]) -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(alphabet), 1..4)
}

/// Applies `m` to `bytes` (a no-op on an empty file).
pub fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(i, bit) => {
            let i = i.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::Insert(i, chunk) => {
            let i = i.index(bytes.len() + 1);
            bytes.splice(i..i, chunk.iter().copied());
        }
        Mutation::Overwrite(i, chunk) => {
            let i = i.index(bytes.len());
            for (k, b) in chunk.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(i + k) {
                    *slot = *b;
                }
            }
        }
        Mutation::SetWord(i, word) => {
            let at = i.index(bytes.len().div_ceil(4)) * 4;
            for (k, b) in word.to_le_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + k) {
                    *slot = b;
                }
            }
        }
    }
}

/// `bytes` with every mutation applied.
pub fn mutated(mut bytes: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        apply(&mut bytes, m);
    }
    bytes
}

/// The message of a caught panic.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".into())
}

/// The start of `bytes` as text, for failure messages.
pub fn show(bytes: &[u8]) -> String {
    format!(
        "{:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(160)])
    )
}

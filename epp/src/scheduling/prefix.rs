//! Prefix hashing and the per-endpoint index of prefixes each endpoint was sent.
//!
//! **Blocks.** vLLM caches KV in blocks of 16 tokens, named by a hash chained over the blocks
//! before them. Without the model's tokenizer we approximate a token by 4 characters, as the
//! Inference Extension does: the prompt text is cut into blocks of `block_size_tokens × 4`
//! *characters* (64 by default; characters, not bytes, so UTF-8 is never split). Only full
//! blocks count, as only full blocks are cached; at most `max_blocks` are hashed (256 by
//! default, 16 KiB of text).
//!
//! **Chain.** Block *i*'s hash is xxh3-64 of its text with block *i − 1*'s hash as seed; the
//! chain starts from a hash of the model name (and `cache_salt` when given), so the same prompt
//! for two models or two salts never matches.
//!
//! **Index.** For each endpoint an LRU of the block hashes it was sent (capacity
//! `lruCapacityPerServer`, 31250 blocks by default — an 8B model's KV on an 80 GB GPU — or the
//! endpoint's own `num_gpu_blocks` when `autoTune` and the server reports it), plus a reverse
//! map from hash to endpoints so a lookup walks the prompt's chain once for all endpoints.
//! A match is the number of leading blocks an endpoint holds; the score is that number over the
//! prompt's blocks.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Characters per token, the Inference Extension's approximation.
pub const CHARS_PER_TOKEN: usize = 4;
/// vLLM's default block size, in tokens.
pub const DEFAULT_BLOCK_SIZE_TOKENS: usize = 16;
/// Longest prefix considered, in blocks.
pub const DEFAULT_MAX_BLOCKS: usize = 256;
/// Blocks remembered per endpoint.
pub const DEFAULT_LRU_CAPACITY: usize = 31250;

/// The chained block hashes of `prompt` for `model`: one per full block of
/// `block_chars` characters, at most `max_blocks`.
pub fn hash_blocks(
    model: &str,
    cache_salt: Option<&str>,
    prompt: &str,
    block_chars: usize,
    max_blocks: usize,
) -> Vec<u64> {
    if block_chars == 0 || max_blocks == 0 {
        return Vec::new();
    }
    let mut prev = xxh3_64_with_seed(model.as_bytes(), 0);
    if let Some(salt) = cache_salt.filter(|s| !s.is_empty()) {
        prev = xxh3_64_with_seed(salt.as_bytes(), prev);
    }
    let mut hashes = Vec::new();
    let mut start = 0;
    let mut chars = 0;
    for (i, c) in prompt.char_indices() {
        chars += 1;
        if chars == block_chars {
            let end = i + c.len_utf8();
            prev = xxh3_64_with_seed(&prompt.as_bytes()[start..end], prev);
            hashes.push(prev);
            if hashes.len() == max_blocks {
                break;
            }
            start = end;
            chars = 0;
        }
    }
    hashes
}

/// One endpoint's LRU of block hashes.
#[derive(Debug, Default)]
struct Lru {
    tick: u64,
    by_hash: HashMap<u64, u64>,
    by_tick: BTreeMap<u64, u64>,
}

impl Lru {
    /// Inserts or refreshes `hash`; returns the hashes evicted to stay within `capacity`.
    fn touch(&mut self, hash: u64, capacity: usize, evicted: &mut Vec<u64>) -> bool {
        self.tick += 1;
        let fresh = match self.by_hash.insert(hash, self.tick) {
            Some(old) => {
                self.by_tick.remove(&old);
                false
            }
            None => true,
        };
        self.by_tick.insert(self.tick, hash);
        while self.by_hash.len() > capacity.max(1) {
            let Some((_, oldest)) = self.by_tick.pop_first() else {
                break;
            };
            self.by_hash.remove(&oldest);
            evicted.push(oldest);
        }
        fresh
    }

    fn len(&self) -> usize {
        self.by_hash.len()
    }
}

/// Which endpoints were sent which prefix blocks.
#[derive(Debug, Default)]
pub struct PrefixIndex {
    endpoints: HashMap<SocketAddr, Lru>,
    holders: HashMap<u64, Vec<SocketAddr>>,
}

impl PrefixIndex {
    pub fn new() -> Self {
        PrefixIndex::default()
    }

    /// For each endpoint holding at least the first block: how many leading blocks it holds.
    pub fn matches(&self, hashes: &[u64]) -> HashMap<SocketAddr, usize> {
        let mut matched: HashMap<SocketAddr, usize> = HashMap::new();
        let Some(first) = hashes.first() else {
            return matched;
        };
        let Some(holders) = self.holders.get(first) else {
            return matched;
        };
        let mut alive: Vec<SocketAddr> = holders.clone();
        for (depth, hash) in hashes.iter().enumerate() {
            let Some(holders) = self.holders.get(hash) else {
                break;
            };
            alive.retain(|a| holders.contains(a));
            if alive.is_empty() {
                break;
            }
            for a in &alive {
                matched.insert(*a, depth + 1);
            }
        }
        matched
    }

    /// Remembers that `endpoint` was sent `hashes` (its LRU keeps at most `capacity` blocks).
    pub fn record(&mut self, endpoint: SocketAddr, hashes: &[u64], capacity: usize) {
        let lru = self.endpoints.entry(endpoint).or_default();
        let mut evicted = Vec::new();
        let mut added = Vec::new();
        for hash in hashes {
            if lru.touch(*hash, capacity, &mut evicted) {
                added.push(*hash);
            }
        }
        for hash in added {
            let holders = self.holders.entry(hash).or_default();
            if !holders.contains(&endpoint) {
                holders.push(endpoint);
            }
        }
        for hash in evicted {
            self.forget(hash, endpoint);
        }
    }

    fn forget(&mut self, hash: u64, endpoint: SocketAddr) {
        if let Some(holders) = self.holders.get_mut(&hash) {
            holders.retain(|a| *a != endpoint);
            if holders.is_empty() {
                self.holders.remove(&hash);
            }
        }
    }

    /// Drops every endpoint `keep` rejects (pods that left the pool).
    pub fn retain(&mut self, mut keep: impl FnMut(&SocketAddr) -> bool) {
        let gone: Vec<SocketAddr> = self
            .endpoints
            .keys()
            .filter(|a| !keep(a))
            .copied()
            .collect();
        for addr in gone {
            if let Some(lru) = self.endpoints.remove(&addr) {
                for hash in lru.by_hash.keys() {
                    self.forget(*hash, addr);
                }
            }
        }
    }

    /// Blocks remembered for `endpoint`.
    pub fn len(&self, endpoint: &SocketAddr) -> usize {
        self.endpoints.get(endpoint).map_or(0, Lru::len)
    }

    pub fn is_empty(&self) -> bool {
        self.holders.is_empty()
    }
}

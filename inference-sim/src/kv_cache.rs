//! The KV cache: a pool of fixed-size blocks, with vLLM's automatic prefix caching.
//!
//! A full block of prompt tokens is named by a hash chained over every block before it (and the
//! adapter, which changes the KV values), so equal hashes mean equal prefixes. Once computed, such a
//! block is *cached*: later requests with the same prefix share it instead of computing it again.
//! When no sequence references a cached block it is free — it counts as unused in
//! `vllm:kv_cache_usage_perc` — but keeps its contents until a new allocation evicts it, least
//! recently released first. Blocks of a released sequence are released tail first, so its prefix
//! outlives its suffix, as in vLLM's free queue.

use std::collections::{BTreeMap, HashMap};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Name of a full block of prompt tokens: a hash of the block and everything before it.
pub(crate) type BlockHash = u64;

/// Hashes of the full `block_size` blocks of `tokens`, chained from the adapter's name.
pub(crate) fn block_hashes(
    tokens: &[u32],
    block_size: usize,
    adapter: Option<&str>,
) -> Vec<BlockHash> {
    let mut parent = xxh3_64_with_seed(adapter.unwrap_or("").as_bytes(), 0x6b76);
    let mut bytes = Vec::with_capacity(block_size * 4);
    tokens
        .chunks_exact(block_size.max(1))
        .map(|block| {
            bytes.clear();
            for id in block {
                bytes.extend_from_slice(&id.to_le_bytes());
            }
            parent = xxh3_64_with_seed(&bytes, parent);
            parent
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    refs: u32,
    /// Position in the eviction order while `refs` is 0.
    released: u64,
}

/// The blocks of the simulated GPU.
#[derive(Debug)]
pub(crate) struct BlockPool {
    total: usize,
    /// Free blocks holding nothing worth keeping.
    empty: usize,
    /// Blocks holding a computed prompt block, referenced or not.
    cached: HashMap<BlockHash, Cached>,
    /// Unreferenced cached blocks by release order: the first is evicted first.
    evictable: BTreeMap<u64, BlockHash>,
    clock: u64,
}

impl BlockPool {
    pub fn new(total: usize) -> Self {
        Self {
            total,
            empty: total,
            cached: HashMap::new(),
            evictable: BTreeMap::new(),
            clock: 0,
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    /// Blocks an allocation could use now: empty ones plus unreferenced cached ones.
    pub fn free(&self) -> usize {
        self.empty + self.evictable.len()
    }

    /// Fraction of blocks in use, vLLM's `kv_cache_usage_perc`.
    pub fn usage(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        1.0 - self.free() as f64 / self.total as f64
    }

    /// Blocks holding a cached prefix block (referenced or not).
    pub fn cached_blocks(&self) -> usize {
        self.cached.len()
    }

    /// How many leading `hashes` are cached.
    pub fn cached_prefix(&self, hashes: &[BlockHash]) -> usize {
        hashes
            .iter()
            .take_while(|h| self.cached.contains_key(h))
            .count()
    }

    /// Whether `new` blocks can be allocated after taking references on `hits` (a cached prefix).
    pub fn can_allocate(&self, new: usize, hits: &[BlockHash]) -> bool {
        let revived = hits
            .iter()
            .filter(|h| self.cached.get(h).is_some_and(|c| c.refs == 0))
            .count();
        self.free() >= new + revived
    }

    /// Takes a reference on a cached block (it must be cached).
    pub fn acquire(&mut self, hash: BlockHash) {
        if let Some(block) = self.cached.get_mut(&hash) {
            if block.refs == 0 {
                self.evictable.remove(&block.released);
            }
            block.refs += 1;
        }
    }

    /// Allocates `n` blocks, evicting cached blocks if needed; all or nothing.
    pub fn allocate(&mut self, n: usize) -> bool {
        if self.free() < n {
            return false;
        }
        let from_empty = n.min(self.empty);
        self.empty -= from_empty;
        for _ in from_empty..n {
            if let Some((_, hash)) = self.evictable.pop_first() {
                self.cached.remove(&hash);
            }
        }
        true
    }

    /// Turns one allocated block into the cached block `hash` (its prompt block was just computed).
    /// Returns false, leaving the block plain, when another sequence already cached that block.
    pub fn register(&mut self, hash: BlockHash) -> bool {
        if self.cached.contains_key(&hash) {
            return false;
        }
        self.cached.insert(
            hash,
            Cached {
                refs: 1,
                released: 0,
            },
        );
        true
    }

    /// Releases a sequence's blocks, given tail first: plain blocks become empty, cached ones
    /// evictable once unreferenced.
    pub fn release<'a>(
        &mut self,
        blocks_tail_first: impl IntoIterator<Item = &'a Option<BlockHash>>,
    ) {
        for block in blocks_tail_first {
            match block {
                None => self.empty += 1,
                Some(hash) => {
                    if let Some(cached) = self.cached.get_mut(hash) {
                        cached.refs = cached.refs.saturating_sub(1);
                        if cached.refs == 0 {
                            self.clock += 1;
                            cached.released = self.clock;
                            self.evictable.insert(self.clock, *hash);
                        }
                    }
                }
            }
        }
    }

    /// Blocks referenced by sequences (for invariant checks).
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.total - self.free()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_chain_so_equal_hashes_mean_equal_prefixes() {
        let a = block_hashes(&[1, 2, 3, 4, 5, 6, 7], 2, None);
        let b = block_hashes(&[1, 2, 9, 4, 5, 6], 2, None);
        assert_eq!(a.len(), 3, "only full blocks");
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
        assert_ne!(a[2], b[2], "a change poisons every later block");
        assert_ne!(a[0], block_hashes(&[1, 2], 2, Some("lora"))[0]);
    }

    #[test]
    fn released_cached_blocks_count_as_free_but_stay_hits_until_evicted() {
        let mut pool = BlockPool::new(4);
        let hashes = block_hashes(&[1, 2, 3, 4], 2, None);
        assert!(pool.allocate(2));
        assert!(pool.register(hashes[0]) && pool.register(hashes[1]));
        assert_eq!(pool.used(), 2);
        pool.release([Some(hashes[1]), Some(hashes[0])].iter());
        assert_eq!((pool.used(), pool.usage()), (0, 0.0));
        assert_eq!(pool.cached_prefix(&hashes), 2);

        // Two empty blocks are used before anything is evicted; the third allocation evicts the tail.
        assert!(pool.allocate(3));
        assert_eq!(pool.cached_prefix(&hashes), 1, "tail evicted first");
        assert!(!pool.allocate(2), "all or nothing");
        assert_eq!(pool.free(), 1);
    }

    #[test]
    fn taking_a_hit_removes_it_from_the_free_blocks() {
        let mut pool = BlockPool::new(3);
        let hashes = block_hashes(&[1, 2], 2, None);
        assert!(pool.allocate(1) && pool.register(hashes[0]));
        pool.release([Some(hashes[0])].iter());
        assert!(pool.can_allocate(2, &hashes));
        assert!(
            !pool.can_allocate(3, &hashes),
            "the revived hit is no longer free"
        );
        pool.acquire(hashes[0]);
        assert_eq!(pool.used(), 1);
        assert!(pool.allocate(2));
        assert_eq!(
            pool.cached_prefix(&hashes),
            1,
            "a referenced block is never evicted"
        );
    }

    #[test]
    fn a_block_cached_twice_stays_plain_the_second_time() {
        let mut pool = BlockPool::new(2);
        let h = block_hashes(&[7, 7], 2, None)[0];
        assert!(pool.allocate(2));
        assert!(pool.register(h));
        assert!(!pool.register(h));
        pool.release([None, Some(h)].iter());
        assert_eq!((pool.free(), pool.cached_blocks()), (2, 1));
    }
}

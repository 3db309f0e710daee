//! Prefix hashing (64-character blocks chained from the model) and the per-endpoint index.

use std::net::SocketAddr;

use epp::scheduling::prefix::{PrefixIndex, hash_blocks};

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 8000))
}

fn blocks(prompt: &str) -> Vec<u64> {
    hash_blocks("m", None, prompt, 64, 256)
}

#[test]
fn only_full_64_character_blocks_are_hashed() {
    assert!(blocks("").is_empty());
    assert!(blocks(&"x".repeat(63)).is_empty());
    assert_eq!(blocks(&"x".repeat(64)).len(), 1);
    assert_eq!(blocks(&"x".repeat(130)).len(), 2);
    assert_eq!(blocks(&"é".repeat(64)).len(), 1, "characters, not bytes");
    assert_eq!(blocks(&"日本".repeat(70)).len(), 2);
}

#[test]
fn hashes_chain_so_a_block_depends_on_everything_before_it() {
    let a = blocks(&("a".repeat(64) + &"b".repeat(64) + &"c".repeat(64)));
    let b = blocks(&("a".repeat(64) + &"B".repeat(64) + &"c".repeat(64)));
    assert_eq!(a[0], b[0]);
    assert_ne!(a[1], b[1]);
    assert_ne!(a[2], b[2], "same text, different prefix");
    assert_eq!(
        a,
        blocks(&("a".repeat(64) + &"b".repeat(64) + &"c".repeat(64))),
        "deterministic"
    );
    let repeated = blocks(&"a".repeat(192));
    assert_ne!(
        repeated[0], repeated[1],
        "equal blocks at different depths differ"
    );
}

#[test]
fn model_and_cache_salt_seed_the_chain() {
    let text = "z".repeat(128);
    let m = hash_blocks("m", None, &text, 64, 256);
    assert_ne!(m, hash_blocks("other", None, &text, 64, 256));
    assert_ne!(m, hash_blocks("m", Some("salt"), &text, 64, 256));
    assert_eq!(
        m,
        hash_blocks("m", Some(""), &text, 64, 256),
        "an empty salt is no salt"
    );
}

#[test]
fn long_prompts_are_cut_at_max_blocks() {
    let text = "q".repeat(64 * 10);
    let all = hash_blocks("m", None, &text, 64, 256);
    let cut = hash_blocks("m", None, &text, 64, 4);
    assert_eq!(all.len(), 10);
    assert_eq!(cut, all[..4].to_vec());
    assert!(hash_blocks("m", None, &text, 0, 4).is_empty());
}

#[test]
fn index_matches_leading_blocks_only() {
    let mut index = PrefixIndex::new();
    index.record(addr(1), &[1, 2, 3, 4], 100);
    index.record(addr(2), &[1, 2], 100);
    index.record(addr(3), &[9, 2, 3, 4], 100);
    let m = index.matches(&[1, 2, 3, 4]);
    assert_eq!(m.get(&addr(1)), Some(&4));
    assert_eq!(m.get(&addr(2)), Some(&2));
    assert_eq!(
        m.get(&addr(3)),
        None,
        "a later match without the first block is no prefix"
    );
    assert!(index.matches(&[]).is_empty());
    assert!(index.matches(&[7]).is_empty());
}

#[test]
fn index_evicts_least_recently_sent_blocks_per_endpoint() {
    let mut index = PrefixIndex::new();
    index.record(addr(1), &[1, 2, 3], 3);
    index.record(addr(1), &[1], 3); // 1 is now the most recent
    index.record(addr(1), &[4], 3); // evicts 2
    assert_eq!(index.len(&addr(1)), 3);
    assert_eq!(index.matches(&[1]).get(&addr(1)), Some(&1));
    assert_eq!(
        index.matches(&[1, 2]).get(&addr(1)),
        Some(&1),
        "2 was evicted"
    );
    assert_eq!(index.matches(&[4]).get(&addr(1)), Some(&1));
    // A chain longer than the capacity keeps its tail.
    index.record(addr(2), &[10, 11, 12, 13, 14], 2);
    assert_eq!(index.len(&addr(2)), 2);
    assert!(index.matches(&[10]).is_empty());
}

#[test]
fn index_forgets_endpoints_that_left() {
    let mut index = PrefixIndex::new();
    index.record(addr(1), &[1, 2], 10);
    index.record(addr(2), &[1, 2], 10);
    index.retain(|a| *a == addr(2));
    let m = index.matches(&[1, 2]);
    assert_eq!(m.len(), 1);
    assert_eq!(m.get(&addr(2)), Some(&2));
    index.retain(|_| false);
    assert!(index.is_empty());
}

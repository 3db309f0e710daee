//! Pickers: turn scored candidates into the ordered endpoint list (primary, then fallbacks).
//!
//! - `max-score-picker`: highest total score first; ties are broken randomly (a shuffle before a
//!   stable sort), with a seeded generator so a run is reproducible.
//! - `random-picker`: a random order, ignoring scores.
//!
//! Both take `maxNumOfEndpoints` (default 1, as upstream): how many endpoints the
//! `x-gateway-destination-endpoint` list carries.

use std::sync::Mutex;

use serde::Deserialize;

/// Upstream's default: only the primary endpoint.
pub const DEFAULT_MAX_ENDPOINTS: usize = 1;

/// `parameters` of both pickers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PickerParameters {
    #[serde(default)]
    pub max_num_of_endpoints: Option<i64>,
}

impl PickerParameters {
    /// Values below 1 fall back to the default, as upstream.
    pub fn max_endpoints(&self) -> usize {
        self.max_num_of_endpoints
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_MAX_ENDPOINTS)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickerKind {
    MaxScore,
    Random,
}

/// A configured picker.
#[derive(Debug)]
pub struct Picker {
    kind: PickerKind,
    max_endpoints: usize,
    rng: Mutex<SplitMix64>,
}

impl Picker {
    pub fn new(kind: PickerKind, max_endpoints: usize, seed: u64) -> Self {
        Picker {
            kind,
            max_endpoints: max_endpoints.max(1),
            rng: Mutex::new(SplitMix64::new(seed)),
        }
    }

    pub fn max_score(max_endpoints: usize, seed: u64) -> Self {
        Picker::new(PickerKind::MaxScore, max_endpoints, seed)
    }

    pub fn kind(&self) -> PickerKind {
        self.kind
    }

    pub fn max_endpoints(&self) -> usize {
        self.max_endpoints
    }

    /// Indices into `scores`, best first, at most `max_endpoints` of them.
    pub fn pick(&self, scores: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        {
            // A poisoned generator is still a generator.
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            rng.shuffle(&mut order);
        }
        if self.kind == PickerKind::MaxScore {
            // NaN never comes out of the scorers; treat it as the lowest score anyway.
            order.sort_by(|&a, &b| {
                let (a, b) = (nan_low(scores[a]), nan_low(scores[b]));
                b.total_cmp(&a)
            });
        }
        order.truncate(self.max_endpoints);
        order
    }
}

fn nan_low(v: f64) -> f64 {
    if v.is_nan() { f64::NEG_INFINITY } else { v }
}

/// A small, fast, seedable generator (SplitMix64); good enough for tie-breaking.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

//! GPU slots for LoRA adapters.
//!
//! At most `max_loras` adapters are resident, so at most that many distinct adapters run in one
//! batch (vLLM's `--max-loras`). A request for an adapter that is not resident takes a free slot or
//! evicts the least recently used adapter that no running request uses, and pays the load time; when
//! every resident adapter is busy it stays waiting, and requests behind it may go first.

/// What admitting a request for an adapter takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Already resident.
    Resident,
    /// Load it into a slot, evicting this adapter first if named.
    Load { evict: Option<String> },
    /// Every slot holds an adapter in use: wait.
    Busy,
}

#[derive(Debug, Clone)]
struct Slot {
    adapter: String,
    /// Running requests using it.
    refs: usize,
    last_used: u64,
}

#[derive(Debug)]
pub(crate) struct LoraSlots {
    max: usize,
    slots: Vec<Slot>,
    clock: u64,
    loads: u64,
}

impl LoraSlots {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            slots: Vec::new(),
            clock: 0,
            loads: 0,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Adapters loaded so far (cumulative).
    pub fn loads(&self) -> u64 {
        self.loads
    }

    /// Resident adapters, least recently used first.
    pub fn resident(&self) -> Vec<String> {
        let mut slots: Vec<_> = self.slots.iter().collect();
        slots.sort_by_key(|s| s.last_used);
        slots.into_iter().map(|s| s.adapter.clone()).collect()
    }

    /// What admitting a request for `adapter` would take.
    pub fn plan(&self, adapter: &str) -> Admit {
        if self.slots.iter().any(|s| s.adapter == adapter) {
            return Admit::Resident;
        }
        if self.slots.len() < self.max {
            return Admit::Load { evict: None };
        }
        match self
            .slots
            .iter()
            .filter(|s| s.refs == 0)
            .min_by_key(|s| s.last_used)
        {
            Some(lru) => Admit::Load {
                evict: Some(lru.adapter.clone()),
            },
            None => Admit::Busy,
        }
    }

    /// Carries out `plan` and takes a reference for the admitted request.
    pub fn admit(&mut self, adapter: &str, plan: &Admit) {
        if let Admit::Load { evict } = plan {
            if let Some(evict) = evict {
                self.slots.retain(|s| &s.adapter != evict);
            }
            self.slots.push(Slot {
                adapter: adapter.to_owned(),
                refs: 0,
                last_used: 0,
            });
            self.loads += 1;
        }
        self.clock += 1;
        if let Some(slot) = self.slots.iter_mut().find(|s| s.adapter == adapter) {
            slot.refs += 1;
            slot.last_used = self.clock;
        }
    }

    /// A request using `adapter` left the batch.
    pub fn release(&mut self, adapter: &str) {
        self.clock += 1;
        if let Some(slot) = self.slots.iter_mut().find(|s| s.adapter == adapter) {
            slot.refs = slot.refs.saturating_sub(1);
            slot.last_used = self.clock;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(slots: &mut LoraSlots, adapter: &str) -> Admit {
        let plan = slots.plan(adapter);
        if plan != Admit::Busy {
            slots.admit(adapter, &plan);
        }
        plan
    }

    #[test]
    fn a_new_adapter_beyond_max_loras_evicts_the_least_recently_used_idle_one() {
        let mut slots = LoraSlots::new(2);
        assert_eq!(admit(&mut slots, "a"), Admit::Load { evict: None });
        assert_eq!(admit(&mut slots, "b"), Admit::Load { evict: None });
        slots.release("a");
        slots.release("b");
        assert_eq!(admit(&mut slots, "b"), Admit::Resident);
        assert_eq!(
            admit(&mut slots, "c"),
            Admit::Load {
                evict: Some("a".into())
            }
        );
        assert_eq!(slots.resident(), ["b", "c"]);
        assert_eq!(slots.loads(), 3);
    }

    #[test]
    fn adapters_in_use_are_never_evicted() {
        let mut slots = LoraSlots::new(1);
        admit(&mut slots, "a");
        assert_eq!(slots.plan("b"), Admit::Busy);
        slots.release("a");
        assert_eq!(
            slots.plan("b"),
            Admit::Load {
                evict: Some("a".into())
            }
        );
    }
}

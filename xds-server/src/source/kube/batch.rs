//! What watchers report ([`Change`]) and how it reaches the index: the initial lists of
//! every kind as one batch ([`InitialBatch`]), then each change as it comes.

use std::collections::BTreeSet;

use crate::index::Index;
use crate::object::{Kind, ObjectKey, RawObject};

/// One thing a watcher saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Apply(RawObject),
    Delete(ObjectKey),
    /// Every object of `kind`, after a complete (re)list: the others of that kind are gone.
    Listed {
        kind: Kind,
        objects: Vec<RawObject>,
    },
    /// One named object after a complete (re)list of it: present, or gone.
    ListedOne {
        key: ObjectKey,
        object: Option<RawObject>,
    },
}

impl Change {
    /// The object this change is about, when it is about one.
    pub fn key(&self) -> Option<&ObjectKey> {
        match self {
            Change::Apply(raw) => Some(&raw.key),
            Change::Delete(key) | Change::ListedOne { key, .. } => Some(key),
            Change::Listed { .. } => None,
        }
    }
}

/// Applies one change to the index; returns whether anything changed.
pub fn apply_change(index: &mut Index, change: Change) -> bool {
    match change {
        Change::Apply(raw) => index.apply(raw),
        Change::Delete(key) => index.delete(&key),
        Change::Listed { kind, objects } => index.sync_kind(kind, objects),
        Change::ListedOne {
            object: Some(raw), ..
        } => index.apply(raw),
        Change::ListedOne { key, object: None } => index.delete(&key),
    }
}

/// Holds changes back until every kind has been listed once.
#[derive(Debug)]
pub struct InitialBatch {
    waiting: BTreeSet<Kind>,
    pending: Vec<Change>,
}

impl InitialBatch {
    pub fn new(kinds: &[Kind]) -> Self {
        InitialBatch {
            waiting: kinds.iter().copied().collect(),
            pending: Vec::new(),
        }
    }

    /// Adds a change; returns the whole batch once the last kind's list arrives.
    pub fn push(&mut self, change: Change) -> Option<Vec<Change>> {
        if let Change::Listed { kind, .. } = &change {
            self.waiting.remove(kind);
        }
        self.pending.push(change);
        if self.waiting.is_empty() {
            Some(std::mem::take(&mut self.pending))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn secret(name: &str, key: &str) -> RawObject {
        RawObject {
            key: ObjectKey::new(Kind::Secret, "ns", name),
            api_version: "v1".into(),
            origin: None,
            value: json!({"apiVersion": "v1", "kind": "Secret",
                          "metadata": {"name": name, "namespace": "ns"},
                          "stringData": {"apiKey": key}}),
        }
    }

    #[test]
    fn nothing_is_released_until_every_kind_is_listed() {
        let mut batch = InitialBatch::new(&[Kind::Secret, Kind::Service]);
        let listed = Change::Listed {
            kind: Kind::Secret,
            objects: vec![secret("a", "1")],
        };
        assert_eq!(batch.push(listed), None);
        assert_eq!(batch.push(Change::Apply(secret("b", "1"))), None);
        let all = batch
            .push(Change::Listed {
                kind: Kind::Service,
                objects: vec![],
            })
            .expect("complete");
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn a_relist_deletes_only_what_it_no_longer_lists() {
        let mut index = Index::new();
        apply_change(&mut index, Change::Apply(secret("a", "1")));
        apply_change(&mut index, Change::Apply(secret("b", "1")));
        let relisted = Change::Listed {
            kind: Kind::Secret,
            objects: vec![secret("b", "2")],
        };
        assert!(apply_change(&mut index, relisted));
        let snap = index.snapshot();
        assert!(snap.secret("ns", "a").is_none());
        assert!(snap.secret("ns", "b").is_some());
        assert!(apply_change(
            &mut index,
            Change::Delete(ObjectKey::new(Kind::Secret, "ns", "b"))
        ));
        assert!(index.is_empty());
    }
}

use serde_json::json;

use super::*;

fn backend(name: &str, port: u16) -> RawObject {
    RawObject {
        key: ObjectKey::new(Kind::Backend, "default", name),
        api_version: "gateway.envoyproxy.io/v1alpha1".into(),
        origin: None,
        value: json!({
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "Backend",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": port}}]},
        }),
    }
}

#[test]
fn applied_objects_are_visible_typed_in_the_snapshot() {
    let mut index = Index::new();
    assert!(index.apply(backend("a", 1)));
    let snap = index.snapshot();
    assert_eq!(snap.backends().count(), 1);
    assert!(snap.backend("default", "a").is_some());
    assert!(snap.invalid.is_empty());
}

#[test]
fn reapplying_the_same_object_is_not_a_change() {
    let mut index = Index::new();
    index.apply(backend("a", 1));
    assert!(!index.apply(backend("a", 1)));
    assert!(index.apply(backend("a", 2)));
}

#[test]
fn an_invalid_update_keeps_the_last_good_version_and_reports_the_field() {
    let mut index = Index::new();
    index.apply(backend("a", 1));
    let mut bad = backend("a", 1);
    bad.value["spec"]["endpointz"] = json!([]);
    index.apply(bad);
    let snap = index.snapshot();
    assert!(
        snap.backend("default", "a").is_some(),
        "last good version kept"
    );
    let invalid = &snap.invalid[&ObjectKey::new(Kind::Backend, "default", "a")];
    assert!(invalid.serving_last_good);
    assert!(
        invalid.message.contains("spec.endpointz"),
        "{}",
        invalid.message
    );
}

#[test]
fn a_new_invalid_object_is_reported_and_left_out() {
    let mut index = Index::new();
    let mut bad = backend("a", 1);
    bad.value["spec"]["endpoints"] = json!("not a list");
    index.apply(bad);
    let snap = index.snapshot();
    assert!(snap.backend("default", "a").is_none());
    let invalid = &snap.invalid[&ObjectKey::new(Kind::Backend, "default", "a")];
    assert!(!invalid.serving_last_good);
    assert!(
        invalid.message.contains("spec.endpoints"),
        "{}",
        invalid.message
    );
}

#[test]
fn fixing_an_invalid_object_clears_its_error() {
    let mut index = Index::new();
    let mut bad = backend("a", 1);
    bad.value["spec"]["bogus"] = json!(1);
    index.apply(bad);
    index.apply(backend("a", 1));
    assert!(index.snapshot().invalid.is_empty());
}

#[test]
fn sync_deletes_what_the_source_no_longer_has() {
    let mut index = Index::new();
    index.apply(backend("a", 1));
    index.apply(backend("b", 1));
    let keep: BTreeMap<_, _> = [backend("b", 1)]
        .into_iter()
        .map(|o| (o.key.clone(), o))
        .collect();
    assert!(index.sync(keep));
    let snap = index.snapshot();
    assert!(snap.backend("default", "a").is_none());
    assert!(snap.backend("default", "b").is_some());
}

#[test]
fn status_fields_written_by_controllers_are_not_unknown_fields() {
    let mut index = Index::new();
    let mut with_status = backend("a", 1);
    with_status.value["status"] = json!({"conditions": [{"type": "Accepted"}]});
    index.apply(with_status);
    assert!(
        index.snapshot().invalid.is_empty(),
        "{:?}",
        index.snapshot().invalid
    );
}

#[test]
fn syncing_one_kind_deletes_its_unlisted_objects_and_leaves_other_kinds() {
    let mut index = Index::new();
    index.apply(backend("a", 1));
    index.apply(backend("b", 1));
    let mut secret = backend("s", 1);
    secret.key = ObjectKey::new(Kind::Secret, "default", "s");
    secret.value = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
    index.apply(secret);
    assert!(index.sync_kind(Kind::Backend, vec![backend("b", 1)]));
    let snap = index.snapshot();
    assert_eq!(
        snap.backends()
            .map(|(k, _)| k.name.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert!(snap.secret("default", "s").is_some());
    assert!(
        !index.sync_kind(Kind::Backend, vec![backend("b", 1)]),
        "no change"
    );
}

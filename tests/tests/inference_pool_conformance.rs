//! The Inference Extension conformance suite's InferencePool behaviours, re-expressed on a real
//! Envoy fed by the in-process xds-server, in-process pickers and `inference-sim` pods (see
//! `inference_pool.rs` for the set-up): load-aware spreading, a weighted split across two
//! pools, multi-port pools, and the pool and route conditions of references that cannot be
//! served while the rest keeps serving.
//!
//! Already covered elsewhere: following the picker's choice, the served endpoint reported, and
//! FailOpen / FailClose (`inference_pool.rs`); a Pod removed from the folder stops being picked
//! (`quickstart.rs`).

#[path = "inference_pool/stack.rs"]
mod stack;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use infergate_e2e::{http, wait};
use serde_json::Value;

use stack::{
    Picker, Pods, PoolSpec, Stack, TIMEOUT, ai_route_yaml, assert_served_as_picked, pool_yaml,
};

/// `after - before` per address.
fn delta(
    after: &BTreeMap<SocketAddr, u64>,
    before: &BTreeMap<SocketAddr, u64>,
) -> BTreeMap<SocketAddr, u64> {
    after
        .iter()
        .map(|(a, n)| (*a, n - before.get(a).copied().unwrap_or(0)))
        .collect()
}

#[tokio::test]
async fn a_saturated_pod_stops_receiving_new_requests_while_the_others_share_them() -> Result<()> {
    // Pod 0 is a slow GPU with one sequence per batch at real time; the others are fast.
    let pods = Pods::start_with("model-a", 91, 3, 1, |pod, config| {
        if pod == 0 {
            config.max_num_seqs = 1;
            config.time_scale = 1.0;
        }
    })
    .await?;
    let picker = Picker::start("pool-a", &pods).await?;
    let manifests = vec![
        pool_yaml(&PoolSpec {
            name: "pool-a",
            pods: &pods,
            failure_mode: "FailClose",
            body_mode: "buffered",
            pods_in_folder: false,
        }),
        ai_route_yaml(&[("model-a", "pool-a")]),
    ];
    let stack = Stack::start(&manifests, &[("pool-a", picker.grpc)]).await?;

    // Long requests straight to pod 0: one runs for seconds, the others queue behind it.
    let slow = pods.sims[0].addr;
    let mut hogs = Vec::new();
    for n in 0..4 {
        let body = serde_json::json!({
            "model": "model-a",
            "messages": [{"role": "user", "content": format!("long job {n}")}],
            "max_tokens": 5000,
        });
        hogs.push(tokio::spawn(async move {
            http::post(
                &format!("http://{slow}/v1/chat/completions"),
                &[("content-type", "application/json")],
                body.to_string(),
            )
            .await
        }));
    }
    pods.sims[0]
        .handle()
        .wait_for(|s| s.waiting >= 3)
        .await
        .context("pod 0 never queued the long jobs")?;
    tokio::time::timeout(
        TIMEOUT,
        picker.datastore().wait_for(|ds| {
            ds.status()
                .iter()
                .any(|e| e.addr == slow && e.fresh && e.metrics.waiting >= 3)
        }),
    )
    .await
    .context("the picker never saw pod 0's queue")?;

    let picks_before = picker.picks().await?;
    let served_before = pods.served();
    stack.chat_ok("model-a", 30, &[]).await?;
    let picks = delta(&picker.picks().await?, &picks_before);
    eprintln!("picks while pod 0 was saturated: {picks:?}");
    assert_eq!(
        picks.get(&slow).copied().unwrap_or(0),
        0,
        "the saturated pod was picked"
    );
    wait::until_true("the fast pods to count every request", TIMEOUT, || {
        delta(&pods.served(), &served_before).values().sum::<u64>() == 30
    })
    .await?;
    let served = delta(&pods.served(), &served_before);
    for sim in &pods.sims[1..] {
        assert!(
            served[&sim.addr] >= 5,
            "every pod with room takes a share: {served:?}"
        );
    }
    assert_eq!(
        pods.sims[0].handle().state().running,
        1,
        "pod 0 is still busy"
    );
    for hog in hogs {
        hog.abort();
    }
    Ok(())
}

/// An HTTPRoute whose one rule splits between two pools by weight.
fn weighted_route_yaml(pools: &[(&str, u32)]) -> String {
    let mut out = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: weighted, namespace: default}\n\
         spec:\n  parentRefs: [{name: ai}]\n  rules:\n\
         \x20   - matches: [{path: {type: PathPrefix, value: /}}]\n\
         \x20     backendRefs:\n",
    );
    for (pool, weight) in pools {
        out.push_str(&format!(
            "        - {{group: inference.networking.k8s.io, kind: InferencePool, name: {pool}, weight: {weight}}}\n"
        ));
    }
    out
}

#[tokio::test]
async fn one_rule_splits_requests_across_two_pools_by_weight_and_each_pool_s_picker_picks()
-> Result<()> {
    // Both pools serve the same model name, as the conformance suite's two pools do.
    let pods_a = Pods::start("model-a", 101, 2).await?;
    let pods_b = Pods::start("model-a", 111, 2).await?;
    let picker_a = Picker::start("pool-a", &pods_a).await?;
    let picker_b = Picker::start("pool-b", &pods_b).await?;
    let manifests = vec![
        pool_yaml(&PoolSpec {
            name: "pool-a",
            pods: &pods_a,
            failure_mode: "FailClose",
            body_mode: "buffered",
            pods_in_folder: false,
        }),
        pool_yaml(&PoolSpec {
            name: "pool-b",
            pods: &pods_b,
            failure_mode: "FailOpen",
            body_mode: "duplex",
            pods_in_folder: true,
        }),
        weighted_route_yaml(&[("pool-a", 3), ("pool-b", 1)]),
    ];
    let stack = Stack::start(
        &manifests,
        &[("pool-a", picker_a.grpc), ("pool-b", picker_b.grpc)],
    )
    .await?;
    const TOTAL: u64 = 240;
    stack.chat_ok("model-a", TOTAL as usize, &[]).await?;
    wait::until_true("the sims to count every request", TIMEOUT, || {
        pods_a.total() + pods_b.total() == TOTAL
    })
    .await?;
    let (a, b) = (pods_a.total(), pods_b.total());
    eprintln!("pool-a served {a}, pool-b served {b}");
    // 3:1 expects 180 / 60; allow 4 binomial standard deviations (σ ≈ 6.7).
    let expected = TOTAL as f64 * 0.75;
    let sigma = (TOTAL as f64 * 0.75 * 0.25).sqrt();
    assert!(
        (a as f64 - expected).abs() <= 4.0 * sigma,
        "pool-a served {a} of {TOTAL}, expected ~{expected}"
    );
    // Each request went through its own pool's picker only, to the pod it picked.
    assert_served_as_picked(&picker_a, &pods_a, a).await?;
    assert_served_as_picked(&picker_b, &pods_b, b).await?;
    Ok(())
}

#[tokio::test]
async fn every_port_of_a_multi_port_pool_serves_the_endpoints_the_picker_names() -> Result<()> {
    // ORIGINAL_DST (FailClose) and override-host EDS (FailOpen with Pods in the folder).
    for (failure_mode, base) in [("FailClose", 121), ("FailOpen", 131)] {
        let pods = Pods::start_with("model-a", base, 2, 2, |_, _| {}).await?;
        let picker = Picker::start("pool-a", &pods).await?;
        assert_eq!(
            picker.datastore().endpoints().len(),
            4,
            "two pods × two target ports"
        );
        let manifests = vec![
            pool_yaml(&PoolSpec {
                name: "pool-a",
                pods: &pods,
                failure_mode,
                body_mode: "buffered",
                pods_in_folder: failure_mode == "FailOpen",
            }),
            ai_route_yaml(&[("model-a", "pool-a")]),
        ];
        let stack = Stack::start(&manifests, &[("pool-a", picker.grpc)]).await?;
        stack.chat_ok("model-a", 32, &[]).await?;
        assert_served_as_picked(&picker, &pods, 32)
            .await
            .with_context(|| failure_mode.to_string())?;
        let served = pods.served();
        assert!(
            served.values().all(|n| *n > 0),
            "{failure_mode}: every pod and port served: {served:?}"
        );
    }
    Ok(())
}

/// Every condition of the object `kind` `name` in the xds-server's `/status`.
async fn conditions(stack: &Stack, kind: &str, name: &str) -> Result<Vec<Value>> {
    let admin = stack.server.admin_addr;
    let status = http::get(&format!("http://{admin}/status"), &[])
        .await?
        .json()?;
    let Some(object) = status["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["kind"] == kind && o["name"] == name)
    else {
        bail!("no {kind} {name} in /status: {status}");
    };
    Ok(object["conditions"].as_array().cloned().unwrap_or_default())
}

/// The condition of `type_` (and `scope`, when given) among `conditions`.
fn condition<'a>(conditions: &'a [Value], type_: &str, scope: Option<&str>) -> Option<&'a Value> {
    conditions
        .iter()
        .find(|c| c["type"] == type_ && c["scope"].as_str() == scope)
}

#[tokio::test]
async fn unservable_pool_references_are_conditions_and_the_rest_keeps_serving() -> Result<()> {
    let pods = Pods::start("model-good", 141, 2).await?;
    let picker = Picker::start("good", &pods).await?;
    let mut manifests = vec![
        pool_yaml(&PoolSpec {
            name: "good",
            pods: &pods,
            failure_mode: "FailClose",
            body_mode: "buffered",
            pods_in_folder: true,
        }),
        // A pool whose picker Service is nowhere (and not given in the gateway's options).
        "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\n\
         metadata: {name: no-epp, namespace: default}\n\
         spec:\n  targetPorts: [{number: 8000}]\n  selector: {matchLabels: {app: good}}\n\
         \x20 endpointPickerRef: {name: missing-epp, port: {number: 9002}}\n"
            .to_string(),
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {name: local, namespace: default}\n\
         spec:\n  endpoints: [{ip: {address: 127.0.0.1, port: 9}}]\n---\n\
         apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata: {name: other, namespace: default}\n\
         spec:\n  schema: {name: OpenAI}\n  backendRef: {name: local, kind: Backend, group: gateway.envoyproxy.io}\n"
            .to_string(),
    ];
    let mut route = ai_route_yaml(&[
        ("model-good", "good"),
        ("model-missing", "does-not-exist"),
        ("model-no-epp", "no-epp"),
    ]);
    route.push_str(
        "    - matches: [{headers: [{type: Exact, name: x-ai-eg-model, value: model-mixed}]}]\n\
         \x20     backendRefs:\n\
         \x20       - {group: inference.networking.k8s.io, kind: InferencePool, name: good}\n\
         \x20       - {name: other}\n",
    );
    manifests.push(route);
    let stack = Stack::start_with_errors(&manifests, &[("good", picker.grpc)]).await?;

    let pool = conditions(&stack, "InferencePool", "no-epp").await?;
    let resolved = condition(&pool, "ResolvedRefs", None).context("ResolvedRefs on no-epp")?;
    assert_eq!(resolved["status"], false, "{pool:?}");
    assert_eq!(resolved["reason"], "BackendNotFound", "{pool:?}");
    assert!(
        resolved["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing-epp")),
        "{resolved}"
    );
    assert_eq!(
        condition(&pool, "Accepted", None).map(|c| &c["status"]),
        Some(&Value::Bool(false)),
        "{pool:?}"
    );
    let good = conditions(&stack, "InferencePool", "good").await?;
    assert!(
        good.iter().all(|c| c["status"] == true),
        "the good pool is fine: {good:?}"
    );

    let route = conditions(&stack, "AIGatewayRoute", "models").await?;
    let missing = condition(&route, "ResolvedRefs", Some("rule 1 backendRef 0"))
        .context("the missing pool's condition")?;
    assert_eq!(missing["status"], false, "{route:?}");
    assert_eq!(missing["reason"], "BackendNotFound", "{missing}");
    assert!(
        missing["message"]
            .as_str()
            .is_some_and(|m| m.contains("does-not-exist")),
        "{missing}"
    );
    let no_epp = condition(&route, "ResolvedRefs", Some("rule 2 backendRef 0"))
        .context("the pool without a picker's condition")?;
    assert_eq!(no_epp["status"], false, "{route:?}");
    let mixed =
        condition(&route, "Accepted", Some("rule 3")).context("the mixed rule's condition")?;
    assert_eq!(mixed["status"], false, "{route:?}");
    assert_eq!(mixed["reason"], "UnsupportedValue", "{mixed}");

    // The unservable rules answer 500 without reaching any pod; the good one serves.
    for model in ["model-missing", "model-no-epp", "model-mixed"] {
        let response = stack.chat(model, 0, &[]).await?;
        assert_eq!(response.status, 500, "{model}: {}", response.text());
    }
    stack.chat_ok("model-good", 10, &[]).await?;
    assert_served_as_picked(&picker, &pods, 10).await?;
    Ok(())
}

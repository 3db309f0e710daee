//! InferencePools end to end (DESIGN.md §5): a real Envoy fed by the in-process xds-server, each
//! pool's endpoint picker (`epp`) in process with `inference-sim` pods on 127.0.0.x loopback
//! addresses sharing one port, and `Options::epp_endpoints` pointing Envoy at the pickers.
//!
//! Every check compares what the picker decided (its `epp_picks_total` per endpoint) with what
//! each simulated pod served, or what the client got; the tests wait on conditions (Envoy's ACKs,
//! the picker's readiness, the sims' state), never on sleeps.

#[path = "inference_pool/stack.rs"]
mod stack;

use anyhow::{Context, Result};
use infergate_e2e::{FakeUpstream, wait};
use xds_server::translate::pool::DESTINATION_ENDPOINT_HEADER;

use stack::{
    Picker, Pods, PoolSpec, Stack, TIMEOUT, ai_route_yaml, assert_served_as_picked,
    http_route_yaml, pool_yaml,
};

#[tokio::test]
async fn requests_reach_the_pod_their_pool_s_picker_picked_in_both_body_modes() -> Result<()> {
    // Two pools behind one AIGatewayRoute: `pool-a` buffered and FailClose (an ORIGINAL_DST
    // cluster on the picked endpoint), `pool-b` duplex and FailOpen with its Pods in the folder
    // (an EDS cluster with override-host load balancing).
    let pods_a = Pods::start("model-a", 21, 3).await?;
    let pods_b = Pods::start("model-b", 31, 2).await?;
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
        ai_route_yaml(&[("model-a", "pool-a"), ("model-b", "pool-b")]),
    ];
    let stack = Stack::start(
        &manifests,
        &[("pool-a", picker_a.grpc), ("pool-b", picker_b.grpc)],
    )
    .await?;
    stack.chat_ok("model-a", 24, &[]).await?;
    stack.chat_ok("model-b", 16, &[]).await?;
    assert_served_as_picked(&picker_a, &pods_a, 24).await?;
    assert_served_as_picked(&picker_b, &pods_b, 16).await?;
    // Override-host load balancing reports the endpoint that served each request back to the
    // picker (`envoy.lb` / `x-gateway-destination-endpoint-served`).
    let picked = picker_b.picks().await?;
    wait::until(
        "the picker to learn every served endpoint",
        TIMEOUT,
        || async { Ok((picker_b.served().await? == picked).then_some(())) },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_client_sent_destination_endpoint_header_is_ignored() -> Result<()> {
    // FailOpen without Pods in the folder: an ORIGINAL_DST cluster, which would connect to
    // whatever the header names if the client's copy survived.
    let pods = Pods::start("model-a", 41, 2).await?;
    let mut picker = Picker::start("pool-a", &pods).await?;
    let elsewhere = FakeUpstream::start("not-in-the-pool").await?;
    let manifests = vec![
        pool_yaml(&PoolSpec {
            name: "pool-a",
            pods: &pods,
            failure_mode: "FailOpen",
            body_mode: "buffered",
            pods_in_folder: false,
        }),
        http_route_yaml("pool-a"),
    ];
    let stack = Stack::start(&manifests, &[("pool-a", picker.grpc)]).await?;
    let target = elsewhere.addr().to_string();
    let forged = [(DESTINATION_ENDPOINT_HEADER, target.as_str())];
    stack.chat_ok("model-a", 12, &forged).await?;
    assert_served_as_picked(&picker, &pods, 12).await?;

    // With the picker down nothing names an endpoint: the forged one must not either.
    picker.stop();
    for n in 0..5 {
        let response = stack.chat("model-a", n, &forged).await?;
        assert_eq!(response.status, 503, "{}", response.text());
    }
    assert_eq!(elsewhere.requests(), 0, "a client chose the endpoint");
    assert_eq!(pods.total(), 12);
    Ok(())
}

#[tokio::test]
async fn fail_open_keeps_serving_from_the_pool_when_the_picker_is_down() -> Result<()> {
    for body_mode in ["buffered", "duplex"] {
        let pods = Pods::start("model-a", 51, 2).await?;
        let mut picker = Picker::start("pool-a", &pods).await?;
        let manifests = vec![
            pool_yaml(&PoolSpec {
                name: "pool-a",
                pods: &pods,
                failure_mode: "FailOpen",
                body_mode,
                pods_in_folder: true,
            }),
            http_route_yaml("pool-a"),
        ];
        let stack = Stack::start(&manifests, &[("pool-a", picker.grpc)]).await?;
        stack.chat_ok("model-a", 6, &[]).await?;
        assert_served_as_picked(&picker, &pods, 6).await?;
        picker.stop();
        stack.wait_picker_marked_down("pool-a").await?;
        stack
            .chat_ok("model-a", 10, &[])
            .await
            .with_context(|| format!("{body_mode} body with the picker down"))?;
        wait::until_true("the sims to count every request", TIMEOUT, || {
            pods.total() == 16
        })
        .await?;
        // Round robin over the pool while the picker is down.
        let served = pods.served();
        assert!(
            served.values().all(|n| *n > 0),
            "{body_mode}: every pod takes a share: {served:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn fail_close_returns_5xx_when_the_picker_is_down() -> Result<()> {
    let pods = Pods::start("model-a", 61, 2).await?;
    let mut picker = Picker::start("pool-a", &pods).await?;
    let manifests = vec![
        pool_yaml(&PoolSpec {
            name: "pool-a",
            pods: &pods,
            failure_mode: "FailClose",
            body_mode: "buffered",
            pods_in_folder: true,
        }),
        http_route_yaml("pool-a"),
    ];
    let stack = Stack::start(&manifests, &[("pool-a", picker.grpc)]).await?;
    stack.chat_ok("model-a", 6, &[]).await?;
    assert_served_as_picked(&picker, &pods, 6).await?;
    picker.stop();
    for n in 0..5 {
        let response = stack.chat("model-a", n, &[]).await?;
        assert!(
            response.status.is_server_error(),
            "request {n} with the picker down: {} {}",
            response.status,
            response.text()
        );
    }
    assert_eq!(pods.total(), 6, "no request reached a pod unpicked");
    Ok(())
}

#[tokio::test]
async fn the_model_in_the_body_picks_the_pool_when_the_extproc_router_leg_runs_first() -> Result<()>
{
    // The client names the model only in the body: the router leg sets `x-ai-eg-model` and
    // clears the route cache, so each pool's picker runs on its own pool's requests only.
    let pods_a = Pods::start("model-a", 71, 2).await?;
    let pods_b = Pods::start("model-b", 81, 2).await?;
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
        ai_route_yaml(&[("model-a", "pool-a"), ("model-b", "pool-b")]),
    ];
    let stack = Stack::start_with(
        &manifests,
        &[("pool-a", picker_a.grpc), ("pool-b", picker_b.grpc)],
        true,
    )
    .await?;
    for n in 0..10 {
        for model in ["model-a", "model-b"] {
            let response = stack.chat_body_only(model, n, &[]).await?;
            assert_eq!(response.status, 200, "{model}: {}", response.text());
            assert_eq!(response.json()?["model"], model);
        }
    }
    assert_served_as_picked(&picker_a, &pods_a, 10).await?;
    assert_served_as_picked(&picker_b, &pods_b, 10).await?;
    Ok(())
}

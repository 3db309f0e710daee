//! The harness itself: a static Envoy in front of fake upstreams.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use infergate_e2e::http::{self, StatusCode};
use infergate_e2e::load::{self, LoadRequest};
use infergate_e2e::{Envoy, FakeUpstream, ports};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Listener `127.0.0.1:listen_port` → every request to static cluster `cluster` → `upstream`.
fn static_proxy(listen_port: u16, cluster: &str, upstream: SocketAddr) -> String {
    let (ip, port) = (upstream.ip(), upstream.port());
    format!(
        r#"
static_resources:
  listeners:
  - name: ingress
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: /}}
                route: {{cluster: {cluster}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: {cluster}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {cluster}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: {ip}, port_value: {port}}}}}
"#
    )
}

/// A ready Envoy proxying `http://127.0.0.1:<port>` to `upstream` through cluster `cluster`.
async fn proxy_to(upstream: &FakeUpstream, cluster: &str) -> Result<(Envoy, String)> {
    let port = ports::free_port()?;
    let envoy = Envoy::start(&static_proxy(port, cluster, upstream.addr())).await?;
    envoy.wait_ready().await?;
    envoy.wait_listener(port).await?;
    Ok((envoy, format!("http://127.0.0.1:{port}")))
}

#[tokio::test]
async fn envoy_proxies_a_request_to_a_fake_upstream_and_counts_it() -> Result<()> {
    let upstream = FakeUpstream::start("alpha").await?;
    let (envoy, base) = proxy_to(&upstream, "fake-alpha").await?;

    let response = http::get(&format!("{base}/v1/models?x=1"), &[("x-test", "yes")]).await?;

    assert_eq!(response.status, StatusCode::OK, "{}", response.text());
    assert_eq!(response.header("x-upstream"), Some("alpha"));
    let echo = response.json()?;
    assert_eq!(echo["upstream"], "alpha");
    assert_eq!(echo["path"], "/v1/models?x=1");
    assert_eq!(echo["headers"]["x-test"], "yes");
    let value = envoy
        .wait_stat("cluster.fake-alpha.upstream_rq_200", |n| n >= 1, TIMEOUT)
        .await?;
    assert_eq!(value, 1);
    assert_eq!(upstream.requests(), 1);
    let recorded = upstream.last_request().expect("one request recorded");
    assert_eq!(
        recorded.headers.get("x-test").map(|v| v.as_bytes()),
        Some(&b"yes"[..])
    );
    Ok(())
}

#[tokio::test]
async fn upstream_failures_reach_the_client_until_the_upstream_recovers() -> Result<()> {
    let upstream = FakeUpstream::start("beta").await?;
    let (envoy, base) = proxy_to(&upstream, "beta").await?;

    upstream.fail_with(StatusCode::SERVICE_UNAVAILABLE);
    let response = http::post(&format!("{base}/v1/chat/completions"), &[], "{}").await?;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(upstream.last_request().map(|r| r.body), Some("{}".into()));

    upstream.close_connections();
    let response = http::get(&base, &[]).await?;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.text()
    );
    assert_eq!(
        response.header("x-upstream"),
        None,
        "Envoy answered, not the upstream"
    );

    upstream.recover();
    let response = http::get(&base, &[]).await?;
    assert_eq!(response.status, StatusCode::OK);
    envoy
        .wait_stat("cluster.beta.upstream_rq_503", |n| n >= 1, TIMEOUT)
        .await?;
    Ok(())
}

#[tokio::test]
async fn load_runs_until_its_condition_holds_and_counts_every_response() -> Result<()> {
    let upstream = FakeUpstream::start("gamma").await?;
    let (envoy, base) = proxy_to(&upstream, "gamma").await?;

    let enough = upstream.wait_requests(200, TIMEOUT);
    let report = load::run(&LoadRequest::get(&base).header("x-load", "1"), 4, async {
        enough.await.expect("200 requests within the timeout");
    })
    .await;

    assert_eq!(report.failed, 0, "{report}");
    assert!(report.ok >= 200, "{report}");
    assert_eq!(report.statuses.get(&200), Some(&report.ok));
    let proxied = envoy.wait_stat("cluster.gamma.upstream_rq_200", |n| n >= report.ok, TIMEOUT);
    assert_eq!(proxied.await?, report.ok);
    Ok(())
}

#[tokio::test]
async fn stopped_upstream_frees_its_port_and_envoy_reports_503() -> Result<()> {
    let mut upstream = FakeUpstream::start("delta").await?;
    let (envoy, base) = proxy_to(&upstream, "delta").await?;
    upstream.stop().await;

    let response = http::get(&base, &[]).await?;

    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    envoy
        .wait_stat(
            "cluster.delta.upstream_cx_connect_fail",
            |n| n >= 1,
            TIMEOUT,
        )
        .await?;
    Ok(())
}

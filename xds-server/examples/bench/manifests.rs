//! The benchmark's configuration, written as YAML files the way a user would: one Gateway, and
//! AIGatewayRoutes of `rules_per_route` rules each. Rule `i` matches `x-ai-eg-model: model-<i>`
//! and sends to its own AIServiceBackend → Backend with one IP endpoint (so one EDS cluster per
//! rule). Each route file holds the route and the backends its rules use.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Shape of a generated config.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub rules: usize,
    pub rules_per_route: usize,
    /// The Gateway listener's port.
    pub port: u16,
}

impl Layout {
    pub fn route_objects(&self) -> usize {
        self.rules.div_ceil(self.rules_per_route.max(1))
    }

    /// Rules of route object `r`: `first..end`.
    fn rules_of(&self, r: usize) -> std::ops::Range<usize> {
        let per = self.rules_per_route.max(1);
        let first = r * per;
        first..(first + per).min(self.rules)
    }
}

pub fn gateway_file(dir: &Path) -> PathBuf {
    dir.join("gateway.yaml")
}

pub fn route_file(dir: &Path, r: usize) -> PathBuf {
    dir.join(format!("routes-{r:05}.yaml"))
}

/// Writes the whole config into `dir`; returns the bytes written.
pub fn write_all(dir: &Path, layout: &Layout) -> std::io::Result<u64> {
    let gateway = gateway_yaml(layout.port);
    std::fs::write(gateway_file(dir), &gateway)?;
    let mut bytes = gateway.len() as u64;
    for r in 0..layout.route_objects() {
        let text = route_yaml(layout, r, None);
        std::fs::write(route_file(dir, r), &text)?;
        bytes += text.len() as u64;
    }
    Ok(bytes)
}

/// Rewrites route file `r` with its first rule matching `model-<first>-rev-<revision>` instead, so
/// only the RouteConfiguration changes (clusters are named by rule index, not by model). Written
/// to a hidden file and renamed over the old one, as editors do, so the watcher never reads a
/// half-written file.
pub fn edit_route(dir: &Path, layout: &Layout, r: usize, revision: u64) -> std::io::Result<()> {
    let path = route_file(dir, r);
    let tmp = dir.join(format!(".routes-{r:05}.yaml.tmp"));
    std::fs::write(&tmp, route_yaml(layout, r, Some(revision)))?;
    std::fs::rename(&tmp, &path)
}

fn gateway_yaml(port: u16) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: infergate
spec:
  controllerName: infergate.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: bench
  namespace: default
spec:
  gatewayClassName: infergate
  listeners:
    - name: http
      protocol: HTTP
      port: {port}
"
    )
}

fn route_yaml(layout: &Layout, r: usize, revision: Option<u64>) -> String {
    let rules = layout.rules_of(r);
    let mut out = String::with_capacity(rules.len() * 700 + 256);
    let _ = write!(
        out,
        "apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata:
  name: models-{r}
  namespace: default
spec:
  parentRefs:
    - name: bench
  rules:
"
    );
    for i in rules.clone() {
        let model = match revision {
            Some(rev) if i == rules.start => format!("model-{i}-rev-{rev}"),
            _ => format!("model-{i}"),
        };
        let _ = write!(
            out,
            "    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: {model}
      backendRefs:
        - name: backend-{i}
"
        );
    }
    for i in rules {
        let _ = write!(
            out,
            "---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata:
  name: backend-{i}
  namespace: default
spec:
  schema:
    name: OpenAI
  backendRef:
    name: backend-{i}
    kind: Backend
    group: gateway.envoyproxy.io
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: backend-{i}
  namespace: default
spec:
  endpoints:
    - ip:
        address: {ip}
        port: 8000
",
            ip = ip_of(i)
        );
    }
    out
}

/// A distinct address per rule: 10.x.y.z (never 10.0.0.0).
fn ip_of(i: usize) -> String {
    let n = i + 1;
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

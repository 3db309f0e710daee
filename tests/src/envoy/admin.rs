//! Envoy's admin API: readiness, stats, listeners, config dump.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::Envoy;
use crate::DEFAULT_TIMEOUT;
use crate::http;
use crate::wait;

impl Envoy {
    /// `GET http://<admin><path_and_query>`: status and body text.
    pub async fn admin_get(&self, path_and_query: &str) -> Result<(u16, String)> {
        let url = format!("http://{}{path_and_query}", self.admin);
        let response = http::get(&url, &[]).await?;
        Ok((response.status.as_u16(), response.text()))
    }

    /// Waits until `/ready` answers `LIVE` (initial config applied).
    pub async fn wait_ready(&self) -> Result<()> {
        wait::until("envoy /ready", DEFAULT_TIMEOUT, || async {
            let (status, body) = self.admin_get("/ready").await?;
            Ok((status == 200 && body.trim() == "LIVE").then_some(()))
        })
        .await
    }

    /// The value of the counter or gauge `name`, or `None` while Envoy has no such stat.
    pub async fn stat(&self, name: &str) -> Result<Option<u64>> {
        let filter = percent_encode(&format!("^{}$", regex_escape(name)));
        let (status, body) = self.admin_get(&format!("/stats?filter={filter}")).await?;
        if status != 200 {
            bail!("/stats answered {status}: {body}");
        }
        Ok(parse_stat(&body, name))
    }

    /// Waits until stat `name` exists and satisfies `pred`; returns its value.
    pub async fn wait_stat(
        &self,
        name: &str,
        pred: impl Fn(u64) -> bool,
        timeout: Duration,
    ) -> Result<u64> {
        let last = std::cell::Cell::new(None);
        let waited = wait::until(&format!("stat {name}"), timeout, || async {
            let value = self.stat(name).await?;
            last.set(value);
            Ok(value.filter(|v| pred(*v)))
        })
        .await;
        waited.with_context(|| format!("last value of {name}: {:?}", last.get()))
    }

    /// `/config_dump?include_eds` as JSON.
    pub async fn config_dump(&self) -> Result<serde_json::Value> {
        let (status, body) = self.admin_get("/config_dump?include_eds").await?;
        if status != 200 {
            bail!("/config_dump answered {status}: {body}");
        }
        serde_json::from_str(&body).context("/config_dump is not JSON")
    }

    /// Waits until an active listener is bound to `port` (any address).
    pub async fn wait_listener(&self, port: u16) -> Result<()> {
        wait::until(
            &format!("a listener on port {port}"),
            DEFAULT_TIMEOUT,
            || async {
                let (status, body) = self.admin_get("/listeners?format=json").await?;
                if status != 200 {
                    bail!("/listeners answered {status}: {body}");
                }
                let listeners: serde_json::Value = serde_json::from_str(&body)?;
                Ok(listener_ports(&listeners).contains(&port).then_some(()))
            },
        )
        .await
    }
}

/// Ports of `/listeners?format=json`'s `listener_statuses[].local_address`.
fn listener_ports(listeners: &serde_json::Value) -> Vec<u16> {
    let statuses = listeners["listener_statuses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    statuses
        .iter()
        .filter_map(|s| s["local_address"]["socket_address"]["port_value"].as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .collect()
}

/// Finds `name: value` in `/stats` text output.
fn parse_stat(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .filter_map(|line| line.split_once(": "))
        .find(|(stat, _)| *stat == name)
        .and_then(|(_, value)| value.trim().parse().ok())
}

/// Escapes everything but `[A-Za-z0-9_]` for Envoy's (RE2) stats filter.
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escape = !(c.is_ascii_alphanumeric() || c == '_');
            escape.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// Percent-encodes everything but unreserved characters, for a query value.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_filter_matches_the_name_literally() {
        let filter = percent_encode(&format!(
            "^{}$",
            regex_escape("cluster.a-b.upstream_rq_200")
        ));
        assert_eq!(filter, "%5Ecluster%5C.a%5C-b%5C.upstream_rq_200%24");
    }

    #[test]
    fn stat_lines_are_matched_by_exact_name() {
        let body = "cluster.a.upstream_rq_2000: 7\ncluster.a.upstream_rq_200: 3\n";
        assert_eq!(parse_stat(body, "cluster.a.upstream_rq_200"), Some(3));
        assert_eq!(parse_stat(body, "cluster.a.upstream_rq"), None);
    }

    #[test]
    fn listener_ports_come_from_local_addresses() {
        let listeners = serde_json::json!({"listener_statuses": [
            {"name": "l", "local_address": {"socket_address": {"address": "127.0.0.1", "port_value": 10080}}}
        ]});
        assert_eq!(listener_ports(&listeners), vec![10080]);
    }
}

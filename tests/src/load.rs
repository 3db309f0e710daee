//! A bounded load generator for "no request fails while the config changes" tests.
//!
//! ```no_run
//! # async fn example(url: &str, done: impl std::future::Future<Output = ()>) {
//! use infergate_e2e::load::{self, LoadRequest};
//! let report = load::run(&LoadRequest::get(url), 4, done).await;
//! assert!(report.failed == 0, "{report}");
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use futures::future::join_all;
use http::Method;

use crate::http::{Client, http_client, request, send};

/// The most requests one [`run`] sends, whatever `until` does.
pub const MAX_REQUESTS: u64 = 20_000;
/// How many error messages a report keeps.
const KEPT_ERRORS: usize = 10;

/// The request every worker sends, over and over.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl LoadRequest {
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn post(url: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            method: Method::POST,
            body: body.into(),
            ..Self::get(url)
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What a [`run`] saw: `ok` are 2xx responses, `failed` everything else (other statuses and
/// requests that got no response).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub ok: u64,
    pub failed: u64,
    /// Responses per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// The first few errors of requests that got no response.
    pub errors: Vec<String>,
}

impl LoadReport {
    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ok, {} failed, statuses {:?}",
            self.ok, self.failed, self.statuses
        )?;
        for error in &self.errors {
            write!(f, "\n  error: {error}")?;
        }
        Ok(())
    }
}

/// Sends `request` from `concurrency` workers until `until` completes (then waits for the requests
/// in flight) or [`MAX_REQUESTS`] were sent.
pub async fn run(
    request: &LoadRequest,
    concurrency: usize,
    until: impl Future<Output = ()>,
) -> LoadReport {
    let state = State::default();
    let client = http_client();
    {
        let workers = join_all((0..concurrency.max(1)).map(|_| worker(&client, request, &state)));
        tokio::pin!(workers);
        tokio::select! {
            _ = until => {
                state.stop.store(true, Ordering::Relaxed);
                workers.await;
            }
            _ = &mut workers => {}
        }
    }
    state
        .report
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct State {
    stop: AtomicBool,
    sent: AtomicU64,
    report: Mutex<LoadReport>,
}

async fn worker(client: &Client, spec: &LoadRequest, state: &State) {
    while !state.stop.load(Ordering::Relaxed)
        && state.sent.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS
    {
        let headers: Vec<(&str, &str)> = spec
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let outcome = match request(spec.method.clone(), &spec.url, &headers, spec.body.clone()) {
            Ok(req) => send(client, req).await,
            Err(e) => Err(e),
        };
        let mut report = state
            .report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match outcome {
            Ok(response) => {
                *report.statuses.entry(response.status.as_u16()).or_default() += 1;
                if response.status.is_success() {
                    report.ok += 1;
                } else {
                    report.failed += 1;
                }
            }
            Err(e) => {
                report.failed += 1;
                if report.errors.len() < KEPT_ERRORS {
                    report.errors.push(format!("{e:#}"));
                }
            }
        }
    }
}

//! The director: one pick from request to decision — candidates from the datastore, the subset
//! hint, the InferenceObjective's priority and admission (shedding), then the scheduler — and
//! the metrics of each outcome. Pure apart from the clock; the ext_proc handler calls it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use crate::datastore::{Candidate, Datastore};
use crate::metrics::Metrics;
use crate::scheduling::{Decision, InferenceRequest, Scheduler};
use crate::{Error, Result};

/// An InferenceObjective bound to this pool: requests naming it (header
/// `x-gateway-inference-objective`, or a body `model` equal to its name) get its priority.
/// Priority < 0 is sheddable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Objective {
    pub name: String,
    pub priority: i32,
}

/// Priority of requests matching no objective (upstream's default).
pub const DEFAULT_PRIORITY: i32 = 0;

/// Picks endpoints for requests of one pool.
#[derive(Debug)]
pub struct Director {
    datastore: Arc<Datastore>,
    scheduler: Arc<Scheduler>,
    objectives: HashMap<String, i32>,
    metrics: Metrics,
}

impl Director {
    pub fn new(
        datastore: Arc<Datastore>,
        scheduler: Arc<Scheduler>,
        objectives: &[Objective],
        metrics: Metrics,
    ) -> Self {
        Director {
            datastore,
            scheduler,
            objectives: objectives
                .iter()
                .map(|o| (o.name.clone(), o.priority))
                .collect(),
            metrics,
        }
    }

    pub fn datastore(&self) -> &Arc<Datastore> {
        &self.datastore
    }

    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The objective a request belongs to and its priority: the header names it, else the model
    /// does; neither → no objective, priority 0.
    pub fn resolve_objective(&self, header: Option<&str>, model: &str) -> (Option<String>, i32) {
        if let Some(name) = header.map(str::trim).filter(|h| !h.is_empty()) {
            let priority = self.objectives.get(name).copied();
            return (Some(name.to_owned()), priority.unwrap_or(DEFAULT_PRIORITY));
        }
        match self.objectives.get(model) {
            Some(priority) => (Some(model.to_owned()), *priority),
            None => (None, DEFAULT_PRIORITY),
        }
    }

    /// One pick. `subset`: the data plane's subset hint, when it sent one.
    pub fn pick(
        &self,
        request: &InferenceRequest,
        objective_header: Option<&str>,
        subset: Option<&[String]>,
    ) -> Result<Decision> {
        let started = Instant::now();
        let result = self.decide(request, objective_header, subset, started);
        match &result {
            Ok((decision, saturation)) => {
                let primary = decision
                    .endpoints
                    .first()
                    .map(SocketAddr::to_string)
                    .unwrap_or_default();
                self.metrics
                    .record_pick(&primary, started.elapsed(), *saturation);
            }
            Err(error) => {
                self.metrics
                    .record_reject(error.http_status().unwrap_or(500), error.reason());
            }
        }
        result.map(|(decision, _)| decision)
    }

    fn decide(
        &self,
        request: &InferenceRequest,
        objective_header: Option<&str>,
        subset: Option<&[String]>,
        now: Instant,
    ) -> Result<(Decision, f64)> {
        let pool = || self.datastore.pool().name.clone();
        let mut candidates = self.datastore.candidates(now);
        if candidates.is_empty() {
            return Err(Error::NoReadyEndpoint { pool: pool() });
        }
        if let Some(subset) = subset {
            candidates = in_subset(candidates, subset);
            if candidates.is_empty() {
                return Err(Error::EmptySubset { pool: pool() });
            }
        }
        let (objective, priority) = self.resolve_objective(objective_header, &request.model);
        let saturation = self.scheduler.detector().saturation(&candidates);
        if priority < 0 && saturation >= 1.0 {
            return Err(Error::Shed {
                pool: pool(),
                objective,
                priority,
            });
        }
        let decision = self
            .scheduler
            .schedule(request, &candidates)
            .ok_or_else(|| Error::NoReadyEndpoint { pool: pool() })?;
        Ok((decision, saturation))
    }

    /// The data plane reported the endpoint that served a request (`served`, `ip:port`).
    pub fn served(&self, decision: Option<&Decision>, served: &str) {
        let addr: Option<SocketAddr> = served.trim().parse().ok();
        let in_pool = addr.filter(|a| self.datastore.endpoints().contains(a));
        let label = in_pool.map_or_else(|| "other".to_owned(), |a| a.to_string());
        let fallback = match (decision, addr) {
            (Some(d), Some(a)) => d.endpoints.first() != Some(&a),
            _ => false,
        };
        self.metrics.record_served(&label, fallback);
        if let (Some(decision), Some(addr)) = (decision, in_pool) {
            self.scheduler.record_served(decision, addr);
        }
    }
}

/// Candidates named by the subset hint: `ip:port` matches that endpoint, a bare IP every port
/// of that pod.
pub fn in_subset(candidates: Vec<Candidate>, subset: &[String]) -> Vec<Candidate> {
    let mut endpoints: Vec<SocketAddr> = Vec::new();
    let mut ips: Vec<IpAddr> = Vec::new();
    for entry in subset {
        let entry = entry.trim();
        if let Ok(addr) = entry.parse::<SocketAddr>() {
            endpoints.push(addr);
        } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
            ips.push(ip);
        }
    }
    candidates
        .into_iter()
        .filter(|c| endpoints.contains(&c.addr) || ips.contains(&c.addr.ip()))
        .collect()
}

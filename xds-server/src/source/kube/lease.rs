//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection` does:
//! the holder renews `spec.renewTime` every [`LeaseConfig::renew_every`]; another replica takes
//! the Lease over once it has seen the same record unchanged for a whole
//! `leaseDurationSeconds` (judged on its own clock, so clock skew between nodes does not
//! matter). Writes carry the `resourceVersion` they read, so two replicas racing for an
//! expired Lease cannot both win (the loser gets `409 Conflict`).
//!
//! A leader that cannot renew for [`LeaseConfig::renew_deadline`] steps down before anyone
//! else may take over, so two replicas never both believe they lead.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// Which Lease, who we are, and the timings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the Pod name).
    pub identity: String,
    /// `spec.leaseDurationSeconds`: how long others wait before taking an unrenewed Lease over.
    pub duration: Duration,
    /// How often the leader renews (and others check).
    pub renew_every: Duration,
}

impl LeaseConfig {
    /// The default Lease name.
    pub const DEFAULT_NAME: &'static str = "infergate-xds-server";

    /// 15 s Lease, renewed every 5 s.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: Self::DEFAULT_NAME.to_string(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }

    /// How long a leader keeps leading without a successful renewal: two thirds of the
    /// duration, so it has stepped down before the Lease can be taken over.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// The identity of this replica: `POD_NAME`, else `HOSTNAME`, else `/etc/hostname`.
pub fn default_identity() -> String {
    let from_env = |var| std::env::var(var).ok().filter(|v: &String| !v.is_empty());
    from_env("POD_NAME")
        .or_else(|| from_env("HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| format!("xds-server-{}", std::process::id()))
}

/// Runs the election until the process ends, publishing whether this replica leads.
pub async fn run(client: kube::Client, config: LeaseConfig, leader: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut elector = Elector::new(config.clone());
    let mut last_renewal: Option<Instant> = None;
    loop {
        let now = Instant::now();
        match elector.try_acquire_or_renew(&api, now).await {
            Ok(true) => last_renewal = Some(now),
            Ok(false) => last_renewal = None,
            Err(err) => {
                tracing::warn!(lease = %config.name, error = %err, "leader election: lease not renewed")
            }
        }
        let leading = last_renewal.is_some_and(|at| now - at < config.renew_deadline());
        if *leader.borrow() != leading {
            tracing::info!(identity = %config.identity, leading, "leader election");
        }
        leader.send_if_modified(|l| std::mem::replace(l, leading) != leading);
        tokio::time::sleep(config.renew_every).await;
    }
}

/// Gives the Lease up if this replica holds it, so another replica takes over at its next
/// round instead of waiting out the Lease duration (client-go's `ReleaseOnCancel`). Call it
/// after the election task has stopped, so it cannot renew again.
pub async fn release(client: kube::Client, config: &LeaseConfig) -> kube::Result<bool> {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        return Ok(false);
    };
    let mut spec = lease.spec.clone().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(false);
    }
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.acquire_time = Some(now.clone());
    spec.renew_time = Some(now);
    lease.spec = Some(spec);
    let released = conflict_is_false(
        api.replace(&config.name, &PostParams::default(), &lease)
            .await,
    )?;
    if released {
        tracing::info!(identity = %config.identity, lease = %config.name, "leader election: lease released");
    }
    Ok(released)
}

/// What a replica has seen of the Lease.
struct Elector {
    config: LeaseConfig,
    /// The last record seen (holder, renew time, transitions) and when it was first seen.
    observed: Option<(Record, Instant)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    renew_time: Option<String>,
    transitions: i32,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Record {
        Record {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// What to do with the Lease as read.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Ours: renew it.
    Renew,
    /// Free or expired: take it over.
    TakeOver,
    /// Someone else holds it and has renewed recently.
    Follow,
}

impl Elector {
    fn new(config: LeaseConfig) -> Elector {
        Elector {
            config,
            observed: None,
        }
    }

    /// Decides on the Lease's current spec, remembering when its record last changed.
    fn decide(&mut self, spec: &LeaseSpec, now: Instant) -> Decision {
        let record = Record::of(spec);
        let since = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => now,
        };
        self.observed = Some((record.clone(), since));
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.duration, Duration::from_secs);
        match record.holder {
            Some(holder) if holder == self.config.identity => Decision::Renew,
            None => Decision::TakeOver,
            Some(_) if now - since >= duration => Decision::TakeOver,
            Some(_) => Decision::Follow,
        }
    }

    /// One round: `Ok(true)` when this replica holds the Lease afterwards.
    async fn try_acquire_or_renew(&mut self, api: &Api<Lease>, now: Instant) -> kube::Result<bool> {
        let stamp = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let Some(mut lease) = api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(stamp.clone(), stamp, 0)),
            };
            return conflict_is_false(api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = match self.decide(&spec, now) {
            Decision::Follow => return Ok(false),
            Decision::Renew => {
                let acquired = spec.acquire_time.clone().unwrap_or_else(|| stamp.clone());
                self.spec(acquired, stamp, transitions)
            }
            Decision::TakeOver => {
                tracing::info!(identity = %self.config.identity, previous = ?spec.holder_identity, "leader election: taking the lease over");
                self.spec(stamp.clone(), stamp, transitions + 1)
            }
        };
        lease.spec = Some(new_spec);
        // `lease.metadata.resourceVersion` is the one read: a concurrent writer makes this 409.
        conflict_is_false(
            api.replace(&self.config.name, &PostParams::default(), &lease)
                .await,
        )
    }

    fn spec(&self, acquired: MicroTime, renewed: MicroTime, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired),
            renew_time: Some(renewed),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

/// A write that lost a race (`409`) means someone else holds the Lease.
fn conflict_is_false(result: kube::Result<Lease>) -> kube::Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, renewed: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(renewed.parse().expect("time"))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_is_taken_over_only_after_it_went_unrenewed_for_its_duration() {
        let mut elector = Elector::new(LeaseConfig::new("ns", "b"));
        let start = Instant::now();
        let spec = held_by("a", "2026-01-01T00:00:00Z");
        assert_eq!(elector.decide(&spec, start), Decision::Follow);
        assert_eq!(
            elector.decide(&spec, start + Duration::from_secs(14)),
            Decision::Follow
        );
        // A renewal restarts the clock.
        let renewed = held_by("a", "2026-01-01T00:00:05Z");
        let later = start + Duration::from_secs(16);
        assert_eq!(elector.decide(&renewed, later), Decision::Follow);
        assert_eq!(
            elector.decide(&renewed, later + Duration::from_secs(15)),
            Decision::TakeOver
        );
    }

    #[test]
    fn the_holder_renews_and_a_released_lease_is_free() {
        let mut elector = Elector::new(LeaseConfig::new("ns", "a"));
        let now = Instant::now();
        assert_eq!(
            elector.decide(&held_by("a", "2026-01-01T00:00:00Z"), now),
            Decision::Renew
        );
        assert_eq!(
            elector.decide(&LeaseSpec::default(), now),
            Decision::TakeOver
        );
    }
}

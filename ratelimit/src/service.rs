//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`: descriptors → [`Op`]s →
//! one storage decision → one [`DescriptorStatus`] per descriptor, in order.
//!
//! Descriptors that cannot be read are answered OK with no limit and counted; storage
//! failures are the only errors (`UNAVAILABLE`, logged at most once a second per reason).

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitService;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as ProtoDuration;
use tonic::{Request, Response, Status};

use crate::decision::{Op, Outcome};
use crate::descriptor::{BAD_RESERVED_REASON, Descriptor, Mode, Reservation};
use crate::metrics::{Metrics, RESULT_OK, RESULT_OVER_LIMIT, RESULT_SHADOW_OVER};
use crate::storage::Storage;
use crate::throttle::LogThrottle;
use crate::{Result, window};

/// The service: stateless apart from its storage, so any number of replicas can share one.
#[derive(Clone)]
pub struct RateLimiter {
    storage: Arc<dyn Storage>,
    metrics: Metrics,
    throttle: Arc<LogThrottle>,
}

impl RateLimiter {
    pub fn new(storage: Arc<dyn Storage>, metrics: Metrics) -> RateLimiter {
        RateLimiter {
            storage,
            metrics,
            throttle: Arc::new(LogThrottle::new(Duration::from_secs(1))),
        }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Decides `request` at `now` (time since the Unix epoch).
    pub async fn decide(
        &self,
        request: &RateLimitRequest,
        now: Duration,
    ) -> Result<RateLimitResponse> {
        let parsed: Vec<Option<Descriptor>> = request
            .descriptors
            .iter()
            .map(|descriptor| {
                match Descriptor::parse(&request.domain, descriptor, request.hits_addend) {
                    Ok(descriptor) => {
                        if descriptor.mode == Mode::Settle(Reservation::Malformed) {
                            self.metrics.invalid(BAD_RESERVED_REASON);
                            tracing::debug!(rule = %descriptor.rule, "settle without a readable reservation; adding its hits");
                        }
                        Some(descriptor)
                    }
                    Err(invalid) => {
                        self.metrics.invalid(invalid.reason());
                        tracing::debug!(domain = %request.domain, %invalid, "descriptor answered OK without a limit");
                        None
                    }
                }
            })
            .collect();
        let ops: Vec<Op> = parsed.iter().flatten().map(|d| Op::new(d, now)).collect();
        let decision = self.storage.decide(&ops).await?;
        let mut outcomes = ops.iter().zip(&decision.outcomes);
        let statuses = parsed
            .iter()
            .map(|descriptor| {
                let Some(descriptor) = descriptor else {
                    return invalid_status();
                };
                let Some((op, outcome)) = outcomes.next() else {
                    // The storage answered fewer outcomes than ops; it cannot (it is checked).
                    return invalid_status();
                };
                self.record(descriptor, op, outcome);
                status(descriptor, op, outcome, now)
            })
            .collect();
        Ok(RateLimitResponse {
            overall_code: if decision.over_limit {
                Code::OverLimit
            } else {
                Code::Ok
            } as i32,
            statuses,
            ..Default::default()
        })
    }

    fn record(&self, descriptor: &Descriptor, op: &Op, outcome: &Outcome) {
        let result = match (outcome.over, op.blocking) {
            (false, _) => RESULT_OK,
            (true, true) => RESULT_OVER_LIMIT,
            (true, false) => RESULT_SHADOW_OVER,
        };
        self.metrics.decision(result, descriptor.mode.name());
    }

    fn storage_failed(&self, err: &crate::Error) {
        let reason = err.reason();
        self.metrics.storage_error(reason);
        if let Some(suppressed) = self.throttle.allow(reason) {
            tracing::warn!(error = %err, reason, suppressed, "rate-limit storage failed; answering UNAVAILABLE");
        }
    }
}

fn invalid_status() -> DescriptorStatus {
    DescriptorStatus {
        code: Code::Ok as i32,
        ..Default::default()
    }
}

fn status(descriptor: &Descriptor, op: &Op, outcome: &Outcome, now: Duration) -> DescriptorStatus {
    let over = outcome.over && op.blocking;
    let reset = op.window.until_end(now);
    DescriptorStatus {
        code: if over { Code::OverLimit } else { Code::Ok } as i32,
        current_limit: Some(RateLimit {
            name: descriptor.rule.clone(),
            requests_per_unit: saturating_u32(descriptor.limit.requests),
            unit: descriptor.limit.unit.to_envoy() as i32,
        }),
        limit_remaining: saturating_u32(outcome.remaining(op)),
        duration_until_reset: Some(ProtoDuration {
            seconds: i64::try_from(reset.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(reset.subsec_nanos()).unwrap_or(0),
        }),
        ..Default::default()
    }
}

fn saturating_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[tonic::async_trait]
impl RateLimitService for RateLimiter {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> std::result::Result<Response<RateLimitResponse>, Status> {
        let started = Instant::now();
        let decided = self.decide(request.get_ref(), window::now()).await;
        self.metrics.duration(started.elapsed());
        match decided {
            Ok(response) => Ok(Response::new(response)),
            Err(err) => {
                self.storage_failed(&err);
                Err(err.into())
            }
        }
    }
}

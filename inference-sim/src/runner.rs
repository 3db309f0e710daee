//! Drives the engine in real time: simulated seconds × `time_scale` = real seconds.
//!
//! The engine keeps its own clock. Each step ends at `origin + clock × time_scale` in real time and
//! the runner sleeps until then, so timer granularity never accumulates into drift; if the host is
//! too slow to keep up, the simulated clock simply runs behind real time (latencies in `/metrics`
//! stay those of the simulated GPU). When idle the clock jumps forward to the present.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::config::EngineParams;
use crate::engine::{Core, Emission, SeqId, SeqSpec};
use crate::handle::{EngineState, SimHandle};
use crate::metrics;

/// The engine shared by the HTTP handlers, `/metrics` and the runner task.
pub(crate) struct Engine {
    inner: Mutex<Inner>,
    wake: Notify,
    state: watch::Sender<EngineState>,
    origin: Instant,
    time_scale: f64,
    /// `model_name` label of every metric.
    model: String,
}

struct Inner {
    core: Core,
    outputs: HashMap<SeqId, mpsc::UnboundedSender<Emission>>,
    stopped: bool,
}

impl Engine {
    pub fn new(params: EngineParams, model: String, time_scale: f64) -> Arc<Self> {
        let core = Core::new(params);
        let (state, _) = watch::channel(core.state());
        Arc::new(Self {
            inner: Mutex::new(Inner {
                core,
                outputs: HashMap::new(),
                stopped: false,
            }),
            wake: Notify::new(),
            state,
            origin: Instant::now(),
            time_scale,
            model,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn handle(&self) -> SimHandle {
        SimHandle::new(self.state.subscribe())
    }

    /// Queues a request; its tokens arrive on the returned channel, which closes early if the
    /// simulator stops. Dropping the receiver aborts the request.
    pub fn submit(&self, spec: SeqSpec) -> mpsc::UnboundedReceiver<Emission> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        if inner.stopped {
            return rx;
        }
        let id = inner.core.submit(spec);
        inner.outputs.insert(id, tx);
        self.state.send_replace(inner.core.state());
        drop(inner);
        self.wake.notify_one();
        rx
    }

    /// `/metrics` now.
    pub fn metrics(&self) -> String {
        let mut inner = self.lock();
        let (running, waiting) = inner.core.adapters();
        inner
            .core
            .stats_mut()
            .lora_info(&running, &waiting, unix_now());
        metrics::render(
            &self.model,
            inner.core.params(),
            inner.core.gauges(),
            inner.core.stats(),
        )
    }

    /// Closes every request's channel and refuses new ones (the simulator is being dropped).
    pub fn stop(&self) {
        let mut inner = self.lock();
        inner.stopped = true;
        inner.outputs.clear();
    }

    /// Simulated seconds since start, by the wall clock.
    fn real_now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() / self.time_scale
    }

    fn real_deadline(&self, simulated: f64) -> Instant {
        self.origin + Duration::from_secs_f64((simulated * self.time_scale).max(0.0))
    }

    fn publish(&self, inner: &Inner) {
        self.state.send_replace(inner.core.state());
    }
}

impl Inner {
    /// Aborts requests whose client went away.
    fn drop_disconnected(&mut self) {
        let gone: Vec<SeqId> = self
            .outputs
            .iter()
            .filter(|(_, tx)| tx.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.outputs.remove(&id);
            self.core.abort(id);
        }
    }

    fn deliver(&mut self, emissions: Vec<Emission>) {
        for emission in emissions {
            let id = emission.id;
            let done = emission.done.is_some();
            let delivered = self
                .outputs
                .get(&id)
                .is_some_and(|tx| tx.send(emission).is_ok());
            if done || !delivered {
                self.outputs.remove(&id);
            }
            if !delivered && !done {
                self.core.abort(id);
            }
        }
    }
}

/// The engine loop; runs until the task is aborted.
pub(crate) async fn run(engine: Arc<Engine>) {
    loop {
        let step_end = {
            let mut inner = engine.lock();
            inner.drop_disconnected();
            let planned = inner.core.schedule().is_some();
            if !planned {
                engine.publish(&inner);
            }
            inner.core.step_end()
        };
        match step_end {
            None => {
                engine.wake.notified().await;
                let now = engine.real_now();
                engine.lock().core.advance_to(now);
            }
            Some(end) => {
                let deadline = engine.real_deadline(end);
                if deadline > Instant::now() {
                    tokio::time::sleep_until(deadline).await;
                } else {
                    // Behind schedule: catch up, but let clients read their tokens between steps.
                    tokio::task::yield_now().await;
                }
                let mut inner = engine.lock();
                let emissions = inner.core.finish_step();
                inner.deliver(emissions);
                let (running, waiting) = inner.core.adapters();
                inner
                    .core
                    .stats_mut()
                    .lora_info(&running, &waiting, unix_now());
                engine.publish(&inner);
            }
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

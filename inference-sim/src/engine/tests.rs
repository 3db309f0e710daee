//! The engine as a state machine: submit, step, assert on the model.

use super::*;
use crate::kv_cache::block_hashes;

fn params() -> EngineParams {
    EngineParams {
        max_model_len: 1024,
        max_num_seqs: 8,
        max_num_batched_tokens: 512,
        block_size: 16,
        num_gpu_blocks: 256,
        prefill_s_per_token: 1e-4,
        step_base_s: 0.01,
        step_per_seq_s: 0.001,
        max_loras: 1,
        lora_load_s: 0.05,
    }
}

fn spec(prompt: &[u32], max_output: usize) -> SeqSpec {
    SeqSpec {
        prompt_len: prompt.len(),
        block_hashes: block_hashes(prompt, 16, None),
        max_output,
        finish: FinishReason::Length,
        adapter: None,
    }
}

fn prompt(tag: u32, len: usize) -> Vec<u32> {
    (0..len as u32).map(|i| i.wrapping_mul(31) ^ tag).collect()
}

/// One step; `None` when idle.
fn step(core: &mut Core) -> Option<(f64, Vec<Emission>)> {
    let duration = core.schedule()?;
    Some((duration, core.finish_step()))
}

/// Steps until idle; returns every emission.
fn drain(core: &mut Core) -> Vec<Emission> {
    let mut out = Vec::new();
    while let Some((_, emitted)) = step(core) {
        out.extend(emitted);
    }
    out
}

fn done(emissions: &[Emission], id: SeqId) -> Option<Usage> {
    emissions
        .iter()
        .find(|e| e.id == id && e.done.is_some())
        .and_then(|e| e.done.map(|(_, u)| u))
}

#[test]
fn requests_beyond_max_num_seqs_wait_in_fifo_order() {
    let mut core = Core::new(EngineParams {
        max_num_seqs: 2,
        ..params()
    });
    let ids: Vec<_> = (0..3)
        .map(|i| core.submit(spec(&prompt(i, 32), 4)))
        .collect();
    step(&mut core);
    let gauges = core.gauges();
    assert_eq!((gauges.running, gauges.waiting), (2, 1));

    let emissions = drain(&mut core);
    let finish_order: Vec<_> = emissions
        .iter()
        .filter(|e| e.done.is_some())
        .map(|e| e.id)
        .collect();
    assert_eq!(finish_order, ids, "first in, first out");
    assert_eq!(core.stats().finished[1], 3);
}

#[test]
fn the_first_token_comes_after_prefill_then_one_per_step() {
    let mut core = Core::new(params());
    let id = core.submit(spec(&prompt(1, 100), 3));
    let (prefill, emitted) = step(&mut core).expect("work");
    assert_eq!(
        emitted,
        [Emission {
            id,
            index: 0,
            done: None
        }]
    );
    // base + one sequence + 99 prefill tokens (the sampled position costs like a decode).
    assert!(
        (prefill - (0.01 + 0.001 + 99.0 * 1e-4)).abs() < 1e-9,
        "{prefill}"
    );
    let (decode, emitted) = step(&mut core).expect("work");
    assert!((decode - 0.011).abs() < 1e-9);
    assert_eq!(emitted[0].index, 1);
    let (_, emitted) = step(&mut core).expect("work");
    let usage = done(&emitted, id).expect("finished");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (100, 3));
    assert!(step(&mut core).is_none());
    assert!((core.stats().ttft.sum() - prefill).abs() < 1e-9);
}

#[test]
fn steps_get_longer_as_the_batch_grows() {
    let mut core = Core::new(params());
    for i in 0..4 {
        core.submit(spec(&prompt(i, 16), 10));
    }
    step(&mut core);
    let (four, _) = step(&mut core).expect("decode");
    let mut alone = Core::new(params());
    alone.submit(spec(&prompt(9, 16), 10));
    step(&mut alone);
    let (one, _) = step(&mut alone).expect("decode");
    assert!((four - one - 3.0 * 0.001).abs() < 1e-9, "{four} vs {one}");
}

#[test]
fn a_cached_prefix_skips_its_prefill() {
    let mut core = Core::new(params());
    let long = prompt(7, 320);
    let first = core.submit(spec(&long, 1));
    let (fresh, emitted) = step(&mut core).expect("work");
    assert_eq!(done(&emitted, first).map(|u| u.cached_tokens), Some(0));
    assert_eq!(
        core.gauges().kv_cache_usage,
        0.0,
        "finished blocks are free"
    );

    let second = core.submit(spec(&long, 1));
    let (cached, emitted) = step(&mut core).expect("work");
    // 320 tokens = 20 full blocks; the last must be recomputed to sample a token.
    assert_eq!(done(&emitted, second).map(|u| u.cached_tokens), Some(304));
    assert!(cached < fresh / 3.0, "{cached} vs {fresh}");
    assert_eq!(core.stats().prefix_cache_hits, 304);
    assert_eq!(core.stats().prefix_cache_queries, 640);
}

#[test]
fn a_prompt_longer_than_the_budget_is_prefilled_in_chunks() {
    let mut core = Core::new(params());
    core.submit(spec(&prompt(3, 1000), 1));
    let mut steps = 0;
    let mut emitted = Vec::new();
    while let Some((_, e)) = step(&mut core) {
        steps += 1;
        emitted.extend(e);
    }
    assert_eq!(steps, 2, "512 + 488 tokens");
    assert_eq!(emitted.len(), 1);
}

#[test]
fn kv_usage_follows_running_sequences_and_a_full_cache_makes_requests_wait() {
    let mut core = Core::new(EngineParams {
        num_gpu_blocks: 70,
        max_model_len: 1024,
        ..params()
    });
    core.submit(spec(&prompt(1, 512), 4)); // 32 blocks, 33 once decoding
    core.submit(spec(&prompt(2, 512), 4));
    core.submit(spec(&prompt(3, 512), 4));
    step(&mut core);
    let first = core.gauges();
    assert_eq!(
        (first.running, first.waiting),
        (1, 2),
        "budget: one prompt per step"
    );
    assert!((first.kv_cache_usage - 32.0 / 70.0).abs() < 1e-9);
    step(&mut core);
    let second = core.gauges();
    assert_eq!(
        (second.running, second.waiting),
        (2, 1),
        "no blocks left for the third"
    );
    assert!(second.kv_cache_usage > first.kv_cache_usage);
    let emissions = drain(&mut core);
    assert_eq!(emissions.iter().filter(|e| e.done.is_some()).count(), 3);
    assert_eq!(core.gauges().kv_cache_usage, 0.0);
    assert_eq!(core.stats().preemptions, 0);
}

#[test]
fn when_decoding_runs_out_of_blocks_the_newest_sequence_is_preempted_and_recomputed() {
    let mut core = Core::new(EngineParams {
        num_gpu_blocks: 8,
        max_model_len: 128,
        ..params()
    });
    let a = core.submit(spec(&prompt(1, 48), 60)); // grows from 4 to 7 blocks
    let b = core.submit(spec(&prompt(2, 48), 60));
    let emissions = drain(&mut core);
    assert!(core.stats().preemptions > 0);
    for id in [a, b] {
        let indices: Vec<_> = emissions
            .iter()
            .filter(|e| e.id == id)
            .map(|e| e.index)
            .collect();
        assert_eq!(
            indices,
            (0..60).collect::<Vec<_>>(),
            "every token once, in order"
        );
    }
    assert_eq!(core.gauges().kv_cache_usage, 0.0);
}

#[test]
fn an_aborted_request_frees_its_blocks() {
    let mut core = Core::new(params());
    let id = core.submit(spec(&prompt(1, 64), 100));
    step(&mut core);
    assert!(core.gauges().kv_cache_usage > 0.0);
    assert!(core.abort(id));
    assert_eq!(core.gauges().kv_cache_usage, 0.0);
    assert!(step(&mut core).is_none());
    assert_eq!(core.stats().finished[FinishReason::Abort as usize], 1);
}

#[test]
fn a_request_for_a_busy_adapter_waits_while_others_go_ahead() {
    let mut core = Core::new(params());
    let with = |adapter: &str, tag| SeqSpec {
        adapter: Some(adapter.to_owned()),
        ..spec(&prompt(tag, 16), 5)
    };
    let a = core.submit(with("a", 1));
    step(&mut core);
    assert_eq!(core.state().resident_adapters, ["a"]);

    let b = core.submit(with("b", 2));
    let plain = core.submit(spec(&prompt(3, 16), 5));
    step(&mut core);
    let state = core.state();
    assert_eq!(state.running_adapters, ["a"]);
    assert_eq!(
        state.waiting_adapters,
        ["b"],
        "one slot, held by a running request"
    );
    assert_eq!(state.running, 2, "the base-model request passed it");

    let emissions = drain(&mut core);
    assert!(done(&emissions, a).is_some() && done(&emissions, b).is_some());
    assert!(done(&emissions, plain).is_some());
    let state = core.state();
    assert_eq!(
        state.resident_adapters,
        ["b"],
        "b evicted a once a was idle"
    );
    assert_eq!(state.adapter_loads, 2);
}

#[test]
fn loading_an_adapter_adds_its_load_time_to_the_step() {
    let mut core = Core::new(params());
    let with_adapter = SeqSpec {
        adapter: Some("a".into()),
        ..spec(&prompt(1, 16), 2)
    };
    core.submit(with_adapter.clone());
    let (loading, _) = step(&mut core).expect("work");
    drain(&mut core);
    core.submit(SeqSpec {
        block_hashes: Vec::new(),
        ..with_adapter
    });
    let (resident, _) = step(&mut core).expect("work");
    assert!((loading - resident - 0.05).abs() < 1e-9);
}

#[test]
fn the_clock_advances_by_step_lengths_and_jumps_forward_when_idle() {
    let mut core = Core::new(params());
    core.advance_to(5.0);
    core.submit(spec(&prompt(1, 16), 1));
    let (d, _) = step(&mut core).expect("work");
    assert!((core.clock() - 5.0 - d).abs() < 1e-9);
    core.advance_to(1.0);
    assert!(core.clock() > 5.0, "never backwards");
}

//! The WebAssembly host against small WAT modules: what loading refuses and why, verdicts, and what a fault does
//! (the instance is disabled on this thread, the packet takes the failure path, the fault is counted once).

use std::collections::BTreeMap;
use std::time::Instant;

use super::*;
use crate::core::interceptor::chain::tests::attrs;
use crate::core::interceptor::spec::{IngressSpec, NtpEpoch, StreamInfo};
use crate::core::interceptor::{build::ChainFactory, Attach, AttachMode, Attachment, Outbox, Plugins, Scope, Verdict};
use crate::core::wire::Ssrc;
use crate::core::DropReason;

/// A module with the ABI's exports around `body`, the body of `on_rtp` (its locals: `$len $stream $flow $ext_seq
/// $now`), plus `extra` fields.
fn module(body: &str, extra: &str) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param $len i32) (param $stream i32) (param $flow i32) (param $ext_seq i64) (param $now i64) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    {body})
  {extra})"#
    )
}

fn spec(name: &str, wat: &str) -> WasmPluginSpec {
    WasmPluginSpec {
        name: name.to_owned(),
        module: wat.as_bytes().to_vec(),
        origin: format!("{name}.wat"),
        ingress: true,
        egress: true,
        on_failure: FailurePath::Forward,
        fuel_per_call: 10_000,
        memory_max_bytes: DEFAULT_MEMORY_BYTES,
        params: BTreeMap::new(),
        mode: crate::wasm::PluginMode::Sync,
    }
}

fn load(spec: WasmPluginSpec) -> Result<WasmPlugin, LoadError> {
    Engine::new().expect("an engine").load(spec)
}

/// A chain holding only `plugin`, bound on this thread.
fn chain_of(plugin: &WasmPlugin) -> crate::core::interceptor::Chain {
    attached(plugin, Attach::default())
}

/// A chain holding only `plugin` with the chain's options `attach`, bound on this thread.
fn attached(plugin: &WasmPlugin, attach: Attach) -> crate::core::interceptor::Chain {
    let plugins = register(Plugins::none(), plugin).expect("registered");
    let epoch = NtpEpoch { at: Instant::now(), ntp: 0 };
    let factory = ChainFactory::new(1500, epoch, plugins.clone());
    let mut spec = IngressSpec::default();
    let id = plugins.find(plugin.name()).expect("found");
    plugins.check_attach(id, &attach).expect("a WebAssembly plugin takes every option");
    spec.plugins.attach(Attachment { id, attach }).expect("room");
    let stream = StreamInfo { ssrc: Ssrc(1), clock_rate_hz: 90_000, local_ssrc: Ssrc(2), epoch };
    factory.ingress(&spec, &stream)
}

fn run(chain: &mut crate::core::interceptor::Chain, outbox: &mut Outbox, pkt: &[u8]) -> Verdict {
    let now = Instant::now();
    let mut attrs = attrs(now);
    attrs.len_bytes = pkt.len();
    chain.on_rtp(now, Scope::Stream { stream: 3 }, pkt, &attrs, outbox)
}

#[test]
fn loading_refuses_what_does_not_fit_the_abi_and_says_why() {
    let refused = |spec: WasmPluginSpec| load(spec).expect_err("refused").to_string();
    assert!(refused(spec("p", "(module")).starts_with("not a valid WebAssembly module"));
    let importing = r#"(module (import "env" "clock" (func)))"#;
    assert!(refused(spec("p", importing)).starts_with("it imports env.clock, which ABI v1 does not provide"));
    let no_rtp = r#"(module (memory (export "memory") 1)
        (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
        (func (export "ringfwd_packet_buffer") (result i32) (i32.const 0)))"#;
    assert_eq!(refused(spec("p", no_rtp)), "it does not export on_rtp (ABI v1)");
    let wrong_type = module("(i32.const 0)", r#"(func (export "on_rtcp") (result i32) (i32.const 0))"#);
    assert!(refused(spec("p", &wrong_type)).starts_with("its export on_rtcp has the wrong type"));
    let v2 = module("(i32.const 0)", "").replace("(result i32) (i32.const 1))", "(result i32) (i32.const 2))");
    assert_eq!(refused(spec("p", &v2)), "ringfwd_abi_version() returned 2; this ringfwd runs ABI v1");
    let outside = module("(i32.const 0)", "").replace("(i32.const 1024)", "(i32.const 65000)");
    assert!(refused(spec("p", &outside)).starts_with("ringfwd_packet_buffer() returned 65000"));
    let picky = module(
        "(i32.const 0)",
        r#"(func (export "ringfwd_init") (param $len i32) (result i32)
             (if (result i32) (i32.eq (local.get $len) (i32.const 7)) (then (i32.const 0)) (else (i32.const 22))))"#,
    );
    assert_eq!(refused(spec("p", &picky)), "ringfwd_init refused its parameters (returned 22)");
    let mut with_params = spec("p", &picky);
    with_params.params.insert("rate".into(), "50".into()); // "rate=50\n" is 8 bytes
    assert_eq!(
        load(with_params.clone()).expect_err("8 bytes").to_string(),
        "ringfwd_init refused its parameters (returned 22)"
    );
    with_params.params.insert("rate".into(), "5".into());
    assert!(load(with_params).is_ok(), "7 bytes: accepted");
    let big = module("(i32.const 0)", "").replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 300)");
    let mut small_limit = spec("p", &big);
    small_limit.memory_max_bytes = MIN_MEMORY_BYTES * 10;
    assert!(refused(small_limit).starts_with("instantiating it failed"), "300 pages over a 10-page limit");
    let mut no_chain = spec("p", &module("(i32.const 0)", ""));
    no_chain.ingress = false;
    no_chain.egress = false;
    assert_eq!(refused(no_chain), "it runs on no chain: name ingress, egress or both");
    let mut fuel = spec("p", &module("(i32.const 0)", ""));
    fuel.fuel_per_call = 0;
    assert_eq!(refused(fuel), format!("fuel_per_call 0 is not in 1..={MAX_FUEL_PER_CALL}"));
}

#[test]
fn verdicts_map_and_the_plugin_reads_the_packet_and_its_scope() {
    // Drops packets whose second header byte (marker and payload type) is 0x60 (PT 96 without marker), consumes
    // those of stream 3 whose first payload byte is 0xee, passes the rest.
    let body = r#"(if (result i32) (i32.eq (i32.load8_u (i32.const 1025)) (i32.const 0x60))
        (then (i32.const 1))
        (else (if (result i32) (i32.and (i32.eq (local.get $stream) (i32.const 3)) (i32.eq (i32.load8_u (i32.const 1036)) (i32.const 0xee)))
            (then (i32.const 2)) (else (i32.const 0)))))"#;
    let plugin = load(spec("picky", &module(body, ""))).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(4, 1500);
    let mut pkt = [0u8; 13];
    pkt[0] = 0x80;
    // attrs() says PT 96, no marker: the header the plugin sees is patched from the attributes.
    assert_eq!(run(&mut chain, &mut outbox, &pkt), Verdict::Drop(DropReason::Plugin));
    let stats = plugin.stats();
    assert_eq!((stats.instances, stats.calls, stats.drops), (1, 1, 1));
    assert!(stats.fuel > 0, "fuel is counted");
}

#[test]
fn a_trap_disables_the_instance_and_packets_take_the_failure_path() {
    // Traps (unreachable) on its third call.
    let body = "(if (i32.eq (global.get $calls) (i32.const 3)) (then unreachable)) (i32.const 0)";
    for (path, after) in
        [(FailurePath::Forward, Verdict::Continue), (FailurePath::Drop, Verdict::Drop(DropReason::Plugin))]
    {
        let mut trapping = spec("trap_third", &module(body, ""));
        trapping.on_failure = path;
        let plugin = load(trapping).expect("loads");
        let mut chain = chain_of(&plugin);
        let mut outbox = Outbox::new(4, 1500);
        let pkt = [0x80u8; 20];
        let verdicts: Vec<Verdict> = (0..5).map(|_| run(&mut chain, &mut outbox, &pkt)).collect();
        assert_eq!(verdicts, [Verdict::Continue, Verdict::Continue, after, after, after], "{path:?}");
        assert_eq!(outbox.take_plugin_failures(), 1, "one fault, counted once");
        let stats = plugin.stats();
        assert_eq!((stats.calls, stats.traps, stats.disabled, stats.failure_path), (3, 1, 1, 2), "{path:?}");
    }
}

#[test]
fn each_chain_takes_its_own_failure_path_from_its_attachment() {
    // Traps on its third call; loaded fail-open, one chain attaches it fail-closed.
    let body = "(if (i32.eq (global.get $calls) (i32.const 3)) (then unreachable)) (i32.const 0)";
    let plugin = load(spec("trap_mixed", &module(body, ""))).expect("loads");
    let mut open = chain_of(&plugin);
    let mut closed = attached(&plugin, Attach { on_failure: Some(FailurePath::Drop), ..Attach::default() });
    let mut outbox = Outbox::new(4, 1500);
    let pkt = [0x80u8; 20];
    assert_eq!(run(&mut open, &mut outbox, &pkt), Verdict::Continue);
    assert_eq!(run(&mut closed, &mut outbox, &pkt), Verdict::Continue, "fail-closed, but not failed yet");
    assert_eq!(run(&mut closed, &mut outbox, &pkt), Verdict::Drop(DropReason::Plugin), "the trapping call");
    // One instance per worker: the trap disabled it for both chains, and each takes its own path.
    assert_eq!(run(&mut open, &mut outbox, &pkt), Verdict::Continue, "the plugin's own path: forward");
    assert_eq!(run(&mut closed, &mut outbox, &pkt), Verdict::Drop(DropReason::Plugin), "the attachment's: drop");
    let stats = plugin.stats();
    assert_eq!((stats.calls, stats.traps, stats.disabled, stats.failure_path), (3, 1, 1, 2));
}

#[test]
fn running_out_of_fuel_is_a_fault_like_a_trap() {
    // Loops forever on its second call.
    let body = "(if (i32.eq (global.get $calls) (i32.const 2)) (then (loop $spin (br $spin)))) (i32.const 0)";
    let plugin = load(spec("spinner", &module(body, ""))).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(4, 1500);
    let pkt = [0x80u8; 20];
    let started = Instant::now();
    let verdicts: Vec<Verdict> = (0..3).map(|_| run(&mut chain, &mut outbox, &pkt)).collect();
    assert_eq!(verdicts, [Verdict::Continue; 3], "fail-open");
    assert!(started.elapsed().as_secs() < 1, "the budget stopped the loop");
    let stats = plugin.stats();
    assert_eq!((stats.calls, stats.out_of_fuel, stats.traps, stats.disabled), (2, 1, 0, 1));
    assert!(stats.fuel >= 10_000, "the spinning call used its whole budget");
}

#[test]
fn a_verdict_outside_the_abi_is_a_fault_and_oversize_packets_pass_without_a_call() {
    let plugin = load(spec("seven", &module("(i32.const 7)", ""))).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(4, 1500);
    let oversize = vec![0x80u8; abi::PACKET_BUFFER_BYTES + 1];
    assert_eq!(run(&mut chain, &mut outbox, &oversize), Verdict::Continue);
    assert_eq!(run(&mut chain, &mut outbox, &[0x80u8; 20]), Verdict::Continue);
    let stats = plugin.stats();
    assert_eq!((stats.oversize, stats.calls, stats.bad_verdicts, stats.disabled), (1, 1, 1, 1));
}

#[test]
fn one_instance_per_plugin_per_thread_shared_by_the_chains_there() {
    let plugin = load(spec("shared", &module("(i32.const 0)", ""))).expect("loads");
    let mut first = chain_of(&plugin);
    let mut second = chain_of(&plugin);
    let mut outbox = Outbox::new(4, 1500);
    run(&mut first, &mut outbox, &[0x80u8; 20]);
    run(&mut second, &mut outbox, &[0x80u8; 20]);
    assert_eq!(plugin.stats().instances, 1, "the load's probe instance is not kept; one per thread");
    let other = plugin.clone();
    std::thread::spawn(move || {
        let mut chain = chain_of(&other);
        run(&mut chain, &mut Outbox::new(4, 1500), &[0x80u8; 20]);
    })
    .join()
    .expect("the other thread");
    let stats = plugin.stats();
    assert_eq!((stats.instances, stats.calls), (2, 3));
}

#[test]
fn one_call_in_64_per_instance_is_timed() {
    let plugin = load(spec("timed", &module("(i32.const 0)", ""))).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(4, 1500);
    assert_eq!(plugin.stats().ns_per_call(), None, "nothing timed before the first call");
    run(&mut chain, &mut outbox, &[0x80u8; 20]);
    let first = plugin.stats();
    assert_eq!((first.calls, first.timed_calls), (1, 1), "the first call is timed");
    assert!(first.timed_ns > 0 && first.ns_per_call() == Some(first.timed_ns), "{first:?}");
    for _ in 1..130 {
        run(&mut chain, &mut outbox, &[0x80u8; 20]);
    }
    let stats = plugin.stats();
    assert_eq!((stats.calls, stats.timed_calls), (130, 3), "calls 1, 65 and 129");
    assert!(stats.timed_ns >= first.timed_ns && stats.ns_per_call().is_some_and(|ns| ns > 0), "{stats:?}");
}

#[test]
fn what_a_call_emits_and_the_timer_it_asks_for_reach_the_context_after_it() {
    use crate::core::interceptor::Target;
    // on_rtp: RTCP to the publisher (the packet's first 8 bytes), 9 emits of which the 9th is refused (8 per call),
    // one out of its memory (refused), and a timer 10 ms on; on_timer: a retransmission of the buffer to flow 7.
    let wat = r#"(module
      (import "ringfwd" "emit_rtcp_to_publisher" (func $to_publisher (param i32 i32) (result i32)))
      (import "ringfwd" "retransmit" (func $retransmit (param i32 i32 i32) (result i32)))
      (import "ringfwd" "set_timer" (func $set_timer (param i64)))
      (memory (export "memory") 1)
      (global $answers (mut i32) (i32.const 0))
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
      (func (export "on_rtp") (param $len i32) (param i32 i32 i64) (param $now i64) (result i32)
        (local $i i32)
        (loop $emit
          (global.set $answers (i32.add (global.get $answers) (call $to_publisher (i32.const 1024) (i32.const 8))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $emit (i32.lt_u (local.get $i) (i32.const 9))))
        (drop (call $to_publisher (i32.const 65530) (i32.const 100)))
        (call $set_timer (i64.add (local.get $now) (i64.const 10000)))
        (i32.const 0))
      (func (export "answers") (result i32) (global.get $answers))
      (func (export "on_timer") (param i32 i32 i64)
        (drop (call $retransmit (i32.const 7) (i32.const 1024) (i32.const 12)))))"#;
    let plugin = load(spec("emitter", wat)).expect("loads: its imports are the ABI's");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(16, 1500);
    let mut pkt = [0u8; 20];
    pkt[0] = 0x80;
    pkt[12..20].copy_from_slice(b"payload!");
    let now = Instant::now();
    let mut attrs = attrs(now);
    attrs.len_bytes = pkt.len();
    assert_eq!(chain.on_rtp(now, Scope::Stream { stream: 3 }, &pkt, &attrs, &mut outbox), Verdict::Continue);
    assert_eq!(outbox.len(), 8, "8 emits per call; the 9th and the one out of its memory refused");
    let (target, bytes) = outbox.get(0).expect("the first");
    assert_eq!(target, Target::Publisher { stream: 3 });
    assert_eq!(bytes, &[0x80, 96, 0, 1, 0, 0, 0, 0], "the header it was shown (patched from the attributes)");
    let stats = plugin.stats();
    assert_eq!((stats.emitted, stats.emits_refused), (8, 2));
    let wake = chain.next_wake().expect("the plugin's timer");
    let asked = now + std::time::Duration::from_millis(10);
    let off = if wake > asked { wake - asked } else { asked - wake };
    assert!(off < std::time::Duration::from_micros(2), "now_us + 10 ms, in whole microseconds: off by {off:?}");
    outbox.clear();
    chain.on_timer(wake, Scope::Stream { stream: 3 }, &mut outbox);
    assert_eq!(outbox.len(), 1);
    let (target, bytes) = outbox.get(0).expect("the retransmission");
    assert_eq!(target, Target::Retransmit { flow: 7 });
    assert_eq!(bytes.len(), 12);
    assert_eq!(plugin.stats().calls, 2, "on_rtp and on_timer");

    let unknown = r#"(module (import "ringfwd" "send" (func)))"#;
    let refused = load(spec("p", unknown)).expect_err("an import the ABI does not provide").to_string();
    assert!(refused.starts_with("it imports ringfwd.send, which ABI v1 does not provide (only ringfwd.{"), "{refused}");
    let mistyped = r#"(module (import "ringfwd" "set_timer" (func (param i32))))"#;
    let refused = load(spec("p", mistyped)).expect_err("a mistyped import").to_string();
    assert!(refused.starts_with("instantiating it failed"), "{refused}");
}

/// `on_rtp` of a module that appends `$grow` bytes of 0xab to its packet, sets payload type 63 (keeping the marker)
/// and, on its `$bad`-th call, also changes the SSRC's last byte; then rewrites (its first `import` line and global
/// `$bad` spliced in by the caller).
fn rewriting(bad_call: i32) -> String {
    let body = r#"(i32.store (i32.add (i32.const 1024) (local.get $len)) (i32.const 0xabababab))
        (i32.store8 (i32.const 1025) (i32.or (i32.and (i32.load8_u (i32.const 1025)) (i32.const 0x80)) (i32.const 63)))
        (if (i32.eq (global.get $calls) (global.get $bad)) (then (i32.store8 (i32.const 1035) (i32.const 0x99))))
        (drop (call $rewrite (i32.add (local.get $len) (i32.const 4))))
        (i32.const 0)"#;
    module(body, &format!("(global $bad i32 (i32.const {bad_call}))")).replacen(
        "(module",
        r#"(module (import "ringfwd" "rewrite" (func $rewrite (param i32) (result i32)))"#,
        1,
    )
}

#[test]
fn a_rewrite_replaces_the_packet_for_the_rest_of_the_chain_and_a_bad_one_is_a_fault() {
    let plugin = load(spec("grow", &rewriting(3))).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(4, 1500);
    let mut pkt = [0u8; 20];
    pkt[0] = 0x80;
    pkt[12..].copy_from_slice(b"payload!");
    assert_eq!(run(&mut chain, &mut outbox, &pkt), Verdict::Continue);
    let mut expected = pkt.to_vec();
    expected[1] = 63;
    expected[2..4].copy_from_slice(&1u16.to_be_bytes()); // the header the plugin was shown: from the attributes
    expected[8..12].copy_from_slice(&1u32.to_be_bytes());
    expected.extend_from_slice(&[0xab; 4]);
    assert_eq!(outbox.take_rewritten(), Some(&expected[..]), "24 bytes, payload type 63");
    assert_eq!(outbox.take_rewritten(), None, "taken once");
    assert_eq!(run(&mut chain, &mut outbox, &pkt), Verdict::Continue);
    assert!(outbox.take_rewritten().is_some());
    // The third call changes the SSRC: a fault; fail-open passes the packet as it came, not rewritten.
    assert_eq!(run(&mut chain, &mut outbox, &pkt), Verdict::Continue);
    assert_eq!(outbox.take_rewritten(), None, "a refused rewrite is not passed on");
    assert_eq!(run(&mut chain, &mut outbox, &pkt), Verdict::Continue);
    assert_eq!(outbox.take_rewritten(), None, "disabled: its packets pass untouched");
    assert_eq!(outbox.take_plugin_failures(), 1);
    let stats = plugin.stats();
    assert_eq!((stats.calls, stats.rewrites, stats.bad_rewrites, stats.disabled), (3, 2, 1, 1));

    // Longer than the worker's longest packet: refused by the context, a fault too.
    let plugin = load(spec("grow_big", &rewriting(0))).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut small = Outbox::new(4, 22);
    assert_eq!(run(&mut chain, &mut small, &pkt), Verdict::Continue);
    assert_eq!(small.take_rewritten(), None);
    assert_eq!(plugin.stats().bad_rewrites, 1);
}

#[test]
fn an_rtcp_rewrite_replaces_the_compound_and_one_that_changes_its_first_ssrc_is_a_fault() {
    use crate::core::interceptor::RtcpFrom;
    use crate::core::packet::RtcpCompound;
    // on_rtcp drops the compound's last 16 bytes (the APP packet below); on its second call it first changes the
    // last byte of the first SSRC.
    let wat = r#"(module
      (import "ringfwd" "rewrite" (func $rewrite (param i32) (result i32)))
      (memory (export "memory") 1)
      (global $calls (mut i32) (i32.const 0))
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
      (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32) (i32.const 0))
      (func (export "on_rtcp") (param $len i32) (param i32 i32 i32 i64) (result i32)
        (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
        (if (i32.eq (global.get $calls) (i32.const 2)) (then (i32.store8 (i32.const 1031) (i32.const 0x99))))
        (drop (call $rewrite (i32.sub (local.get $len) (i32.const 16))))
        (i32.const 0)))"#;
    let plugin = load(spec("strip_app", wat)).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(4, 1500);
    // An RR of SSRC 5 without report blocks, then an APP packet.
    let mut bytes = vec![0x80, 201, 0, 1, 0, 0, 0, 5];
    bytes.extend_from_slice(&[0x80, 204, 0, 3, 0, 0, 0, 5, b't', b'e', b's', b't', 1, 2, 3, 4]);
    let compound = RtcpCompound::parse(&bytes).expect("a compound");
    let now = Instant::now();
    let mut run_rtcp = |outbox: &mut Outbox| {
        chain.on_rtcp(now, Scope::Subscription { stream: 3, flow: 1 }, &compound, RtcpFrom::Publisher, outbox)
    };
    assert_eq!(run_rtcp(&mut outbox), Verdict::Continue);
    assert_eq!(outbox.take_rewritten(), Some(&bytes[..8]), "the RR alone");
    // Another first SSRC: a fault; fail-open passes the compound as it came.
    assert_eq!(run_rtcp(&mut outbox), Verdict::Continue);
    assert_eq!(outbox.take_rewritten(), None, "a refused rewrite is not passed on");
    assert_eq!(run_rtcp(&mut outbox), Verdict::Continue);
    assert_eq!(outbox.take_rewritten(), None, "disabled: its compounds pass untouched");
    assert_eq!(outbox.take_plugin_failures(), 1);
    let stats = plugin.stats();
    assert_eq!((stats.calls, stats.rewrites, stats.bad_rewrites, stats.disabled), (2, 1, 1, 1));
}

#[test]
fn rewrite_is_refused_in_a_timer() {
    // on_timer calls rewrite and keeps its answer; on_rtp asks for the timer and returns what rewrite answered there.
    let wat = r#"(module
      (import "ringfwd" "rewrite" (func $rewrite (param i32) (result i32)))
      (import "ringfwd" "set_timer" (func $set_timer (param i64)))
      (memory (export "memory") 1)
      (global $timer_answer (mut i32) (i32.const 5))
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
      (func (export "on_rtp") (param $len i32) (param i32 i32 i64) (param $now i64) (result i32)
        (call $set_timer (local.get $now))
        (if (result i32) (i32.eq (call $rewrite (i32.const 11)) (i32.const -1)) (then (i32.const 0)) (else (i32.const 1))))
      (func (export "timer_answer") (result i32) (global.get $timer_answer))
      (func (export "on_timer") (param i32 i32 i64)
        (global.set $timer_answer (call $rewrite (i32.const 20)))))"#;
    let plugin = load(spec("timer_rewrite", wat)).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(4, 1500);
    assert_eq!(run(&mut chain, &mut outbox, &[0x80u8; 20]), Verdict::Continue, "11 bytes: refused, -1");
    assert_eq!(outbox.take_rewritten(), None);
    let wake = chain.next_wake().expect("its timer");
    chain.on_timer(wake, Scope::Stream { stream: 3 }, &mut outbox);
    assert_eq!(outbox.take_rewritten(), None, "a timer rewrites nothing");
    assert_eq!(plugin.stats().disabled, 0, "a refused call is no fault");
}

#[test]
fn unloading_drops_the_instance_this_thread_made_and_leaves_the_others() {
    let (gone, kept) = (
        load(spec("gone", &module("(i32.const 0)", ""))).expect("loads"),
        load(spec("kept", &module("(i32.const 0)", ""))).expect("loads"),
    );
    let plugins = register(register(Plugins::none(), &gone).expect("gone"), &kept).expect("kept");
    let (_gone_chain, _kept_chain) = (chain_of(&gone), chain_of(&kept));
    assert!(link::has_instance(&gone) && link::has_instance(&kept), "binding made one instance of each here");
    let without = plugins.clone().without("gone").expect("registered");
    plugins.retire_missing(&without);
    assert!(!link::has_instance(&gone), "the unloaded plugin's instance is dropped");
    assert!(link::has_instance(&kept), "the other plugin's stays");
    assert_eq!(without.find("kept"), plugins.find("kept"), "its id stays");
}

#[test]
fn inject_takes_rtp_packets_from_an_ingress_chain_only() {
    use crate::core::interceptor::Target;
    // on_rtp injects its packet (accepted), 8 bytes of it (not RTP: −1) and counts what inject answered.
    let wat = r#"(module
      (import "ringfwd" "inject" (func $inject (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (global $answers (mut i32) (i32.const 0))
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
      (func (export "on_rtp") (param $len i32) (param i32 i32 i64 i64) (result i32)
        (global.set $answers (i32.add (global.get $answers) (call $inject (i32.const 1024) (local.get $len))))
        (global.set $answers (i32.add (global.get $answers) (call $inject (i32.const 1024) (i32.const 8))))
        (i32.const 2))
      (func (export "answers") (result i32) (global.get $answers)))"#;
    let plugin = load(spec("injector", wat)).expect("loads: inject is an ABI v1 import");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(16, 1500);
    let mut pkt = [0u8; 20];
    pkt[0] = 0x80;
    pkt[12..20].copy_from_slice(b"payload!");
    assert_eq!(run(&mut chain, &mut outbox, &pkt), Verdict::Consumed);
    assert_eq!(outbox.len(), 1, "the packet, not the 8 bytes");
    let (target, bytes) = outbox.get(0).expect("the injection");
    assert_eq!(target, Target::Stream { stream: 3 });
    assert_eq!(bytes.len(), 20);
    assert_eq!(&bytes[12..], b"payload!");
    let stats = plugin.stats();
    assert_eq!((stats.emitted, stats.injected, stats.emits_refused), (1, 1, 1));

    // On an egress chain the context refuses it.
    let now = Instant::now();
    let mut attrs = attrs(now);
    attrs.len_bytes = pkt.len();
    outbox.clear();
    let scope = Scope::Subscription { stream: 3, flow: 1 };
    assert_eq!(chain.on_rtp(now, scope, &pkt, &attrs, &mut outbox), Verdict::Consumed);
    assert!(outbox.is_empty(), "an egress chain may not inject");
    let stats = plugin.stats();
    assert_eq!((stats.injected, stats.emits_refused), (1, 3));
}

/// `spec` in async mode with a queue of `queue_packets` and `pass`.
fn async_spec(name: &str, wat: &str, queue_packets: u32, pass: AsyncPass) -> WasmPluginSpec {
    WasmPluginSpec {
        mode: PluginMode::Async(AsyncSettings { queue_packets, pass, wake_delay_us: 0 }),
        ..spec(name, wat)
    }
}

/// Installs this thread's late-packet waker: the receiver gets a message per wake-up.
fn late_waker() -> std::sync::mpsc::Receiver<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    crate::core::interceptor::late::install_waker(std::sync::Arc::new(move || {
        let _ = tx.lock().expect("sender").send(());
    }));
    rx
}

/// Waits (for the worker's wake-up, at most 5 s) until `n` late packets came back; their targets, scopes and bytes.
fn late_packets(
    woken: &std::sync::mpsc::Receiver<()>,
    n: usize,
) -> Vec<(crate::core::interceptor::late::LateTarget, Scope, u32, Vec<u8>)> {
    use crate::core::interceptor::late;
    // As the worker loop does at the end of an iteration: the plugin's thread, woken once for what was queued.
    late::wake_deferred();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < n {
        late::take(usize::MAX, |p| got.push((p.target, p.scope, p.ssrc, p.bytes().to_vec())));
        if got.len() >= n {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            woken.recv_timeout(left).is_ok() || late::has_ready(),
            "only {} of {n} late packets came back",
            got.len()
        );
    }
    got
}

/// Waits (at most 5 s) until the plugin's counters, which its thread writes after it acts, say `done`.
fn until(plugin: &WasmPlugin, what: &str, done: impl Fn(&WasmPluginStats) -> bool) {
    crate::core::interceptor::late::wake_deferred();
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while !done(&plugin.stats()) {
        assert!(Instant::now() < deadline, "{what}: {:?}", plugin.stats());
        std::thread::yield_now();
    }
}

/// Injects its packet back into its stream, and asks for a timer 1 ms on that sends a 4-byte RTCP "tick" to the
/// publisher.
const INJECTOR: &str = r#"(module
  (import "ringfwd" "inject" (func $inject (param i32 i32) (result i32)))
  (import "ringfwd" "emit_rtcp_to_publisher" (func $to_publisher (param i32 i32) (result i32)))
  (import "ringfwd" "set_timer" (func $set_timer (param i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "tick")
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param $len i32) (param $stream i32) (param $flow i32) (param $ext_seq i64) (param $now i64) (result i32)
    (drop (call $inject (i32.const 1024) (local.get $len)))
    (call $set_timer (i64.add (local.get $now) (i64.const 1000)))
    (i32.const 0))
  (func (export "on_timer") (param $stream i32) (param $flow i32) (param $now i64)
    (drop (call $to_publisher (i32.const 16) (i32.const 4)))))"#;

#[test]
fn an_async_plugin_gets_copies_on_its_thread_and_what_it_emits_comes_back_to_the_worker() {
    use crate::core::interceptor::late::LateTarget;
    let woken = late_waker();
    let plugin = load(async_spec("injector", INJECTOR, 8, AsyncPass::Consume)).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(4, 1500);
    let mut pkt = [0u8; 20];
    pkt[0] = 0x80;
    pkt[19] = 0xab;
    assert_eq!(run(&mut chain, &mut outbox, &pkt), Verdict::Consumed, "async_pass = consume");
    assert!(outbox.is_empty(), "nothing is emitted inline");
    let back = late_packets(&woken, 2);
    let scope = Scope::Stream { stream: 3 };
    assert_eq!((back[0].0, back[0].1, back[0].2), (LateTarget::Stream, scope, 1), "injected, tagged with its chain");
    // The copy the plugin saw carries the header the chain's attributes give (PT 96, seq and SSRC patched in).
    let now = Instant::now();
    let mut expected = pkt;
    super::link::patch_header(&mut expected, &attrs(now));
    assert_eq!(back[0].3, expected);
    assert_eq!((back[1].0, &back[1].3[..]), (LateTarget::Publisher, &b"tick"[..]), "its timer ran on its thread");
    until(&plugin, "both emits counted", |stats| stats.emitted == 2);
    let stats = plugin.stats();
    assert_eq!((stats.instances, stats.async_queued, stats.calls, stats.injected, stats.emitted), (1, 1, 2, 1, 2));
    assert!(stats.timed_calls == 1 && stats.timed_ns > 0, "its thread's first call is timed: {stats:?}");
}

#[test]
fn a_full_queue_toward_an_async_plugin_drops_and_counts_and_the_worker_never_waits() {
    // Spins through about a million instructions per call, so the queue of 2 fills at once.
    let body = r#"(local $i i32) (local.set $i (i32.const 300000))
        (loop $spin (local.set $i (i32.sub (local.get $i) (i32.const 1))) (br_if $spin (local.get $i))) (i32.const 0)"#;
    let wat = module(body, "").replace("(param $now i64) (result i32)", "(param $now i64) (result i32) (local $i i32)");
    let wat = wat.replace("(local $i i32) (local.set", "(local.set");
    for pass in [AsyncPass::Forward, AsyncPass::Consume] {
        let mut slow = async_spec("slow", &wat, 2, pass);
        slow.fuel_per_call = MAX_FUEL_PER_CALL;
        let plugin = load(slow).expect("loads");
        let mut chain = chain_of(&plugin);
        let mut outbox = Outbox::new(4, 1500);
        let started = Instant::now();
        let verdicts: Vec<Verdict> = (0..50).map(|_| run(&mut chain, &mut outbox, &[0x80u8; 20])).collect();
        assert!(started.elapsed().as_millis() < 500, "the chain never waited for the plugin");
        let stats = plugin.stats();
        assert_eq!(stats.async_queued + stats.async_queue_full, 50, "{pass:?}: every packet counted once");
        assert!(stats.async_queue_full >= 40, "{pass:?}: {} of 50 found the queue full", stats.async_queue_full);
        let count = |verdict: Verdict| verdicts.iter().filter(|v| **v == verdict).count() as u64;
        match pass {
            AsyncPass::Forward => assert_eq!(count(Verdict::Continue), 50, "every packet goes on"),
            AsyncPass::Consume => {
                assert_eq!(count(Verdict::Consumed), stats.async_queued, "a queued packet is consumed");
                assert_eq!(count(Verdict::Drop(DropReason::Plugin)), stats.async_queue_full, "the rest dropped");
            }
        }
        until(&plugin, "every queued copy called", |now| now.calls == stats.async_queued);
    }
}

#[test]
fn a_wake_delay_lets_one_wake_up_of_the_plugins_thread_serve_the_copies_of_that_time() {
    // 20 copies a millisecond apart: without a delay the thread sleeps between them and each wakes it; with a
    // 100 ms delay the first wake-up waits, and the copies of those 100 ms are taken together.
    let wakeups = |wake_delay_us: u32| {
        let mut spec = async_spec("paced", &module("(i32.const 0)", ""), 64, AsyncPass::Forward);
        spec.mode = PluginMode::Async(AsyncSettings { queue_packets: 64, pass: AsyncPass::Forward, wake_delay_us });
        let plugin = load(spec).expect("loads");
        let mut chain = chain_of(&plugin);
        let mut outbox = Outbox::new(4, 1500);
        until(&plugin, "the thread started", |stats| stats.instances == 1);
        let before = plugin.stats().async_wakeups;
        for _ in 0..20 {
            assert_eq!(run(&mut chain, &mut outbox, &[0x80u8; 20]), Verdict::Continue);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        until(&plugin, "every copy called", |stats| stats.calls == 20);
        plugin.stats().async_wakeups - before
    };
    let (at_once, delayed) = (wakeups(0), wakeups(100_000));
    assert!(at_once >= 10, "without a delay each copy wakes the sleeping thread: {at_once} wake-ups");
    assert!(delayed <= 3, "with a delay one wake-up serves them: {delayed} wake-ups");
}

#[test]
fn an_async_plugin_that_traps_takes_the_failure_path_on_every_worker_reported_once() {
    let body = "unreachable";
    for (path, after) in
        [(FailurePath::Forward, Verdict::Continue), (FailurePath::Drop, Verdict::Drop(DropReason::Plugin))]
    {
        let mut trapping = async_spec("trap_async", &module(body, ""), 8, AsyncPass::Consume);
        trapping.on_failure = path;
        let plugin = load(trapping).expect("loads");
        let mut chain = chain_of(&plugin);
        let mut outbox = Outbox::new(4, 1500);
        assert_eq!(run(&mut chain, &mut outbox, &[0x80u8; 20]), Verdict::Consumed, "handed over before the fault");
        until(&plugin, "the trap disabled the instance", |stats| stats.disabled == 1);
        let verdicts: Vec<Verdict> = (0..3).map(|_| run(&mut chain, &mut outbox, &[0x80u8; 20])).collect();
        assert_eq!(verdicts, [after; 3], "{path:?}");
        assert_eq!(outbox.take_plugin_failures(), 1, "reported once");
        let stats = plugin.stats();
        assert_eq!((stats.calls, stats.traps, stats.disabled, stats.failure_path), (1, 1, 1, 3), "{path:?}");
    }
}

#[test]
fn a_plugin_loaded_sync_runs_async_on_the_chain_whose_attachment_says_so() {
    let woken = late_waker();
    let plugin = load(spec("either", INJECTOR)).expect("loads, sync by default");
    let mut inline = chain_of(&plugin);
    let offloaded = Attach { mode: Some(AttachMode::Async), async_pass: Some(AsyncPass::Consume), ..Attach::default() };
    let mut copied = attached(&plugin, offloaded);
    let mut outbox = Outbox::new(4, 1500);
    let mut pkt = [0u8; 20];
    pkt[0] = 0x80;
    assert_eq!(run(&mut inline, &mut outbox, &pkt), Verdict::Continue, "inline: the plugin's verdict");
    assert_eq!(outbox.len(), 1, "what it injected inline is in the outbox at once");
    assert_eq!(run(&mut copied, &mut outbox, &pkt), Verdict::Consumed, "async_pass = consume on this chain");
    assert_eq!(outbox.len(), 1, "nothing more inline");
    let back = late_packets(&woken, 2);
    assert_eq!(back[0].3.len(), 20, "the plugin's thread injected its copy");
    until(&plugin, "the thread's calls counted", |stats| stats.calls == 3);
    let stats = plugin.stats();
    assert_eq!((stats.instances, stats.async_queued), (2, 1), "one inline instance and the thread's, one copy");
}

#[test]
fn a_sync_plugins_thread_makes_no_instance_until_a_chain_runs_it_async() {
    let plugin = load(spec("idle", &module("(i32.const 0)", ""))).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(4, 1500);
    assert_eq!(run(&mut chain, &mut outbox, &[0x80u8; 20]), Verdict::Continue);
    assert_eq!(plugin.stats().instances, 1, "only this thread's inline instance");
}

#[test]
fn an_async_plugins_thread_stops_when_the_plugin_is_dropped() {
    let threads = || {
        std::fs::read_dir("/proc/self/task")
            .expect("tasks")
            .filter(|task| {
                let comm = task.as_ref().ok().and_then(|t| std::fs::read_to_string(t.path().join("comm")).ok());
                comm.is_some_and(|name| name.trim() == "plugin-gone")
            })
            .count()
    };
    let plugin = load(async_spec("gone", &module("(i32.const 0)", ""), 4, AsyncPass::Forward)).expect("loads");
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    while threads() != 1 {
        assert!(Instant::now() < deadline, "its thread started");
        std::thread::yield_now();
    }
    drop(plugin);
    while threads() != 0 {
        assert!(Instant::now() < deadline, "its thread stopped");
        std::thread::yield_now();
    }
}

/// Calls `metadata` four ways on each packet and sends the publisher what it saw: first the 2 bytes at 100 after a
/// call with too small a `cap` (still "XX": nothing copied), then the four answers (out-of-memory `ptr`, a range
/// past the end, the short `cap`, a `cap` of 512), then the text the last call copied to 100.
const METADATA_READER: &str = r#"(module
  (import "ringfwd" "metadata" (func $metadata (param i32 i32) (result i32)))
  (import "ringfwd" "emit_rtcp_to_publisher" (func $to_publisher (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "XXXX")
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param $len i32) (param $stream i32) (param $flow i32) (param $ext_seq i64) (param $now i64) (result i32)
    (local $n i32)
    (i32.store (i32.const 0) (call $metadata (i32.const -1) (i32.const 4)))
    (i32.store (i32.const 4) (call $metadata (i32.const 65530) (i32.const 100)))
    (i32.store (i32.const 8) (call $metadata (i32.const 100) (i32.const 2)))
    (drop (call $to_publisher (i32.const 100) (i32.const 2)))
    (local.set $n (call $metadata (i32.const 100) (i32.const 512)))
    (i32.store (i32.const 12) (local.get $n))
    (drop (call $to_publisher (i32.const 0) (i32.const 16)))
    (drop (call $to_publisher (i32.const 100) (local.get $n)))
    (i32.const 0)))"#;

/// The four answers a [`METADATA_READER`] sent.
fn answers(bytes: &[u8]) -> Vec<i32> {
    bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

#[test]
fn the_metadata_import_copies_the_streams_snapshot_and_answers_its_codes() {
    use crate::core::interceptor::Metadata;
    let plugin = load(spec("reader", METADATA_READER)).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(8, 1500);
    let pkt = [0x80u8; 12];

    // Stream 3 has no metadata yet: 0, and nothing copied.
    assert_eq!(run(&mut chain, &mut outbox, &pkt), Verdict::Continue);
    assert_eq!(outbox.len(), 2, "the copied text is empty, so its emit is refused: {outbox:?}");
    assert_eq!(outbox.get(0).map(|(_, b)| b), Some(&b"XX"[..]));
    let bad = abi::METADATA_BAD_RANGE;
    assert_eq!(answers(outbox.get(1).expect("answers").1), [bad, bad, 0, 0]);
    outbox.clear();

    let metadata = Metadata::from_pairs([("app.muted", "1"), ("app.user", "ana")]);
    let text = "app.muted=1\napp.user=ana\n";
    assert_eq!(metadata.text(), text);
    outbox.set_metadata(3, metadata);
    outbox.set_metadata(4, Metadata::from_pairs([("other.stream", "x")]));
    assert_eq!(run(&mut chain, &mut outbox, &pkt), Verdict::Continue);
    assert_eq!(outbox.get(0).map(|(_, b)| b), Some(&b"XX"[..]), "a short cap copies nothing");
    let len = text.len() as i32;
    assert_eq!(answers(outbox.get(1).expect("answers").1), [bad, bad, len, len], "the short cap gets the length");
    assert_eq!(outbox.get(2).map(|(_, b)| b), Some(text.as_bytes()), "byte-exact, the chain's own stream's");
    outbox.clear();

    // Cleared (the stream's metadata deleted): none again.
    outbox.set_metadata(3, Metadata::none());
    run(&mut chain, &mut outbox, &pkt);
    assert_eq!(answers(outbox.get(1).expect("answers").1), [bad, bad, 0, 0]);
}

#[test]
fn metadata_of_reads_the_streams_its_publishers_its_sessions_and_its_subscribers_text() {
    use crate::core::interceptor::Metadata;
    // For objects 0, 1, 2, 3 and 7 in turn: the answer to metadata_of(object, 100, 512), and the text it copied, sent
    // to the publisher.
    let wat = r#"(module
      (import "ringfwd" "metadata_of" (func $metadata_of (param i32 i32 i32) (result i32)))
      (import "ringfwd" "emit_rtcp_to_publisher" (func $to_publisher (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
      (func $read (param $object i32)
        (local $n i32)
        (local.set $n (call $metadata_of (local.get $object) (i32.const 100) (i32.const 512)))
        (i32.store (i32.const 0) (local.get $n))
        (drop (call $to_publisher (i32.const 0) (i32.const 4)))
        (if (i32.gt_s (local.get $n) (i32.const 0))
          (then (drop (call $to_publisher (i32.const 100) (local.get $n))))))
      (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32)
        (call $read (i32.const 0))
        (call $read (i32.const 1))
        (call $read (i32.const 2))
        (call $read (i32.const 3))
        (call $read (i32.const 7))
        (i32.const 0)))"#;
    let plugin = load(spec("scoped", wat)).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(16, 1500);
    outbox.set_metadata(3, Metadata::from_objects([("app.user", "ana")], [], [("app.room", "r1")]));
    assert_eq!(run(&mut chain, &mut outbox, &[0x80u8; 12]), Verdict::Continue);
    let got: Vec<Vec<u8>> = (0..outbox.len()).filter_map(|i| outbox.get(i).map(|(_, b)| b.to_vec())).collect();
    let n = |text: &str| (text.len() as i32).to_le_bytes().to_vec();
    let text = |text: &str| text.as_bytes().to_vec();
    let bad = abi::METADATA_BAD_OBJECT.to_le_bytes().to_vec();
    let unavailable = abi::METADATA_UNAVAILABLE.to_le_bytes().to_vec();
    let (user, room) = ("app.user=ana\n", "app.room=r1\n");
    let want = vec![n(user), text(user), n(""), n(room), text(room), unavailable, bad.clone()];
    assert_eq!(
        got, want,
        "the stream's, none for the publisher, the session's, no subscriber, -3 for an unknown object"
    );

    // In subscription 5's egress chain: its subscriber's text too; another subscription's is its own (none).
    outbox.clear();
    outbox.set_subscriber_metadata(5, Metadata::of_subscriber([("app.deafened", "1")]));
    let now = Instant::now();
    let mut attrs = attrs(now);
    attrs.len_bytes = 12;
    for (flow, subscriber) in [(5, "app.deafened=1\n"), (6, "")] {
        let scope = Scope::Subscription { stream: 3, flow };
        assert_eq!(chain.on_rtp(now, scope, &[0x80u8; 12], &attrs, &mut outbox), Verdict::Continue);
        let got: Vec<Vec<u8>> = (0..outbox.len()).filter_map(|i| outbox.get(i).map(|(_, b)| b.to_vec())).collect();
        let mut want = vec![n(user), text(user), n(""), n(room), text(room), n(subscriber)];
        if !subscriber.is_empty() {
            want.push(text(subscriber));
        }
        want.push(bad.clone());
        assert_eq!(got, want, "flow {flow}");
        outbox.clear();
    }
}

#[test]
fn ringfwd_init_has_no_metadata_to_read() {
    // Accepts its parameters only when `metadata` answers -2 (an instance serves every stream of its worker).
    let wat = r#"(module
      (import "ringfwd" "metadata" (func $metadata (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
      (func (export "ringfwd_init") (param i32) (result i32)
        (i32.sub (call $metadata (i32.const 0) (i32.const 0)) (i32.const -2)))
      (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32) (i32.const 0)))"#;
    assert!(load(spec("init_reader", wat)).is_ok(), "ringfwd_init got something other than -2");
}

#[test]
fn an_async_plugin_reads_the_metadata_its_copy_carried() {
    use crate::core::interceptor::Metadata;
    let woken = late_waker();
    let plugin = load(async_spec("async_reader", METADATA_READER, 8, AsyncPass::Forward)).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(8, 1500);
    outbox.set_metadata(3, Metadata::from_pairs([("app.muted", "1")]));
    assert_eq!(run(&mut chain, &mut outbox, &[0x80u8; 12]), Verdict::Continue);
    // Replaced before the thread may have taken the copy: the copy keeps the snapshot it was queued with.
    outbox.set_metadata(3, Metadata::from_pairs([("app.muted", "0"), ("app.user", "ana")]));
    let back = late_packets(&woken, 3);
    assert_eq!(back[0].3, b"XX", "a short cap copies nothing");
    let (bad, len) = (abi::METADATA_BAD_RANGE, "app.muted=1\n".len() as i32);
    assert_eq!(answers(&back[1].3), [bad, bad, len, len]);
    assert_eq!(back[2].3, b"app.muted=1\n", "byte-exact, as the worker held it when it queued the copy");
    // The next copy carries the new snapshot.
    assert_eq!(run(&mut chain, &mut outbox, &[0x80u8; 12]), Verdict::Continue);
    let back = late_packets(&woken, 3);
    assert_eq!(back[2].3, b"app.muted=0\napp.user=ana\n");
    // A stream without metadata: 0.
    outbox.set_metadata(3, Metadata::none());
    run(&mut chain, &mut outbox, &[0x80u8; 12]);
    let back = late_packets(&woken, 2);
    assert_eq!(answers(&back[1].3), [bad, bad, 0, 0]);
}

#[test]
fn an_async_plugins_timer_reads_the_metadata_of_the_call_that_asked_for_it() {
    use crate::core::interceptor::Metadata;
    // on_rtp asks for a timer at once; on_timer sends the publisher the metadata it reads.
    let wat = r#"(module
      (import "ringfwd" "metadata" (func $metadata (param i32 i32) (result i32)))
      (import "ringfwd" "set_timer" (func $set_timer (param i64)))
      (import "ringfwd" "emit_rtcp_to_publisher" (func $to_publisher (param i32 i32) (result i32)))
      (memory (export "memory") 1)
      (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
      (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
      (func (export "on_rtp") (param i32 i32 i32 i64) (param $now i64) (result i32)
        (call $set_timer (local.get $now))
        (i32.const 0))
      (func (export "on_timer") (param i32 i32 i64)
        (drop (call $to_publisher (i32.const 100) (call $metadata (i32.const 100) (i32.const 512))))))"#;
    let woken = late_waker();
    let plugin = load(async_spec("timed_reader", wat, 8, AsyncPass::Forward)).expect("loads");
    let mut chain = chain_of(&plugin);
    let mut outbox = Outbox::new(8, 1500);
    outbox.set_metadata(3, Metadata::from_pairs([("app.layer", "2")]));
    assert_eq!(run(&mut chain, &mut outbox, &[0x80u8; 12]), Verdict::Continue);
    let back = late_packets(&woken, 1);
    assert_eq!(back[0].3, b"app.layer=2\n", "the timer read its call's stream's metadata");
}

//! The plugins the microbenchmark's plugin rows run: a native no-op, a WebAssembly no-op, a WebAssembly
//! per-stream packet-rate throttle (the algorithm of `plugins/examples/throttle.c`, written in WAT so the bench
//! needs no C compiler), a WebAssembly plugin that rewrites every packet 4 bytes longer (the host's side of a
//! rewrite: the packet read back out of the plugin's memory, checked, its attributes read again), and the
//! WebAssembly no-op in async mode (`async_pass = forward`: the worker's cost is copying the packet into a free box
//! of its queue and waking the plugin's thread if it sleeps; the calls run on that thread, which the bench process
//! started before it pinned itself). For RTCP, a WebAssembly plugin whose `on_rtcp` answers continue, and one whose
//! `on_rtcp` rewrites the publisher's compound into its first packet (the SR, its SDES left out: the host's side of an
//! RTCP rewrite, the compound read back out of the plugin's memory, validated, passed on).
//!
//! Owns [`registry`] (the seven, registered as the daemon registers them) and the row tables. Must never time
//! anything itself: rows.rs's loops do.

use ringfwd_dataplane::control::Plugins;
use ringfwd_dataplane::plugin::Interceptor;
use ringfwd_dataplane::wasm::{self, Engine, FailurePath, WasmPlugin, WasmPluginSpec};

use super::workload::PACKETS_PER_SECOND;
use super::MicroError;

/// A native plugin that lets every packet through: the cost of the plugin position and its panic guard.
#[derive(Debug)]
struct NativeNoop;

impl Interceptor for NativeNoop {}

/// A WebAssembly module that lets every packet through: the cost of copying the packet in and one call.
const WASM_NOOP: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32) (i32.const 0)))"#;

/// Appends 4 bytes to every packet and passes it on rewritten.
pub(super) const WASM_GROW: &str = r#"(module
  (import "ringfwd" "rewrite" (func $rewrite (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param $len i32) (param i32 i32 i64 i64) (result i32)
    (i32.store (i32.add (i32.const 1024) (local.get $len)) (i32.const 0x5245_4421))
    (drop (call $rewrite (i32.add (local.get $len) (i32.const 4))))
    (i32.const 0)))"#;

/// Lets every RTP packet and RTCP compound through.
const WASM_RTCP_NOOP: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32) (i32.const 0))
  (func (export "on_rtcp") (param i32 i32 i32 i32 i64) (result i32) (i32.const 0)))"#;

/// Rewrites every RTCP compound into its first packet (its length from bytes 2..4).
const WASM_RTCP_FIRST: &str = r#"(module
  (import "ringfwd" "rewrite" (func $rewrite (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param i32 i32 i32 i64 i64) (result i32) (i32.const 0))
  (func (export "on_rtcp") (param i32 i32 i32 i32 i64) (result i32)
    (drop (call $rewrite (i32.add (i32.const 4) (i32.shl
      (i32.or (i32.shl (i32.load8_u (i32.const 1026)) (i32.const 8)) (i32.load8_u (i32.const 1027)))
      (i32.const 2)))))
    (i32.const 0)))"#;

/// At most `MAX` packets per one-second window, the window starting with the first packet after the last one ended.
fn wasm_throttle(max_pps: u64) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $start (mut i64) (i64.const 0))
  (global $count (mut i64) (i64.const 0))
  (global $used (mut i32) (i32.const 0))
  (func (export "ringfwd_abi_version") (result i32) (i32.const 1))
  (func (export "ringfwd_packet_buffer") (result i32) (i32.const 1024))
  (func (export "on_rtp") (param $len i32) (param $stream i32) (param $flow i32) (param $seq i64) (param $now i64) (result i32)
    (if (i32.or (i32.eqz (global.get $used)) (i64.ge_u (i64.sub (local.get $now) (global.get $start)) (i64.const 1000000)))
      (then (global.set $used (i32.const 1)) (global.set $start (local.get $now)) (global.set $count (i64.const 0))))
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (i64.gt_u (global.get $count) (i64.const {max_pps}))))"#
    )
}

/// The plugin rows: name, plugin, whether the workload makes it drop.
pub(super) const ROWS: [(&str, &str, bool); 5] = [
    ("plugin_native_noop", "native_noop", false),
    ("plugin_wasm_noop", "wasm_noop", false),
    ("plugin_wasm_throttle", "wasm_throttle", true),
    ("plugin_wasm_rewrite", "wasm_grow", false),
    ("plugin_wasm_async", "wasm_async", false),
];

/// The RTCP plugin rows: name, plugin, whether it rewrites every compound.
pub(super) const RTCP_ROWS: [(&str, &str, bool); 2] =
    [("plugin_wasm_rtcp_noop", "wasm_rtcp_noop", false), ("plugin_wasm_rtcp_rewrite", "wasm_rtcp_first", true)];

/// The async row's queue: copies the bench thread may hand the plugin's thread ahead of it.
const ASYNC_QUEUE_PACKETS: u32 = 4096;

/// The seven plugins, registered for ingress chains, and the WebAssembly ones' handles (for their counters).
pub(super) fn registry() -> Result<(Plugins, Vec<WasmPlugin>), MicroError> {
    let broken = |e: String| MicroError::Template { message: e };
    let engine = Engine::new().map_err(broken)?;
    let load = |name: &str, wat: String, mode: wasm::PluginMode| {
        let spec = WasmPluginSpec {
            name: name.into(),
            module: wat.into_bytes(),
            origin: format!("{name}.wat"),
            ingress: true,
            egress: false,
            on_failure: FailurePath::Forward,
            fuel_per_call: wasm::DEFAULT_FUEL_PER_CALL,
            memory_max_bytes: wasm::DEFAULT_MEMORY_BYTES,
            params: Default::default(),
            mode,
        };
        engine.load(spec).map_err(|e| broken(format!("{name}: {e}")))
    };
    // 80 % of the stream's packet rate, as the rate_limit row: it drops the rest of each second.
    let sync = wasm::PluginMode::Sync;
    let forward = wasm::AsyncSettings {
        pass: wasm::AsyncPass::Forward,
        queue_packets: ASYNC_QUEUE_PACKETS,
        ..Default::default()
    };
    let loaded = vec![
        load("wasm_noop", WASM_NOOP.into(), sync)?,
        load("wasm_throttle", wasm_throttle(PACKETS_PER_SECOND * 8 / 10), sync)?,
        load("wasm_grow", WASM_GROW.into(), sync)?,
        load("wasm_async", WASM_NOOP.into(), wasm::PluginMode::Async(forward))?,
        load("wasm_rtcp_noop", WASM_RTCP_NOOP.into(), sync)?,
        load("wasm_rtcp_first", WASM_RTCP_FIRST.into(), sync)?,
    ];
    let mut plugins =
        Plugins::none().with_ingress("native_noop", |_| Box::new(NativeNoop)).map_err(|e| broken(e.to_string()))?;
    for plugin in &loaded {
        plugins = wasm::register(plugins, plugin).map_err(|e| broken(e.to_string()))?;
    }
    Ok((plugins, loaded))
}

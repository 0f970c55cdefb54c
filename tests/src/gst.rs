//! GStreamer's command-line tools as test peers: installing them (`tests/scripts/install-gstreamer.sh`), running
//! `gst-launch-1.0` pipelines with their output in a file, and reading what `-v` prints (`rtpsession` statistics,
//! per-source statistics, `fakesink` lines), and waiting until a sending pipeline is done ([`wait_media_sent`], which
//! reads the daemon's receive counter through the API).
//!
//! Owns nothing of the daemon. Every pipeline is killed when its handle is dropped (a [`Process`]), so no test leaves
//! one running.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::api::{worker_total, Api};
use crate::interop::install;
use crate::process::Process;
pub use crate::process::STOP_TIMEOUT;

/// How long a pipeline may take to start playing.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a sender may take to send its frames ([`wait_media_sent`]).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// No RTP for this long after some means the sender sent its last frame ([`wait_media_sent`]).
pub const QUIET: Duration = Duration::from_millis(1500);

/// Runs the install script, which does nothing when `gst-launch-1.0` and every element the pipelines use
/// are present (it owns that list) and installs them otherwise. `false`: it could not, and the test must return
/// (skipped; see [`crate::interop::install`]).
#[must_use]
pub fn ensure_gstreamer() -> bool {
    install("install-gstreamer.sh", &[], "the interop tests need GStreamer")
}

/// A loopback UDP port that was free a moment ago.
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("free port").port()
}

/// An even loopback port `p` such that `p` and `p + 1` were both free a moment ago: an RTP/RTCP port pair for a
/// peer without rtcp-mux. Tries at most 64 ports.
pub fn free_port_pair() -> u16 {
    for _ in 0..64 {
        let rtp = free_port() & !1;
        let both = UdpSocket::bind(("127.0.0.1", rtp)).and_then(|a| Ok((a, UdpSocket::bind(("127.0.0.1", rtp + 1))?)));
        if both.is_ok() {
            return rtp;
        }
    }
    panic!("no free loopback port pair in 64 tries")
}

/// A running `gst-launch-1.0`, its stdout and stderr going to a file; killed when dropped (see [`Process`]).
pub struct Pipeline {
    process: Process,
}

impl Pipeline {
    /// Starts `gst-launch-1.0 -e -v` with `description`, its output going to `<dir>/<name>.log`.
    pub fn start(name: &'static str, dir: &Path, description: &[String]) -> Pipeline {
        Pipeline::start_with_env(name, dir, description, &[])
    }

    /// [`Pipeline::start`] with `env` added to its environment (e.g. `GST_DEBUG`).
    pub fn start_with_env(name: &'static str, dir: &Path, description: &[String], env: &[(&str, &str)]) -> Pipeline {
        let args: Vec<String> = ["-e", "-v"].iter().map(|a| a.to_string()).chain(description.iter().cloned()).collect();
        Pipeline { process: Process::start(name, dir, "gst-launch-1.0", &args, env) }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// Waits until the pipeline says it is playing; fails the test (with its output) on exit or timeout.
    pub fn wait_playing(&mut self) {
        self.process.wait_output("PLAYING", START_TIMEOUT, |out| out.contains("Setting pipeline to PLAYING"));
    }

    /// Its exit status if it exited, failing the test if it exited with an error.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }

    /// Stops it: SIGINT (with `-e`, gst-launch sends EOS through the pipeline and exits once it arrived), then
    /// SIGKILL after [`STOP_TIMEOUT`]; answers whether it ended by EOS, failing the test if it ended with an error.
    /// Its output is complete either way: `-v` prints the statistics as they change, not at the end.
    ///
    /// A pipeline whose source ended by itself (`num-buffers`) may be past its EOS when the SIGINT comes: gst-launch
    /// has then removed its handler while it frees the pipeline, and the signal ends it. That is an end by EOS too,
    /// told by the line gst-launch prints when the EOS reached the pipeline's bus.
    pub fn stop(&mut self) -> bool {
        let Some(status) = self.process.stop() else {
            return false;
        };
        let interrupted_after_eos = status.signal() == Some(rustix::process::Signal::INT.as_raw())
            && self.output().contains("Got EOS from element \"pipeline0\"");
        assert!(
            status.success() || interrupted_after_eos,
            "{} failed ({status}):\n{}",
            self.process.name(),
            self.output()
        );
        true
    }
}

/// The words of a pipeline description.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

/// An AVPF `rtpbin` publishing what `encode` makes (a `videotestsrc … ! vp8enc …` description, up to the encoder)
/// as VP8 RTP with `ssrc`, payload type 96 and `mtu`: its RTP and RTCP leave through one `udpsink` bound to `port`
/// (a wildcard bind) toward `media`, and the RTCP ringfwd sends it (reports, PLIs, NACKs) is read on `port` into the
/// same session, so a PLI makes its encoder send a keyframe. `rtpbin` takes `rtpbin_options` (e.g. its `sdes`).
pub fn vp8_publisher(
    media: SocketAddr,
    port: u16,
    ssrc: u32,
    mtu: u32,
    encode: &str,
    rtpbin_options: &str,
) -> Vec<String> {
    words(&format!(
        "rtpbin name=rb rtp-profile=avpf {rtpbin_options} \
         {encode} ! rtpvp8pay ssrc={ssrc} pt=96 mtu={mtu} ! rb.send_rtp_sink_0 \
         rb.send_rtp_src_0 ! funnel name=out \
           ! udpsink host={ip} port={mport} bind-port={port} sync=false async=false \
         rb.send_rtcp_src_0 ! out. \
         udpsrc address=127.0.0.1 port={port} caps=application/x-rtcp ! rb.recv_rtcp_sink_0",
        ip = media.ip(),
        mport = media.port(),
    ))
}

/// An AVPF `rtpbin` receiving VP8 RTP (and ringfwd's SRs, multiplexed) on `port` and handing what it depacketises to
/// `sink` (e.g. `rtpvp8depay ! vp8dec ! fakesink name=frames silent=false sync=false`); its RTCP (RRs, NACKs, PLIs)
/// leaves from `port` toward `media`. `rtpbin` takes `rtpbin_options` (e.g. `latency=1000 do-retransmission=true`).
pub fn vp8_subscriber(media: SocketAddr, port: u16, rtpbin_options: &str, sink: &str) -> Vec<String> {
    words(&format!(
        "rtpbin name=rb rtp-profile=avpf {rtpbin_options} \
         udpsrc address=127.0.0.1 port={port} \
           caps=application/x-rtp,media=video,clock-rate=90000,encoding-name=VP8,payload=96 ! rb.recv_rtp_sink_0 \
         rb. ! {sink} \
         rb.send_rtcp_src_0 ! udpsink host={ip} port={mport} bind-port={port} sync=false async=false",
        ip = media.ip(),
        mport = media.port(),
    ))
}

/// The number of frames a `fakesink name=frames silent=false` printed (one line per buffer).
pub fn frames_printed(output: &str) -> usize {
    output.lines().filter(|l| l.contains("frames: last-message = chain")).count()
}

/// Every `stats` of the pipeline's `rtpsession` that `-v` printed, newest first, with gst's escaping removed.
pub fn session_stats(output: &str) -> impl Iterator<Item = String> + '_ {
    output.lines().rev().filter(|l| l.contains("GstRtpSession:rtpsession0: stats = ")).map(|l| l.replace('\\', ""))
}

/// The newest source entry `select` picks (see [`source_stats`]) that has `key` set to `value`, or without such
/// an entry the newest one `select` picks at all; `None` if there is none. Sources come and go: a BYE the
/// publisher sent, which ringfwd passes on, ends the receiver's source of the out SSRC, and an RTCP packet
/// after it starts a new, empty one.
pub fn newest_source(output: &str, select: Option<u32>, key: &str, value: &str) -> Option<String> {
    let entries: Vec<String> =
        session_stats(output).filter_map(|stats| source_stats(&stats, select).map(String::from)).collect();
    let best = entries.iter().find(|entry| field(entry, key) == Some(value));
    best.or(entries.first()).cloned()
}

/// The `application/x-rtp-source-stats` entry of `ssrc` in session stats, or with `None` the first entry of a
/// source that is not the session's own (`internal=false`).
pub fn source_stats(stats: &str, ssrc: Option<u32>) -> Option<&str> {
    stats.split("application/x-rtp-source-stats").skip(1).find(|entry| match ssrc {
        Some(ssrc) => field(entry, "ssrc") == Some(ssrc.to_string().as_str()),
        None => field(entry, "internal") == Some("false"),
    })
}

/// The value of `key=(type)value` in a GstStructure's text.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!(" {key}=(");
    let start = text.find(&pattern)? + pattern.len();
    let rest = &text[start..];
    let rest = &rest[rest.find(')')? + 1..];
    let end = rest.find([',', ';', '"', ' ']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The integer value of `key`; fails the test when there is none.
pub fn number(entry: &str, key: &str) -> i64 {
    field(entry, key).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no number {key} in {entry}"))
}

/// The SDES items a session's debug log (`GST_DEBUG=rtpsession:5`, no colour) in `output` says it took for `ssrc`,
/// in order, each as (item type, text): an `item N, SSRC <hex>` line names a chunk's SSRC, its `entry M, type T, len
/// L, data D` lines follow.
pub fn logged_sdes_items(output: &str, ssrc: u32) -> Vec<(u8, String)> {
    let ours = format!("SSRC {ssrc:08x}");
    let mut in_chunk = false;
    let mut items = Vec::new();
    for line in output.lines() {
        if let Some((_, item)) = line.split_once("rtp_session_process_sdes: item ") {
            in_chunk = item.trim_end().ends_with(&ours);
        } else if let Some((_, entry)) = line.split_once("rtp_session_process_sdes: entry ") {
            let Some((head, data)) = entry.split_once(", data ") else { continue };
            let kind = head.split(", ").find_map(|field| field.strip_prefix("type ")).and_then(|t| t.parse().ok());
            if let (true, Some(kind)) = (in_chunk, kind) {
                items.push((kind, data.trim_end().to_string()));
            }
        }
    }
    items
}

/// Waits until the sender `tx` has sent all its frames: it exited (after its last frame, the BYE and EOS), or the
/// daemon behind `api` received RTP and then none for [`QUIET`]. The second way is needed: now and then the sender's
/// `rtpbin` never lets EOS through after its last frame (seen about once in ten runs, GStreamer 1.22), so a test does
/// not depend on it. Fails the test (with the sender's output) after [`SEND_TIMEOUT`].
pub fn wait_media_sent(api: &Api, tx: &mut Pipeline) {
    let deadline = Instant::now() + SEND_TIMEOUT;
    let (mut last_rx_rtp, mut since) = (0, Instant::now());
    while tx.exited().is_none() {
        let rx_rtp = worker_total(&api.node(), "rx_rtp");
        if rx_rtp != last_rx_rtp {
            (last_rx_rtp, since) = (rx_rtp, Instant::now());
        } else if rx_rtp > 0 && since.elapsed() >= QUIET {
            return;
        }
        assert!(Instant::now() < deadline, "the sender did not finish within {SEND_TIMEOUT:?}:\n{}", tx.output());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The out SSRC of the interop test.
    const OUT_SSRC: u32 = 0xaabb_ccdd;

    #[test]
    fn session_stats_are_parsed() {
        // One line as `gst-launch-1.0 -v` prints it (fewer fields), after an older one.
        let output = concat!(
            "/GstPipeline:pipeline0/GstRtpBin:rb/GstRtpSession:rtpsession0: stats = application/x-rtp-session-stats, ",
            "sent-nack-count=(uint)1;\n",
            "/GstPipeline:pipeline0/GstRtpBin:rb/GstRtpSession:rtpsession0: stats = application/x-rtp-session-stats, ",
            r#"sent-nack-count=(uint)5, source-stats=(GValueArray)< "application/x-rtp-source-stats\,\ "#,
            r#"ssrc\=\(uint\)7\,\ internal\=\(boolean\)true\;", "application/x-rtp-source-stats\,\ "#,
            r#"ssrc\=\(uint\)2864434397\,\ internal\=\(boolean\)false\,\ rtcp-from\=\(string\)127.0.0.1:41000\,\ "#,
            r#"rb-ssrc\=\(uint\)9\,\ have-sr\=\(boolean\)true\;" >;"#,
            "\n",
        );
        let stats = session_stats(output).next().expect("a stats line");
        assert_eq!(number(&stats, "sent-nack-count"), 5);
        let ours = source_stats(&stats, Some(7)).expect("ssrc 7");
        assert_eq!(field(ours, "internal"), Some("true"));
        let remote = source_stats(&stats, None).expect("an external source");
        assert_eq!(remote, source_stats(&stats, Some(OUT_SSRC)).expect("the out SSRC"));
        assert_eq!(field(remote, "ssrc"), Some("2864434397"), "not rb-ssrc");
        assert_eq!(field(remote, "rtcp-from"), Some("127.0.0.1:41000"));
        assert_eq!(field(remote, "have-sr"), Some("true"));
        assert_eq!(field(remote, "sr-ntptime"), None);
        assert!(session_stats("no stats here").next().is_none());
        assert_eq!(session_stats(output).count(), 2);
        let newest = newest_source(output, Some(OUT_SSRC), "have-sr", "true").expect("an entry");
        assert_eq!(field(&newest, "rtcp-from"), Some("127.0.0.1:41000"));
        assert!(newest_source(output, Some(8), "have-sr", "true").is_none());
    }
}

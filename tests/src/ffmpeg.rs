//! ffmpeg as a test peer: installing it (`tests/scripts/install-ffmpeg.sh`), its command lines for publishing
//! PCMU over RTP without rtcp-mux and for receiving and decoding RTP described by an SDP file, and reading what it
//! decoded and logged.
//!
//! Owns nothing of the daemon; every ffmpeg runs as a [`Process`], killed when its handle is dropped.

use std::net::SocketAddr;
use std::path::Path;

use crate::interop::install;
use crate::process::Process;

/// PCMU's static payload type (RFC 3551).
pub const PCMU: u8 = 0;
/// PCMU's clock rate and the sample rate ffmpeg decodes it to.
pub const PCMU_HZ: u32 = 8_000;
/// Samples per RTP packet of the publisher: 20 ms.
pub const SAMPLES_PER_PACKET: u32 = 160;

/// What ffmpeg's RTP demuxer logs when the sequence numbers or timestamps it receives jump: a gap it counts as lost
/// packets, a sequence number out of the expected window, packets too late for its reordering queue, timestamps
/// that run backwards.
pub const DISCONTINUITIES: [&str; 5] =
    ["RTP: missed", "bad cseq", "dropping old packet", "max delay reached", "invalid dropping"];

/// Runs the install script, which does nothing when ffmpeg and every component the command lines use are present
/// (it owns that list) and installs them otherwise. `false`: it could not, and the test must return (skipped; see
/// [`crate::interop::install`]).
#[must_use]
pub fn ensure_ffmpeg() -> bool {
    install("install-ffmpeg.sh", &[], "the interop test needs ffmpeg")
}

/// ffmpeg publishing `seconds` of a 440 Hz tone as PCMU RTP (one packet per 20 ms, in real time) with `ssrc`, as a
/// SIP user agent without rtcp-mux does: RTP from local port `port` to `media`, RTCP sender reports (one at the
/// start, then one every 5 s) from `port + 1` to `media`'s port + 1.
pub fn pcmu_publisher(media: SocketAddr, port: u16, ssrc: u32, seconds: u32) -> Vec<String> {
    let source =
        format!("sine=frequency=440:sample_rate={PCMU_HZ}:samples_per_frame={SAMPLES_PER_PACKET}:duration={seconds}");
    let url = format!(
        "rtp://{ip}:{rtp}?localrtpport={port}&localrtcpport={local_rtcp}&rtcpport={rtcp}",
        ip = media.ip(),
        rtp = media.port(),
        local_rtcp = port + 1,
        rtcp = media.port() + 1,
    );
    // The muxer's `ssrc` option is a signed 32-bit integer: the same 32 bits.
    let ssrc = (ssrc as i32).to_string();
    let args = ["-hide_banner", "-nostdin", "-loglevel", "info", "-re", "-f", "lavfi", "-i", &source];
    let output = ["-c:a", "pcm_mulaw", "-f", "rtp", "-ssrc", &ssrc, "-payload_type", &PCMU.to_string(), &url];
    args.iter().chain(&output).map(|a| a.to_string()).collect()
}

/// The SDP of a PCMU stream received at 127.0.0.1:`port` (RTCP at `port + 1`).
pub fn pcmu_sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=ringfwd subscriber\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {PCMU}\r\na=rtpmap:{PCMU} PCMU/{PCMU_HZ}\r\n"
    )
}

/// ffmpeg receiving the RTP that `sdp` describes, as a SIP user agent without rtcp-mux does (RTP at its port, RTCP
/// at port + 1), and decoding it to raw 16-bit samples in `decoded` as they come. Its receiver reports (about the
/// SSRC it receives; ffmpeg sends one per ~280 kB received) go to where the RTCP it receives comes from.
pub fn pcmu_receiver(sdp: &Path, decoded: &Path) -> Vec<String> {
    let input = ["-protocol_whitelist", "file,udp,rtp", "-sdp_flags", "rtcp_to_source", "-analyzeduration", "200000"];
    let output = ["-f", "s16le", "-ac", "1", "-ar", &PCMU_HZ.to_string(), "-flush_packets", "1", "-y"];
    ["-hide_banner", "-nostdin", "-loglevel", "info"]
        .iter()
        .map(|a| a.to_string())
        .chain(input.iter().map(|a| a.to_string()))
        .chain(["-i".to_string(), sdp.display().to_string()])
        .chain(output.iter().map(|a| a.to_string()))
        .chain([decoded.display().to_string()])
        .collect()
}

/// Samples decoded into `decoded` so far (16-bit mono).
pub fn samples_decoded(decoded: &Path) -> u64 {
    std::fs::metadata(decoded).map(|m| m.len() / 2).unwrap_or(0)
}

/// The lines of an ffmpeg log that report a discontinuity (see [`DISCONTINUITIES`]).
pub fn discontinuities(log: &str) -> Vec<&str> {
    log.lines().filter(|line| DISCONTINUITIES.iter().any(|marker| line.contains(marker))).collect()
}

/// Starts ffmpeg with `args` as a [`Process`] named `name`, its log in `dir`.
pub fn start(name: &'static str, dir: &Path, args: &[String]) -> Process {
    Process::start(name, dir, "ffmpeg", args, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_name_the_ports_and_the_ssrc_bits() {
        let media: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let args = pcmu_publisher(media, 5000, 0xdead_beef, 3);
        let url = args.last().unwrap();
        assert_eq!(url, "rtp://127.0.0.1:40000?localrtpport=5000&localrtcpport=5001&rtcpport=40001");
        let ssrc = args.iter().position(|a| a == "-ssrc").map(|i| args[i + 1].clone());
        assert_eq!(ssrc.as_deref(), Some("-559038737"), "0xdeadbeef as ffmpeg's signed option");
        assert!(pcmu_sdp(6000).contains("m=audio 6000 RTP/AVP 0\r\n"));
        let log = "size=1kB\n[sdp @ 0x1] RTP: missed 12 packets\nfine\n";
        assert_eq!(discontinuities(log), ["[sdp @ 0x1] RTP: missed 12 packets"]);
    }
}

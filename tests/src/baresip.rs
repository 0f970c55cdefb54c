//! baresip (Debian's 1.0.0, installed by `tests/scripts/install-sip.sh`) as a SIP user agent under test: a config
//! directory of its own, no registrar, PCMU only, no rtcp-mux, a short jitter buffer, a sine tone as its microphone
//! (`ausine`) and no loudspeaker — the `sndfile` filter writes the audio it decoded to a WAV file instead, which
//! [`Ua::received_audio`] measures (1.0.0's `aufile` is a source only, and with no player module baresip starts
//! none). The test dials, hangs up, re-INVITEs and asks for `audio_debug` through `ctrl_tcp` (JSON in netstrings,
//! which also carries the call events: `CALL_ESTABLISHED`, `CALL_RTCP` with the stream's RTCP statistics on each SR,
//! `CALL_CLOSED`), and reads the RTP statistics `rtp_stats` prints when a call ends.
//!
//! baresip rather than SIPp (`sip-tester`): it is a whole user agent with its own RTP/RTCP stack (libre) that sends
//! RTCP from port + 1, answers re-INVITEs and reports what it received, where SIPp replays a pcap and sends no RTCP.
//!
//! Owns nothing of ringfwd. Every process is bounded in time and killed when its handle is dropped.

use std::fs;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long baresip may take to be ready, and a command to be answered.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long baresip may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Where Debian's baresip-core keeps its modules.
const MODULE_DIR: &str = "/usr/lib/baresip/modules";

/// Runs the install script, which does nothing when baresip and every module the config below loads are present
/// (it owns that list) and installs them otherwise. `false`: it could not, and the test must return (skipped; see
/// [`crate::interop::install`]).
#[must_use]
pub fn ensure_baresip() -> bool {
    crate::interop::install("install-sip.sh", &[], "the SIP interop test needs baresip")
}

/// One user agent's settings.
#[derive(Clone, Copy, Debug)]
pub struct UaConfig<'a> {
    /// Its name: the log file, the config directory and the SIP user (`sip:<name>@127.0.0.1:<port>`).
    pub name: &'a str,
    /// The frequency of the tone it sends, in Hz.
    pub tone_hz: u32,
    /// Answers incoming calls by itself.
    pub auto_answer: bool,
}

/// A loopback port free for both UDP and TCP a moment ago (baresip listens for SIP on both).
fn free_sip_port() -> u16 {
    for _ in 0..64 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind TCP");
        let port = tcp.local_addr().expect("local address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP in 64 tries")
}

/// A loopback TCP port that was free a moment ago.
fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free TCP port").port()
}

/// The config file: SIP on `sip_port` of 127.0.0.1 (media too: `net_interface`), ctrl_tcp on `ctrl_port`.
fn config_text(config: &UaConfig, sip_port: u16, ctrl_port: u16, dir: &Path) -> String {
    format!(
        "poll_method epoll\n\
         sip_listen 127.0.0.1:{sip_port}\n\
         net_interface 127.0.0.1\n\
         call_local_timeout 30\n\
         call_max_calls 2\n\
         audio_source ausine,{tone}\n\
         ausrc_srate 48000\n\
         ausrc_channels 2\n\
         audio_buffer 20-160\n\
         rtcp_mux no\n\
         jitter_buffer_delay 1-3\n\
         rtp_stats yes\n\
         statmode_default off\n\
         module_path {MODULE_DIR}\n\
         module g711.so\n\
         module ausine.so\n\
         module sndfile.so\n\
         snd_path {dir}\n\
         module_tmp account.so\n\
         module_app menu.so\n\
         module_app ctrl_tcp.so\n\
         ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n",
        tone = config.tone_hz,
        dir = dir.display(),
    )
}

/// A baresip process, its output in a file; killed when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn output(&self) -> String {
        fs::read(&self.log).map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running baresip with its control connection, its output in `<dir>/<name>.log`; killed when dropped.
pub struct Ua {
    name: String,
    process: Process,
    dir: PathBuf,
    control: TcpStream,
    incoming: mpsc::Receiver<Value>,
    /// Every event it sent so far, in order.
    events: Vec<Value>,
    /// Command responses not yet claimed, by token.
    responses: Vec<Value>,
    next_token: u64,
    /// Its SIP address.
    pub sip: SocketAddr,
}

impl Ua {
    /// Writes its config into `<parent>/<name>/` and starts `baresip -f` on it; waits until it is ready and its
    /// control connection is open.
    pub fn start(parent: &Path, config: UaConfig) -> Ua {
        let dir = parent.join(config.name);
        fs::create_dir_all(&dir).expect("config directory");
        let (sip_port, ctrl_port) = (free_sip_port(), free_tcp_port());
        fs::write(dir.join("config"), config_text(&config, sip_port, ctrl_port, &dir)).expect("write config");
        let answer = if config.auto_answer { "auto" } else { "manual" };
        let account = format!(
            "<sip:{name}@127.0.0.1:{sip_port}>;regint=0;answermode={answer};audio_codecs=PCMU\n",
            name = config.name
        );
        fs::write(dir.join("accounts"), account).expect("write accounts");
        let log = parent.join(format!("{}.log", config.name));
        let file = fs::File::create(&log).expect("log file");
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("spawn baresip");
        let mut process = Process { child, log };
        let deadline = Instant::now() + START_TIMEOUT;
        while !process.output().contains("baresip is ready.") {
            let exited = process.child.try_wait().expect("wait").is_some();
            assert!(
                !exited && Instant::now() < deadline,
                "{} did not become ready:\n{}",
                config.name,
                process.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let control = TcpStream::connect(("127.0.0.1", ctrl_port))
            .unwrap_or_else(|e| panic!("{}: ctrl_tcp at {ctrl_port}: {e}\n{}", config.name, process.output()));
        let incoming = read_netstrings(control.try_clone().expect("clone the control connection"));
        Ua {
            name: config.name.into(),
            process,
            dir,
            control,
            incoming,
            events: Vec::new(),
            responses: Vec::new(),
            next_token: 0,
            sip: ([127, 0, 0, 1], sip_port).into(),
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.process.output()
    }

    /// Runs `command` with `params` over ctrl_tcp; its response's `data`, or the error it answered.
    pub fn command(&mut self, command: &str, params: &str) -> Result<String, String> {
        self.next_token += 1;
        let token = format!("t{}", self.next_token);
        let text = json!({ "command": command, "params": params, "token": token }).to_string();
        let frame = format!("{}:{text},", text.len());
        self.control.write_all(frame.as_bytes()).map_err(|e| format!("{}: send {command}: {e}", self.name))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(i) = self.responses.iter().position(|r| r["token"] == token.as_str()) {
                let response = self.responses.remove(i);
                let data = response["data"].as_str().unwrap_or_default().to_string();
                return if response["ok"] == true { Ok(data) } else { Err(data) };
            }
            if !self.receive_until(deadline) {
                return Err(format!("{}: no response to {command} within {START_TIMEOUT:?}", self.name));
            }
        }
    }

    /// The first event (of all it sent, from the start) that `pick` accepts, waiting at most `timeout` for it.
    pub fn wait_event(&mut self, timeout: Duration, mut pick: impl FnMut(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut checked = 0;
        loop {
            if let Some(found) = self.events[checked..].iter().find(|e| pick(e)) {
                return Some(found.clone());
            }
            checked = self.events.len();
            if !self.receive_until(deadline) {
                return None;
            }
        }
    }

    /// Every event it sent so far.
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// Takes the next message from its control connection; `false` when none came before `deadline`.
    fn receive_until(&mut self, deadline: Instant) -> bool {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.incoming.recv_timeout(wait) {
            Ok(message) if message["event"] == true => self.events.push(message),
            Ok(message) => self.responses.push(message),
            Err(_) => return false,
        }
        true
    }

    /// Stops it with SIGTERM (it ends its calls and prints their statistics), then SIGKILL after
    /// [`STOP_TIMEOUT`]; answers whether it exited by itself.
    pub fn stop(&mut self) -> bool {
        if self.process.child.try_wait().expect("wait").is_some() {
            return true;
        }
        let pid = rustix::process::Pid::from_child(&self.process.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.process.child.try_wait().expect("wait").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
        false
    }

    /// The audio it decoded during its call (the WAV file `sndfile` wrote); read it after the call closed.
    pub fn received_audio(&self) -> Result<Audio, String> {
        let entries = fs::read_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let path = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .ok_or_else(|| format!("{}: no decoded audio file in {}", self.name, self.dir.display()))?;
        let mut reader = hound::WavReader::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let spec = reader.spec();
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .step_by(usize::from(spec.channels.max(1)))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Audio::measure(&samples, spec.sample_rate))
    }
}

/// A thread that reads netstrings (`<length>:<bytes>,`) of JSON from `stream` and hands each on, until the
/// stream ends or carries something else. Written here, small: the `netstring` crate is from 2016.
fn read_netstrings(stream: TcpStream) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        loop {
            let mut length = 0usize;
            let mut byte = [0u8; 1];
            loop {
                if reader.read_exact(&mut byte).is_err() {
                    return;
                }
                match byte[0] {
                    b'0'..=b'9' => length = length * 10 + usize::from(byte[0] - b'0'),
                    b':' => break,
                    _ => return,
                }
                if length > 1 << 20 {
                    return;
                }
            }
            let mut payload = vec![0u8; length + 1];
            if reader.read_exact(&mut payload).is_err() || payload.pop() != Some(b',') {
                return;
            }
            let Ok(message) = serde_json::from_slice::<Value>(&payload) else { return };
            if tx.send(message).is_err() {
                return;
            }
        }
    });
    rx
}

/// What a recording holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Audio {
    /// Samples per second.
    pub sample_rate: u32,
    /// Samples (of one channel).
    pub samples: usize,
    /// Root mean square over full scale, 0..=1.
    pub rms: f64,
    /// The frequency of its tone: upward crossings of a tenth of its peak, per second.
    pub tone_hz: f64,
}

impl Audio {
    /// Measures `samples` taken at `sample_rate`.
    pub fn measure(samples: &[i16], sample_rate: u32) -> Audio {
        let peak = samples.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0);
        let threshold = peak / 10;
        let (mut crossings, mut below) = (0u64, true);
        for sample in samples.iter().map(|s| i32::from(*s)) {
            if below && sample > threshold {
                crossings += 1;
                below = false;
            } else if sample < -threshold {
                below = true;
            }
        }
        let seconds = samples.len() as f64 / f64::from(sample_rate.max(1));
        let energy: f64 = samples.iter().map(|s| (f64::from(*s) / 32768.0).powi(2)).sum();
        Audio {
            sample_rate,
            samples: samples.len(),
            rms: if samples.is_empty() { 0.0 } else { (energy / samples.len() as f64).sqrt() },
            tone_hz: if seconds > 0.0 && peak > 0 { crossings as f64 / seconds } else { 0.0 },
        }
    }

    /// Its length.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples as f64 / f64::from(self.sample_rate.max(1)))
    }
}

/// One line of the table `rtp_stats` prints when a stream ends: (transmit, receive).
pub fn rtp_stat(output: &str, key: &str) -> Option<(f64, f64)> {
    let table = &output[output.rfind("Transmit:     Receive:")?..];
    let line = table.lines().find(|l| l.trim_start().starts_with(&format!("{key}:")))?;
    let mut numbers = line.split_once(':')?.1.split_whitespace().map(|w| w.parse::<f64>().ok());
    Some((numbers.next()??, numbers.next()??))
}

/// One member of a stream's RTCP session as `audio_debug` prints it (libre's `rtcp_debug`): a source of RTP or
/// RTCP the user agent heard from.
#[derive(Clone, Debug, PartialEq)]
pub struct RtcpMember {
    /// Its SSRC.
    pub ssrc: u32,
    /// What its last reception report said about the user agent's own stream: cumulative loss and jitter.
    pub reported_lost: i64,
    /// Interarrival jitter from that report, in milliseconds.
    pub reported_jitter_ms: f64,
    /// The RTP address it sent from and the packets received from it, when it sent RTP.
    pub rtp: Option<(SocketAddr, u64)>,
}

/// The RTCP members in `audio_debug`'s answer.
pub fn rtcp_members(debug: &str) -> Vec<RtcpMember> {
    let mut members: Vec<RtcpMember> = Vec::new();
    for line in debug.lines().map(str::trim) {
        let value = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key));
        if let Some(rest) = line.strip_prefix("member 0x") {
            let parsed = (|| {
                let ssrc = u32::from_str_radix(rest.split(':').next()?, 16).ok()?;
                let reported_lost = value("lost=")?.parse().ok()?;
                let reported_jitter_ms = value("Jitter=")?.trim_end_matches("ms").parse().ok()?;
                Some(RtcpMember { ssrc, reported_lost, reported_jitter_ms, rtp: None })
            })();
            members.extend(parsed);
        } else if let (Some(ip), Some(received), Some(member)) = (value("IP="), value("rcvd="), members.last_mut()) {
            member.rtp = ip.parse().ok().zip(received.parse().ok());
        }
    }
    members
}

/// The remote RTP and RTCP addresses of the stream in `audio_debug`'s answer (`remote: a/b`).
pub fn remote_addresses(debug: &str) -> Option<(SocketAddr, SocketAddr)> {
    let line = debug.lines().find_map(|l| l.split_once("remote: ").map(|(_, r)| r))?;
    let (rtp, rtcp) = line.trim().split_once('/')?;
    Some((rtp.parse().ok()?, rtcp.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rtp_statistics_table_is_read() {
        let output = "call closed\n\naudio           Transmit:     Receive:\n\
            packets:            918          917\n\
            avg. bitrate:      64.0         64.0  (kbit/s)\n\
            errors:               0            0\n\
            pkt.report:         750          750\n\
            lost:                 0           -1\n\
            jitter:             1.3          1.2  (ms)\n";
        assert_eq!(rtp_stat(output, "packets"), Some((918.0, 917.0)));
        assert_eq!(rtp_stat(output, "lost"), Some((0.0, -1.0)));
        assert_eq!(rtp_stat(output, "avg. bitrate"), Some((64.0, 64.0)));
        assert_eq!(rtp_stat(output, "nothing"), None);
        assert_eq!(rtp_stat("no table", "packets"), None);
    }

    #[test]
    fn the_rtcp_session_in_audio_debug_is_read() {
        let debug = " local: 0.0.0.0:24118, remote: 127.0.0.1:55280/127.0.0.1:55281\n\
            ----- RTCP Session: -----\n\
              cname=sip:alice@127.0.0.1:38107 SSRC=0xb10457e2/2969851874 rx=8000Hz\n\
              member 0x5bb87065: lost=0 Jitter=0.0ms RTT=0.0ms\n\
                             IP=127.0.0.1:55280 psent=237 rcvd=251\n\
              member 0xec510edd: lost=-1 Jitter=1.1ms RTT=0.0ms\n\
              TX: packets=256, octets=40960\n";
        let media: SocketAddr = "127.0.0.1:55280".parse().unwrap();
        assert_eq!(
            rtcp_members(debug),
            [
                RtcpMember { ssrc: 0x5bb8_7065, reported_lost: 0, reported_jitter_ms: 0.0, rtp: Some((media, 251)) },
                RtcpMember { ssrc: 0xec51_0edd, reported_lost: -1, reported_jitter_ms: 1.1, rtp: None },
            ]
        );
        assert_eq!(remote_addresses(debug), Some((media, "127.0.0.1:55281".parse().unwrap())));
        assert!(rtcp_members("nothing").is_empty());
    }

    #[test]
    fn a_tone_is_measured() {
        let rate = 8000;
        let tone: Vec<i16> = (0..rate)
            .map(|i| (12000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 8000.0).sin()) as i16)
            .collect();
        let audio = Audio::measure(&tone, rate as u32);
        assert!((audio.tone_hz - 440.0).abs() < 2.0, "{audio:?}");
        assert!((audio.rms - 12000.0 / 32768.0 / 2f64.sqrt()).abs() < 0.01, "{audio:?}");
        assert_eq!(audio.duration(), Duration::from_secs(1));
        let silence = Audio::measure(&[0; 800], 8000);
        assert_eq!((silence.rms, silence.tone_hz), (0.0, 0.0));
    }
}

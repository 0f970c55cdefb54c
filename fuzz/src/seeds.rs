//! The seed corpora: what `seeds/<target>/` holds, written from here (`RINGFWD_WRITE_SEEDS=1 cargo test -p
//! ringfwd-fuzz --test seeds`) and checked against it by the same test, so the committed seeds never drift from
//! the code that makes them. Small and hand-made: valid RTP with one- and two-byte extensions, CSRCs and padding;
//! RTCP compounds of every report and feedback type; kernel receive buffers and control messages; the example
//! configs; tokens signed with the `jwt` target's keys; and, for targets whose input is a structured sequence,
//! fixed pseudo-random bytes (any bytes decode to a sequence).

use ringfwd_dataplane::core::fuzz::FUZZ_SSRCS;

/// A seed: its file name and bytes.
pub type Seed = (String, Vec<u8>);

/// The seeds of `target`.
pub fn of(target: &str) -> Vec<Seed> {
    match target {
        "packet" => [rtp_packets(FUZZ_SSRCS[0]), rtcp_compounds(FUZZ_SSRCS[0]), other_datagrams()].concat(),
        "rtp" => rtp_packets(0x1234_5678),
        "rtcp" => rtcp_compounds(0x1234_5678),
        "rewrite" => crate::rewrite::seeds([rtp_packets(0x1234_5678), rtcp_compounds(0x1234_5678)].concat()),
        "recvmsg" => receive_buffers(),
        "config" => configs(),
        "jwt" => [crate::jwt::seeds(), noise(target)].concat(),
        "twcc" | "metadata" | "api" | "forwarder" => noise(target),
        _ => Vec::new(),
    }
}

fn named(prefix: &str, list: Vec<(&str, Vec<u8>)>) -> Vec<Seed> {
    list.into_iter().map(|(name, bytes)| (format!("{prefix}-{name}"), bytes)).collect()
}

/// An RTP packet: fixed header with `csrcs`, an optional extension block (profile, elements), payload, padding.
pub fn rtp(ssrc: u32, csrcs: &[u32], extension: Option<(u16, &[u8])>, payload: &[u8], padding: u8) -> Vec<u8> {
    let mut pkt = vec![0x80 | csrcs.len() as u8, 96, 0x12, 0x34, 0, 1, 0x5f, 0x90];
    pkt.extend_from_slice(&ssrc.to_be_bytes());
    for csrc in csrcs {
        pkt.extend_from_slice(&csrc.to_be_bytes());
    }
    if let Some((profile, elements)) = extension {
        pkt[0] |= 0x10;
        let words = elements.len().div_ceil(4);
        pkt.extend_from_slice(&profile.to_be_bytes());
        pkt.extend_from_slice(&(words as u16).to_be_bytes());
        pkt.extend_from_slice(elements);
        pkt.resize(pkt.len() + words * 4 - elements.len(), 0);
    }
    pkt.extend_from_slice(payload);
    if padding > 0 {
        pkt[0] |= 0x20;
        pkt.resize(pkt.len() + usize::from(padding) - 1, 0);
        pkt.push(padding);
    }
    pkt
}

fn rtp_packets(ssrc: u32) -> Vec<Seed> {
    let payload = [0xab; 40];
    named(
        "rtp",
        vec![
            ("plain", rtp(ssrc, &[], None, &payload, 0)),
            ("csrcs", rtp(ssrc, &[1, 2, 3], None, &payload, 0)),
            // One-byte form: transport-wide seq (id 5), audio level (id 1), padding, a reserved id 15 stop.
            ("one-byte-ext", rtp(ssrc, &[], Some((0xbede, &[0x51, 0x12, 0x34, 0x10, 0x80, 0, 0xf0])), &payload, 0)),
            // Two-byte form: an empty element, then id 5 with two bytes.
            ("two-byte-ext", rtp(ssrc, &[7], Some((0x1000, &[200, 0, 5, 2, 0xfe, 0xdc])), &payload, 0)),
            ("other-profile-ext", rtp(ssrc, &[], Some((0xabcd, &[1, 2, 3, 4])), &payload, 0)),
            ("padded", rtp(ssrc, &[], Some((0xbede, &[0x51, 0, 9])), &payload, 4)),
            ("empty-payload", rtp(ssrc, &[], None, &[], 0)),
        ],
    )
}

/// One RTCP packet: header, body padded with zeros to 32 bits.
pub fn rtcp(count: u8, pt: u8, body: &[u8]) -> Vec<u8> {
    let len = (4 + body.len()).next_multiple_of(4);
    let mut out = vec![0x80 | count, pt];
    out.extend_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
    out.extend_from_slice(body);
    out.resize(len, 0);
    out
}

/// `list` as big-endian 32-bit words.
pub fn words(list: &[u32]) -> Vec<u8> {
    list.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn rtcp_compounds(ssrc: u32) -> Vec<Seed> {
    let other = 0x0bad_f00d;
    let block = |about: u32| words(&[about, 0x0500_0003, 0x0001_1234, 17, 0x1234_5678, 655]);
    let sr = {
        let mut body = words(&[ssrc, 0xe8f0_0000, 0x8000_0000, 90_000, 100, 12_000]);
        body.extend(block(other));
        rtcp(1, 200, &body)
    };
    let rr = {
        let mut body = words(&[other]);
        body.extend(block(ssrc));
        rtcp(1, 201, &body)
    };
    let sdes = {
        let mut body = words(&[ssrc]);
        body.extend([1, 9]);
        body.extend(b"publisher");
        body.extend([2, 3]);
        body.extend(b"bob");
        body.push(0);
        rtcp(1, 202, &body)
    };
    let bye = {
        let mut body = words(&[ssrc, other]);
        body.extend([4]);
        body.extend(b"done");
        rtcp(2, 203, &body)
    };
    let app = {
        let mut body = words(&[ssrc]);
        body.extend(b"NAMEdata");
        rtcp(3, 204, &body)
    };
    let xr = rtcp(0, 207, &words(&[ssrc, 4 << 24 | 2, 0x1111_2222, 0x3333_4444]));
    let nack = rtcp(1, 205, &words(&[other, ssrc, 1000 << 16 | 0b1000_0000_0000_0101, 65_530 << 16]));
    let twcc = {
        let mut body = words(&[other, ssrc, 7 << 16 | 5, 0x0001_2300 | 9]);
        body.extend([0xa0, 0x00, 0x20, 0x05, 4, 0xff, 0xfe, 0x01, 0x00, 0x00]);
        let mut pkt = rtcp(15, 205, &body);
        let padding = pkt.len() - 4 - body.len();
        if padding > 0 {
            pkt[0] |= 0x20;
            let len = pkt.len();
            pkt[len - 1] = padding as u8;
        }
        pkt
    };
    let pli = rtcp(1, 206, &words(&[other, ssrc]));
    let fir = rtcp(4, 206, &words(&[other, 0, ssrc, 3 << 24, other, 4 << 24]));
    let remb = {
        let mut body = words(&[other, 0]);
        body.extend(b"REMB");
        body.extend(words(&[1 << 24 | 2 << 18 | 0x3_0000, ssrc]));
        rtcp(15, 206, &body)
    };
    let tmmbr = rtcp(3, 205, &words(&[other, 0, ssrc, 0x0400_0000 | 40]));
    let compound = |parts: &[&Vec<u8>]| parts.iter().flat_map(|p| p.iter().copied()).collect::<Vec<u8>>();
    named(
        "rtcp",
        vec![
            ("sr-sdes", compound(&[&sr, &sdes])),
            ("sr-sdes-bye", compound(&[&sr, &sdes, &bye])),
            ("rr-nack", compound(&[&rr, &nack])),
            ("rr-pli-fir", compound(&[&rr, &pli, &fir])),
            ("rr-sdes-twcc-padded", compound(&[&rr, &sdes, &twcc])),
            ("rr-remb-tmmbr", compound(&[&rr, &remb, &tmmbr])),
            ("sr-app-xr", compound(&[&sr, &app, &xr])),
            ("nack", nack.clone()),
            ("pli", pli.clone()),
            ("fir", fir.clone()),
            ("twcc", twcc.clone()),
        ],
    )
}

fn other_datagrams() -> Vec<Seed> {
    named(
        "other",
        vec![
            ("stun", vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
            ("dtls", vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("empty", vec![]),
        ],
    )
}

/// A provided buffer as a multishot receive fills it: header, name (its own length), control, payload.
fn receive_buffer(name: &[u8], payload_len: u32, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    for word in [name.len() as u32, 0, payload_len, flags] {
        buf.extend_from_slice(&word.to_ne_bytes());
    }
    buf.extend_from_slice(name);
    buf.resize(ringfwd_dataplane::driver::uring::recv::HEADER_BYTES, 0);
    buf.extend_from_slice(payload);
    buf
}

fn receive_buffers() -> Vec<Seed> {
    let v4 = {
        let mut name = 2u16.to_ne_bytes().to_vec();
        name.extend_from_slice(&5004u16.to_be_bytes());
        name.extend_from_slice(&[127, 0, 0, 9]);
        name.resize(16, 0);
        name
    };
    let v6 = {
        let mut name = 10u16.to_ne_bytes().to_vec();
        name.extend_from_slice(&40000u16.to_be_bytes());
        name.extend_from_slice(&0u32.to_be_bytes());
        name.extend_from_slice(&[0; 15]);
        name.push(1);
        name.extend_from_slice(&0u32.to_ne_bytes());
        name
    };
    let payload = rtp(0x1234_5678, &[], None, &[1, 2, 3, 4], 0);
    // A control-message chain: SO_RXQ_OVFL (u32), then UDP_GRO (int), each header 16 bytes, padded to 8.
    let cmsg = |level: i32, kind: i32, data: &[u8]| {
        let mut out = (16 + data.len() as u64).to_ne_bytes().to_vec();
        out.extend_from_slice(&level.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(8), 0);
        out
    };
    let control = [cmsg(1, 40, &7u32.to_ne_bytes()), cmsg(17, 104, &1200i32.to_ne_bytes())].concat();
    named(
        "recv",
        vec![
            ("v4", receive_buffer(&v4, payload.len() as u32, 0, &payload)),
            ("v6", receive_buffer(&v6, payload.len() as u32, 0, &payload)),
            ("truncated", receive_buffer(&v4, 9000, 0x20, &payload)),
            ("short", receive_buffer(&v4, 4, 0, &[])[..20].to_vec()),
            ("cmsg-chain", control),
        ],
    )
}

fn configs() -> Vec<Seed> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning/examples");
    let mut seeds: Vec<Seed> = std::fs::read_dir(&dir)
        .expect("tuning/examples")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            name.ends_with(".toml").then(|| (format!("example-{name}"), std::fs::read(&path).expect("readable")))
        })
        .collect();
    seeds.sort();
    seeds.push(("empty.toml".to_owned(), Vec::new()));
    seeds.push(("invalid-value.toml".to_owned(), b"[pool]\nrecv_batch = 0\n".to_vec()));
    let plugins =
        "[[plugins]]\nname = \"throttle\"\npath = \"/opt/ringfwd/plugins/throttle.wasm\"\nchains = [\"ingress\"]\n\
                   on_failure = \"drop\"\nfuel_per_call = 100000\nmemory_max_bytes = 65536\n[plugins.params]\n\
                   max_pps = \"50\"\n[interceptors]\ningress = [\"stats\", \"throttle\"]\n";
    seeds.push(("plugins.toml".to_owned(), plugins.as_bytes().to_vec()));
    let async_plugin =
        "[[plugins]]\nname = \"jitter\"\npath = \"/opt/ringfwd/plugins/jitter.wasm\"\nchains = [\"ingress\"]\n\
                        mode = \"async\"\nasync_queue_packets = 1024\nasync_pass = \"consume\"\nasync_wake_delay_us = 1000\n[plugins.params]\n\
                        delay_ms = \"40\"\n[interceptors]\ningress = [\"stats\", \"jitter\"]\n";
    seeds.push(("plugins-async.toml".to_owned(), async_plugin.as_bytes().to_vec()));
    seeds
}

/// Fixed pseudo-random bytes (xorshift), of a few sizes.
pub fn noise(target: &str) -> Vec<Seed> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ target.bytes().fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
    [64usize, 256, 1024, 4096]
        .iter()
        .map(|&len| {
            let bytes = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            (format!("noise-{len}"), bytes)
        })
        .collect()
}

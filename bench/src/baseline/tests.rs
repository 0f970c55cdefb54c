//! Tests of the baselines' route table: built from a ringfwd config, same drops as ringfwd.

use super::*;

const CONFIG: &str = r#"
[media]
addresses = ["127.0.0.1:0"]

[[sessions]]
id = "s"

[[sessions.endpoints]]
id = "alice"
address = "127.0.0.1:50000"

[[sessions.endpoints]]
id = "roamer"
latching = true

[[sessions.endpoints]]
id = "bob"
address = "127.0.0.2:6000"

[[sessions.endpoints]]
id = "carol"
address = "127.0.0.3:6000"

[[sessions.streams]]
id = "a-video"
endpoint = "alice"
ssrc = 1000

[[sessions.streams]]
id = "r-audio"
endpoint = "roamer"
ssrc = 2000

[[sessions.subscriptions]]
stream = "a-video"
endpoint = "bob"
out_ssrc = 1111
seq_offset = 10
ts_offset = 20
payload_type_map = [[96, 100]]

[[sessions.subscriptions]]
stream = "a-video"
endpoint = "carol"

[[sessions.subscriptions]]
stream = "r-audio"
endpoint = "bob"
"#;

fn rtp(ssrc: u32, pt: u8) -> Vec<u8> {
    let mut pkt = vec![0u8; 40];
    pkt[0] = 0x80;
    pkt[1] = pt;
    pkt[2..4].copy_from_slice(&7u16.to_be_bytes());
    pkt[4..8].copy_from_slice(&9u32.to_be_bytes());
    pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
    pkt
}

fn table() -> RouteTable {
    RouteTable::from_config(&Config::from_toml_str(CONFIG).unwrap())
}

#[test]
fn routes_follow_the_subscriptions_with_their_rewrites() {
    let t = table();
    let alice: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let pkt = rtp(1000, 96);
    let routes = t.lookup(alice, &pkt).unwrap();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].dest, "127.0.0.2:6000".parse().unwrap());
    let header = routes[0].rewrite.rtp_header(&pkt);
    assert_eq!(header[1], 100);
    assert_eq!(u16::from_be_bytes([header[2], header[3]]), 17);
    assert_eq!(u32::from_be_bytes([header[4], header[5], header[6], header[7]]), 29);
    assert_eq!(u32::from_be_bytes([header[8], header[9], header[10], header[11]]), 1111);
    // Carol's copy is unchanged.
    assert_eq!(routes[1].rewrite.rtp_header(&pkt), pkt[..12]);
    assert_eq!(t.max_fanout(), 2);
}

#[test]
fn drops_are_classified_like_ringfwd() {
    let t = table();
    let alice: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    let stranger: SocketAddr = "127.0.0.9:50000".parse().unwrap();
    assert_eq!(t.lookup(stranger, &rtp(1000, 96)).err(), Some(DropReason::WrongSource));
    assert_eq!(t.lookup(alice, &rtp(3000, 96)).err(), Some(DropReason::UnknownSsrc));
    assert_eq!(t.lookup(alice, &rtp(1000, 200)).err(), Some(DropReason::NotRtp));
    assert_eq!(t.lookup(alice, b"\x00\x01stun").err(), Some(DropReason::NotRtp));
    assert_eq!(t.lookup(alice, &rtp(1000, 96)[..8]).err(), Some(DropReason::Malformed));
    // A latching publisher is accepted from anywhere.
    assert_eq!(t.lookup(stranger, &rtp(2000, 0)).map(<[Route]>::len), Ok(1));
}

#[test]
fn counters_count_each_reason() {
    let mut c = Counters::default();
    for reason in [DropReason::NotRtp, DropReason::Malformed, DropReason::UnknownSsrc, DropReason::WrongSource] {
        c.dropped(reason);
    }
    c.dropped(DropReason::WrongSource);
    assert_eq!((c.drop_not_rtp, c.drop_malformed, c.drop_unknown_ssrc, c.drop_wrong_source), (1, 1, 1, 2));
}

#[test]
fn a_stream_without_a_declared_publisher_routes_nothing() {
    // Config::from_toml_str checks the shape only: the registry would refuse this, the baseline must not amplify it.
    let text = CONFIG.replacen("endpoint = \"alice\"", "endpoint = \"nobody\"", 1);
    let config = Config::from_toml_str(&text).unwrap();
    let t = RouteTable::from_config(&config);
    let stranger: SocketAddr = "127.0.0.9:50000".parse().unwrap();
    assert_eq!(t.lookup(stranger, &rtp(1000, 96)).err(), Some(DropReason::UnknownSsrc));
}

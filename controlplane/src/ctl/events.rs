//! `ringfwd ctl events watch`: lifecycle events, one line each, as they happen.
//!
//! Owns the request (resume point, session filter) and the line format: `SEQ UNIX_MS SESSION KIND key=value...`
//! for people, one compact protobuf-JSON object per line with `--json`. Must never retry nor resume on its own:
//! a watcher cut off by the server exits non-zero with the server's message, which names the seq to resume
//! from.

use ringfwd_proto::v1;

use super::args::EventsCmd;
use super::output::compact_json;
use super::run::{print_watch, status, Client};

/// A subscription's `key=value` pairs, then `more`.
fn subscription_fields(
    subscription_id: &str,
    stream_id: &str,
    endpoint_id: &str,
    more: Option<(&'static str, String)>,
) -> Vec<(&'static str, String)> {
    let ids = [("subscription", subscription_id), ("stream", stream_id), ("endpoint", endpoint_id)];
    ids.into_iter().map(|(k, v)| (k, v.to_owned())).chain(more).collect()
}

/// The `key=value` pairs of an event's kind, and its name.
fn kind_fields(kind: Option<&v1::event::Kind>) -> (&'static str, Vec<(&'static str, String)>) {
    use v1::event::Kind;
    match kind {
        Some(Kind::SessionStarted(_)) => ("session_started", vec![]),
        Some(Kind::SessionEnded(_)) => ("session_ended", vec![]),
        Some(Kind::EndpointJoined(e)) => ("endpoint_joined", vec![("endpoint", e.endpoint_id.clone())]),
        Some(Kind::EndpointLeft(e)) => ("endpoint_left", vec![("endpoint", e.endpoint_id.clone())]),
        Some(Kind::StreamPublished(s)) => (
            "stream_published",
            vec![
                ("stream", s.stream_id.clone()),
                ("endpoint", s.endpoint_id.clone()),
                ("ssrc", format!("{:#010x}", s.ssrc)),
            ],
        ),
        Some(Kind::StreamUnpublished(s)) => {
            ("stream_unpublished", vec![("stream", s.stream_id.clone()), ("endpoint", s.endpoint_id.clone())])
        }
        Some(Kind::StreamStarted(s)) => {
            ("stream_started", vec![("stream", s.stream_id.clone()), ("endpoint", s.endpoint_id.clone())])
        }
        Some(Kind::StreamInactive(s)) => {
            ("stream_inactive", vec![("stream", s.stream_id.clone()), ("endpoint", s.endpoint_id.clone())])
        }
        Some(Kind::StreamBye(s)) => {
            ("stream_bye", vec![("stream", s.stream_id.clone()), ("endpoint", s.endpoint_id.clone())])
        }
        Some(Kind::StreamSsrcChanged(c)) => (
            "stream_ssrc_changed",
            vec![
                ("stream", c.stream_id.clone()),
                ("endpoint", c.endpoint_id.clone()),
                ("ssrc", format!("{:#010x}", c.ssrc)),
                ("previous", format!("{:#010x}", c.previous_ssrc)),
            ],
        ),
        Some(Kind::UnknownSsrc(u)) => (
            "unknown_ssrc",
            vec![
                ("endpoint", u.endpoint_id.clone()),
                ("source", u.source_address.clone()),
                ("ssrc", format!("{:#010x}", u.ssrc)),
                ("pt", u.payload_type.to_string()),
            ],
        ),
        Some(Kind::SourceChanged(s)) => (
            "source_changed",
            vec![
                ("stream", s.stream_id.clone()),
                ("endpoint", s.endpoint_id.clone()),
                ("source", s.source_address.clone()),
            ],
        ),
        Some(Kind::SubscriberUnreachable(s)) => (
            "subscriber_unreachable",
            subscription_fields(&s.subscription_id, &s.stream_id, &s.endpoint_id, Some(("errno", s.errno.to_string()))),
        ),
        Some(Kind::RateLimited(s)) => (
            "rate_limited",
            vec![
                ("stream", s.stream_id.clone()),
                ("endpoint", s.endpoint_id.clone()),
                ("dropped", s.dropped_packets.to_string()),
            ],
        ),
        Some(Kind::PluginDisabled(p)) => {
            let mut fields = vec![("plugin", p.plugin.clone()), ("fault", p.fault.clone())];
            if !p.subscription_id.is_empty() {
                fields.push(("subscription", p.subscription_id.clone()));
                fields.push(("subscriber", p.subscriber_endpoint_id.clone()));
            }
            fields.push(("stream", p.stream_id.clone()));
            fields.push(("endpoint", p.endpoint_id.clone()));
            ("plugin_disabled", fields)
        }
        Some(Kind::NodeJoined(n)) => ("node_joined", vec![("node", n.node_id.clone())]),
        Some(Kind::NodeLost(n)) => ("node_lost", vec![("node", n.node_id.clone()), ("expired", n.expired.to_string())]),
        Some(Kind::RelayMoved(m)) => (
            "relay_moved",
            vec![
                ("stream", m.stream_id.clone()),
                ("origin", m.origin_node_id.clone()),
                ("from", m.from_node_id.clone()),
                ("to", m.to_node_id.clone()),
            ],
        ),
        Some(Kind::Subscribed(s)) => {
            ("subscribed", subscription_fields(&s.subscription_id, &s.stream_id, &s.endpoint_id, None))
        }
        Some(Kind::Unsubscribed(s)) => {
            ("unsubscribed", subscription_fields(&s.subscription_id, &s.stream_id, &s.endpoint_id, None))
        }
        Some(Kind::SubscriptionPaused(s)) => {
            ("subscription_paused", subscription_fields(&s.subscription_id, &s.stream_id, &s.endpoint_id, None))
        }
        Some(Kind::SubscriptionResumed(s)) => {
            ("subscription_resumed", subscription_fields(&s.subscription_id, &s.stream_id, &s.endpoint_id, None))
        }
        Some(Kind::SubscriptionSwitched(s)) => (
            "subscription_switched",
            subscription_fields(
                &s.subscription_id,
                &s.stream_id,
                &s.endpoint_id,
                Some(("previous", s.previous_stream_id.clone())),
            ),
        ),
        Some(Kind::MetadataChanged(m)) => {
            let target = m.target.clone().unwrap_or_default();
            let mut fields = Vec::new();
            if !target.endpoint_id.is_empty() {
                fields.push(("endpoint", target.endpoint_id));
            }
            if !target.stream_id.is_empty() {
                fields.push(("stream", target.stream_id));
            }
            let entry = |e: &v1::MetadataEntry| {
                if e.deleted {
                    format!("-{}", e.key)
                } else {
                    format!("{}={}", e.key, e.value)
                }
            };
            fields.push(("keys", m.entries.iter().map(entry).collect::<Vec<_>>().join(",")));
            ("metadata_changed", fields)
        }
        None => ("unknown", vec![]),
    }
}

/// One line for an event.
pub fn event_line(event: &v1::Event, json: bool) -> Result<String, String> {
    if json {
        return compact_json(event, "ringfwd.v1.Event");
    }
    let (name, fields) = kind_fields(event.kind.as_ref());
    let fields: String = fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
    Ok(format!("{} {} {} {name}{fields}", event.seq, utc(event.unix_ms), event.session_id))
}

/// Unix milliseconds as an RFC 3339 UTC time with milliseconds (`2026-12-03T14:20:00.123Z`), as tables print times.
pub fn utc(unix_ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Runs one events command.
pub async fn run(client: &mut Client, cmd: EventsCmd, json: bool) -> Result<(), String> {
    match cmd {
        EventsCmd::Watch { from_seq, session, count } => {
            let request = v1::WatchEventsRequest { from_seq, session_id: session.unwrap_or_default() };
            let mut stream = client.watch_events(request).await.map_err(status)?.into_inner();
            print_watch(&mut stream, count, |event| event_line(event, json)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_print_one_line_each() {
        let kind = v1::event::Kind::Subscribed(v1::Subscribed {
            subscription_id: "b-v".into(),
            stream_id: "v".into(),
            endpoint_id: "b".into(),
        });
        let event = v1::Event { id: "ab-4".into(), seq: 4, unix_ms: 1700, session_id: "room".into(), kind: Some(kind) };
        let line = event_line(&event, false).unwrap();
        assert_eq!(line, "4 1970-01-01T00:00:01.700Z room subscribed subscription=b-v stream=v endpoint=b");
        let line = event_line(&event, true).unwrap();
        assert!(!line.contains('\n'));
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["seq"], "4");
        assert_eq!(json["subscribed"]["subscriptionId"], "b-v");

        let bye = v1::event::Kind::StreamBye(v1::StreamBye { stream_id: "v".into(), endpoint_id: "a".into() });
        let event = v1::Event { id: "ab-5".into(), seq: 5, unix_ms: 1800, session_id: "room".into(), kind: Some(bye) };
        assert_eq!(
            event_line(&event, false).unwrap(),
            "5 1970-01-01T00:00:01.800Z room stream_bye stream=v endpoint=a"
        );
        let json: serde_json::Value = serde_json::from_str(&event_line(&event, true).unwrap()).unwrap();
        assert_eq!(json["streamBye"]["streamId"], "v");

        let switched = v1::event::Kind::SubscriptionSwitched(v1::SubscriptionSwitched {
            subscription_id: "b-v".into(),
            stream_id: "w".into(),
            endpoint_id: "b".into(),
            previous_stream_id: "v".into(),
        });
        let event =
            v1::Event { id: "ab-6".into(), seq: 6, unix_ms: 1900, session_id: "room".into(), kind: Some(switched) };
        assert_eq!(
            event_line(&event, false).unwrap(),
            "6 1970-01-01T00:00:01.900Z room subscription_switched subscription=b-v stream=w endpoint=b previous=v"
        );
        let json: serde_json::Value = serde_json::from_str(&event_line(&event, true).unwrap()).unwrap();
        assert_eq!(json["subscriptionSwitched"]["previousStreamId"], "v");
    }
}

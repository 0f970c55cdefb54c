//! `ringfwd ctl metadata set|get|delete|watch`, and the `--meta KEY=VALUE` of the creates.
//!
//! Owns turning the command line into metadata requests and printing a watch as it goes: one line per event
//! (`--json`: one compact protobuf-JSON object per line) until the object is deleted, the server ends the
//! stream, or `--count` events were printed. Must never retry nor resume on its own: a watcher cut off by the
//! server exits non-zero with the server's message, which names the version to resume from.

use ringfwd_proto::v1;

use super::args::{MetadataCmd, MetadataTarget};
use super::output::{event_line, print};
use super::run::{print_watch, status, Client};
use crate::metadata::Version;

/// The `--meta KEY=VALUE` of a create as metadata writes.
pub fn initial(pairs: Vec<(String, String)>) -> Vec<v1::MetadataWrite> {
    pairs
        .into_iter()
        .map(|(key, value)| v1::MetadataWrite { key, value, set_once: false, expected_version: None })
        .collect()
}

fn target(t: MetadataTarget) -> Option<v1::MetadataTarget> {
    Some(v1::MetadataTarget {
        session_id: t.session,
        endpoint_id: t.endpoint.unwrap_or_default(),
        stream_id: t.stream.unwrap_or_default(),
    })
}

fn wire(v: Version) -> v1::MetadataVersion {
    v1::MetadataVersion { wall_us: v.wall_us, counter: v.counter, node_id: v.node_id }
}

/// The expected version given for `key` with `--expect`.
fn expected(expect: &[(String, Version)], key: &str) -> Option<v1::MetadataVersion> {
    expect.iter().find(|(k, _)| k == key).map(|(_, v)| wire(*v))
}

/// Every `--expect` must name a key of the command: a typo must not turn a compare-and-set into a plain write.
fn check_expect(expect: &[(String, Version)], keys: &[&str]) -> Result<(), String> {
    match expect.iter().find(|(k, _)| !keys.contains(&k.as_str())) {
        Some((k, _)) => Err(format!("--expect names {k:?}, which this command does not write")),
        None => Ok(()),
    }
}

/// Runs one metadata command.
pub async fn run(client: &mut Client, cmd: MetadataCmd, json: bool) -> Result<(), String> {
    match cmd {
        MetadataCmd::Set { target: t, pairs, set_once, expect } => {
            check_expect(&expect, &pairs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())?;
            let writes = pairs
                .into_iter()
                .map(|(key, value)| v1::MetadataWrite {
                    expected_version: expected(&expect, &key),
                    key,
                    value,
                    set_once,
                })
                .collect();
            let request = v1::SetMetadataRequest { target: target(t), writes };
            print(&client.set_metadata(request).await.map_err(status)?.into_inner(), json)
        }
        MetadataCmd::Get { target: t, keys } => {
            let request = v1::GetMetadataRequest { target: target(t), keys };
            print(&client.get_metadata(request).await.map_err(status)?.into_inner(), json)
        }
        MetadataCmd::Delete { target: t, keys, expect } => {
            check_expect(&expect, &keys.iter().map(String::as_str).collect::<Vec<_>>())?;
            let deletions = keys
                .into_iter()
                .map(|key| v1::MetadataDeletion { expected_version: expected(&expect, &key), key })
                .collect();
            let request = v1::DeleteMetadataRequest { target: target(t), deletions };
            print(&client.delete_metadata(request).await.map_err(status)?.into_inner(), json)
        }
        MetadataCmd::Watch { target: t, resume_from, count } => {
            let request = v1::WatchMetadataRequest { target: target(t), resume_from: resume_from.map(wire) };
            let mut stream = client.watch_metadata(request).await.map_err(status)?.into_inner();
            print_watch(&mut stream, count, |event| event_line(event, json)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_must_name_a_written_key() {
        let expect = vec![("app.b".to_owned(), Version::ZERO)];
        assert!(check_expect(&expect, &["app.a"]).unwrap_err().contains("\"app.b\""));
        check_expect(&expect, &["app.a", "app.b"]).unwrap();
        assert_eq!(expected(&expect, "app.b"), Some(v1::MetadataVersion::default()));
        assert_eq!(expected(&expect, "app.a"), None);
    }
}

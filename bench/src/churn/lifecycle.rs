//! The lifecycle cycle of a churn client: every kind of object the control API has, made and freed.
//!
//! Owns [`cycle`] and the ids it uses. Client `i` creates session `churn-life-i`, in it a publisher
//! endpoint (at `127.0.0.1:9`, from where nothing is ever sent), a subscriber endpoint (at the churn
//! clients' throwaway socket), an audio stream of SSRC [`LIFECYCLE_SSRC_BASE`]` + i` and a
//! subscription of the subscriber to it (outgoing SSRC [`LIFECYCLE_OUT_SSRC_BASE`]` + i`), then deletes
//! them one by one: subscription, stream, subscriber, publisher, session. Each call is one operation,
//! paced and counted like the subscription cycle's. When a create fails the rest of the creates are
//! skipped; when anything was created, the session goes (retried within the window), which takes
//! whatever is left with it.
//!
//! Must never touch the scenario's session, nor address anything but loopback.

use std::net::SocketAddr;
use std::time::Instant;

use super::clients::{error_code, status_code, ChurnStats, Client, Op};

/// SSRC of client 0's lifecycle stream; client `i` uses this plus `i` (apart from the scenario's
/// `0x1000_0000...` and the churn subscriptions' `0x6000_0000...`).
pub const LIFECYCLE_SSRC_BASE: u32 = 0x7000_0000;
/// Outgoing SSRC of client 0's lifecycle subscription; client `i` uses this plus `i`.
pub const LIFECYCLE_OUT_SSRC_BASE: u32 = 0x7100_0000;
/// Where the lifecycle publisher "sends from": the discard port on loopback.
const PUBLISHER_ADDRESS: ([u8; 4], u16) = ([127, 0, 0, 1], 9);
const PUBLISHER: &str = "pub";
const SUBSCRIBER: &str = "sub";
const STREAM: &str = "s";
const SUBSCRIPTION: &str = "x";

/// The session of client `index`'s lifecycle cycles.
pub fn session_id(index: usize) -> String {
    format!("churn-life-{index}")
}

/// One create or delete of the cycle, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Session,
    Publisher,
    Subscriber,
    Stream,
    Subscription,
}

const CREATES: [Step; 5] = [Step::Session, Step::Publisher, Step::Subscriber, Step::Stream, Step::Subscription];

/// Runs one lifecycle cycle for `client`; false when the churn is over.
pub(super) async fn cycle(client: &mut Client, stats: &mut ChurnStats) -> bool {
    let sid = session_id(client.index);
    let mut created = 0;
    for step in CREATES {
        if !client.admit(stats, false).await {
            if created == 0 {
                return false;
            }
            break;
        }
        let began = Instant::now();
        let outcome = create(client, &sid, step).await;
        if !client.settle(stats, Op::Create, began, outcome).await {
            break;
        }
        created += 1;
    }
    if created == 0 {
        // The session's create failed (counted, after a pause): try again next cycle.
        return true;
    }
    // Piece by piece when everything exists; else (or after a failed delete) the session with what is left.
    let mut whole_session = created < CREATES.len();
    for step in CREATES.iter().rev().copied() {
        if whole_session || step == Step::Session {
            break;
        }
        if !client.admit(stats, true).await {
            return false;
        }
        let began = Instant::now();
        let outcome = delete(client, &sid, step).await;
        whole_session = !client.settle(stats, Op::Delete, began, outcome).await;
    }
    loop {
        if !client.admit(stats, true).await {
            return false;
        }
        let began = Instant::now();
        let outcome = delete(client, &sid, Step::Session).await;
        if client.settle(stats, Op::Delete, began, outcome).await || !client.open() {
            return client.open();
        }
    }
}

async fn create(client: &mut Client, sid: &str, step: Step) -> Result<(), String> {
    let index = client.index as u32;
    let control = &mut client.control;
    match step {
        Step::Session => control.create_session(sid).await.map(drop).map_err(|s| status_code(&s)),
        Step::Publisher => {
            let address = SocketAddr::from(PUBLISHER_ADDRESS);
            control.create_endpoint(sid, PUBLISHER, address).await.map(drop).map_err(|e| error_code(&e))
        }
        Step::Subscriber => {
            control.create_endpoint(sid, SUBSCRIBER, client.sink).await.map(drop).map_err(|e| error_code(&e))
        }
        Step::Stream => control
            .create_audio_stream(sid, STREAM, PUBLISHER, LIFECYCLE_SSRC_BASE + index)
            .await
            .map(drop)
            .map_err(|s| status_code(&s)),
        Step::Subscription => control
            .subscribe(sid, SUBSCRIPTION, STREAM, SUBSCRIBER, LIFECYCLE_OUT_SSRC_BASE + index)
            .await
            .map(drop)
            .map_err(|s| status_code(&s)),
    }
}

async fn delete(client: &mut Client, sid: &str, step: Step) -> Result<(), String> {
    let control = &mut client.control;
    match step {
        Step::Session => match control.delete_session(sid).await {
            // Gone already counts as done: it is what the cleanup wants.
            Ok(_) => Ok(()),
            Err(e) => Err(error_code(&e)),
        },
        Step::Publisher => control.delete_endpoint(sid, PUBLISHER).await.map(drop).map_err(|e| error_code(&e)),
        Step::Subscriber => control.delete_endpoint(sid, SUBSCRIBER).await.map(drop).map_err(|e| error_code(&e)),
        Step::Stream => control.delete_stream(sid, STREAM).await.map(drop).map_err(|s| status_code(&s)),
        Step::Subscription => control.unsubscribe(sid, SUBSCRIPTION).await.map(drop).map_err(|s| status_code(&s)),
    }
}

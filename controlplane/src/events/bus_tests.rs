//! Tests of the event bus: order, resume, bounds, slow watchers, sinks, shutdown.

use std::sync::Mutex;

use super::*;

fn bus(history: usize, watch_buffer: usize, max_watchers: usize) -> EventBus {
    EventBus::new(EventLimits { history, watch_buffer, max_watchers }, 7)
}

fn publish(bus: &EventBus, session: &str, n: usize) {
    for _ in 0..n {
        bus.publish(session.into(), EventKind::SessionStarted, 1).expect("open bus");
    }
}

/// Everything the watch yields right now, without waiting: the seqs, then the cut-off if it came.
async fn ready(watch: &mut Watch) -> (Vec<u64>, Option<CutOff>) {
    let mut seqs = Vec::new();
    while let Ok(next) = tokio::time::timeout(std::time::Duration::from_millis(20), watch.next()).await {
        match next {
            Some(Ok(event)) => seqs.push(event.seq),
            Some(Err(cut)) => return (seqs, Some(cut)),
            None => break,
        }
    }
    (seqs, None)
}

#[tokio::test]
async fn watchers_get_every_event_in_order() {
    let bus = bus(16, 64, 4);
    let mut a = bus.watch(None, None).unwrap();
    let mut b = bus.watch(None, None).unwrap();
    publish(&bus, "s", 10);
    let expected: Vec<u64> = (1..=10).collect();
    assert_eq!(ready(&mut a).await, (expected.clone(), None));
    assert_eq!(ready(&mut b).await, (expected, None));
    assert_eq!(bus.counters().published.load(Ordering::Relaxed), 10);
}

#[tokio::test]
async fn a_resumed_watch_replays_then_goes_live_without_gap_or_repeat() {
    let bus = bus(16, 64, 4);
    publish(&bus, "s", 5);
    let mut watch = bus.watch(Some(3), None).unwrap();
    publish(&bus, "s", 2);
    assert_eq!(ready(&mut watch).await.0, [4, 5, 6, 7]);
    let mut fresh = bus.watch(None, None).unwrap();
    assert_eq!(fresh.last_sent(), 7);
    publish(&bus, "s", 1);
    assert_eq!(ready(&mut fresh).await.0, [8], "without from_seq: only what comes next");
}

#[tokio::test]
async fn resuming_from_a_forgotten_or_future_seq_is_refused() {
    let bus = bus(16, 64, 4);
    publish(&bus, "s", 20);
    let err = bus.watch(Some(2), None).unwrap_err();
    assert!(matches!(err, WatchError::Resume(ResumeError::Forgotten { oldest: 5, .. })), "{err}");
    assert!(matches!(bus.watch(Some(21), None), Err(WatchError::Resume(ResumeError::Ahead { .. }))));
    assert_eq!(bus.watch(Some(4), None).unwrap().replay.len(), 16);
}

#[tokio::test]
async fn a_slow_watcher_is_cut_off_after_its_buffer_and_never_slows_the_others() {
    let bus = bus(64, 4, 4);
    let mut slow = bus.watch(None, None).unwrap();
    let mut reader = bus.watch(None, None).unwrap();
    let mut got = Vec::new();
    for _ in 0..10 {
        publish(&bus, "s", 1);
        got.extend(ready(&mut reader).await.0);
    }
    assert_eq!(got, (1..=10).collect::<Vec<_>>());
    let (seqs, cut) = ready(&mut slow).await;
    assert_eq!(seqs, [1, 2, 3, 4], "what its buffer held is still delivered");
    assert_eq!(cut, Some(CutOff { last_sent: 4, watch_buffer: 4 }));
    assert!(cut.unwrap().to_string().contains("events.watch_buffer = 4"));
    assert!(slow.next().await.is_none(), "the cut-off is the last item");
    assert_eq!(bus.counters().watchers_cut_off.load(Ordering::Relaxed), 1);
    assert_eq!(bus.watchers(), 1);
}

#[tokio::test]
async fn a_session_filter_sees_only_its_session_also_when_resuming() {
    let bus = bus(16, 2, 4);
    publish(&bus, "a", 1);
    publish(&bus, "b", 1);
    let mut watch = bus.watch(Some(0), Some("b".into())).unwrap();
    publish(&bus, "a", 5);
    publish(&bus, "b", 1);
    assert_eq!(ready(&mut watch).await, (vec![2, 8], None), "other sessions never fill its buffer");
}

#[tokio::test]
async fn watchers_are_bounded_and_gone_ones_free_their_place() {
    let bus = bus(16, 4, 2);
    let a = bus.watch(None, None).unwrap();
    let _b = bus.watch(None, None).unwrap();
    let err = bus.watch(None, None).unwrap_err();
    assert!(err.to_string().contains("events.max_watchers = 2"), "{err}");
    drop(a);
    bus.watch(None, None).unwrap();
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<u64>>>);

impl EventSink for Collect {
    fn offer(&mut self, event: &Arc<Event>) {
        self.0.lock().unwrap().push(event.seq);
    }
}

#[tokio::test]
async fn sinks_get_every_event_and_closing_ends_everything() {
    let bus = bus(16, 4, 2);
    let sink = Collect::default();
    bus.add_sink(Box::new(sink.clone()));
    let mut watch = bus.watch(None, None).unwrap();
    publish(&bus, "s", 3);
    bus.close();
    assert_eq!(*sink.0.lock().unwrap(), [1, 2, 3]);
    assert_eq!(ready(&mut watch).await, (vec![1, 2, 3], None), "a closed bus ends watches without an error");
    assert_eq!(bus.publish("s".into(), EventKind::SessionEnded, 1), None);
    assert!(matches!(bus.watch(None, None), Err(WatchError::Closed)));
}

//! Marks (a second consume-queue entry dispatched with a record) and the
//! due time of scheduled records: the same at put and after a crash.

use super::*;

fn marked(i: usize, mark: Mark) -> MessageInput {
    let mut m = msg("T", 0, body_of(i, 200), None);
    let mut props = String::from_utf8(m.properties.to_vec()).unwrap();
    props.push_str(&format!("{MARK_PROPERTY}\x01{}\x02", mark.property()));
    m.properties = Bytes::from(props);
    m.mark = Some(mark);
    m
}

fn scheduled(i: usize, due: i64) -> MessageInput {
    let mut m = msg(SCHEDULE_TOPIC, 0, body_of(i, 200), Some("TagA"));
    let mut props = String::from_utf8(m.properties.to_vec()).unwrap();
    props.push_str(&format!("{DUE_PROPERTY}\x01{due}\x02"));
    m.properties = Bytes::from(props);
    m.tags_code = due;
    m
}

/// (pos, tags_code) of every entry of a queue.
async fn entries_of(store: &MessageStore, topic: &str, qid: u32) -> Vec<(u64, i64)> {
    let e = store.queue_entries(topic, qid, 0, 1000).await.unwrap();
    e.iter().map(|e| (e.pos, e.tags_code)).collect()
}

#[test]
fn marks_and_due_times_are_the_same_after_a_crash() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    let d2 = d.clone();
    let before = run_on_executor("writer", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        for i in 0..10 {
            let r = if i % 3 == 0 {
                store
                    .put(marked(
                        i,
                        Mark {
                            queue: MARK_QUEUE_TIMER,
                            value: 1000 + i as i64,
                        },
                    ))
                    .await
            } else if i % 3 == 1 {
                store.put(scheduled(i, 5_000_000 + i as i64)).await
            } else {
                store.put(msg("T", 0, body_of(i, 100), None)).await
            };
            assert_eq!(r.status, PutStatus::Ok);
        }
        let marks = entries_of(&store, MARK_TOPIC, MARK_QUEUE_TIMER).await;
        let due = entries_of(&store, SCHEDULE_TOPIC, 0).await;
        let main = entries_of(&store, "T", 0).await;
        assert_eq!(marks.len(), 4);
        assert_eq!(due.len(), 3);
        assert_eq!(main.len(), 7, "a marked record is in its own queue too");
        assert!(marks.iter().all(|(p, _)| main.iter().any(|(q, _)| q == p)));
        assert_eq!(
            marks.iter().map(|m| m.1).collect::<Vec<_>>(),
            vec![1000, 1003, 1006, 1009]
        );
        assert_eq!(
            due.iter().map(|m| m.1).collect::<Vec<_>>(),
            vec![5_000_001, 5_000_004, 5_000_007]
        );
        // No shutdown: the queues are rebuilt from the log on open.
        (marks, due, main)
    });
    let after = run_on_executor("reader", move || async move {
        let (store, _) = MessageStore::open(cfg(&d2, FlushMode::Sync)).await.unwrap();
        let got = (
            entries_of(&store, MARK_TOPIC, MARK_QUEUE_TIMER).await,
            entries_of(&store, SCHEDULE_TOPIC, 0).await,
            entries_of(&store, "T", 0).await,
        );
        store.shutdown().await.unwrap();
        got
    });
    assert_eq!(before, after);
}

#[test]
fn a_stored_record_reads_back_as_the_same_input() {
    let dir = tmp();
    let d = dir.path().to_path_buf();
    run_on_executor("t", move || async move {
        let (store, _) = MessageStore::open(cfg(&d, FlushMode::Sync)).await.unwrap();
        let mut m = msg("T", 0, body_of(7, 300), Some("TagB"));
        m.flag = 42;
        m.reconsume_times = 3;
        m.born_timestamp = 123_456;
        m.sys_flag = 1;
        let r = store.put(m.clone()).await;
        assert_eq!(r.status, PutStatus::Ok);
        let rec = store.read_record(r.positions[0]).await.unwrap().unwrap();
        let record::RecordCheck::Record(v) = record::check_record(&rec, None, true) else {
            panic!("not a record");
        };
        let back = v.to_input().unwrap();
        assert_eq!(back.topic, m.topic);
        assert_eq!(back.flag, 42);
        assert_eq!(back.reconsume_times, 3);
        assert_eq!(back.born_timestamp, 123_456);
        assert_eq!(back.born_host, m.born_host);
        assert_eq!(back.sys_flag, 1);
        assert_eq!(back.body, m.body);
        assert_eq!(back.properties, m.properties);
        store.shutdown().await.unwrap();
    });
}

//! Topic changes that cannot be persisted leave no trace: the controller's
//! table is put back, nothing is published, no temp file is left.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use crate::broker::controller::{Controller, Host};
use crate::broker::metadata::Metadata;
use crate::config::BrokerConfig;
use crate::protocol::codes::{request, response};
use crate::protocol::RemotingCommand;
use crate::runtime::mesh::{ClientRef, View};
use crate::runtime::run_on_executor;

/// A host that records what the controller publishes.
struct Recorder {
    cfg: BrokerConfig,
    published: Cell<usize>,
    last: RefCell<Option<Arc<Metadata>>>,
}

impl Host for Recorder {
    fn config(&self) -> &BrokerConfig {
        &self.cfg
    }
    fn meta(&self) -> Arc<Metadata> {
        self.last.borrow().clone().unwrap_or_default()
    }
    async fn publish(&self, m: Arc<Metadata>) {
        self.published.set(self.published.get() + 1);
        *self.last.borrow_mut() = Some(m);
    }
    async fn push(&self, _shard: u16, _conn: u64, _cmd: RemotingCommand) {}
}

fn client() -> ClientRef {
    ClientRef {
        shard: 0,
        conn: 1,
        addr: "127.0.0.1:5".parse().expect("addr"),
        view: View::Main,
        verified: Default::default(),
    }
}

fn create(topic: &str, queues: u32) -> RemotingCommand {
    let mut c = RemotingCommand::new_request(request::UPDATE_AND_CREATE_TOPIC);
    c.ext_fields.insert("topic", topic);
    c.ext_fields.insert_display("readQueueNums", queues);
    c.ext_fields.insert_display("writeQueueNums", queues);
    c
}

fn delete(topic: &str) -> RemotingCommand {
    let mut c = RemotingCommand::new_request(request::DELETE_TOPIC_IN_BROKER);
    c.ext_fields.insert("topic", topic);
    c
}

#[test]
fn a_topic_change_that_cannot_be_persisted_is_undone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    run_on_executor("controller-topics", move || async move {
        let host = Recorder {
            cfg: BrokerConfig::default(),
            published: Cell::new(0),
            last: RefCell::new(None),
        };
        let c = Controller::new(root.clone(), 2, Vec::new());
        let config = root.join("config");
        assert_eq!(
            c.handle(&host, create("Kept", 4), &client()).await.map(|r| r.code),
            Some(response::SUCCESS)
        );
        assert_eq!(host.published.get(), 1);

        // The config directory cannot take files: every save fails.
        std::fs::remove_dir_all(&config).expect("rm config");
        std::fs::write(&config, b"not a directory").expect("block config");
        let r = c.handle(&host, create("Lost", 4), &client()).await.expect("reply");
        assert_eq!(r.code, response::SYSTEM_ERROR);
        assert!(
            r.remark
                .as_deref()
                .unwrap_or("")
                .contains("cannot persist topic config"),
            "{:?}",
            r.remark
        );
        assert!(
            !c.topics().contains_key("Lost"),
            "a refused creation stayed in the table"
        );
        // Growing an existing topic: refused, the old layout kept.
        let r = c.handle(&host, create("Kept", 8), &client()).await.expect("reply");
        assert_eq!(r.code, response::SYSTEM_ERROR);
        assert_eq!(c.topics()["Kept"].read_queue_nums, 4);
        // Deleting: refused, the topic kept.
        let r = c.handle(&host, delete("Kept"), &client()).await.expect("reply");
        assert_eq!(r.code, response::SYSTEM_ERROR);
        assert!(c.topics().contains_key("Kept"));
        assert_eq!(host.published.get(), 1, "a change not on disk was published");

        // Space (here: the directory) is back: the same requests succeed.
        std::fs::remove_file(&config).expect("unblock");
        assert_eq!(
            c.handle(&host, create("Lost", 4), &client()).await.map(|r| r.code),
            Some(response::SUCCESS)
        );
        assert_eq!(host.published.get(), 2);
        let last = host.meta();
        assert!(last.topic("Lost").is_some() && last.topic("Kept").is_some());
        let names: Vec<String> = std::fs::read_dir(&config)
            .expect("config")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    });
}

#[test]
fn a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    crate::broker::metadata::write_atomically(dir, "t.json", b"old").expect("first write");
    // The rename target is now a non-empty directory: the rename fails
    // after the temp file was written.
    std::fs::remove_file(dir.join("t.json")).expect("rm");
    std::fs::create_dir(dir.join("t.json")).expect("dir");
    std::fs::write(dir.join("t.json").join("x"), b"x").expect("fill");
    let e = crate::broker::metadata::write_atomically(dir, "t.json", b"new").expect_err("must fail");
    assert!(e.contains("t.json.tmp"), "{e}");
    assert!(!dir.join("t.json.tmp").exists(), "temp file left behind");
}

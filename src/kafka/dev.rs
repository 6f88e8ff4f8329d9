//! The embedded dev cluster: librdkafka's in-process mock cluster, for trying the service
//! without Kafka. Nothing it stores survives the process.
//!
//! The mock cluster handle is neither `Send` nor `Sync`, so it lives on a thread of its own
//! and takes commands over a channel.

use std::sync::mpsc;
use std::thread;

use rdkafka::mocking::MockCluster;
use tokio::sync::oneshot;

enum Command {
    CreateTopic {
        name: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// A running mock cluster; dropping it stops the cluster.
pub(super) struct DevCluster {
    commands: mpsc::Sender<Command>,
    bootstrap_servers: String,
    topic_partitions: i32,
}

impl DevCluster {
    /// Starts a mock cluster of `brokers` brokers whose topics get `topic_partitions`
    /// partitions when created on first use.
    pub fn start(brokers: i32, topic_partitions: i32) -> Result<DevCluster, String> {
        let (commands, inbox) = mpsc::channel::<Command>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<String, String>>();
        thread::Builder::new()
            .name("dev-kafka-cluster".into())
            .spawn(move || {
                let mock = match MockCluster::new(brokers) {
                    Ok(mock) => mock,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(mock.bootstrap_servers()));
                // Runs until the DevCluster (the only sender) is dropped.
                for command in inbox {
                    match command {
                        Command::CreateTopic { name, reply } => {
                            let result = mock
                                .create_topic(&name, topic_partitions, 1)
                                .map_err(|e| e.to_string());
                            let _ = reply.send(result);
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the dev cluster thread: {e}"))?;
        let bootstrap_servers = ready_rx
            .recv()
            .map_err(|_| "the dev cluster thread died".to_owned())??;
        Ok(DevCluster {
            commands,
            bootstrap_servers,
            topic_partitions,
        })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    pub fn topic_partitions(&self) -> i32 {
        self.topic_partitions
    }

    /// Creates `name` in the mock cluster (a no-op when it exists).
    pub async fn create_topic(&self, name: &str) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::CreateTopic {
                name: name.to_owned(),
                reply,
            })
            .map_err(|_| "the dev cluster has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the dev cluster has stopped".to_owned())?
    }
}

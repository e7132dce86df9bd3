//! A multi-member etcd cluster on loopback for failover tests.

use tempfile::TempDir;

use crate::member::{LaunchError, Member, MemberSpec, READY_TIMEOUT};
use crate::ports::free_ports;
use crate::server::PORT_RETRIES;

/// Running etcd members that form one cluster, each on its own free loopback ports and data
/// directory. Every member is killed with SIGKILL on drop (SIGTERM on a member that lost
/// quorum hangs for seconds).
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    // Dropped last: members must be dead before their data directories go.
    dir: TempDir,
}

impl EtcdCluster {
    /// Starts `size` members and waits until every one answers.
    ///
    /// # Panics
    /// If etcd is not installed or the cluster does not come up; the message carries the log.
    pub fn start(size: usize) -> EtcdCluster {
        assert!(size > 0, "a cluster needs at least one member");
        let dir = tempfile::Builder::new()
            .prefix("theseus-etcd-cluster-")
            .tempdir()
            .expect("create a temporary directory for etcd");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ports = free_ports(3 * size);
            let token = format!("theseus-test-{}-{}", std::process::id(), ports[0]);
            let initial_cluster = (0..size)
                .map(|i| format!("m{i}=http://127.0.0.1:{}", ports[3 * i + 1]))
                .collect::<Vec<_>>()
                .join(",");
            let mut members: Vec<Member> = (0..size)
                .map(|i| {
                    Member::new(MemberSpec {
                        name: format!("m{i}"),
                        client_port: ports[3 * i],
                        peer_port: ports[3 * i + 1],
                        metrics_port: ports[3 * i + 2],
                        data_dir: dir.path().join(format!("m{i}")),
                        log_file: dir.path().join(format!("m{i}.log")),
                        initial_cluster: initial_cluster.clone(),
                        cluster_token: token.clone(),
                        tls: None,
                        extra_client_address: None,
                    })
                })
                .collect();
            // Launch all before waiting: a member is healthy only once a quorum has elected
            // a leader.
            let result = members
                .iter_mut()
                .try_for_each(Member::launch)
                .and_then(|()| {
                    members
                        .iter_mut()
                        .try_for_each(|member| member.wait_ready(READY_TIMEOUT))
                });
            match result {
                Ok(()) => return EtcdCluster { members, dir },
                Err(LaunchError::PortTaken { .. }) if attempt < PORT_RETRIES => {
                    drop(members);
                    for i in 0..size {
                        let _ = std::fs::remove_dir_all(dir.path().join(format!("m{i}")));
                    }
                }
                Err(error) => panic!("{error}"),
            }
        }
    }

    /// How many members the cluster has (running or not).
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|member| member.spec.client_url())
            .collect()
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        self.members[i].spec.client_url()
    }

    /// Whether member `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.members[i].is_running()
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill_member(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again on its ports and data directory and waits until it answers
    /// (which needs a quorum of the other members).
    ///
    /// # Panics
    /// If it does not come back.
    pub fn restart_member(&mut self, i: usize) {
        let member = &mut self.members[i];
        member.kill();
        if let Err(error) = member
            .launch()
            .and_then(|()| member.wait_ready(READY_TIMEOUT))
        {
            panic!("restart of member {i}: {error}");
        }
    }

    /// Member `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        self.members[i].log()
    }

    /// The directory holding every member's data directory and log.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

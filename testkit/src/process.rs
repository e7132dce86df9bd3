//! Spawning etcd so that it dies with the test process.
//!
//! Every child is started with `PR_SET_PDEATHSIG = SIGKILL`, so a test process killed by the
//! runner (a timeout, `kill -9`) does not leave etcd behind. Linux delivers that signal when
//! the *thread* that forked the child exits, not the process: a child spawned from a tokio
//! `spawn_blocking` thread would be killed when that thread idles out, and one spawned from a
//! test thread would die with the test thread. So every spawn is handed to one spawner thread
//! that lives as long as the process; children are killed exactly when the process ends.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;

use nix::sys::signal::Signal;

struct SpawnRequest {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// The channel to the process-wide spawner thread, started on first use.
fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (sender, requests) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                // The thread never returns while the process lives: `SPAWNER` holds a sender
                // forever, so `recv` only fails at process exit.
                for mut request in requests {
                    let child = request.command.spawn();
                    // The requester may have given up (panicked); the child then dies with
                    // the process like every other.
                    let _ = request.reply.send(child);
                }
            })
            .expect("cannot start the thread that spawns etcd processes");
        sender
    })
}

/// Spawns `command` from the long-lived spawner thread with `PR_SET_PDEATHSIG = SIGKILL`.
pub(crate) fn spawn_bound_to_process(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid), allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|errno| io::Error::from_raw_os_error(errno as i32))?;
            // The parent may have died between fork and prctl: then no signal will come.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(io::Error::from_raw_os_error(
                    nix::errno::Errno::ESRCH as i32,
                ));
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::channel();
    spawner()
        .send(SpawnRequest { command, reply })
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread dropped the request"))?
}

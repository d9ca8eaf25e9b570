mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use mirai_core::{Host, Outcome};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

const DAEMONS: usize = 1000;
const TASKS: usize = 100_000;

/// 1,000 daemons need 2,000 descriptors here (both ends live in this process).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Connects and greets until welcomed: like a real daemon, it dials again
/// when the host closes the connection at once (so many daemons connecting
/// together go beyond the host's bound on connections in their greeting).
async fn welcomed(name: &str) -> (BufReader<OwnedReadHalf>, BufWriter<OwnedWriteHalf>) {
    loop {
        let Ok(stream) = UnixStream::connect(format!("\0{name}")).await else {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        };
        let (read, write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut writer = BufWriter::new(write);
        let greeted = async {
            writer.write_all(&SP_HEADER).await.ok()?;
            write_ipc_frame(&mut writer, HELLO, 0, hello_text().as_bytes())
                .await
                .ok()?;
            writer.flush().await.ok()?;
            let mut header = [0u8; 8];
            tokio::io::AsyncReadExt::read_exact(&mut reader, &mut header)
                .await
                .ok()?;
            assert_eq!(read_ipc_frame(&mut reader).await?.0, CHALLENGE);
            read_ipc_frame(&mut reader).await.map(|f| f.0)
        };
        match greeted.await {
            Some(kind) => {
                assert_eq!(kind, WELCOME);
                return (reader, writer);
            }
            None => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
        }
    }
}

/// Speaks the protocol on its own: answers every task at once with its
/// payload, and counts how often each task id was seen.
async fn simulated_daemon(name: String, seen: Arc<Vec<AtomicU8>>) {
    let (mut reader, mut writer) = welcomed(&name).await;
    while let Some((kind, id, payload)) = read_ipc_frame(&mut reader).await {
        match kind {
            TASK => {
                seen[id as usize].fetch_add(1, Ordering::Relaxed);
                write_ipc_frame(&mut writer, RESULT, id, &payload)
                    .await
                    .unwrap();
                writer.flush().await.unwrap();
            }
            EXIT => break,
            other => panic!("unexpected kind {other}"),
        }
    }
}

fn run(dispatcher: bool, tasks: usize) {
    raise_open_file_limit();
    let url = abstract_url();
    let host = Host::listen(host_options(&url, dispatcher)).unwrap();
    let name = url.trim_start_matches("abstract://").to_string();
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..=tasks).map(|_| AtomicU8::new(0)).collect());
    let daemons = test_runtime();
    let handles: Vec<_> = (0..DAEMONS)
        .map(|_| daemons.spawn(simulated_daemon(name.clone(), seen.clone())))
        .collect();
    assert_eq!(host.wait_connections(DAEMONS, PATIENCE * 3), DAEMONS);

    let started = Instant::now();
    let ids: Vec<u64> = (0..tasks as u64)
        .map(|i| host.submit(i.to_le_bytes().to_vec(), None))
        .collect();
    for (i, &id) in ids.iter().enumerate() {
        assert_eq!(
            outcome(&host, id),
            Outcome::Value((i as u64).to_le_bytes().to_vec())
        );
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{tasks} tasks through {DAEMONS} daemons (dispatcher = {dispatcher}): {elapsed:?}, {:.0} tasks/s",
        tasks as f64 / elapsed.as_secs_f64()
    );

    let status = host.status();
    assert_eq!(
        (status.awaiting, status.executing, status.completed),
        (0, 0, tasks as u64)
    );
    assert_eq!(status.connections, DAEMONS);
    assert_eq!(
        status.daemons.iter().map(|d| d.complete).sum::<u64>(),
        tasks as u64
    );
    if dispatcher {
        assert!(status.daemons.iter().all(|d| d.assigned == d.complete));
    }
    for &id in &ids {
        assert_eq!(seen[id as usize].load(Ordering::Relaxed), 1, "task {id}");
    }
    host.close(true);
    daemons.block_on(async {
        for handle in handles {
            handle.await.unwrap();
        }
    });
}

#[test]
fn thousand_daemons_hundred_thousand_tasks_with_dispatcher() {
    run(true, TASKS);
}

#[test]
fn thousand_daemons_direct_mode() {
    run(false, TASKS / 4);
}

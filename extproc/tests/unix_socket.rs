//! The extproc's optional Unix socket: replaces a stale file, accepts connections, and is
//! removed when the server stops. (Real Envoy calls the extproc over it in the e2e tests.)

use std::os::unix::fs::FileTypeExt;

use extproc::config::ConfigStore;
use extproc::{Options, Running, Server};

async fn start_on(path: &std::path::Path) -> extproc::Result<Running> {
    Server::start(
        Options {
            grpc_addr: "127.0.0.1:0".parse().expect("addr"),
            admin_addr: "127.0.0.1:0".parse().expect("addr"),
            grpc_unix: Some(path.to_path_buf()),
            ..Default::default()
        },
        ConfigStore::new(),
    )
    .await
}

#[tokio::test]
async fn the_unix_socket_replaces_a_stale_file_serves_and_is_removed_on_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("extproc.sock");
    std::fs::write(&path, b"left by a crashed run").expect("stale file");
    let running = start_on(&path).await.expect("start extproc");
    assert_eq!(running.unix_socket(), Some(path.as_path()));
    let kind = std::fs::metadata(&path).expect("socket file").file_type();
    assert!(kind.is_socket(), "{} is not a socket", path.display());
    tokio::net::UnixStream::connect(&path)
        .await
        .expect("connect to the extproc's Unix socket");
    drop(running);
    assert!(!path.exists(), "{} left behind", path.display());
}

#[tokio::test]
async fn a_unix_socket_in_a_missing_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing").join("extproc.sock");
    let err = start_on(&path).await.err().expect("no folder, no socket");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

//! Reaching a connection from a plain thread through its `ConnRef`.

mod common;

use common::*;
use std::{
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};
use uringws_engine::{
    protocol::{encoder::encode_shared, CloseCode, OpCode},
    ConnRef, Gone,
};

fn conn_ref_server() -> (TestServer, mpsc::Receiver<ConnRef>) {
    let (tx, rx) = mpsc::channel::<ConnRef>();
    let tx = Mutex::new(tx);
    let hooks = Hooks {
        open: Some(Arc::new(move |conn| {
            let handle = conn.handle();
            assert_eq!(handle.worker(), conn.id().worker());
            assert_eq!(handle.id(), conn.id());
            tx.lock().unwrap().send(handle).unwrap();
        })),
        ..Hooks::default()
    };
    (TestServer::start(test_config(), hooks), rx)
}

fn recv_ref(rx: &mpsc::Receiver<ConnRef>) -> ConnRef {
    rx.recv_timeout(WAIT)
        .expect("the handler sent its ConnRef on open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_thread_sends_through_conn_ref() {
    let (server, rx) = conn_ref_server();
    let mut client = RawClient::upgrade(server.addr).await;

    // Another thread, not the worker's and not tokio's.
    let thread = std::thread::spawn(move || {
        let conn = recv_ref(&rx);
        conn.send_text("from another thread").unwrap();
        conn.send_binary(vec![1u8, 2, 3]).unwrap();
        let many = conn.clone();
        for i in 0..100u32 {
            many.send_binary(i.to_be_bytes().to_vec()).unwrap();
        }
        conn.send_encoded(encode_shared(OpCode::Text, b"pre-encoded").unwrap())
            .unwrap();
        (conn, rx)
    });
    let (conn, rx) = within(
        WAIT,
        "sender thread",
        tokio::task::spawn_blocking(move || thread.join()),
    )
    .await
    .unwrap()
    .expect("sender thread");

    let frame = client.read_frame().await.unwrap();
    assert_eq!((frame.opcode, frame.text()), (0x1, "from another thread"));
    let frame = client.read_frame().await.unwrap();
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (0x2, &[1u8, 2, 3][..])
    );
    for i in 0..100u32 {
        let frame = client.read_frame().await.unwrap();
        assert_eq!(frame.payload, i.to_be_bytes(), "in the order sent");
    }
    let frame = client.read_frame().await.unwrap();
    assert_eq!((frame.opcode, frame.text()), (0x1, "pre-encoded"));

    // The client still talks to the handler as usual.
    client.send_frame(OpCode::Text, true, b"echo").await;
    assert_eq!(client.read_frame().await.unwrap().payload, b"echo");

    // Closing from the thread: close frame with the code and reason.
    std::thread::spawn(move || conn.close(CloseCode(4000), "closed remotely").unwrap())
        .join()
        .unwrap();
    let close = client.read_frame().await.unwrap();
    assert_eq!(close.close_code(), Some(4000));
    assert_eq!(&close.payload[2..], b"closed remotely");
    client.send_frame(OpCode::Close, true, &close.payload).await;
    let (rest, _) = client.read_to_end(WAIT).await;
    assert!(rest.is_empty());
    wait_until(WAIT, "close callback", || {
        server.recorder.closes().len() == 1
    })
    .await;
    assert_eq!(
        server.recorder.closes()[0],
        (4000, "closed remotely".to_owned())
    );
    drop(rx);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_conn_ref_reaches_nobody_and_gone_after_stop() {
    let (mut server, rx) = conn_ref_server();
    // Connections come and go, so slots are reused; a ConnRef of a closed
    // connection must not reach the connection that took its slot.
    let mut first = RawClient::upgrade(server.addr).await;
    let stale = recv_ref(&rx);
    first
        .send_frame(OpCode::Close, true, &1000u16.to_be_bytes())
        .await;
    assert!(first.read_frame().await.unwrap().is_close());
    wait_until(WAIT, "first closed", || server.recorder.closes().len() == 1).await;

    let mut clients = Vec::new();
    let mut refs = Vec::new();
    for _ in 0..4 {
        clients.push(RawClient::upgrade(server.addr).await);
        refs.push(recv_ref(&rx));
    }
    // A send to a connection that is gone is accepted and discarded.
    stale.send_text("stale").unwrap();
    stale.close(CloseCode::NORMAL, "stale").unwrap();
    for (i, conn) in refs.iter().enumerate() {
        conn.send_text(format!("fresh {i}")).unwrap();
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let frame = client.read_frame().await.unwrap();
        assert_eq!(frame.text(), format!("fresh {i}"), "only its own message");
        assert!(
            client
                .try_read_frame(Duration::from_millis(100))
                .await
                .is_none(),
            "nothing else arrives: the stale ConnRef reached nobody"
        );
    }
    assert_eq!(
        server.recorder.closes().len(),
        1,
        "the stale close closed nothing"
    );

    server.handle().shutdown();
    for client in &mut clients {
        let close = client.read_frame().await.unwrap();
        assert_eq!(close.close_code(), Some(1001));
        client.send_frame(OpCode::Close, true, &close.payload).await;
    }
    let joined = server.join(WAIT).await;
    assert!(
        joined < Duration::from_secs(2),
        "answered closes end the shutdown early: {joined:?}"
    );
    // Every worker is gone now.
    assert_eq!(refs[0].send_text("too late"), Err(Gone));
    assert_eq!(stale.send_binary(vec![0u8]), Err(Gone));
    assert_eq!(refs[1].close(CloseCode::NORMAL, ""), Err(Gone));
}

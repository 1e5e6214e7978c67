//! The S3 backend against a real MinIO: objects round-trip with the right headers, read
//! anonymously like a CDN origin would; refused credentials and missing buckets give
//! their own errors, without leaking secrets; an outage gives retryable errors, and an
//! upload retried until cancelled lands once the server is back; a playlist write whose
//! answer was lost does not stop `serve`'s stream.

mod support;

use std::time::Duration;

use bytes::Bytes;
use livestream::storage::{
    ErrorClass, InstrumentedStore, ObjectKind, RetryPolicy, S3Credentials, S3Settings, S3Store, SegmentFormat,
    StorageMetrics, Store, StoreError, retry,
};
use support::minio::MinioServer;

const SEGMENT: ObjectKind = ObjectKind::Segment(SegmentFormat::Fmp4);

async fn anonymous_get(url: &str) -> reqwest::Response {
    reqwest::Client::new().get(url).timeout(Duration::from_secs(10)).send().await.expect("GET")
}

#[tokio::test]
async fn objects_round_trip_and_are_served_anonymously_with_their_headers() {
    let minio = MinioServer::start().await;
    minio.create_bucket("live", true).await;
    minio.create_bucket("private", false).await;
    let store = minio.store("live");
    store.check().await.expect("the bucket is reachable");

    let objects = [
        ("default/demo/master.m3u8", ObjectKind::MasterPlaylist, &b"#EXTM3U\n#EXT-X-VERSION:7\n"[..]),
        ("default/demo/720p/index.m3u8", ObjectKind::MediaPlaylist, b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n"),
        ("default/demo/720p/init.mp4", ObjectKind::InitSegment, b"\0\0\0\x18ftypiso6"),
        ("default/demo/720p/seg_00000.m4s", SEGMENT, b"\0\0\0\x08moof segment bytes"),
        ("default/demo/720p/seg_00000.ts", ObjectKind::Segment(SegmentFormat::Ts), b"G@\x11\x10"),
        ("default/demo/vod.m3u8", ObjectKind::VodPlaylist, b"#EXTM3U\n#EXT-X-ENDLIST\n"),
    ];
    for (key, kind, body) in objects {
        store.put(key, Bytes::from_static(body), kind).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
    }
    for (key, kind, body) in objects {
        assert_eq!(store.get(key).await.unwrap().as_deref(), Some(body), "{key}");
        let response = anonymous_get(&format!("{}/live/{key}", minio.endpoint())).await;
        assert_eq!(response.status(), 200, "{key}");
        let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(header("content-type").as_deref(), Some(kind.content_type()), "{key}");
        assert_eq!(header("cache-control").as_deref(), Some(kind.cache_control()), "{key}");
        assert_eq!(response.bytes().await.unwrap(), body, "{key}");
    }

    // Playlists are rewritten in place.
    let playlist = "default/demo/720p/index.m3u8";
    let newer = Bytes::from_static(b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:1\n");
    store.put(playlist, newer.clone(), ObjectKind::MediaPlaylist).await.unwrap();
    assert_eq!(store.get(playlist).await.unwrap(), Some(newer));

    // A private bucket is not readable without credentials.
    minio.store("private").put("a.ts", Bytes::from_static(b"x"), SEGMENT).await.unwrap();
    assert_eq!(anonymous_get(&format!("{}/private/a.ts", minio.endpoint())).await.status(), 403);

    assert_eq!(store.get("default/demo/missing.m4s").await.unwrap(), None);
    store.put("default/demo2/seg_00000.m4s", Bytes::from_static(b"other stream"), SEGMENT).await.unwrap();
    assert_eq!(
        store.list("default/demo/720p", 3).await.unwrap(),
        ["default/demo/720p/index.m3u8", "default/demo/720p/init.mp4", "default/demo/720p/seg_00000.m4s"]
    );

    store.delete("default/demo/vod.m3u8").await.unwrap();
    assert_eq!(store.get("default/demo/vod.m3u8").await.unwrap(), None);
    store.delete("default/demo/vod.m3u8").await.expect("deleting a missing object succeeds");

    assert_eq!(store.delete_prefix("default/demo").await.unwrap(), 5);
    assert!(store.list("default/demo", 100).await.unwrap().is_empty());
    assert_eq!(
        store.list("default", 100).await.unwrap(),
        ["default/demo2/seg_00000.m4s"],
        "a sibling prefix was touched"
    );
    assert_eq!(store.delete_prefix("default/demo").await.unwrap(), 0);

    let missing = minio.store("no-such-bucket");
    let err = missing.check().await.unwrap_err();
    assert!(matches!(&err, StoreError::BucketMissing { bucket } if bucket == "no-such-bucket"), "{err:?}");
    let err = missing.put("a.ts", Bytes::from_static(b"x"), SEGMENT).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::BucketMissing, "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn refused_credentials_are_reported_without_leaking_them() {
    let minio = MinioServer::start().await;
    minio.create_bucket("live", true).await;
    let wrong_secret = "wrong-secret-0123456789";
    let cases = [
        (minio.access_key().to_string(), wrong_secret.to_string()),
        ("UNKNOWNKEYID0123".to_string(), minio.secret_key().to_string()),
    ];
    for (access_key, secret) in cases {
        let credentials = S3Credentials::from_keys(&access_key, &secret);
        let settings = S3Settings::new("live", "us-east-1", credentials).with_endpoint(minio.endpoint(), true);
        assert!(!format!("{settings:?}").contains(&secret), "Debug shows the secret");
        let store = S3Store::new(settings);
        assert!(!format!("{store:?}").contains(&secret), "Debug shows the secret");
        let errors = [
            store.check().await.unwrap_err(),
            store.put("a/seg.m4s", Bytes::from_static(b"x"), SEGMENT).await.unwrap_err(),
            store.get("a/seg.m4s").await.unwrap_err(),
        ];
        for err in errors {
            assert_eq!(err.class(), ErrorClass::AccessDenied, "{access_key}: {err:?}");
            assert!(!err.is_retryable(), "{err}");
            let message = format!("{err} {err:?}");
            for credential in [&secret, &access_key] {
                assert!(!message.contains(credential.as_str()), "the error shows a credential: {message}");
            }
        }
    }
}

#[tokio::test]
async fn uploads_retried_until_cancelled_land_after_an_outage() {
    let mut minio = MinioServer::start().await;
    minio.create_bucket("live", true).await;
    let metrics = StorageMetrics::new();
    let settings = minio.settings("live").with_timeouts(Duration::from_secs(2), Duration::from_secs(5));
    let store = InstrumentedStore::new(S3Store::new(settings), metrics.clone());
    store.put("s/index.m3u8", Bytes::from_static(b"#EXTM3U\n"), ObjectKind::MediaPlaylist).await.unwrap();

    minio.stop();
    let err = store.inner().check().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let err = store.put("s/seg_00001.m4s", Bytes::from_static(b"x"), SEGMENT).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::Unreachable, "{err:?}");
    assert!(err.is_retryable());

    // Uploads the segment until it lands, reporting each failed attempt.
    let (failures_tx, mut failures_rx) = tokio::sync::watch::channel(0u32);
    let (_cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let policy = RetryPolicy::until_cancelled().with_backoff(Duration::from_millis(50), Duration::from_millis(500));
    let upload = tokio::spawn({
        let store = store.clone();
        async move {
            let cancelled = async {
                let _ = cancelled.await;
            };
            retry(&policy, "put s/seg_00002.m4s", cancelled, || {
                let store = store.clone();
                let failures_tx = failures_tx.clone();
                async move {
                    let outcome = store.put("s/seg_00002.m4s", Bytes::from_static(b"segment 2"), SEGMENT).await;
                    if outcome.is_err() {
                        failures_tx.send_modify(|n| *n += 1);
                    }
                    outcome
                }
            })
            .await
        }
    });
    tokio::time::timeout(Duration::from_secs(20), failures_rx.wait_for(|n| *n >= 2))
        .await
        .expect("the upload did not fail twice while MinIO was down")
        .expect("upload task alive");
    assert!(!upload.is_finished(), "the upload gave up while MinIO was down");

    minio.restart().await;
    tokio::time::timeout(Duration::from_secs(30), upload)
        .await
        .expect("the upload did not land within 30 s of MinIO coming back")
        .expect("upload task")
        .expect("the upload lands");
    assert_eq!(store.get("s/seg_00002.m4s").await.unwrap().as_deref(), Some(&b"segment 2"[..]));
    assert_eq!(store.get("s/index.m3u8").await.unwrap().as_deref(), Some(&b"#EXTM3U\n"[..]), "data survived");
    assert_eq!(metrics.uploads(SEGMENT), 1);
    assert!(metrics.failures(SEGMENT, ErrorClass::Unreachable) >= 3);
}

/// A playlist write that MinIO carried out but whose answer never came back (the server
/// died, the connection broke) is retried; the retry's condition no longer holds, since the
/// object is already the one it writes. The worker takes that for its own write, not for
/// another writer's, and the stream goes on to its end.
#[test]
fn a_playlist_write_whose_answer_was_lost_does_not_stop_the_stream() {
    use support::lossy_proxy::LossyProxy;
    use support::media::{self, Push, Serve, fetch_consistent, push, wait_exit};

    let _serial = media::serial();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let minio = runtime.block_on(MinioServer::start());
    runtime.block_on(minio.create_bucket("live", true));
    let upstream = minio.endpoint().trim_start_matches("http://").parse().expect("MinIO's address");
    // The third conditional write of a media playlist loses its answer.
    let proxy = LossyProxy::start(upstream, &["PUT /", "/index.m3u8", "If-Match:"], 3);
    let endpoint = format!("--s3-endpoint=http://127.0.0.1:{}", proxy.port);
    let args = ["--rendition", "90p:160x90:100", "--segment-duration", "1", "--reconnect-grace", "1"];
    let serve = Serve::start(
        &[&args[..], &["--s3-bucket", "live", "--s3-path-style", &endpoint]].concat(),
        &[("AWS_ACCESS_KEY_ID", minio.access_key()), ("AWS_SECRET_ACCESS_KEY", minio.secret_key())],
    );
    let logs = tempfile::tempdir().unwrap();
    let mut pusher = push(&serve.rtmp_url("live", "demo"), &Push::default(), &logs.path().join("push.log"));
    assert!(wait_exit(&mut pusher, Duration::from_secs(40)), "{}", pusher.log_tail(2000));

    let base = format!("{}/live/live/demo", minio.endpoint());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let playlists = loop {
        if let Some(playlists) = fetch_consistent(&base).filter(|p| p.iter().all(|(_, p)| p.ended)) {
            break playlists;
        }
        assert!(std::time::Instant::now() < deadline, "no ended playlists within 30 s:\n{}", serve.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(proxy.lost(), 1, "the proxy lost no answer ({} requests matched)", proxy.matched());
    let log = serve.log();
    assert!(!log.contains("no longer writes the stream"), "the worker took its own write for another's:\n{log}");
    let seconds: f64 = playlists[0].1.segments.iter().map(|s| s.1).sum();
    assert!(seconds >= 5.0, "{seconds} s of a 6 s push in the playlist: {playlists:?}");
    let errors = media::decode_errors(&format!("{base}/{}", playlists[0].0), "0");
    assert!(errors.trim().is_empty(), "{errors}");
}

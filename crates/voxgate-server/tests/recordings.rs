//! Recordings and transcripts through the calls API: a recording written
//! with `write_recording`, a record and turns written through the store,
//! then `GET /api/calls/{call_sid}` and `GET /api/calls/{call_sid}/recording`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestServer, http_get};
use serde_json::{Value, json};
use voxgate_core::audio::{CallRecorder, SampleRate, parse_wav};
use voxgate_core::ids::CallSid;
use voxgate_server::recordings::{self, write_recording};
use voxgate_store::{CallRecord, TranscriptTurn, TurnRole};

fn sid(raw: &str) -> CallSid {
    CallSid::new(raw).expect("valid call sid")
}

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// 200 ms of a call at 8 kHz: the caller says something for 100 ms, the
/// agent answers with 50 ms while the caller is quiet.
fn a_short_call() -> CallRecorder {
    let mut rec = CallRecorder::new(SampleRate::HZ_8000);
    rec.push_caller(&[1000; 800]);
    rec.push_agent(&[-2000; 400]);
    rec.push_caller(&[0; 800]);
    rec
}

fn turn(call_sid: &CallSid, seq: u32, role: TurnRole, text: &str) -> TranscriptTurn {
    TranscriptTurn {
        call_sid: call_sid.clone(),
        seq,
        role,
        text: text.to_owned(),
        started_ms: i64::from(seq) * 100,
        ended_ms: i64::from(seq) * 100 + 90,
        interrupted: seq == 1,
    }
}

/// A server whose recordings go to a fresh directory (not created yet).
async fn start() -> (TestServer, PathBuf) {
    let dir = std::env::temp_dir().join(format!("voxgate-rec-{}", uuid::Uuid::new_v4()));
    let recordings = dir.join("recordings");
    let configured = recordings.clone();
    let server = TestServer::start_with(move |c| c.recordings_dir = configured).await;
    (server, recordings)
}

/// Stores `record` and `turns` the way a call does: through the writer.
async fn store(server: &TestServer, record: CallRecord, turns: Vec<TranscriptTurn>) {
    let state = server.handle.app_state();
    state.records.submit(record);
    for turn in turns {
        state.records.submit_turn(turn);
    }
    server
        .handle
        .flush_records(Duration::from_secs(10))
        .await
        .expect("records flushed");
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_owned()
}

#[tokio::test]
async fn a_call_shows_its_transcript_and_serves_its_recording() {
    let (server, dir) = start().await;
    let call = sid("CA1");
    let path = write_recording(&dir, &call, a_short_call())
        .await
        .expect("recording written");
    assert_eq!(
        path,
        dir.canonicalize().expect("dir created").join("CA1.wav")
    );
    let turns = vec![
        turn(
            &call,
            0,
            TurnRole::Assistant,
            "Hello, you're through to voxgate.",
        ),
        turn(&call, 1, TurnRole::User, "Hi, I'd like to book"),
        turn(&call, 2, TurnRole::Assistant, "Of course."),
    ];
    let record = CallRecord {
        recording_path: Some(path_text(&path)),
        ..CallRecord::started(call.clone(), 1_700_000_000_000)
    };
    store(&server, record, turns).await;

    let (status, body) = http_get(server.addr, "/api/calls/CA1").await;
    assert_eq!(status, 200, "{body}");
    let view = json_body(&body);
    assert_eq!(view["call_sid"], "CA1");
    assert_eq!(view["recording_url"], "/api/calls/CA1/recording");
    assert!(
        view.get("recording_path").is_none(),
        "server paths stay private: {view}"
    );
    let transcript = view["transcript"].as_array().expect("a transcript array");
    assert_eq!(transcript.len(), 3, "{view}");
    assert_eq!(
        transcript[1],
        json!({
            "call_sid": "CA1",
            "seq": 1,
            "role": "user",
            "text": "Hi, I'd like to book",
            "started_ms": 100,
            "ended_ms": 190,
            "interrupted": true,
        })
    );
    assert_eq!(transcript[0]["role"], "assistant");

    let (status, head, bytes) =
        common::http_get_bytes(server.addr, "/api/calls/CA1/recording").await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: audio/wav"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", bytes.len())),
        "{head}"
    );
    assert!(
        head.contains("content-disposition: inline; filename=\"ca1.wav\""),
        "{head}"
    );
    assert_eq!(
        bytes,
        std::fs::read(&path).expect("file"),
        "served as written"
    );
    let wav = parse_wav(&bytes).expect("a valid WAV");
    assert_eq!(
        (wav.sample_rate, wav.channels, wav.frames()),
        (SampleRate::HZ_8000, 2, 1600)
    );
    // Caller left, agent right, the answer right after the question.
    assert_eq!(&wav.samples[1598..1602], [1000, 0, 0, -2000]);

    server.stop().await;
    std::fs::remove_dir_all(dir.parent().expect("temp parent")).ok();
}

#[tokio::test]
async fn missing_calls_and_recordings_are_404_in_the_error_shape() {
    let (server, dir) = start().await;
    let not_found = |status: u16, body: &str| {
        assert_eq!(status, 404, "{body}");
        let error = &json_body(body)["error"];
        assert_eq!(error["code"], "not_found", "{body}");
        assert!(error["message"].is_string(), "{body}");
    };

    // No such call.
    let (status, _, body) = common::http_get_bytes(server.addr, "/api/calls/CA404/recording").await;
    not_found(status, &String::from_utf8_lossy(&body));

    // A call without a recording, and so far without a transcript.
    store(&server, CallRecord::started(sid("CA2"), 1), Vec::new()).await;
    let (status, body) = http_get(server.addr, "/api/calls/CA2").await;
    assert_eq!(status, 200, "{body}");
    let view = json_body(&body);
    assert_eq!(view["transcript"], json!([]));
    assert!(view.get("recording_url").is_none(), "{view}");
    let (status, _, body) = common::http_get_bytes(server.addr, "/api/calls/CA2/recording").await;
    not_found(status, &String::from_utf8_lossy(&body));

    // A recording whose file has since been removed.
    let path = write_recording(&dir, &sid("CA3"), a_short_call())
        .await
        .expect("written");
    let record = CallRecord {
        recording_path: Some(path_text(&path)),
        ..CallRecord::started(sid("CA3"), 1)
    };
    store(&server, record, Vec::new()).await;
    std::fs::remove_file(&path).expect("remove");
    let (status, body) = http_get(server.addr, "/api/calls/CA3").await;
    assert_eq!(status, 200, "{body}");
    assert!(json_body(&body).get("recording_url").is_none(), "{body}");
    let (status, _, body) = common::http_get_bytes(server.addr, "/api/calls/CA3/recording").await;
    not_found(status, &String::from_utf8_lossy(&body));

    server.stop().await;
    std::fs::remove_dir_all(dir.parent().expect("temp parent")).ok();
}

#[tokio::test]
async fn paths_outside_the_recordings_dir_are_never_served() {
    let (server, dir) = start().await;
    std::fs::create_dir_all(&dir).expect("recordings dir");
    // A readable file just outside the directory, reached three ways.
    let outside = dir.parent().expect("temp parent").join("secret.wav");
    std::fs::write(&outside, b"RIFF-not-for-you").expect("write");
    let sneaky = [
        path_text(&outside),
        format!("{}/../secret.wav", path_text(&dir)),
        "/etc/passwd".to_owned(),
    ];
    #[cfg(unix)]
    let sneaky = {
        let link = dir.join("link.wav");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        let mut all = sneaky.to_vec();
        all.push(path_text(&link));
        all
    };
    for (i, stored) in sneaky.iter().enumerate() {
        let call = format!("CAX{i}");
        let record = CallRecord {
            recording_path: Some(stored.clone()),
            ..CallRecord::started(sid(&call), 1)
        };
        store(&server, record, Vec::new()).await;
        let (status, _, body) =
            common::http_get_bytes(server.addr, &format!("/api/calls/{call}/recording")).await;
        assert_eq!(status, 404, "{stored} was served");
        assert!(
            !String::from_utf8_lossy(&body).contains("not-for-you"),
            "{stored}"
        );
        let (_, body) = http_get(server.addr, &format!("/api/calls/{call}")).await;
        assert!(
            json_body(&body).get("recording_url").is_none(),
            "{stored}: {body}"
        );
    }

    server.stop().await;
    std::fs::remove_dir_all(dir.parent().expect("temp parent")).ok();
}

#[tokio::test]
async fn odd_call_ids_get_a_plain_file_name_and_a_working_url() {
    let (server, dir) = start().await;
    let call = sid("../CA/9");
    let path = write_recording(&dir, &call, a_short_call())
        .await
        .expect("written");
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some("%2E%2E%2FCA%2F9.wav")
    );
    assert_eq!(
        path.parent(),
        Some(dir.canonicalize().expect("dir").as_path())
    );
    let record = CallRecord {
        recording_path: Some(path_text(&path)),
        ..CallRecord::started(call.clone(), 1)
    };
    store(&server, record, Vec::new()).await;

    let url = recordings::url(&call);
    assert_eq!(url, "/api/calls/%2E%2E%2FCA%2F9/recording");
    let (status, body) = http_get(server.addr, "/api/calls/%2E%2E%2FCA%2F9").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_body(&body)["recording_url"], url.as_str());
    let (status, head, bytes) = common::http_get_bytes(server.addr, &url).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(parse_wav(&bytes).expect("WAV").frames(), 1600);

    server.stop().await;
    std::fs::remove_dir_all(dir.parent().expect("temp parent")).ok();
}

//! Twilio's REST API and webhooks against the fake Twilio: outbound calls,
//! status callbacks, signature checks, hang-up and transfer.

mod common;

use std::time::Duration;

use common::{TestServer, http_exchange, http_post_form, json_request};
use serde_json::Value;
use voxgate_core::ids::CallSid;
use voxgate_providers::Secret;
use voxgate_providers::cloud::BaseUrl;
use voxgate_providers::supervisor::VendorPolicy;
use voxgate_server::config::{PublicUrl, TwilioConfig};
use voxgate_server::twilio_api::{TwilioApi, TwilioError};
use voxgate_testkit::fakes::twilio::{FakeTwilio, Fault, Proxy, Signing};
use voxgate_testkit::{TwilioCaller, close_code, send_text, ulaw_silence_frame};

const ACCOUNT: &str = voxgate_testkit::ACCOUNT_SID;
const TOKEN: &str = "auth-token-5e1f9c";
const PUBLIC: &str = "https://voice.example.com/vg";
const STATUS_URL: &str = "https://voice.example.com/vg/twilio/status";

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn twilio_config(fake: &FakeTwilio, token: &str) -> TwilioConfig {
    TwilioConfig {
        account_sid: Some(ACCOUNT.to_owned()),
        auth_token: Some(Secret::new(token)),
        base_url: BaseUrl::parse(&fake.base_url()).expect("the fake's URL"),
    }
}

/// A server on the fake Twilio, reached by Twilio at [`PUBLIC`].
async fn server_on(fake: &FakeTwilio) -> TestServer {
    server_with_token(fake, TOKEN).await
}

async fn server_with_token(fake: &FakeTwilio, token: &str) -> TestServer {
    let twilio = twilio_config(fake, token);
    TestServer::start_with(|config| {
        config.public_url = Some(PublicUrl::parse(PUBLIC).expect("a valid public URL"));
        config.twilio = twilio;
    })
    .await
}

/// A client with fast retries, for the fake's faults.
fn api(fake: &FakeTwilio) -> TwilioApi {
    let policy = VendorPolicy {
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        ..VendorPolicy::default()
    };
    TwilioApi::from_config(&twilio_config(fake, TOKEN), policy)
        .expect("client builds")
        .expect("configured")
}

/// `POST /api/calls` with `body`: status, lower-cased head, JSON body.
async fn place_call(server: &TestServer, body: &str) -> (u16, String, Value) {
    let (status, head, body) = http_exchange(
        server.addr,
        json_request(server.addr, "POST", "/api/calls", body),
    )
    .await;
    (status, head, json(&body))
}

/// Places a call to +14155550199 from +14155550100; returns its SID.
async fn placed_call(server: &TestServer) -> String {
    let (status, _, body) = place_call(
        server,
        r#"{"to": "(415) 555-0199", "from": "+1 415 555 0100"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["call_sid"].as_str().expect("a call_sid").to_owned()
}

/// Twilio's way to the server: [`PUBLIC`] is served by the test server.
fn proxy(server: &TestServer) -> Proxy {
    Proxy {
        public_base: PUBLIC.to_owned(),
        addr: server.addr,
    }
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn an_outbound_call_is_placed_with_stream_twiml_and_recorded_queued() {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let server = server_on(&fake).await;
    assert!(server.handle.app_state().twilio.is_some());

    let (status, head, body) = place_call(
        &server,
        r#"{"to": "(415) 555-0199", "from": "+1 415 555 0100"}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let call_sid = body["call_sid"].as_str().expect("a call_sid");
    assert!(call_sid.starts_with("CA"), "{body}");
    assert_eq!(body["status"], "queued");
    assert!(
        head.contains(&format!(
            "location: /api/calls/{}",
            call_sid.to_ascii_lowercase()
        )),
        "{head}"
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let create = &requests[0];
    assert!(
        create.authorized,
        "Basic auth with the account's credentials"
    );
    assert_eq!(
        create.path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls.json")
    );
    assert_eq!(create.get("To"), Some("+14155550199"));
    assert_eq!(create.get("From"), Some("+14155550100"));
    assert_eq!(create.get("StatusCallback"), Some(STATUS_URL));
    assert_eq!(create.get("StatusCallbackMethod"), Some("POST"));
    assert_eq!(
        create.all("StatusCallbackEvent"),
        ["initiated", "ringing", "answered", "completed"]
    );
    assert_eq!(
        create.get("Twiml"),
        Some(
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://voice.example.com/vg/stream"><Parameter name="from" value="+14155550100"/><Parameter name="to" value="+14155550199"/><Parameter name="persona" value="default"/></Stream></Connect></Response>"#
        )
    );

    let record = server.record(call_sid).await;
    assert_eq!(record["direction"], "outbound");
    assert_eq!(record["carrier_status"], "queued");
    assert_eq!(record["from"], "+14155550100");
    assert_eq!(record["to"], "+14155550199");
    assert_eq!(record["persona"], "default");
    server.stop().await;
}

#[tokio::test]
async fn status_callbacks_move_the_call_forward_and_the_stream_shares_its_record() {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let server = server_on(&fake).await;
    let call_sid = placed_call(&server).await;
    let status_of = |record: &Value| record["carrier_status"].as_str().map(str::to_owned);

    for status in ["initiated", "ringing", "in-progress"] {
        let answer = fake
            .send_status_callback(&proxy(&server), &call_sid, status, None)
            .await;
        assert_eq!(answer, 204, "{status}");
        let record = server.record(&call_sid).await;
        assert_eq!(status_of(&record).as_deref(), Some(status));
    }
    // A late `ringing` is accepted and ignored.
    assert_eq!(
        fake.send_status_callback(&proxy(&server), &call_sid, "ringing", None)
            .await,
        204
    );
    assert_eq!(
        status_of(&server.record(&call_sid).await).as_deref(),
        Some("in-progress")
    );

    // The answered call's media stream carries the same CallSid.
    let tag = call_sid.strip_prefix("CA").expect("a CA sid");
    let mut caller = TwilioCaller::new(tag);
    let mut stream = voxgate_testkit::connect_signed(
        server.addr,
        "/stream",
        &format!("{}/stream", PUBLIC.replace("https://", "wss://")),
        TOKEN,
    )
    .await;
    send_text(&mut stream, caller.connected()).await;
    send_text(
        &mut stream,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    send_text(&mut stream, caller.media(&ulaw_silence_frame())).await;
    send_text(&mut stream, caller.stop()).await;
    assert_eq!(close_code(&mut stream).await, Some(1000));
    server
        .eventually("the call ended", |h| h.active_calls() == 0)
        .await;

    assert_eq!(
        fake.send_status_callback(&proxy(&server), &call_sid, "completed", Some(42))
            .await,
        204
    );
    assert_eq!(
        fake.send_status_callback(&proxy(&server), &call_sid, "in-progress", None)
            .await,
        204,
        "a stale callback is not an error"
    );

    let record = server.record(&call_sid).await;
    assert_eq!(record["stream_sid"], caller.stream_sid.as_str());
    assert_eq!(record["disposition"], "completed");
    assert_eq!(record["direction"], "outbound");
    assert_eq!(record["carrier_status"], "completed");
    assert_eq!(record["carrier_duration_s"], 42);
    assert!(record["ended_at"].is_string(), "{record}");
    let (status, body) = common::http_get(server.addr, "/api/calls").await;
    assert_eq!(status, 200);
    let calls = json(&body)["calls"].as_array().expect("calls").len();
    assert_eq!(calls, 1, "one record for the call and its stream: {body}");
    server.stop().await;
}

#[tokio::test]
async fn status_callbacks_need_twilios_signature() {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let server = server_on(&fake).await;
    let call_sid = placed_call(&server).await;
    let completed = form(&[
        ("AccountSid", ACCOUNT),
        ("CallSid", &call_sid),
        ("CallStatus", "completed"),
        ("CallDuration", "7"),
    ]);

    for signing in [
        Signing::Unsigned,
        Signing::WithToken("forged".to_owned()),
        Signing::ForUrl("https://elsewhere.example.com/vg/twilio/status".to_owned()),
    ] {
        let (status, body) = fake
            .post_webhook(&proxy(&server), STATUS_URL, &completed, signing.clone())
            .await;
        assert_eq!(status, 403, "{signing:?}: {body}");
        assert_eq!(json(&body)["error"]["code"], "forbidden");
    }
    // A signature over other parameters does not cover these.
    let mut tampered = completed.clone();
    tampered.push(("Extra".to_owned(), "1".to_owned()));
    let signature = voxgate_core::twilio_signature::sign(
        TOKEN,
        STATUS_URL,
        completed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let body: String = tampered
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let request = format!(
        "POST /twilio/status HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {signature}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    let (status, _, _) = http_exchange(server.addr, request).await;
    assert_eq!(status, 403);
    assert_eq!(server.record(&call_sid).await["carrier_status"], "queued");

    let (status, body) = fake
        .post_webhook(&proxy(&server), STATUS_URL, &completed, Signing::Valid)
        .await;
    assert_eq!(status, 204, "{body}");
    let record = server.record(&call_sid).await;
    assert_eq!(record["carrier_status"], "completed");
    assert_eq!(record["carrier_duration_s"], 7);
    server.stop().await;
}

#[tokio::test]
async fn status_callbacks_with_unknown_statuses_are_refused() {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let server = server_on(&fake).await;
    let call_sid = placed_call(&server).await;
    for (params, what) in [
        (
            form(&[("CallSid", &call_sid), ("CallStatus", "teleported")]),
            "teleported",
        ),
        (form(&[("CallSid", &call_sid)]), "CallStatus"),
        (form(&[("CallStatus", "ringing")]), "CallSid"),
        (
            form(&[
                ("CallSid", &call_sid),
                ("CallStatus", "completed"),
                ("CallDuration", "-3"),
            ]),
            "CallDuration",
        ),
    ] {
        let (status, body) = fake
            .post_webhook(&proxy(&server), STATUS_URL, &params, Signing::Valid)
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(what), "{what} in {body}");
    }
    assert_eq!(server.record(&call_sid).await["carrier_status"], "queued");
    server.stop().await;
}

#[tokio::test]
async fn twiml_checks_signatures_only_when_a_token_is_configured() {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let server = server_on(&fake).await;
    let voice = form(&[
        ("CallSid", "CAinbound1"),
        ("From", "+14155550100"),
        ("To", "+14155550199"),
    ]);
    let url = format!("{PUBLIC}/twiml?persona=sales");
    let (status, body) = fake
        .post_webhook(&proxy(&server), &url, &voice, Signing::Unsigned)
        .await;
    assert_eq!(status, 403, "{body}");
    // The query is part of what Twilio signs.
    let (status, _) = fake
        .post_webhook(
            &proxy(&server),
            &format!("{PUBLIC}/twiml"),
            &voice,
            Signing::Valid,
        )
        .await;
    assert_eq!(status, 200, "no query, signed without one");
    let (status, body) = fake
        .post_webhook(&proxy(&server), &url, &voice, Signing::Valid)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#"<Stream url="wss://voice.example.com/vg/stream">"#),
        "{body}"
    );
    assert!(
        body.contains(r#"<Parameter name="persona" value="sales"/>"#),
        "{body}"
    );
    server.stop().await;

    let open = TestServer::start().await;
    let (status, body) = http_post_form(
        open.addr,
        "/twiml",
        "CallSid=CAinbound2&From=%2B14155550100&To=%2B14155550199",
    )
    .await;
    assert_eq!(status, 200, "without a token /twiml is open: {body}");
    open.stop().await;
}

#[tokio::test]
async fn hang_up_ends_a_call_and_an_ended_call_counts_as_hung_up() {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let twilio = api(&fake);
    fake.add_call("CAlive1", "+14155550100", "+14155550199");
    let live = CallSid::new("CAlive1").expect("sid");

    twilio.hang_up(&live).await.expect("hung up");
    assert_eq!(fake.call("CAlive1").expect("the call").status, "completed");
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/CAlive1.json")
    );
    assert_eq!(requests[0].form, form(&[("Status", "completed")]));
    assert!(requests[0].authorized);

    // Twilio answers 404 (code 20404) for an ended or unknown call.
    twilio.hang_up(&live).await.expect("already ended");
    twilio
        .hang_up(&CallSid::new("CAnever").expect("sid"))
        .await
        .expect("unknown");
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn transfer_dials_the_number_with_twiml() {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let twilio = api(&fake);
    fake.add_call("CAlive2", "+14155550100", "+14155550199");
    let live = CallSid::new("CAlive2").expect("sid");

    twilio
        .transfer(&live, "(415) 555-0123")
        .await
        .expect("transferred");
    let dial =
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+14155550123</Dial></Response>"#;
    assert_eq!(fake.requests()[0].form, form(&[("Twiml", dial)]));
    assert_eq!(
        fake.call("CAlive2").expect("the call").twiml.as_deref(),
        Some(dial)
    );

    let error = twilio
        .transfer(&live, "the front desk")
        .await
        .expect_err("not a number");
    assert!(matches!(error, TwilioError::NotAPhoneNumber(_)), "{error}");
    assert_eq!(fake.requests().len(), 1, "nothing sent for a bad number");

    twilio.hang_up(&live).await.expect("hung up");
    let error = twilio
        .transfer(&live, "+14155550123")
        .await
        .expect_err("the call is over");
    assert!(
        matches!(
            error,
            TwilioError::Rejected {
                status: 404,
                code: Some(20404),
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn rate_limits_are_retried_and_server_errors_only_for_hang_ups() {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let twilio = api(&fake);
    fake.add_call("CAlive3", "+14155550100", "+14155550199");
    let live = CallSid::new("CAlive3").expect("sid");

    fake.fail_next(Fault::ServerError);
    fake.fail_next(Fault::RateLimited {
        retry_after_s: Some(0),
    });
    twilio.hang_up(&live).await.expect("third try");
    assert_eq!(fake.requests().len(), 3);

    let call = voxgate_server::twilio_api::NewCall {
        to: "+14155550199".to_owned(),
        from: "+14155550100".to_owned(),
        instructions: voxgate_server::twilio_api::CallInstructions::Url(
            "https://voice.example.com/vg/twiml".to_owned(),
        ),
        status_callback: None,
    };
    fake.fail_next(Fault::RateLimited {
        retry_after_s: None,
    });
    let created = twilio.create_call(&call).await.expect("second try");
    let requests = fake.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(
        requests[4].get("Url"),
        Some("https://voice.example.com/vg/twiml")
    );
    assert_eq!(requests[4].get("Method"), Some("POST"));
    assert!(fake.call(created.as_str()).is_some());

    // A 500 on a create may have dialled: not repeated.
    fake.fail_next(Fault::ServerError);
    let error = twilio.create_call(&call).await.expect_err("500");
    assert!(matches!(error, TwilioError::Unavailable(_)), "{error}");
    assert_eq!(fake.requests().len(), 6);
}

#[tokio::test]
async fn outbound_calls_answer_503_without_twilio() {
    let server = TestServer::start().await;
    let (status, _, body) =
        place_call(&server, r#"{"to": "+14155550199", "from": "+14155550100"}"#).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "twilio_not_configured");
    let message = body["error"]["message"].as_str().expect("a message");
    for name in [
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "VOXGATE_PUBLIC_URL",
    ] {
        assert!(message.contains(name), "{name} in {message}");
    }
    assert!(server.handle.app_state().twilio.is_none());
    server.stop().await;

    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let twilio = twilio_config(&fake, TOKEN);
    let no_public_url = TestServer::start_with(|config| config.twilio = twilio).await;
    let (status, _, body) = place_call(
        &no_public_url,
        r#"{"to": "+14155550199", "from": "+14155550100"}"#,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.contains("VOXGATE_PUBLIC_URL"), "{message}");
    assert!(!message.contains("TWILIO_AUTH_TOKEN"), "{message}");
    assert!(fake.requests().is_empty());
    no_public_url.stop().await;
}

#[tokio::test]
async fn bad_outbound_requests_never_reach_twilio() {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let server = server_on(&fake).await;
    for (body, expected) in [
        (r#"{"to": "front desk", "from": "+14155550100"}"#, "`to`"),
        (r#"{"to": "+14155550199", "from": "anonymous"}"#, "`from`"),
        (
            r#"{"to": "+14155550199", "from": "+14155550100", "persona": "nobody"}"#,
            "nobody",
        ),
    ] {
        let (status, _, answer) = place_call(&server, body).await;
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"]["message"].as_str().expect("a message");
        assert!(message.contains(expected), "{expected} in {message}");
    }
    let (status, _, answer) = place_call(&server, r#"{"to": "+14155550199"}"#).await;
    assert_eq!(status, 422, "{answer}");
    assert!(fake.requests().is_empty());

    fake.fail_next(Fault::ServerError);
    let (status, _, answer) =
        place_call(&server, r#"{"to": "+14155550199", "from": "+14155550100"}"#).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "twilio_unavailable");
    let (_, list) = common::http_get(server.addr, "/api/calls").await;
    assert_eq!(
        json(&list)["calls"],
        serde_json::json!([]),
        "nothing recorded"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_auth_token_never_appears_in_answers_or_errors() {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let wrong = "wrong-token-d41d8c";
    let server = server_with_token(&fake, wrong).await;
    let (status, _, body) =
        place_call(&server, r#"{"to": "+14155550199", "from": "+14155550100"}"#).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "twilio_rejected");
    let text = body.to_string();
    assert!(text.contains("20003"), "Twilio's code is passed on: {text}");
    assert!(!text.contains(wrong) && !text.contains(TOKEN), "{text}");
    assert!(!fake.requests()[0].authorized);

    let state = server.handle.app_state();
    let shown = format!("{:?} {:?}", state.config, state.twilio);
    assert!(!shown.contains(wrong), "{shown}");
    server.stop().await;

    let mut config = twilio_config(&fake, wrong);
    config.base_url = BaseUrl::parse("http://127.0.0.1:9").expect("a URL");
    let unreachable = TwilioApi::from_config(
        &config,
        VendorPolicy {
            retries: 0,
            ..VendorPolicy::default()
        },
    )
    .expect("builds")
    .expect("configured");
    let error = unreachable
        .hang_up(&CallSid::new("CAx").expect("sid"))
        .await
        .expect_err("nothing listens on port 9");
    let text = format!("{error} {error:?}");
    assert!(!text.contains(wrong), "{text}");
}

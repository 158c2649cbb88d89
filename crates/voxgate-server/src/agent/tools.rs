//! The personas' HTTP tools: the model's arguments are POSTed as JSON to the
//! tool's URL, and the answer (or what went wrong) goes back to the model as
//! text. A tool never fails the call: the model hears the error and tells
//! the caller.

use std::sync::OnceLock;

use voxgate_core::persona::HttpToolSpec;

use crate::metrics::TOOL_CALLS;

/// Longest answer given to the model; tools answering more are cut.
const MAX_ANSWER_CHARS: usize = 4000;

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(concat!("voxgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

/// Calls `tool` with the model's `arguments` (JSON text); returns what the
/// model is told.
pub(super) async fn run_http_tool(tool: &HttpToolSpec, arguments: &str) -> String {
    let arguments = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    if serde_json::from_str::<serde_json::Value>(arguments).is_err() {
        metrics::counter!(TOOL_CALLS, "outcome" => "bad_arguments").increment(1);
        return format!("error: the arguments are not valid JSON: {arguments}");
    }
    let request = client()
        .post(&tool.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(arguments.to_owned())
        .timeout(tool.timeout());
    let (outcome, answer) = match request.send().await {
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(MAX_ANSWER_CHARS).collect();
            if status.is_success() {
                ("ok", body)
            } else {
                (
                    "http_error",
                    format!("error: the tool answered HTTP {status}: {body}"),
                )
            }
        }
        Err(e) if e.is_timeout() => (
            "timeout",
            format!(
                "error: the tool did not answer within {} ms",
                tool.timeout_ms
            ),
        ),
        Err(e) => (
            "unreachable",
            format!("error: the tool could not be reached: {}", e.without_url()),
        ),
    };
    tracing::info!(tool = %tool.name, outcome, "tool called");
    metrics::counter!(TOOL_CALLS, "outcome" => outcome).increment(1);
    answer
}

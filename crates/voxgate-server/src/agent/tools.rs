//! The personas' HTTP tools: the model's arguments are POSTed as JSON to the
//! tool's URL, and the answer (or what went wrong) goes back to the model as
//! text. A tool never fails the call: the model hears the error and tells
//! the caller.
//!
//! Tool URLs come from whoever can write personas, and the requests leave
//! from inside the server's network, so every request goes through the
//! [outbound policy](voxgate_core::outbound): the URL's host as written is
//! checked before sending, and a host name is checked on the addresses it
//! resolves to, inside the client's connector, so the addresses checked are
//! the addresses connected to (no second lookup a rebinding DNS server
//! could answer differently). Redirects are not followed (the policy would
//! not see their targets) and answers are read only up to a bound.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Url, redirect};
use voxgate_core::outbound::{self, AllowedHosts, ForbiddenDestination};
use voxgate_core::persona::HttpToolSpec;

use crate::config::ToolsConfig;
use crate::metrics::TOOL_CALLS;

/// Longest answer given to the model; tools answering more are cut.
const MAX_ANSWER_CHARS: usize = 4000;

/// Most bytes of an answer read: a UTF-8 character is at most 4 bytes, so
/// this always holds [`MAX_ANSWER_CHARS`] characters, and a tool answering
/// endlessly costs no more than this.
const MAX_ANSWER_BYTES: usize = 4 * MAX_ANSWER_CHARS;

/// Looks up the addresses of a host name. The server uses the system's
/// resolver; tests give names the addresses they need, which is how a
/// name that resolves to loopback is tried without a DNS server.
pub trait LookupHost: Send + Sync + fmt::Debug {
    /// The addresses `host` resolves to.
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>>;
}

/// The system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl LookupHost for SystemLookup {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addresses.map(|address| address.ip()).collect())
        })
    }
}

/// The HTTP client's resolver: resolves, then refuses the name if any of
/// its addresses is refused by the policy.
#[derive(Debug)]
struct FilteringResolver {
    lookup: Arc<dyn LookupHost>,
    allowed: Arc<AllowedHosts>,
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let lookup = self.lookup.lookup(name.as_str());
        let allowed = Arc::clone(&self.allowed);
        Box::pin(async move {
            let addresses = lookup.await?;
            outbound::check_resolved(name.as_str(), &addresses, &allowed)?;
            // Port 0: the connector puts the URL's port in.
            let addrs: Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|address| SocketAddr::new(address, 0)),
            );
            Ok::<_, Box<dyn StdError + Send + Sync>>(addrs)
        })
    }
}

/// The HTTP client could not be built (no TLS backend).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for persona tools: {0}")]
pub struct ToolClientError(#[from] reqwest::Error);

/// Calls personas' HTTP tools; built once per server and shared by every
/// call (cheap to clone).
#[derive(Debug, Clone)]
pub struct ToolClient {
    http: reqwest::Client,
    allowed: Arc<AllowedHosts>,
}

/// How a tool call went, as counted in the tool-calls metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolOutcome {
    /// The tool answered 2xx.
    Ok,
    /// The model's arguments were not JSON; the tool was not called.
    BadArguments,
    /// The tool's address is refused by the outbound policy; nothing was
    /// sent.
    ForbiddenAddress,
    /// The tool answered with another status (redirects included).
    HttpError,
    /// No answer in the tool's time.
    Timeout,
    /// The tool could not be reached, or its answer broke off.
    Unreachable,
}

impl ToolOutcome {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolOutcome::Ok => "ok",
            ToolOutcome::BadArguments => "bad_arguments",
            ToolOutcome::ForbiddenAddress => "forbidden_address",
            ToolOutcome::HttpError => "http_error",
            ToolOutcome::Timeout => "timeout",
            ToolOutcome::Unreachable => "unreachable",
        }
    }
}

/// What a tool call gave the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolAnswer {
    /// How it went.
    pub outcome: ToolOutcome,
    /// What the model is told: the tool's answer, or `error: …`.
    pub text: String,
}

impl ToolClient {
    /// A client that resolves names with the system's resolver.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn new(config: &ToolsConfig) -> Result<Self, ToolClientError> {
        Self::with_lookup(config, Arc::new(SystemLookup))
    }

    /// A client that resolves names with `lookup`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub fn with_lookup(
        config: &ToolsConfig,
        lookup: Arc<dyn LookupHost>,
    ) -> Result<Self, ToolClientError> {
        let allowed = Arc::new(config.allowed_hosts.clone());
        let resolver = FilteringResolver {
            lookup,
            allowed: Arc::clone(&allowed),
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("voxgate/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect::Policy::none())
            // Through a proxy the resolver would see the proxy's name, not
            // the tool's, and the policy would check the wrong host.
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .build()?;
        Ok(Self { http, allowed })
    }

    /// Calls `tool` with the model's `arguments` (JSON text).
    pub async fn call(&self, tool: &HttpToolSpec, arguments: &str) -> ToolAnswer {
        let answer = self.exchange(tool, arguments).await;
        tracing::info!(tool = %tool.name, outcome = answer.outcome.as_str(), "tool called");
        metrics::counter!(TOOL_CALLS, "outcome" => answer.outcome.as_str()).increment(1);
        answer
    }

    async fn exchange(&self, tool: &HttpToolSpec, arguments: &str) -> ToolAnswer {
        let answer = |outcome, text| ToolAnswer { outcome, text };
        let arguments = if arguments.trim().is_empty() {
            "{}"
        } else {
            arguments
        };
        if serde_json::from_str::<serde_json::Value>(arguments).is_err() {
            return answer(
                ToolOutcome::BadArguments,
                format!("error: the arguments are not valid JSON: {arguments}"),
            );
        }
        // Personas are checked when saved, but one saved before these
        // checks (or under an allow-list since shortened) is checked here.
        let url = match Url::parse(&tool.url) {
            Ok(url) => url,
            Err(e) => {
                return answer(
                    ToolOutcome::Unreachable,
                    format!("error: the tool's url is not valid: {e}"),
                );
            }
        };
        // The connector resolves names only: an address literal never
        // reaches the resolver, so it is checked here.
        if let Err(refused) = outbound::check_url(&url, &self.allowed) {
            return forbidden(&refused);
        }
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(arguments.to_owned())
            .timeout(tool.timeout());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => return failure(e, tool),
        };
        let status = response.status();
        let mut body = Vec::new();
        while body.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return failure(e, tool),
            }
        }
        // Dropping the response here closes the connection on whatever
        // the tool still has to send.
        drop(response);
        body.truncate(MAX_ANSWER_BYTES);
        let body: String = String::from_utf8_lossy(&body)
            .chars()
            .take(MAX_ANSWER_CHARS)
            .collect();
        if status.is_success() {
            answer(ToolOutcome::Ok, body)
        } else {
            answer(
                ToolOutcome::HttpError,
                format!("error: the tool answered HTTP {status}: {body}"),
            )
        }
    }
}

fn forbidden(refused: &ForbiddenDestination) -> ToolAnswer {
    ToolAnswer {
        outcome: ToolOutcome::ForbiddenAddress,
        text: format!("error: the tool's address is not allowed ({refused})"),
    }
}

/// What the model is told when the request failed: a refusal from the
/// resolver travels up as the request error's source.
fn failure(error: reqwest::Error, tool: &HttpToolSpec) -> ToolAnswer {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<ForbiddenDestination>() {
            return forbidden(refused);
        }
        source = cause.source();
    }
    if error.is_timeout() {
        ToolAnswer {
            outcome: ToolOutcome::Timeout,
            text: format!(
                "error: the tool did not answer within {} ms",
                tool.timeout_ms
            ),
        }
    } else {
        ToolAnswer {
            outcome: ToolOutcome::Unreachable,
            text: format!(
                "error: the tool could not be reached: {}",
                error.without_url()
            ),
        }
    }
}

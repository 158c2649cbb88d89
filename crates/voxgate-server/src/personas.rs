//! The personas API (`/api/personas`) and [`resolve_persona`], which picks
//! the persona a call runs with.
//!
//! The built-in default persona ([`DEFAULT_PERSONA`]) always exists: it is
//! listed and answered even when nothing is stored, a stored persona of that
//! name replaces it, and deleting that one brings the built-in back.
//!
//! Bodies are read as JSON values first, then as a [`PersonaSpec`], so that
//! a `PUT` body may leave out the name (the path gives it) and a `POST`
//! body must not. A body that is not a persona document (not JSON, unknown
//! fields, wrong types) is answered 400; a persona whose values are
//! unacceptable is answered 422 with every problem listed: among them
//! values over the size limits, and tool URLs whose host the outbound
//! policy refuses (loopback, private, metadata…) and `[tools]
//! allowed_hosts` does not allow. Creating a persona when
//! [`MAX_PERSONAS`] are stored is answered 409 `too_many_personas`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use voxgate_core::events::JobConfig;
use voxgate_core::outbound::AllowedHosts;
use voxgate_core::persona::{DEFAULT_PERSONA, MAX_PERSONAS, PersonaSpec};
use voxgate_store::{Store, Written};

use crate::app::AppState;
use crate::http::{ApiError, Page};

/// The persona a call with job configuration `job` runs with: the one
/// `job.persona` names (the default when it names none), with the job's
/// own instructions, greeting and voice on top.
///
/// A call never fails for want of a persona: an unknown name, or a store
/// that cannot answer, falls back to the default persona with a warning.
pub async fn resolve_persona(store: &Store, job: &JobConfig) -> PersonaSpec {
    let wanted = job.persona.as_deref().unwrap_or(DEFAULT_PERSONA);
    let spec = match store.get_persona(wanted).await {
        Ok(Some(spec)) => spec,
        Ok(None) if wanted == DEFAULT_PERSONA => PersonaSpec::default(),
        Ok(None) => {
            tracing::warn!(
                persona = wanted,
                "no such persona; the call uses the default persona"
            );
            stored_default(store).await
        }
        Err(error) => {
            // The store just failed; asking it again for the default would
            // only add latency to the call's start.
            tracing::warn!(
                persona = wanted,
                %error,
                "cannot read the persona; the call uses the built-in default persona"
            );
            PersonaSpec::default()
        }
    };
    spec.with_job(job)
}

/// The default persona: the stored one if it was replaced, else the built-in.
async fn stored_default(store: &Store) -> PersonaSpec {
    match store.get_persona(DEFAULT_PERSONA).await {
        Ok(spec) => spec.unwrap_or_default(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the default persona; using the built-in one");
            PersonaSpec::default()
        }
    }
}

/// `GET /api/personas?limit=&offset=`: personas by name, the default
/// always among them; `total` counts them all.
pub async fn list_personas(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let page = Page::from_query(&query)?;
    // At most MAX_PERSONAS are stored, so the whole list fits in memory.
    let mut personas = state.store.list_personas().await?;
    if !personas.iter().any(|p| p.name == DEFAULT_PERSONA) {
        // The store lists by name; keep that order.
        let at = personas.partition_point(|p| p.name.as_str() < DEFAULT_PERSONA);
        personas.insert(at, PersonaSpec::default());
    }
    let total = personas.len();
    let page_of: Vec<PersonaSpec> = personas
        .into_iter()
        .skip(page.offset as usize)
        .take(page.limit as usize)
        .collect();
    Ok(Json(serde_json::json!({
        "personas": page_of,
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    })))
}

/// `GET /api/personas/{name}`.
pub async fn get_persona(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PersonaSpec>, ApiError> {
    match state.store.get_persona(&name).await? {
        Some(spec) => Ok(Json(spec)),
        None if name == DEFAULT_PERSONA => Ok(Json(PersonaSpec::default())),
        None => Err(not_found(&name)),
    }
}

/// `POST /api/personas`: creates a persona; 409 if the name is taken (the
/// default's always is).
pub async fn create_persona(
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let spec = parse_spec(body?.0, None, &state.config.tools.allowed_hosts)?;
    let conflict = || ApiError::Conflict(format!("persona {:?} already exists", spec.name));
    if spec.name == DEFAULT_PERSONA {
        return Err(conflict());
    }
    check_room(&state.store).await?;
    if !state.store.insert_persona(&spec, unix_ms()).await? {
        return Err(conflict());
    }
    Ok(created(spec))
}

/// `PUT /api/personas/{name}`: creates or replaces a persona; 201 or 200.
/// The body's name may be left out, and must match the path if given.
pub async fn put_persona(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let spec = parse_spec(body?.0, Some(&name), &state.config.tools.allowed_hosts)?;
    if state.store.get_persona(&spec.name).await?.is_none() {
        check_room(&state.store).await?;
    }
    let written = state.store.put_persona(&spec, unix_ms()).await?;
    // The default always existed, so writing it replaces it.
    if written == Written::Created && spec.name != DEFAULT_PERSONA {
        Ok(created(spec))
    } else {
        Ok(Json(spec).into_response())
    }
}

/// `DELETE /api/personas/{name}`: 204; deleting the default resets it to
/// the built-in one.
pub async fn delete_persona(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = state.store.delete_persona(&name).await?;
    if deleted || name == DEFAULT_PERSONA {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}

/// Refuses a new persona when [`MAX_PERSONAS`] are stored. Counted before
/// writing, so requests racing at the limit may pass it by a few: the
/// limit bounds the store, it is not a quota.
async fn check_room(store: &Store) -> Result<(), ApiError> {
    let stored = store.count_personas().await?;
    if usize::try_from(stored).unwrap_or(usize::MAX) >= MAX_PERSONAS {
        return Err(ApiError::TooManyPersonas(MAX_PERSONAS));
    }
    Ok(())
}

/// Reads a persona from a request body. `path_name` is the name in the URL
/// (`PUT`), which a body without a name takes; without one (`POST`) the
/// body must name the persona. Tool hosts in `allowed` pass the outbound
/// policy.
fn parse_spec(
    mut body: Value,
    path_name: Option<&str>,
    allowed: &AllowedHosts,
) -> Result<PersonaSpec, ApiError> {
    let Some(fields) = body.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "a persona must be a JSON object".into(),
        ));
    };
    let mut problems = Vec::new();
    match (fields.contains_key("name"), path_name) {
        (true, _) => {}
        (false, Some(path_name)) => {
            fields.insert("name".into(), Value::String(path_name.to_owned()));
        }
        // Left to the spec's own default, "default" would be created by
        // accident; a missing name is far more likely a client bug.
        (false, None) => problems.push("name is required".to_owned()),
    }
    let spec: PersonaSpec = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("not a persona: {e}")))?;
    if let Some(path_name) = path_name
        && spec.name != path_name
    {
        problems.push(format!(
            "name {:?} does not match {path_name:?} in the path",
            spec.name
        ));
    }
    problems.extend(spec.problems(allowed));
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(ApiError::InvalidPersona { problems })
    }
}

fn created(spec: PersonaSpec) -> Response {
    // Valid names are letters, digits, '-' and '_': safe in a header and a path.
    let location = format!("/api/personas/{}", spec.name);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(spec),
    )
        .into_response()
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("no persona {name:?}"))
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    use super::*;

    /// Collects warnings as `field=value` text, so tests can check what
    /// an operator would read.
    #[derive(Clone, Default)]
    struct Warnings(Arc<Mutex<Vec<String>>>);

    impl Warnings {
        fn taken(&self) -> Vec<String> {
            // Only poisoned if a test already panicked while holding it.
            std::mem::take(&mut *self.0.lock().expect("warnings lock"))
        }
    }

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }

    impl Subscriber for Warnings {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if *event.metadata().level() == Level::WARN {
                let mut line = Line(String::new());
                event.record(&mut line);
                self.0.lock().expect("warnings lock").push(line.0);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    async fn store() -> Store {
        let store = Store::connect("sqlite::memory:")
            .await
            .expect("in-memory store");
        store.migrate().await.expect("migrate");
        store
    }

    fn persona(name: &str, greeting: &str) -> PersonaSpec {
        PersonaSpec {
            name: name.into(),
            greeting: greeting.into(),
            ..PersonaSpec::default()
        }
    }

    fn job(persona: Option<&str>) -> JobConfig {
        JobConfig {
            persona: persona.map(str::to_owned),
            ..JobConfig::default()
        }
    }

    // Current-thread runtime: the capturing subscriber is set for this
    // thread, where every future here is polled.
    #[tokio::test]
    async fn a_named_persona_is_used_with_the_job_on_top() {
        let store = store().await;
        store
            .insert_persona(&persona("sales", "Hi, sales here."), 0)
            .await
            .expect("insert");
        let spec = resolve_persona(&store, &job(Some("sales"))).await;
        assert_eq!(spec.name, "sales");
        assert_eq!(spec.greeting, "Hi, sales here.");

        let overridden = JobConfig {
            greeting: Some("Hello from the job.".into()),
            voice: Some("joe".into()),
            ..job(Some("sales"))
        };
        let spec = resolve_persona(&store, &overridden).await;
        assert_eq!(spec.name, "sales");
        assert_eq!(spec.greeting, "Hello from the job.");
        assert_eq!(spec.voice.as_deref(), Some("joe"));
    }

    #[tokio::test]
    async fn no_name_means_the_default_which_may_be_replaced() {
        let warnings = Warnings::default();
        let _guard = tracing::subscriber::set_default(warnings.clone());
        let store = store().await;
        assert_eq!(
            resolve_persona(&store, &job(None)).await,
            PersonaSpec::default()
        );
        store
            .put_persona(&persona(DEFAULT_PERSONA, "Replaced."), 0)
            .await
            .expect("put");
        let spec = resolve_persona(&store, &job(None)).await;
        assert_eq!(spec.greeting, "Replaced.");
        assert_eq!(warnings.taken(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn an_unknown_persona_falls_back_to_the_default_with_a_warning() {
        let warnings = Warnings::default();
        let _guard = tracing::subscriber::set_default(warnings.clone());
        let store = store().await;
        store
            .put_persona(&persona(DEFAULT_PERSONA, "Replaced default."), 0)
            .await
            .expect("put");
        let spec = resolve_persona(
            &store,
            &JobConfig {
                instructions: Some("Be brief.".into()),
                ..job(Some("nobody"))
            },
        )
        .await;
        assert_eq!(spec.name, DEFAULT_PERSONA);
        assert_eq!(spec.greeting, "Replaced default.");
        assert_eq!(spec.instructions, "Be brief.");
        let warnings = warnings.taken();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains(r#"persona="nobody""#), "{warnings:?}");
    }

    #[tokio::test]
    async fn a_failing_store_falls_back_to_the_built_in_default_with_a_warning() {
        let warnings = Warnings::default();
        let _guard = tracing::subscriber::set_default(warnings.clone());
        // Never migrated: every persona query fails.
        let store = Store::connect("sqlite::memory:")
            .await
            .expect("in-memory store");
        let spec = resolve_persona(&store, &job(Some("sales"))).await;
        assert_eq!(spec, PersonaSpec::default());
        let warnings = warnings.taken();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains(r#"persona="sales""#), "{warnings:?}");
        assert!(warnings[0].contains("error="), "{warnings:?}");
    }

    #[test]
    fn a_put_body_takes_the_name_from_the_path() {
        let spec = parse_spec(
            serde_json::json!({"greeting": "Hi"}),
            Some("sales"),
            &AllowedHosts::default(),
        )
        .expect("valid");
        assert_eq!(spec.name, "sales");
        assert_eq!(spec.greeting, "Hi");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let body = serde_json::json!({"name": "x y", "vad": {"activation_threshold": 2.0}});
        let Err(ApiError::InvalidPersona { problems }) =
            parse_spec(body, Some("z"), &AllowedHosts::default())
        else {
            panic!("expected an invalid persona");
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("does not match"), "{problems:?}");
    }

    #[test]
    fn a_post_body_must_name_the_persona() {
        let Err(ApiError::InvalidPersona { problems }) = parse_spec(
            serde_json::json!({"greeting": "Hi"}),
            None,
            &AllowedHosts::default(),
        ) else {
            panic!("expected an invalid persona");
        };
        assert_eq!(problems, ["name is required"]);
    }
}

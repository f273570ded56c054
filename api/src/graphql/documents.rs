//! Parsed and validated documents, cached per instance (bounded in bytes, keyed by the document's
//! text). Live UIs send the same few documents over and over: a `sendMessage` mutation, a
//! subscription opened by thousands of connections. Parsing is keyed by the document alone;
//! validation also checks variable values against argument types, so its key adds the
//! variables and the operation name. Only documents that passed are cached: a failure is
//! always recomputed and reported as the first time. A failure is the client's: each of its
//! errors carries `extensions.code` BAD_USER_INPUT, like every other refused input. So do
//! async-graphql's own refusals after validation (an unknown `operationName`, none given for a
//! document of several operations, a subscription sent over HTTP), which it sends without one,
//! over HTTP and WebSocket alike ([`mark_request_errors`]).
//!
//! A document not cached yet is parsed here, as the request is prepared, and checked
//! (`limits::check`: aliases, and fields once fragments are spread) before async-graphql
//! walks it at all: its own first walk is exponential in nested fragment spreads. Its
//! strings and the request's variables are checked for NUL there too (`nul`).
//!
//! The same per-request extension (one, because every extension adds a hop to every field
//! resolved) tells the HTTP handler which operation ran ([`RanOperation`]): a document's only
//! operation is named by the document even when the request sends no `operationName`, as most
//! clients outside Apollo's do, and the latency metric is labelled with it.

use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Variables};
use moka::sync::{Cache, CacheBuilder};

use super::{limits, nul};
use crate::error::ErrorCode;

/// Bytes of document text (with variables, for validation) each cache keeps. Weighed in
/// bytes, not counted in entries: a client chooses the text, up to the body limit, and a
/// thousand large valid documents would otherwise stay allocated whole.
const CAPACITY_BYTES: u64 = 8 << 20;

#[derive(Clone)]
pub struct DocumentCache {
    parsed: Cache<Arc<str>, Arc<ExecutableDocument>>,
    validated: Cache<Arc<str>, ValidationResult>,
    /// What a document may execute once its fragments are spread: fields, aliases.
    max_fields: usize,
    max_aliases: usize,
}

impl DocumentCache {
    pub fn new(max_fields: usize, max_aliases: usize) -> Self {
        let (parsed, validated) =
            (by_text_size(CAPACITY_BYTES).build(), by_text_size(CAPACITY_BYTES).build());
        Self { parsed, validated, max_fields, max_aliases }
    }
}

/// A cache keyed by a text, bounded by the texts' bytes: for texts a client chooses.
pub(crate) fn by_text_size<V: Clone + Send + Sync + 'static>(
    bytes: u64,
) -> CacheBuilder<Arc<str>, V, Cache<Arc<str>, V>> {
    Cache::builder()
        .weigher(|text: &Arc<str>, _: &V| u32::try_from(text.len()).unwrap_or(u32::MAX))
        .max_capacity(bytes)
}

impl ExtensionFactory for DocumentCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest { cache: self.clone(), validation_key: Mutex::new(None) })
    }
}

/// Put into a request's data; holds the name of the operation it ran, once it runs.
#[derive(Clone, Default)]
pub struct RanOperation(Arc<OnceLock<String>>);

impl RanOperation {
    pub fn name(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// One request's view of the cache: `prepare_request` learns the key that `validation` uses.
struct PerRequest {
    cache: DocumentCache,
    validation_key: Mutex<Option<Arc<str>>>,
}

#[async_trait::async_trait]
impl Extension for PerRequest {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        mark_request_errors(&mut response.errors);
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let mut request = request;
        nul::check_variables(&request.variables)?;
        if !self.cache.parsed.contains_key(request.query.as_str()) {
            let document = request.parsed_query().map_err(bad_user_input)?;
            limits::check(document, self.cache.max_fields, self.cache.max_aliases)?;
            nul::check_document(document)?;
        }
        let variables = serde_json::to_string(&request.variables).unwrap_or_default();
        let operation = request.operation_name.as_deref().unwrap_or("");
        let key = format!("{operation}\n{variables}\n{}", request.query);
        *self.validation_key.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.into());
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let key: Arc<str> = query.into();
        if let Some(document) = self.cache.parsed.get(&key) {
            return Ok(ExecutableDocument::clone(&document));
        }
        let document = next.run(ctx, query, variables).await.map_err(bad_user_input)?;
        self.cache.parsed.insert(key, Arc::new(document.clone()));
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let (Some(name), Some(ran)) = (operation_name, ctx.data_opt::<RanOperation>()) {
            let _ = ran.0.set(name.to_owned());
        }
        next.run(ctx, operation_name).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let key = self.validation_key.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(key) = key else { return next.run(ctx).await.map_err(all_bad_user_input) };
        if let Some(result) = self.cache.validated.get(&key) {
            return Ok(result);
        }
        let result = next.run(ctx).await.map_err(all_bad_user_input)?;
        self.cache.validated.insert(key, result);
        Ok(result)
    }
}

/// Gives an error about the document or its variables the code of refused input, unless it
/// has a code already (the alias limit's).
fn bad_user_input(mut error: ServerError) -> ServerError {
    mark_bad_user_input(&mut error);
    error
}

fn mark_bad_user_input(error: &mut ServerError) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", ErrorCode::BadUserInput.as_str());
    }
}

/// Gives the errors that refused a request before any field ran (they have no path) the code
/// of refused input. HTTP requests pass through the `request` hook, which calls this; a
/// WebSocket subscription's first response does not, so its set-up calls it itself.
pub fn mark_request_errors(errors: &mut [ServerError]) {
    for error in errors.iter_mut().filter(|e| e.path.is_empty()) {
        mark_bad_user_input(error);
    }
}

fn all_bad_user_input(errors: Vec<ServerError>) -> Vec<ServerError> {
    errors.into_iter().map(bad_user_input).collect()
}

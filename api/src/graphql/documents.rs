//! Parsed and validated documents, cached per instance. Live UIs send the same few documents
//! over and over: a `sendMessage` mutation, a subscription opened by thousands of connections.
//! Parsing is keyed by the document alone. A parsed document is far larger than its text (a
//! list literal `[1,1,…]` of 600 KB held ≈ 28 MiB; weighed by its text, twelve such
//! anonymous requests made an instance hold ≈ 400 MiB), so it is weighed at
//! [`PARSED_WEIGHT_PER_BYTE`] times its text, a document over [`LARGEST_CACHED_DOCUMENT`] is
//! parsed anew each time, and only a document that passed validation is kept (one full of
//! unused fragments never is). Validation also checks
//! variable values against argument types, so its key adds the variables and the operation
//! name; most variables are new each time (a message's body and client id), so that key is
//! their SHA-256 digest, and an entry costs the same whatever a client sent (kept whole, the
//! texts filled their 8 MiB, ≈ 24 MiB of RSS with the cache's own, over minutes of steady
//! sends). A digest, not a fast hash: a collision would let a document skip the complexity
//! limits another one passed.
//!
//! Only documents that passed are cached: a failure is always recomputed and reported as the
//! first time. A failure is the client's: each of its errors carries `extensions.code`
//! BAD_USER_INPUT, like every other refused input. So do async-graphql's own refusals after
//! validation (an unknown `operationName`, none given for a document of several operations, a
//! subscription sent over HTTP) and its refusals of an argument that does not parse into its
//! type as the field runs, which it sends without one, over HTTP and WebSocket alike
//! ([`mark_request_errors`]).
//!
//! A document longer than `PARLEY_MAX_QUERY_BYTES` is refused before anything parses it:
//! parsing holds ≈ 200 bytes per byte of a dense document (one 600 KB list literal, within the
//! body limit, took an instance from 18 to 153 MiB), so the body limit is no bound on memory.
//! A document not cached yet is parsed here, as the request is prepared, and checked
//! (`limits::check`: aliases, and fields once fragments are spread) before async-graphql
//! walks it at all: its own first walk is exponential in nested fragment spreads. Its
//! strings and the request's variables are checked for NUL there too (`nul`).
//!
//! The same per-request extension (one, because every extension adds a hop to every field
//! resolved) tells the HTTP handler which operation ran ([`RanOperation`]): a document's only
//! operation is named by the document even when the request sends no `operationName`, as most
//! clients outside Apollo's do, and the latency metric is labelled with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Variables};
use moka::sync::{Cache, CacheBuilder};
use sha2::{Digest, Sha256};

use super::{limits, nul};
use crate::config::Limits;
use crate::error::{ErrorCode, graphql_error};

/// What the parsed cache may hold, in estimated bytes of parsed documents: about 500
/// documents of 2 KiB, more than the operations of all of a deployment's clients.
const PARSED_BYTES: u64 = 64 << 20;
/// A parsed document's estimated size per byte of its text: above what was measured, 40–50
/// for a list literal of small numbers or the fields of unused fragments (every value and
/// selection a node of 70–200 bytes, plus the spare capacity of the lists holding them). Not
/// a strict bound: a list of small object literals may reach ≈ 90 (from the types' sizes, not
/// measured), so the cache can hold ≈ 1.4× its weight at worst. An everyday document holds
/// far less.
const PARSED_WEIGHT_PER_BYTE: u32 = 64;
/// Documents longer than this are not kept parsed: no client's everyday operation comes near
/// it (GraphiQL's introspection query is a few KiB), and one request cannot push much else out.
/// It is also `PARLEY_MAX_QUERY_BYTES`' default, so that every document accepted can be kept:
/// a subscription's document runs again for every event.
pub const LARGEST_CACHED_DOCUMENT: usize = 64 << 10;
/// Validations kept: each is a 32-byte digest and a few counters, plus moka's own bookkeeping.
/// Enough for the documents a busy instance sees again and again (queries, subscriptions);
/// the one-off validations of sends, whose variables are always new, pass through.
const VALIDATIONS: u64 = 10_000;

/// What a validation depends on (operation name, variables, document), digested.
type ValidationKey = [u8; 32];

#[derive(Clone)]
pub struct DocumentCache {
    parsed: Cache<Arc<str>, Arc<ExecutableDocument>>,
    validated: Cache<ValidationKey, ValidationResult>,
    /// The longest document parsed at all, in bytes.
    max_bytes: usize,
    /// What a document may execute once its fragments are spread: fields, aliases.
    max_fields: usize,
    max_aliases: usize,
}

impl DocumentCache {
    pub fn new(limits: &Limits) -> Self {
        let parsed = Cache::builder()
            .weigher(|text: &Arc<str>, _: &Arc<ExecutableDocument>| {
                u32::try_from(text.len()).unwrap_or(u32::MAX).saturating_mul(PARSED_WEIGHT_PER_BYTE)
            })
            .max_capacity(PARSED_BYTES)
            .build();
        let validated = Cache::new(VALIDATIONS);
        Self {
            parsed,
            validated,
            max_bytes: limits.max_query_bytes,
            max_fields: limits.max_query_fields,
            max_aliases: limits.max_aliases,
        }
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
        Arc::new(PerRequest {
            cache: self.clone(),
            validation_key: Mutex::new(None),
            parsed_anew: Mutex::new(None),
        })
    }
}

/// Put into a request's data; holds the name of the operation it ran, once it runs, and
/// whether its document holds a mutation, once it is parsed.
#[derive(Clone, Default)]
pub struct RanOperation(Arc<Ran>);

#[derive(Default)]
pub struct Ran {
    name: OnceLock<String>,
    mutation: AtomicBool,
}

impl RanOperation {
    pub fn name(&self) -> Option<&str> {
        self.0.name.get().map(String::as_str)
    }

    /// Whether the document holds a mutation (false until it is parsed): the HTTP handler lets
    /// such a request run to the end when its client goes away.
    pub fn is_mutation(&self) -> bool {
        self.0.mutation.load(Ordering::Relaxed)
    }

    fn parsed(&self, document: &ExecutableDocument) {
        let mutation = document.operations.iter().any(|(_, op)| op.node.ty == OperationType::Mutation);
        self.0.mutation.store(mutation, Ordering::Relaxed);
    }
}

/// One request's view of the cache: `prepare_request` learns the key that `validation` uses,
/// and `parse_query` leaves a document parsed anew for `validation` to keep once it passed.
struct PerRequest {
    cache: DocumentCache,
    validation_key: Mutex<Option<ValidationKey>>,
    parsed_anew: Mutex<Option<(Arc<str>, Arc<ExecutableDocument>)>>,
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
        if let Some(message) = over_length(&request.query, self.cache.max_bytes) {
            return Err(graphql_error(ErrorCode::BadUserInput, message));
        }
        nul::check_variables(&request.variables)?;
        if !self.cache.parsed.contains_key(request.query.as_str()) {
            let document = request.parsed_query().map_err(bad_user_input)?;
            limits::check(document, self.cache.max_fields, self.cache.max_aliases)?;
            nul::check_document(document)?;
        }
        let key = validation_key(&request);
        *lock(&self.validation_key) = key;
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let ran = ctx.data_opt::<RanOperation>();
        if let Some(document) = self.cache.parsed.get(query) {
            ran.inspect(|ran| ran.parsed(&document));
            return Ok(ExecutableDocument::clone(&document));
        }
        let document = next.run(ctx, query, variables).await.map_err(bad_user_input)?;
        ran.inspect(|ran| ran.parsed(&document));
        if query.len() <= LARGEST_CACHED_DOCUMENT {
            *lock(&self.parsed_anew) = Some((query.into(), Arc::new(document.clone())));
        }
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let (Some(name), Some(ran)) = (operation_name, ctx.data_opt::<RanOperation>()) {
            let _ = ran.0.name.set(name.to_owned());
        }
        next.run(ctx, operation_name).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let key = lock(&self.validation_key).take();
        let cached = key.and_then(|key| self.cache.validated.get(&key));
        let result = match cached {
            Some(result) => result,
            None => next.run(ctx).await.map_err(all_bad_user_input)?,
        };
        if let (Some(key), None) = (key, cached) {
            self.cache.validated.insert(key, result);
        }
        if let Some((text, document)) = lock(&self.parsed_anew).take() {
            self.cache.parsed.insert(text, document);
        }
        Ok(result)
    }
}

/// A request's own slot: a panic elsewhere cannot leave it half-written, so a poisoned lock
/// is still good.
fn lock<T>(slot: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a document is refused for its length, if it is longer than `max_bytes`.
pub fn over_length(query: &str, max_bytes: usize) -> Option<String> {
    let bytes = query.len();
    (bytes > max_bytes).then(|| format!("the query is {bytes} bytes long; at most {max_bytes} are allowed"))
}

/// The digest of what validating `request` depends on; none if its variables cannot be written
/// out (then it is validated uncached). Each part is preceded by its length, and a missing
/// operation name by a length no name has (async-graphql validates `operationName: ""` unlike
/// none given: every named operation counts as not selected), so no two requests that validate
/// differently give the same bytes. Variables come from JSON, so writing them back out is
/// faithful: they hold no enums or binary values that would print like strings or lists.
fn validation_key(request: &Request) -> Option<ValidationKey> {
    let variables = serde_json::to_vec(&request.variables).ok()?;
    let mut digest = Sha256::new();
    match &request.operation_name {
        Some(name) => part(&mut digest, name.as_bytes()),
        None => digest.update(u64::MAX.to_le_bytes()),
    }
    part(&mut digest, &variables);
    part(&mut digest, request.query.as_bytes());
    Some(digest.finalize().into())
}

fn part(digest: &mut Sha256, bytes: &[u8]) {
    digest.update((bytes.len() as u64).to_le_bytes());
    digest.update(bytes);
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

/// Gives the errors that refused a request before any field ran (they have no path), and
/// async-graphql's refusals of an argument, the code of refused input. HTTP requests pass
/// through the `request` hook, which calls this; a WebSocket subscription's first response
/// does not, so its set-up calls it itself.
pub fn mark_request_errors(errors: &mut [ServerError]) {
    for error in errors.iter_mut().filter(|e| e.path.is_empty() || is_argument_refusal(e)) {
        mark_bad_user_input(error);
    }
}

/// async-graphql's refusal of an argument that does not parse into its type (a `DateTime`
/// that is no date, an `Int` past 32 bits): validation lets such values through, and the
/// field refuses them as it runs, so the error has a path, and no code of its own.
fn is_argument_refusal(error: &ServerError) -> bool {
    ["Failed to parse \"", "Expected input type \""].iter().any(|start| error.message.starts_with(start))
}

fn all_bad_user_input(errors: Vec<ServerError>) -> Vec<ServerError> {
    errors.into_iter().map(bad_user_input).collect()
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    use super::*;

    struct Query;

    #[Object]
    impl Query {
        async fn a(&self, n: Option<i32>) -> i32 {
            n.unwrap_or(0)
        }
    }

    /// Runs `query` through a schema with `cache`; whether it was refused.
    async fn refused(cache: &DocumentCache, query: &str) -> bool {
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription).extension(cache.clone()).finish();
        schema.execute(query).await.is_err()
    }

    /// The limits a server starts with when nothing is configured.
    fn default_limits() -> Limits {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            limits: Limits,
        }
        <Defaults as clap::Parser>::parse_from(["parley"]).limits
    }

    #[tokio::test]
    async fn only_small_documents_that_passed_validation_are_kept_parsed() {
        // A limit above the largest document kept, as an operator may set.
        let limits = Limits { max_query_bytes: 2 * LARGEST_CACHED_DOCUMENT, ..default_limits() };
        let cache = DocumentCache::new(&limits);
        assert!(!refused(&cache, "{ a(n: 1) }").await);
        assert!(cache.parsed.contains_key("{ a(n: 1) }"), "a valid document is kept");

        let unused_fragment = "{ a } fragment F on Query { a }";
        assert!(refused(&cache, unused_fragment).await);
        assert!(!cache.parsed.contains_key(unused_fragment), "a refused document is not");

        let large = format!("{{ a(n: 2) }} #{}", "x".repeat(LARGEST_CACHED_DOCUMENT));
        assert!(!refused(&cache, &large).await, "a large document still runs");
        assert!(!cache.parsed.contains_key(large.as_str()), "but is not kept");
    }

    #[tokio::test]
    async fn a_document_over_the_size_limit_is_refused_before_it_is_parsed() {
        let limits = Limits { max_query_bytes: 100, ..default_limits() };
        let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
            .extension(DocumentCache::new(&limits))
            .finish();
        let at_limit = format!("{{ a }}{}", " ".repeat(100 - 5));
        assert!(schema.execute(at_limit).await.is_ok());
        // Not a document at all: refused for its length, not for its syntax.
        let response = schema.execute("{".repeat(101)).await;
        let error = &response.errors[0];
        assert_eq!(error.message, "the query is 101 bytes long; at most 100 are allowed");
        let code = error.extensions.as_ref().and_then(|e| e.get("code")).cloned();
        assert_eq!(code, Some(async_graphql::Value::from("BAD_USER_INPUT")));
    }

    fn key(query: &str, operation: Option<&str>, variables: serde_json::Value) -> Option<ValidationKey> {
        let mut request = Request::new(query).variables(Variables::from_json(variables));
        if let Some(operation) = operation {
            request = request.operation_name(operation);
        }
        validation_key(&request)
    }

    #[test]
    fn a_validation_key_changes_with_every_part_it_digests() {
        let query = "query A($n: Int) { a(n: $n) } query B { b }";
        let n = |n: i64| serde_json::json!({ "n": n });
        let base = key(query, Some("A"), n(1));
        assert!(base.is_some());
        assert_eq!(base, key(query, Some("A"), n(1)), "the same request, the same key");
        assert_ne!(base, key(query, Some("A"), n(2)), "another variable value");
        assert_ne!(base, key(query, Some("B"), n(1)), "another operation");
        assert_ne!(base, key(query, None, n(1)), "no operation name");
        assert_ne!(key(query, None, n(1)), key(query, Some(""), n(1)), "an empty operation name");
        assert_ne!(base, key("query A($n: Int) { a(n: $n) }", Some("A"), n(1)), "another document");
        // Bytes moved from one part to the next still give another key.
        assert_ne!(key("{ a }", Some("x"), n(1)), key("x{ a }", Some(""), n(1)));
    }
}

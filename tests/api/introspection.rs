//! GraphiQL's schema request: the full introspection query that graphql-js clients send
//! (`getIntrospectionQuery()`), anonymous, under the default depth and complexity limits;
//! and with `PARLEY_PLAYGROUND=false`, neither introspection nor "did you mean" hints.

use serde_json::json;

use crate::helpers::{Backend, data, spawn_app, spawn_app_with};

backend_tests!(
    graphiql_introspection_passes_the_default_limits,
    without_the_playground_the_schema_stays_hidden
);

/// graphql-js 16 `getIntrospectionQuery()`, as GraphiQL 3 sends it.
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name } } } } } } }
}
"#;

async fn graphiql_introspection_passes_the_default_limits(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({ "query": INTROSPECTION, "operationName": "IntrospectionQuery" });
    let response = app.post_graphql(None, &body).await;
    assert_eq!(response.status().as_u16(), 200);
    let schema = data(response.json().await.expect("a JSON body"));
    assert_eq!(schema["__schema"]["subscriptionType"]["name"], "SubscriptionRoot");
    let types = schema["__schema"]["types"].as_array().expect("types");
    assert!(types.iter().any(|t| t["name"] == "Message"), "the schema lists Message");
}

async fn without_the_playground_the_schema_stays_hidden(backend: Backend) {
    let typo = json!({ "query": "{ viewer { handel } }" });
    let open = spawn_app(backend).await;
    let alice = open.create_org().await.user("alice").await;
    let hint = open.post_graphql(Some(&alice.token), &typo).await.text().await.expect("a body");
    assert!(hint.contains("Did you mean"), "suggestions with the playground on: {hint}");

    let closed = spawn_app_with(backend, &[("PARLEY_PLAYGROUND", "false")]).await;
    let bob = closed.create_org().await.user("bob").await;
    let answer = closed.post_graphql(Some(&bob.token), &typo).await.text().await.expect("a body");
    assert!(answer.contains("handel") && !answer.contains("Did you mean"), "no field hints: {answer}");
    let schema = json!({ "query": "{ __schema { types { name } } }" });
    let response: serde_json::Value = closed.post_graphql(None, &schema).await.json().await.expect("JSON");
    // async-graphql answers a disabled introspection with null, not an error.
    assert!(response["data"]["__schema"].is_null(), "no schema: {response}");
}

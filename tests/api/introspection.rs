//! GraphiQL's schema request: the full introspection query that graphql-js clients send
//! (`getIntrospectionQuery()`), anonymous, under the default depth and complexity limits.

use serde_json::json;

use crate::helpers::spawn_app;
use crate::helpers::{Backend, data};

backend_tests!(graphiql_introspection_passes_the_default_limits);

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

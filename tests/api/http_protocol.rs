//! GraphQL over HTTP and the operational endpoints: `Accept` negotiation and
//! status codes, GET queries, mutations over GET (405), the body size limit
//! (413, readable cross-origin), `operationName`, gzip for clients that accept it, `/healthz`, `/readyz`,
//! `/metrics`, and request ids (echoed, and in every JSON log line of the request). The
//! pages (`/`, `/app`) are in `pages`.

use serde_json::{Value, json};

use crate::helpers::api::{create_channel, latest_seq, my_room_ids};
use crate::helpers::{Backend, TestApp, TestUser, assert_error_code, data, spawn_app, spawn_app_with};

backend_tests!(
    application_json_is_always_200,
    graphql_response_json_uses_4xx_before_execution,
    get_runs_queries,
    mutations_over_get_are_405,
    bodies_over_the_limit_are_413,
    a_body_limit_above_2_mib_is_honoured,
    bodies_of_too_many_json_values_are_refused,
    operation_name_selects_the_operation,
    large_answers_are_gzipped_for_clients_that_accept_them,
    health_readiness_and_metrics,
    request_ids_are_echoed_and_logged,
);

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// POSTs `body` with `accept`; returns status, content-type and the JSON body.
async fn post(app: &TestApp, user: &TestUser, accept: &str, body: Value) -> (u16, String, Value) {
    let response = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&user.token)
        .header("Accept", accept)
        .json(&body)
        .send()
        .await
        .expect("POST /graphql");
    let status = response.status().as_u16();
    let content_type = content_type(&response);
    let text = response.text().await.expect("response body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} body is not JSON: {text}"));
    (status, content_type, json)
}

fn content_type(response: &reqwest::Response) -> String {
    response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn application_json_is_always_200(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;

    let (status, kind, body) =
        post(&app, &alice, "application/json", json!({ "query": "{ viewer { handle } }" })).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("application/json"), "content-type {kind}");
    assert_eq!(data(body)["viewer"]["handle"], "alice");

    for query in ["{ viewer { handle }", "{ viewer { noSuchField } }"] {
        let (status, kind, body) = post(&app, &alice, "application/json", json!({ "query": query })).await;
        assert_eq!(status, 200, "application/json answers 200 even for {query}: {body}");
        assert!(kind.starts_with("application/json"), "content-type {kind}");
        assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()), "{body}");
    }
}

async fn graphql_response_json_uses_4xx_before_execution(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;

    let (status, kind, body) =
        post(&app, &alice, GRAPHQL_RESPONSE, json!({ "query": "{ viewer { handle } }" })).await;
    assert_eq!(status, 200);
    assert!(kind.starts_with(GRAPHQL_RESPONSE), "content-type {kind}");
    assert_eq!(data(body)["viewer"]["handle"], "alice");

    for query in ["{ viewer { handle }", "{ viewer { noSuchField } }", "query($x: Int!) { viewer { id } }"] {
        let (status, kind, body) = post(&app, &alice, GRAPHQL_RESPONSE, json!({ "query": query })).await;
        assert_eq!(status, 400, "a request failing before execution is 400: {query} → {body}");
        assert!(kind.starts_with(GRAPHQL_RESPONSE), "content-type {kind}");
        assert!(body.get("data").is_none(), "no execution, no `data` entry: {body}");
        assert!(body["errors"].as_array().is_some_and(|e| !e.is_empty()), "{body}");
    }
}

async fn get_runs_queries(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;

    let response = app
        .http
        .get(app.url("/graphql"))
        .bearer_auth(&alice.token)
        .header("Accept", "application/json")
        .query(&[
            ("query", "query($n: Int) { viewer { handle rooms(first: $n) { edges { cursor } } } }"),
            ("variables", r#"{"n": 5}"#),
        ])
        .send()
        .await
        .expect("GET /graphql");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(data(body)["viewer"]["handle"], "alice");
}

async fn mutations_over_get_are_405(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let mutation = r#"mutation { createChannel(input: { name: "via-get" }) { id } }"#;

    for accept in ["application/json", GRAPHQL_RESPONSE] {
        let response = app
            .http
            .get(app.url("/graphql"))
            .bearer_auth(&alice.token)
            .header("Accept", accept)
            .query(&[("query", mutation)])
            .send()
            .await
            .expect("GET /graphql");
        assert_eq!(response.status().as_u16(), 405, "GET mutation with Accept {accept}");
        let allow =
            response.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert!(allow.to_ascii_uppercase().contains("POST"), "405 names POST in Allow, got {allow:?}");
    }
    assert!(my_room_ids(&app, &alice, json!(null)).await.is_empty(), "nothing was created");
}

async fn bodies_over_the_limit_are_413(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_MAX_BODY_BYTES", "4096")]).await;
    let alice = app.create_org().await.user("alice").await;
    let room = create_channel(&app, &alice, "general", &[]).await;
    let send = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { seq } }";

    // 5 000 characters: a valid message, but not a valid request here.
    let big =
        json!({ "query": send, "variables": { "input": { "roomId": room, "body": "b".repeat(5_000) } } });
    let response = app.post_too_large(Some(&alice.token), &big).await;
    let body: Value = response.json().await.expect("a GraphQL error body");
    assert_error_code(&body, "BAD_USER_INPUT");
    assert_eq!(latest_seq(&app, &alice, &room).await, 0, "the oversized request changed nothing");

    // A page on another origin reads the refusal too: it carries the CORS and request-id
    // headers every other answer has.
    let from_a_page = app
        .http
        .post(app.url("/graphql"))
        .header("Origin", "https://app.example")
        .header("Content-Type", "application/json")
        .bearer_auth(&alice.token)
        .body(big.to_string())
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(from_a_page.status().as_u16(), 413);
    let headers = from_a_page.headers();
    assert!(headers.contains_key("access-control-allow-origin"), "{headers:?}");
    assert!(headers.contains_key("x-request-id"), "{headers:?}");

    // Far beyond the limit (the client is still sending when the answer is decided).
    let padded = json!({ "query": "{ viewer { id } }", "variables": { "pad": "p".repeat(1 << 20) } });
    app.post_too_large(Some(&alice.token), &padded).await;

    // Chunked, so the server learns the size only while reading.
    let (status, answer) = post_chunked(&app, &alice.token, &big.to_string()).await;
    assert_eq!(status, 413, "a chunked body over the limit: {answer}");
    assert!(answer.contains("BAD_USER_INPUT"), "a GraphQL error body: {answer}");
    assert_eq!(latest_seq(&app, &alice, &room).await, 0, "the chunked request changed nothing");

    let small =
        json!({ "query": send, "variables": { "input": { "roomId": room, "body": "b".repeat(3_000) } } });
    let response = app.post_graphql(Some(&alice.token), &small).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(data(response.json().await.expect("JSON body"))["sendMessage"]["seq"], 1);
}

/// POSTs `body` to `/graphql` with `Transfer-Encoding: chunked` (1 KiB chunks) over a raw
/// HTTP/1.1 connection; returns the status and the whole answer.
async fn post_chunked(app: &TestApp, token: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&app.addr).await.expect("connect");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.addr
    );
    let mut request = head.into_bytes();
    for chunk in body.as_bytes().chunks(1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.expect("send the chunked request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read the answer");
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

/// axum's own default limit (2 MiB) must not cap a larger configured limit.
async fn a_body_limit_above_2_mib_is_honoured(backend: Backend) {
    let app = spawn_app_with(backend, &[("PARLEY_MAX_BODY_BYTES", &(4 << 20).to_string())]).await;
    let alice = app.create_org().await.user("alice").await;
    let padded =
        |bytes: usize| json!({ "query": "{ viewer { handle } }", "variables": { "pad": "p".repeat(bytes) } });

    let response = app.post_graphql(Some(&alice.token), &padded(3 << 20)).await;
    assert_eq!(response.status().as_u16(), 200, "3 MiB is under the 4 MiB limit");
    assert_eq!(data(response.json().await.expect("JSON body"))["viewer"]["handle"], "alice");
    app.post_too_large(Some(&alice.token), &padded(5 << 20)).await;
}

/// One JSON value per 10 bytes of the body limit (10 000 here): each costs far more memory
/// read than sent, so a body within the limit may still hold too many.
async fn bodies_of_too_many_json_values_are_refused(backend: Backend) {
    let limits = [("PARLEY_MAX_BODY_BYTES", "100000"), ("PARLEY_MAX_QUERY_BYTES", "1000")];
    let app = spawn_app_with(backend, &limits).await;
    let alice = app.create_org().await.user("alice").await;
    let listed = |n: usize| json!({ "query": "{ viewer { handle } }", "variables": { "pad": vec![1; n] } });

    let response = app.post_graphql(Some(&alice.token), &listed(9_990)).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(data(response.json().await.expect("JSON body"))["viewer"]["handle"], "alice");

    let response = app.post_graphql(Some(&alice.token), &listed(10_000)).await;
    assert_eq!(response.status().as_u16(), 400, "about 20 KB, but 10 004 values");
    let answer: Value = response.json().await.expect("JSON body");
    assert_error_code(&answer, "BAD_USER_INPUT");
    assert_eq!(answer["errors"][0]["message"], "the body holds more than 10000 JSON values", "{answer}");

    // The same in a GET request's URL, and a document over `PARLEY_MAX_QUERY_BYTES` (1 000
    // here) there is refused before the check for mutations parses it.
    let get = |params: Vec<(&'static str, String)>| {
        app.http.get(app.url("/graphql")).bearer_auth(&alice.token).query(&params).send()
    };
    let pad = |n: usize| serde_json::to_string(&json!({ "pad": vec![1; n] })).expect("JSON");
    let query = || ("query", "{ viewer { handle } }".to_owned());
    let response = get(vec![query(), ("variables", pad(1_000))]).await.expect("GET /graphql");
    assert_eq!(data(response.json().await.expect("JSON body"))["viewer"]["handle"], "alice");
    let response = get(vec![query(), ("variables", pad(10_000))]).await.expect("GET /graphql");
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.expect("JSON body");
    assert_eq!(answer["errors"][0]["message"], "the URL holds more than 10000 JSON values", "{answer}");
    let long = format!("mutation {{ x }}{}", " ".repeat(1_000));
    let answer: Value =
        get(vec![("query", long)]).await.expect("GET /graphql").json().await.expect("JSON body");
    assert_error_code(&answer, "BAD_USER_INPUT");
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert_eq!(message, "the query is 1014 bytes long; at most 1000 are allowed", "{answer}");
}

async fn operation_name_selects_the_operation(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let document = "query Handle { viewer { handle } } query Total { viewer { unreadTotal } }";

    let body = json!({ "query": document, "operationName": "Total" });
    let (status, _, response) = post(&app, &alice, "application/json", body).await;
    assert_eq!(status, 200);
    assert_eq!(data(response)["viewer"], json!({ "unreadTotal": 0 }));

    // async-graphql sends these refusals without a code; the server adds the one of bad input.
    let (_, _, ambiguous) = post(&app, &alice, "application/json", json!({ "query": document })).await;
    assert_eq!(
        ambiguous["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "two operations need a name: {ambiguous}"
    );
    let unknown = json!({ "query": document, "operationName": "Count" });
    let (_, _, unknown) = post(&app, &alice, "application/json", unknown).await;
    assert_eq!(
        unknown["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "no operation is named Count: {unknown}"
    );
    let subscription = json!({ "query": "subscription { messageAdded { seq } }" });
    let (_, _, over_post) = post(&app, &alice, "application/json", subscription).await;
    assert_eq!(
        over_post["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "subscriptions need a WebSocket: {over_post}"
    );
}

async fn large_answers_are_gzipped_for_clients_that_accept_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    let answer = async |query: &str, accept_encoding: Option<&str>| {
        let mut request = app.http.post(app.url("/graphql")).bearer_auth(&alice.token);
        if let Some(encoding) = accept_encoding {
            request = request.header("Accept-Encoding", encoding);
        }
        let response = request.json(&json!({ "query": query })).send().await.expect("POST /graphql");
        let encoding =
            response.headers().get("content-encoding").map(|v| v.to_str().unwrap_or("?").to_owned());
        (encoding, response.bytes().await.expect("a body").to_vec())
    };
    let large = "{ __schema { types { name fields { name } } } }";

    let (encoding, plain) = answer(large, None).await;
    assert_eq!(encoding, None, "not compressed unless asked");
    let (encoding, zipped) = answer(large, Some("gzip, deflate, br")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(zipped.as_slice()), &mut unzipped)
        .expect("a gzip body");
    let parse = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).expect("a JSON answer");
    assert_eq!(parse(&unzipped), parse(&plain), "the same answer");
    assert!(zipped.len() * 4 < plain.len(), "{} bytes zipped from {}", zipped.len(), plain.len());

    let (encoding, small) = answer("{ viewer { handle } }", Some("gzip")).await;
    assert_eq!(encoding, None, "a small answer goes as it is");
    assert_eq!(parse(&small)["data"]["viewer"]["handle"], "alice");
}

async fn health_readiness_and_metrics(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.create_org().await.user("alice").await;
    // Give the metrics something to count.
    app.ok(&alice, "{ viewer { id } }", json!({})).await;

    for path in ["/healthz", "/readyz"] {
        let response = app.http.get(app.url(path)).send().await.expect("GET health");
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }

    let metrics = app.http.get(app.url("/metrics")).send().await.expect("GET /metrics");
    assert_eq!(metrics.status().as_u16(), 200);
    assert!(content_type(&metrics).starts_with("text/plain"), "prometheus text format");
    let text = metrics.text().await.expect("metrics body");
    assert!(text.contains("# TYPE"), "prometheus exposition expected, got:\n{text}");
}

/// A request's id (the client's `x-request-id`, or one generated) comes back in the answer
/// and is in the JSON log lines of that request, so an operator finds what one request did;
/// `/metrics` counts requests by operation name.
async fn request_ids_are_echoed_and_logged(backend: Backend) {
    let settings = [("PARLEY_LOG_FORMAT", "json"), ("RUST_LOG", "info,tower_http=debug")];
    let app = spawn_app_with(backend, &settings).await;
    let alice = app.create_org().await.user("alice").await;
    let request = |id: Option<&str>| {
        let mut request = app.http.post(app.url("/graphql")).bearer_auth(&alice.token);
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.json(&json!({ "query": "query WhoAmI { viewer { handle } }" })).send()
    };
    let request_id = |response: &reqwest::Response| {
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };

    let given = request(Some("trace-me-7f3a")).await.expect("POST /graphql");
    assert_eq!(given.status().as_u16(), 200);
    assert_eq!(request_id(&given), "trace-me-7f3a", "the client's id is echoed");
    let generated = request(None).await.expect("POST /graphql");
    let id = request_id(&generated);
    assert_eq!(id.len(), 36, "a UUID is generated when the client sends none: {id:?}");

    for id in ["trace-me-7f3a", id.as_str()] {
        let line = app.log_line(id).await;
        let line: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON log line: {line}"));
        assert_eq!(line["span"]["request_id"], id, "{line}");
        assert_eq!(line["span"]["path"], "/graphql", "{line}");
    }
    let count = app.metric("parley_graphql_request_seconds_count{operation=\"WhoAmI\",outcome=\"ok\"}").await;
    assert_eq!(count, 2.0, "both requests counted under their operation name");
}

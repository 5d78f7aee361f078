//! docs/openapi.yaml against the gateway: its (method, path) set is exactly
//! `lijian_gateway::ROUTES`, every documented route answers on a live gateway
//! (with a documented HTTP status and content type, signed only with the
//! documented headers), methods it does not document are refused, and the
//! answers' `data` fields and both status tables are the code's.

use std::collections::BTreeSet;

use lijian_core::status::{ApiStatus, OrderStatus};
use lijian_gateway::ROUTES;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::helpers::*;

const COUPONS: &str = "/v1/openapi/order/wechat/coupons";
const INFO: &str = "/v1/openapi/order/info";

/// The path-item keys that are operations in OpenAPI 3.0 (the rest are
/// `summary`, `parameters`, `servers`, …).
const OPERATIONS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Methods tried where the spec does not document them. HEAD and OPTIONS are
/// left out: HTTP servers answer them for any GET route by convention.
const PROBED: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn spec() -> Yaml {
    let path = format!("{}/../../docs/openapi.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{path} holds one YAML document");
    let doc = docs.remove(0);
    assert_eq!(doc["openapi"].as_str(), Some("3.0.3"));
    doc
}

fn documented_routes(spec: &Yaml) -> BTreeSet<(String, String)> {
    let paths = spec["paths"].as_hash().expect("paths is a mapping");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path is a string");
        for method in item.as_hash().expect("path item is a mapping").keys().filter_map(Yaml::as_str) {
            if OPERATIONS.contains(&method) {
                routes.insert((method.to_uppercase(), path.to_string()));
            }
        }
    }
    routes
}

fn operation<'a>(spec: &'a Yaml, method: &str, path: &str) -> &'a Yaml {
    let op = &spec["paths"][path][method.to_lowercase().as_str()];
    assert!(!op.is_badvalue(), "{method} {path} is not in docs/openapi.yaml");
    op
}

/// Follows local `$ref`s until a node that is not one.
fn resolve<'a>(spec: &'a Yaml, mut node: &'a Yaml) -> &'a Yaml {
    while let Some(reference) = node["$ref"].as_str() {
        let pointer = reference.strip_prefix("#/").unwrap_or_else(|| panic!("$ref {reference} is not local"));
        node = pointer.split('/').fold(spec, |at, part| &at[part]);
        assert!(!node.is_badvalue(), "$ref {reference} points nowhere");
    }
    node
}

/// A schema's property, looked up through `$ref` and `allOf`.
fn property<'a>(spec: &'a Yaml, schema: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    let schema = resolve(spec, schema);
    let own = &schema["properties"][name];
    if !own.is_badvalue() {
        return Some(own);
    }
    schema["allOf"].as_vec()?.iter().find_map(|part| property(spec, part, name))
}

/// A schema's property names, through `$ref` and `allOf`.
fn property_names(spec: &Yaml, schema: &Yaml) -> BTreeSet<String> {
    let schema = resolve(spec, schema);
    let mut names: BTreeSet<String> = schema["properties"]
        .as_hash()
        .map(|props| props.keys().filter_map(Yaml::as_str).map(String::from).collect())
        .unwrap_or_default();
    for part in schema["allOf"].as_vec().into_iter().flatten() {
        names.extend(property_names(spec, part));
    }
    names
}

fn yaml_ints(node: &Yaml) -> Vec<i64> {
    node.as_vec().expect("a list").iter().map(|v| v.as_i64().expect("an integer")).collect()
}

fn yaml_strs(node: &Yaml) -> Vec<String> {
    node.as_vec().expect("a list").iter().map(|v| v.as_str().expect("a string").to_string()).collect()
}

#[test]
fn documented_routes_are_the_gateway_routes() {
    let routes: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(routes.len(), ROUTES.len(), "ROUTES lists a route twice");
    let spec = spec();
    let documented = documented_routes(&spec);
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/openapi.yaml and lijian_gateway::ROUTES differ; undocumented: {missing:?}, not served: {extra:?}"
    );
}

#[test]
fn documented_status_tables_are_the_code_s() {
    let spec = spec();
    let api = &spec["components"]["schemas"]["ApiStatus"];
    let codes = yaml_ints(&api["enum"]);
    let names = yaml_strs(&api["x-enum-varnames"]);
    assert_eq!(codes.len(), names.len(), "ApiStatus: one x-enum-varname per code");
    assert_eq!(yaml_strs(&api["x-enum-descriptions"]).len(), codes.len(), "ApiStatus: one description per code");
    let in_code: Vec<(i64, String)> =
        (0..=999).filter_map(|c| ApiStatus::from_code(c).map(|s| (i64::from(c), format!("{s:?}")))).collect();
    let documented: Vec<(i64, String)> = codes.into_iter().zip(names).collect();
    assert_eq!(documented, in_code, "ApiStatus in docs/openapi.yaml vs lijian_core::status::ApiStatus");

    let order = &spec["components"]["schemas"]["OrderStatus"];
    let in_code: Vec<(i64, String)> =
        (0..=99).filter_map(|c| OrderStatus::try_from(c).ok().map(|s| (i64::from(c), format!("{s:?}")))).collect();
    let documented: Vec<(i64, String)> =
        yaml_ints(&order["enum"]).into_iter().zip(yaml_strs(&order["x-enum-varnames"])).collect();
    assert_eq!(documented, in_code, "OrderStatus in docs/openapi.yaml vs lijian_core::status::OrderStatus");
    let labels: Vec<String> = in_code
        .iter()
        .map(|(c, _)| OrderStatus::try_from(*c as i16).expect("listed above").label().to_string())
        .collect();
    let status_text = property(&spec, &spec["components"]["schemas"]["Order"], "statusText").expect("statusText");
    assert_eq!(yaml_strs(&status_text["enum"]), labels, "Order.statusText vs OrderStatus::label");
}

struct Answer {
    http: u16,
    content_type: String,
    json: Option<Value>,
}

impl Answer {
    /// An answer that says the route does not exist: HTTP 404/405, or the open
    /// API's own "no such method" (HTTP 200, status 4).
    fn is_no_such_route(&self) -> bool {
        matches!(self.http, 404 | 405)
            || self.json.as_ref().is_some_and(|j| j["status"].as_i64() == Some(ApiStatus::NoSuchMethod.code().into()))
    }
}

async fn call(app: &TestApp, method: &str, path: &str, headers: &[(String, String)], body: Option<&str>) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
    let mut request = app.http.request(method, app.url(path));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.header("Content-Type", "application/json; charset=utf-8").body(body.to_string());
    }
    let response = request.send().await.expect("HTTP request");
    let http = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let text = response.text().await.expect("answer body");
    Answer { http, content_type, json: serde_json::from_str(&text).ok() }
}

/// The value of each header the spec documents for `op`, taken from a request
/// signed the documented way; a header the spec adds that the test does not know
/// fails loudly rather than being left out.
fn documented_headers(spec: &Yaml, op: &Yaml, req: &Req) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for param in op["parameters"].as_vec().into_iter().flatten() {
        let param = resolve(spec, param);
        if param["in"].as_str() != Some("header") {
            continue;
        }
        let name = param["name"].as_str().expect("parameter name");
        let value = match name {
            "businessId" => Some(req.business_id.clone()),
            "nonce" => Some(req.nonce.clone()),
            "timestamp" => Some(req.timestamp.clone()),
            "signType" => req.sign_type.clone(),
            "sign" => Some(req.sign.clone()),
            other => panic!("docs/openapi.yaml documents header {other}, unknown to this test"),
        };
        headers.extend(value.map(|v| (name.to_string(), v)));
    }
    headers
}

/// `type/subtype` and the parameters, lowercased without spaces.
fn media_type(text: &str) -> (String, BTreeSet<String>) {
    let mut parts = text.split(';').map(|p| p.trim().to_ascii_lowercase().replace(' ', ""));
    let essence = parts.next().unwrap_or_default();
    (essence, parts.filter(|p| !p.is_empty()).collect())
}

/// Problems with one documented route's answer, as readable lines.
fn check_answer(spec: &Yaml, method: &str, path: &str, answer: &Answer) -> Vec<String> {
    let route = format!("{method} {path}");
    if answer.is_no_such_route() {
        return vec![format!("{route} is documented but not served (HTTP {}, {:?})", answer.http, answer.json)];
    }
    let op = operation(spec, method, path);
    let response = &op["responses"][answer.http.to_string().as_str()];
    if response.is_badvalue() {
        return vec![format!("{route} answered HTTP {}, which the spec does not document", answer.http)];
    }
    let (essence, params) = media_type(&answer.content_type);
    let documented = response["content"].as_hash().map(|c| c.keys().filter_map(Yaml::as_str).collect::<Vec<_>>());
    let matching = documented.iter().flatten().find(|key| {
        let (doc_essence, doc_params) = media_type(key);
        doc_essence == essence && doc_params.is_subset(&params)
    });
    let Some(media) = matching else {
        return vec![format!("{route} answered Content-Type {:?}, documented: {documented:?}", answer.content_type)];
    };
    // Refusals mostly carry `data: null`, so only a success shows the fields.
    let Some(json) = answer.json.as_ref().filter(|j| j["status"].as_i64() == Some(0)) else {
        return Vec::new();
    };
    let schema = &response["content"][*media]["schema"];
    let Some(data_schema) = property(spec, schema, "data") else {
        return vec![format!("{route}: the documented answer has no `data`")];
    };
    let actual: BTreeSet<String> = json["data"].as_object().map(|d| d.keys().cloned().collect()).unwrap_or_default();
    let documented = property_names(spec, data_schema);
    if actual != documented {
        return vec![format!("{route}: answer data fields {actual:?}, documented {documented:?}")];
    }
    Vec::new()
}

#[tokio::test]
async fn every_documented_route_answers_and_no_other_method_does() {
    let spec = spec();
    let app = spawn_app().await;
    let mut problems = Vec::new();

    let placed = app.order("openapi-queried").await;
    let query = format!(r#"{{"merchantId":"{MERCHANT}","businessId":"{BUSINESS}","bizCode":"openapi-queried"}}"#);
    for (method, path) in documented_routes(&spec) {
        let (headers, body) = if method == "POST" {
            let body = match path.as_str() {
                COUPONS => order_body("openapi-placed"),
                INFO => query.clone(),
                _ => format!(r#"{{"merchantId":"{MERCHANT}","businessId":"{BUSINESS}"}}"#),
            };
            let req = Req::new(&body).signed_rsa(&app.signer);
            (documented_headers(&spec, operation(&spec, &method, &path), &req), Some(body))
        } else {
            (Vec::new(), None)
        };
        let answer = call(&app, &method, &path, &headers, body.as_deref()).await;
        let problems_before = problems.len();
        problems.extend(check_answer(&spec, &method, &path, &answer));
        // The seeded merchant signing with only the documented headers must get
        // through, or the spec leaves out something a merchant needs.
        let open_api = path == COUPONS || path == INFO;
        let status = answer.json.as_ref().and_then(|j| j["status"].as_i64());
        if open_api && problems.len() == problems_before && status != Some(0) {
            problems.push(format!("{method} {path}: signed as documented but answered {:?}", answer.json));
        }
    }

    let documented = documented_routes(&spec);
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in PROBED.into_iter().filter(|m| !documented.contains(&(m.to_string(), path.clone()))) {
            let body = (method != "GET").then(|| query.clone());
            let answer = call(&app, method, path, &[], body.as_deref()).await;
            if !answer.is_no_such_route() {
                problems.push(format!(
                    "{method} {path} is not documented but was accepted (HTTP {}, {:?})",
                    answer.http, answer.json
                ));
            }
        }
    }
    app.stop().await;
    assert_eq!(placed["status"], 0, "{placed}");
    assert!(problems.is_empty(), "docs/openapi.yaml vs the live gateway:\n  {}", problems.join("\n  "));
}

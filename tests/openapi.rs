//! `GET /openapi.json` stays true: every route and method it documents answers on the running
//! server (not a 404 for the route or a 405), every route `src/http/mod.rs` registers is in it,
//! and every `$ref` in it resolves.

mod support;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::{App, Redis};

const TOKEN: &str = "openapi-test-token-0123456789";

/// `(path, method)` of every route the route table in `src/http/mod.rs` registers: each
/// `web::resource("...")` and the methods of its `.route(...)`s (`get_or_head()` is GET).
fn registered_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/mod.rs"))
        .expect("read src/http/mod.rs");
    let body = source
        .split("pub fn routes")
        .nth(1)
        .expect("the routes function");
    let mut routes = BTreeSet::new();
    for block in body.split("web::resource(\"").skip(1) {
        let (path, rest) = block.split_once('"').expect("a quoted path");
        let rest = rest.split(".service(").next().unwrap_or(rest);
        for (needle, method) in [
            ("get_or_head()", "get"),
            ("web::get()", "get"),
            ("web::post()", "post"),
            ("web::delete()", "delete"),
            ("web::put()", "put"),
            ("web::patch()", "patch"),
        ] {
            if rest.contains(&format!(".route({needle}")) {
                routes.insert((path.to_string(), method.to_string()));
            }
        }
    }
    assert!(routes.len() >= 10, "parsed too few routes: {routes:?}");
    routes
}

fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            methods
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (path.clone(), m.to_string()))
        })
        .collect()
}

/// Every `$ref` string in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

#[test]
fn the_document_covers_every_route_and_every_documented_route_answers() {
    let redis = Redis::start();
    let app = App::start_ready(&redis.url(), &[("API_TOKEN", TOKEN)]);
    // Public, like /health.
    let res = app.http().get(app.url("/openapi.json")).send().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Error"].is_object());

    let registered = registered_routes();
    let documented = documented_routes(&doc);
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.json: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&registered).collect();
    assert!(
        phantom.is_empty(),
        "documented but not in the route table: {phantom:?}"
    );

    for (path, method) in &documented {
        let url = app.url(&path.replace("{id}", "0190a0a0-abcd-7000-8000-00000000beef"));
        let method: Method = method.to_uppercase().parse().unwrap();
        let res = app
            .http()
            .request(method.clone(), &url)
            .bearer_auth(TOKEN)
            .send()
            .expect("request");
        let status = res.status();
        let body = res.text().unwrap_or_default();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
        assert!(
            !(status == StatusCode::NOT_FOUND && body.contains("no route")),
            "{method} {path}: {body}"
        );
        let op = &doc["paths"][path][method.as_str().to_lowercase()];
        assert!(
            op["responses"].is_object(),
            "{method} {path} has no responses"
        );
    }

    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let pointer = r.strip_prefix('#').expect("a local $ref");
        assert!(doc.pointer(pointer).is_some(), "unresolved $ref {r}");
    }
}

//! The contract, checked on every answer of the suite: the test harness hands each
//! `/v1` response it sees to [`check`], which finds the operation in the OpenAPI
//! document the server serves, requires the status to be documented for it, and
//! validates a JSON body against the documented schema. So every test of this suite is
//! also a test of `docs/openapi.json`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};

struct Contract {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| Contract {
        doc: serde_json::from_str(&dialtone_api::openapi::document_json())
            .expect("the document is JSON"),
        validators: Mutex::new(HashMap::new()),
    })
}

/// The documented path template a request path falls under: the template whose
/// literal segments all match, preferring more literal segments
/// (`/v1/phone-numbers/available` over `/v1/phone-numbers/{id}`).
fn template<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .filter_map(|t| {
            let parts: Vec<&str> = t.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (p, s) in parts.iter().zip(&segments) {
                if p.starts_with('{') {
                    if s.is_empty() {
                        return None;
                    }
                } else if p == s {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, t.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, t)| t)
}

/// Checks one answer against the document. Paths the document does not describe
/// (`/healthz`, carrier callbacks, the dashboard, signed media links) are not checked;
/// nor are methods it does not list (the server answers those 405).
pub fn check(method: &str, path_and_query: &str, status: u16, content_type: &str, body: &[u8]) {
    let c = contract();
    let path = path_and_query.split('?').next().unwrap_or_default();
    let Some(template) = template(&c.doc, path) else {
        return;
    };
    let method = method.to_ascii_lowercase();
    let Some(op) = c.doc["paths"][template].get(&method) else {
        return;
    };
    let responses = &op["responses"];
    let Some(response) = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
    else {
        panic!(
            "contract: {} {template} answered {status}, which the document does not list \
             (documented: {:?}); body: {}",
            method.to_uppercase(),
            responses
                .as_object()
                .map(|r| r.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default(),
            String::from_utf8_lossy(body)
        );
    };
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        return;
    };
    if !content_type.starts_with("application/json") {
        panic!(
            "contract: {} {template} answered {status} with content type {content_type:?}; \
             the document says application/json",
            method.to_uppercase()
        );
    }
    let Ok(instance) = serde_json::from_slice::<Value>(body) else {
        panic!(
            "contract: {} {template} answered {status} with a body that is not JSON: {}",
            method.to_uppercase(),
            String::from_utf8_lossy(body)
        );
    };
    let key = format!("{method} {template} {status}");
    let validator = {
        let mut cache = c.validators.lock().expect("validator cache");
        cache
            .entry(key.clone())
            .or_insert_with(|| {
                let mut root = json!({ "components": c.doc["components"] });
                if let (Some(root), Some(schema)) = (root.as_object_mut(), schema.as_object()) {
                    root.extend(schema.clone());
                }
                Arc::new(
                    jsonschema::draft202012::new(&root)
                        .unwrap_or_else(|e| panic!("contract: the schema of {key} compiles: {e}")),
                )
            })
            .clone()
    };
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(5)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "contract: {key}: the body does not match the documented schema:\n  {}\nbody: {instance}",
        errors.join("\n  ")
    );
}

//! A submitted form: `application/x-www-form-urlencoded` from a browser, or a
//! JSON object from a script (string values, or arrays of strings for fields
//! that repeat, such as `order`).

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// The fields of a submitted form, in order; a name may repeat.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    /// A form read another way (the text fields of a multipart upload).
    pub fn from_fields(fields: Vec<(String, String)>) -> Form {
        Form(fields)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, if not empty.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string)
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, v)| k == name && !v.trim().is_empty()).map(|(_, v)| v.trim().to_string()).collect()
    }

    /// Whether the operator confirmed (`confirm=yes`).
    pub fn confirmed(&self) -> bool {
        self.get("confirm") == Some("yes")
    }

    fn parse(content_type: &str, body: &[u8]) -> Result<Form, String> {
        if content_type.starts_with("application/json") {
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
            let object = value.as_object().ok_or("the JSON body must be an object")?;
            let mut fields = Vec::new();
            for (name, value) in object {
                match value {
                    serde_json::Value::Array(items) => {
                        fields.extend(items.iter().map(|item| (name.clone(), json_text(item))));
                    }
                    other => fields.push((name.clone(), json_text(other))),
                }
            }
            return Ok(Form(fields));
        }
        Ok(Form(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()))
    }
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        other => other.to_string(),
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Form, Response> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let body = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
        Form::parse(&content_type, &body).map_err(|why| (StatusCode::BAD_REQUEST, why).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_and_script_forms_read_alike() -> Result<(), String> {
        let browser =
            Form::parse("application/x-www-form-urlencoded", b"order=LJ1&order=LJ2&confirm=yes&csrf=&note=a+b")?;
        let script = Form::parse("application/json", br#"{"order":["LJ1","LJ2"],"confirm":true,"note":"a b"}"#)?;
        for form in [&browser, &script] {
            assert_eq!(form.all("order"), ["LJ1", "LJ2"]);
            assert!(form.confirmed());
            assert_eq!(form.text("note").as_deref(), Some("a b"));
            assert_eq!(form.text("csrf"), None);
        }
        assert!(Form::parse("application/json", b"[1]").is_err());
        Ok(())
    }
}

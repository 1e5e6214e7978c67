//! The field reference of the LiveStream API (`docs/reference.md`), generated from the
//! CRD's schema: every field of the spec and the status with its type, default, limits
//! and description, so the document cannot drift from the types.

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{JSONSchemaProps, JSONSchemaPropsOrArray};

use super::crd;

/// The reference as Markdown, exactly as `livestream reference` prints it.
pub fn markdown() -> String {
    let crd = crd();
    let mut out = String::new();
    let _ = writeln!(out, "# LiveStream API reference\n");
    let _ = writeln!(
        out,
        "`{}/{}`, kind `{}`. Generated from the types by `livestream reference`; a test keeps this file in sync.",
        crd.spec.group,
        crd.spec.versions.first().map(|v| v.name.as_str()).unwrap_or_default(),
        crd.spec.names.kind
    );
    let schema = crd.spec.versions.first().and_then(|v| v.schema.as_ref()).and_then(|s| s.open_api_v3_schema.as_ref());
    for section in ["spec", "status"] {
        let Some(root) = schema.and_then(|s| s.properties.as_ref()).and_then(|p| p.get(section)) else { continue };
        let _ = writeln!(out, "\n## {section}\n");
        if let Some(description) = &root.description {
            let _ = writeln!(out, "{}\n", one_line(description));
        }
        let _ = writeln!(out, "| field | type | default | limits | description |");
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        let mut rows = Vec::new();
        fields(section, root, &mut rows);
        for row in rows {
            let _ = writeln!(out, "{row}");
        }
    }
    out
}

/// One table row per field below `schema`, depth first in the schema's (sorted) order.
fn fields(path: &str, schema: &JSONSchemaProps, rows: &mut Vec<String>) {
    let Some(properties) = &schema.properties else { return };
    for (name, child) in properties {
        let child_path = format!("{path}.{name}");
        rows.push(format!(
            "| `{child_path}` | {} | {} | {} | {} |",
            type_of(child),
            // An object's default is the defaults of its fields, listed on their rows.
            child
                .default
                .as_ref()
                .filter(|_| !matches!(child.type_.as_deref(), Some("object") | None))
                .map(|d| format!("`{}`", d.0))
                .unwrap_or_default(),
            limits(child, schema.required.as_ref().is_some_and(|r| r.contains(name))),
            child.description.as_deref().map(one_line).unwrap_or_default().replace('|', "\\|"),
        ));
        fields(&child_path, child, rows);
        if let Some(JSONSchemaPropsOrArray::Schema(items)) = &child.items {
            fields(&format!("{child_path}[]"), items, rows);
        }
    }
}

fn type_of(schema: &JSONSchemaProps) -> String {
    let base = schema.type_.clone().unwrap_or_else(|| "object".into());
    match (&schema.items, &schema.format) {
        (Some(JSONSchemaPropsOrArray::Schema(items)), _) => format!("array of {}", type_of(items)),
        (_, Some(format)) => format!("{base} ({format})"),
        _ => base,
    }
}

fn limits(schema: &JSONSchemaProps, required: bool) -> String {
    let mut parts = Vec::new();
    if required {
        parts.push("required".to_string());
    }
    if let Some(values) = &schema.enum_ {
        parts.push(
            values.iter().map(|v| format!("`{}`", v.0.as_str().unwrap_or_default())).collect::<Vec<_>>().join(", "),
        );
    }
    match (schema.minimum, schema.maximum) {
        (Some(min), Some(max)) => parts.push(format!("{min}–{max}")),
        (Some(min), None) => parts.push(format!("≥ {min}")),
        (None, Some(max)) => parts.push(format!("≤ {max}")),
        (None, None) => {}
    }
    if let Some(max) = schema.max_length {
        parts.push(format!("at most {max} characters"));
    }
    if let Some(max) = schema.max_items {
        parts.push(format!("at most {max} items"));
    }
    if let Some(pattern) = &schema.pattern {
        parts.push(format!("`{}`", pattern.replace('|', "\\|")));
    }
    for rule in schema.x_kubernetes_validations.iter().flatten() {
        if let Some(message) = &rule.message {
            parts.push(message.clone());
        }
    }
    parts.join("; ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_field_of_spec_and_status_is_listed() {
        let text = super::markdown();
        for field in [
            "`spec.ingest.tls.secretName`",
            "`spec.ladder.whenBehind`",
            "`status.posterUrl`",
            "`spec.ladder.renditions[].width`",
        ] {
            assert!(text.contains(field), "{field} missing");
        }
        assert!(text.contains("| `spec.ingest.tls.port` | integer (int32) | `1936` |"), "{text}");
    }
}

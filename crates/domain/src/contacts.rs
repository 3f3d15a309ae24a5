//! Contacts: the people a workspace calls and messages.
//!
//! [`ContactInput`] is what a create carries, [`ContactPatch`] what an update carries
//! (`null` clears a field, an absent field is left alone). Both are checked here:
//! phone numbers must be E.164, emails must look like emails, custom fields must be a
//! small flat object.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::{Result, Validator};
use crate::input::{apply, clean, present};
use crate::time::{Timestamp, rfc3339};

pub const TEXT_MAX: usize = 200;
pub const EXTERNAL_ID_MAX: usize = 255;
pub const EMAIL_MAX: usize = 320;
pub const CUSTOM_FIELDS_MAX: usize = 50;
pub const CUSTOM_KEY_MAX: usize = 64;
pub const CUSTOM_VALUE_MAX: usize = 1000;

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Contact {
    #[schema(example = "ct_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "contact")]
    pub object: &'static str,
    pub workspace_id: String,
    pub livemode: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// E.164, e.g. `+15551234567`.
    pub phone_number: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    /// Your own identifier for the contact; unique within a workspace and mode.
    pub external_id: Option<String>,
    #[schema(value_type = FlatObject)]
    pub custom_fields: Map<String, Value>,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// The editable fields of a contact.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[schema(example = "Ada")]
    pub first_name: Option<String>,
    #[schema(example = "Lovelace")]
    pub last_name: Option<String>,
    /// E.164, e.g. `+15551234567` (surrounding spaces are trimmed; an empty string
    /// means none).
    #[schema(pattern = "^\\s*(\\+[1-9][0-9]{1,14})?\\s*$", example = "+15551234567")]
    pub phone_number: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub job_title: Option<String>,
    pub external_id: Option<String>,
    /// A flat object of at most 50 string, number or boolean values.
    #[schema(value_type = Option<FlatObject>)]
    pub custom_fields: Option<Map<String, Value>>,
}

/// A partial update: absent fields stay, `null` clears.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "Ada")]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub company: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "Head of operations")]
    pub job_title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    /// Replaces the whole object; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<FlatObject>)]
    pub custom_fields: Option<Option<Map<String, Value>>>,
}

impl ContactInput {
    /// Trims text, turns empty strings into absent values, and checks every field.
    pub fn normalize(mut self) -> Result<Self> {
        for field in [
            &mut self.first_name,
            &mut self.last_name,
            &mut self.phone_number,
            &mut self.email,
            &mut self.company,
            &mut self.job_title,
            &mut self.external_id,
        ] {
            *field = clean(field.take());
        }
        let mut v = Validator::new();
        v.max_len("first_name", self.first_name.as_deref(), TEXT_MAX);
        v.max_len("last_name", self.last_name.as_deref(), TEXT_MAX);
        v.max_len("company", self.company.as_deref(), TEXT_MAX);
        v.max_len("job_title", self.job_title.as_deref(), TEXT_MAX);
        v.max_len("external_id", self.external_id.as_deref(), EXTERNAL_ID_MAX);
        if let Some(p) = &self.phone_number {
            v.check(
                is_e164(p),
                "phone_number",
                "phone_number must be in E.164 format, e.g. +15551234567",
            );
        }
        if let Some(e) = &self.email {
            v.check(
                e.len() <= EMAIL_MAX && is_plausible_email(e),
                "email",
                "email must be a valid email address",
            );
        }
        if let Some(fields) = &self.custom_fields {
            check_custom_fields(&mut v, fields);
        }
        v.check(
            self.first_name.is_some()
                || self.last_name.is_some()
                || self.phone_number.is_some()
                || self.email.is_some()
                || self.company.is_some(),
            "contact",
            "a contact needs at least one of first_name, last_name, phone_number, email or company",
        );
        v.finish()?;
        Ok(self)
    }

    pub fn from_contact(c: &Contact) -> Self {
        ContactInput {
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            phone_number: c.phone_number.clone(),
            email: c.email.clone(),
            company: c.company.clone(),
            job_title: c.job_title.clone(),
            external_id: c.external_id.clone(),
            custom_fields: Some(c.custom_fields.clone()),
        }
    }
}

impl ContactPatch {
    /// The contact's fields after this patch, checked as a whole.
    pub fn apply(self, current: &Contact) -> Result<ContactInput> {
        let mut next = ContactInput::from_contact(current);
        apply(&mut next.first_name, self.first_name);
        apply(&mut next.last_name, self.last_name);
        apply(&mut next.phone_number, self.phone_number);
        apply(&mut next.email, self.email);
        apply(&mut next.company, self.company);
        apply(&mut next.job_title, self.job_title);
        apply(&mut next.external_id, self.external_id);
        apply(&mut next.custom_fields, self.custom_fields);
        next.normalize()
    }
}

/// `+` then 2 to 15 digits, the first not zero.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

fn is_plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The schema of a small flat object (custom fields, call metadata): at most 50
/// entries, each a string, number, boolean or null, as [`check_custom_fields`] checks.
pub struct FlatObject;

impl utoipa::PartialSchema for FlatObject {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(format!(
                "A flat object: at most {CUSTOM_FIELDS_MAX} entries; names of 1 to {CUSTOM_KEY_MAX} characters; values strings (at most {CUSTOM_VALUE_MAX} characters), numbers, booleans or null."
            )))
            .max_properties(Some(CUSTOM_FIELDS_MAX))
            .additional_properties(Some(ObjectBuilder::new().schema_type(SchemaType::Array(vec![
                Type::String,
                Type::Number,
                Type::Boolean,
                Type::Null,
            ]))))
            .examples([serde_json::json!({"plan": "pro", "seats": 3, "vip": true})])
            .into()
    }
}

impl utoipa::ToSchema for FlatObject {}

/// Checks a small flat object (custom fields, call metadata).
pub(crate) fn check_custom_fields(v: &mut Validator, fields: &Map<String, Value>) {
    v.check(
        fields.len() <= CUSTOM_FIELDS_MAX,
        "custom_fields",
        format!("custom_fields may hold at most {CUSTOM_FIELDS_MAX} entries"),
    );
    for (key, value) in fields {
        let field = format!("custom_fields.{key}");
        v.check(
            !key.is_empty() && key.chars().count() <= CUSTOM_KEY_MAX,
            &field,
            format!("custom field names must be 1 to {CUSTOM_KEY_MAX} characters"),
        );
        match value {
            Value::String(s) => v.check(
                s.chars().count() <= CUSTOM_VALUE_MAX,
                &field,
                format!("custom field values must be at most {CUSTOM_VALUE_MAX} characters"),
            ),
            Value::Number(_) | Value::Bool(_) | Value::Null => {}
            Value::Array(_) | Value::Object(_) => v.push(
                &field,
                "custom field values must be strings, numbers, booleans or null",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_is_strict() {
        for ok in ["+15551234567", "+442071838750", "+33"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "15551234567",
            "+0123",
            "+1 555 123 4567",
            "+1555123456789012",
            "+",
            "",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn normalize_reports_every_bad_field() {
        let input = ContactInput {
            first_name: Some("  Ada ".into()),
            phone_number: Some("555-1234".into()),
            email: Some("not-an-email".into()),
            ..Default::default()
        };
        match input.normalize() {
            Err(crate::Error::Validation { details, .. }) => {
                let fields: Vec<_> = details.iter().map(|d| d.field.as_str()).collect();
                assert_eq!(fields, ["phone_number", "email"]);
            }
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_contact_is_refused() {
        assert!(ContactInput::default().normalize().is_err());
        let only_blank = ContactInput {
            first_name: Some("   ".into()),
            ..Default::default()
        };
        assert!(only_blank.normalize().is_err());
    }

    #[test]
    fn patch_distinguishes_null_from_absent() {
        let patch: ContactPatch =
            serde_json::from_str(r#"{"email":null,"company":"Acme"}"#).expect("json");
        assert_eq!(patch.email, Some(None));
        assert_eq!(patch.company, Some(Some("Acme".into())));
        assert_eq!(patch.first_name, None);
        assert!(serde_json::from_str::<ContactPatch>(r#"{"nickname":"x"}"#).is_err());
    }
}

//! Helpers shared by request bodies: partial updates and text clean-up.

use serde::{Deserialize, Deserializer};

/// For `Option<Option<T>>` fields: distinguishes a field sent as `null` (`Some(None)`)
/// from an absent one (`None`). Use with `#[serde(default, deserialize_with = "present")]`.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Trims text and turns an empty string into an absent value.
pub fn clean(value: Option<String>) -> Option<String> {
    value.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Applies one field of a patch: absent leaves `slot` alone, `null` clears it.
pub fn apply<T>(slot: &mut Option<T>, patch: Option<Option<T>>) {
    if let Some(v) = patch {
        *slot = v;
    }
}

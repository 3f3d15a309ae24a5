//! Phone numbers: searching the carrier's inventory, buying, routing, releasing.
//!
//! The built-in carrier is a simulator: it offers numbers in the United States,
//! Canada and the United Kingdom, generated on demand, each shaped like a real number
//! of its country and type.

use serde::Deserialize;

use crate::billing;
use crate::contacts::is_e164;
use crate::error::{Error, Result, Validator};
use crate::input::{apply, clean, present};
use crate::time::{Timestamp, rfc3339};

pub const NAME_MAX: usize = 200;
pub const AVAILABLE_MAX: u32 = 50;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NumberType {
    Local,
    Mobile,
    TollFree,
}

impl NumberType {
    pub fn as_str(self) -> &'static str {
        match self {
            NumberType::Local => "local",
            NumberType::Mobile => "mobile",
            NumberType::TollFree => "toll_free",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "local" => Ok(NumberType::Local),
            "mobile" => Ok(NumberType::Mobile),
            "toll_free" => Ok(NumberType::TollFree),
            _ => Err(Error::validation(
                "type",
                "type must be local, mobile or toll_free",
            )),
        }
    }

    /// Monthly price in cents, charged at purchase in live mode.
    pub fn monthly_cost(self) -> i64 {
        match self {
            NumberType::Local => billing::LOCAL_NUMBER_MONTHLY,
            NumberType::Mobile => billing::MOBILE_NUMBER_MONTHLY,
            NumberType::TollFree => billing::TOLL_FREE_NUMBER_MONTHLY,
        }
    }

    /// Toll-free numbers receive calls only; the others also send and receive SMS.
    pub fn sms(self) -> bool {
        self != NumberType::TollFree
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Capabilities {
    pub voice: bool,
    pub sms: bool,
}

/// A number the carrier offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AvailableNumber {
    #[schema(example = "available_phone_number")]
    pub object: &'static str,
    #[schema(example = "+14155550123")]
    pub number: String,
    #[schema(example = "US")]
    pub country: &'static str,
    #[serde(rename = "type")]
    pub number_type: NumberType,
    pub capabilities: Capabilities,
    /// In cents, per month.
    pub monthly_cost: i64,
    pub currency: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PhoneNumber {
    #[schema(example = "pn_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub id: String,
    #[schema(example = "phone_number")]
    pub object: &'static str,
    pub workspace_id: String,
    pub livemode: bool,
    #[schema(example = "+14155550123")]
    pub number: String,
    pub country: String,
    #[serde(rename = "type")]
    pub number_type: NumberType,
    pub name: Option<String>,
    pub capabilities: Capabilities,
    /// The agent that answers inbound calls.
    pub agent_id: Option<String>,
    /// Where inbound calls are forwarded when no agent answers (E.164).
    pub forward_to: Option<String>,
    /// `active` or `released`.
    pub status: String,
    /// In cents, per month.
    pub monthly_cost: i64,
    pub currency: &'static str,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(serialize_with = "rfc3339::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub released_at: Option<Timestamp>,
}

/// A country the carrier serves.
struct Country {
    code: &'static str,
    prefix: &'static str,
}

const COUNTRIES: &[Country] = &[
    Country {
        code: "US",
        prefix: "+1",
    },
    Country {
        code: "CA",
        prefix: "+1",
    },
    Country {
        code: "GB",
        prefix: "+44",
    },
];

const US_TOLL_FREE: &[&str] = &["800", "833", "844", "855", "866", "877", "888"];

/// The country (`US` for +1 numbers) and type of a number in E.164, as the numbers
/// this platform deals in are told apart: +1 8xx toll-free, +44 800 toll-free, +44 7
/// mobile, else local. For numbers adopted from a carrier account.
pub fn classify(number: &str) -> (&'static str, NumberType) {
    let country = COUNTRIES
        .iter()
        .find(|c| number.starts_with(c.prefix))
        .map_or("US", |c| c.code);
    let number_type = if (number.starts_with("+1")
        && US_TOLL_FREE.iter().any(|a| number[2..].starts_with(a)))
        || number.starts_with("+44800")
    {
        NumberType::TollFree
    } else if number.starts_with("+447") {
        NumberType::Mobile
    } else {
        NumberType::Local
    };
    (country, number_type)
}

fn country(code: &str) -> Result<&'static Country> {
    COUNTRIES
        .iter()
        .find(|c| c.code == code)
        .ok_or_else(|| Error::validation("country", "country must be US, CA or GB"))
}

/// A search of the inventory: `GET /v1/phone-numbers/available`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub country: &'static str,
    pub number_type: NumberType,
    pub area_code: Option<String>,
    pub limit: u32,
}

impl Search {
    pub fn new(
        country_code: Option<&str>,
        number_type: Option<&str>,
        area_code: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Search> {
        let c = country(country_code.unwrap_or("US"))?;
        let number_type = number_type
            .map(NumberType::parse)
            .transpose()?
            .unwrap_or(NumberType::Local);
        let limit = limit.unwrap_or(10);
        let mut v = Validator::new();
        v.check(
            (1..=AVAILABLE_MAX).contains(&limit),
            "limit",
            format!("limit must be between 1 and {AVAILABLE_MAX}"),
        );
        let area_code = area_code
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        if let Some(a) = &area_code {
            let ok = match (c.prefix, number_type) {
                ("+1", NumberType::TollFree) => US_TOLL_FREE.contains(&a.as_str()),
                ("+1", _) => {
                    a.len() == 3
                        && a.bytes().all(|b| b.is_ascii_digit())
                        && !a.starts_with(['0', '1'])
                }
                (_, NumberType::Local) => {
                    (2..=4).contains(&a.len())
                        && a.bytes().all(|b| b.is_ascii_digit())
                        && !a.starts_with('0')
                }
                _ => false,
            };
            v.check(
                ok,
                "area_code",
                "area_code is not valid for this country and type",
            );
        }
        v.finish()?;
        Ok(Search {
            country: c.code,
            number_type,
            area_code,
            limit,
        })
    }

    /// Offers `limit` numbers (or more, for the caller to filter out owned ones).
    pub fn offer(&self, count: u32) -> Vec<AvailableNumber> {
        (0..count)
            .map(|_| self.available(self.generate()))
            .collect()
    }

    /// The simulated inventory's numbers that end in `digits` (1 to 7 digits).
    pub fn offer_containing(&self, count: u32, digits: &str) -> Vec<AvailableNumber> {
        (0..count)
            .map(|_| {
                let mut n = self.generate();
                let keep = n.len().saturating_sub(digits.len());
                n.truncate(keep);
                n.push_str(digits);
                self.available(n)
            })
            .collect()
    }

    fn generate(&self) -> String {
        let digits = |n: usize| -> String {
            (0..n)
                .map(|i| {
                    let lo = if i == 0 { 2 } else { 0 };
                    char::from(b'0' + rand::random_range(lo..10u8))
                })
                .collect()
        };
        match (self.country, self.number_type) {
            ("GB", NumberType::TollFree) => format!("+44800{}", digits(7)),
            ("GB", NumberType::Mobile) => format!("+447{}", digits(9)),
            ("GB", NumberType::Local) => {
                let area = self.area_code.clone().unwrap_or_else(|| "20".to_owned());
                format!("+44{area}{}", digits(10 - area.len()))
            }
            (_, NumberType::TollFree) => {
                let area = self.area_code.clone().unwrap_or_else(|| {
                    US_TOLL_FREE[rand::random_range(0..US_TOLL_FREE.len())].to_owned()
                });
                format!("+1{area}{}", digits(7))
            }
            _ => {
                let area = self.area_code.clone().unwrap_or_else(|| digits(3));
                format!("+1{area}{}", digits(7))
            }
        }
    }

    fn available(&self, number: String) -> AvailableNumber {
        AvailableNumber {
            object: "available_phone_number",
            number,
            country: self.country,
            number_type: self.number_type,
            capabilities: Capabilities {
                voice: true,
                sms: self.number_type.sms(),
            },
            monthly_cost: self.number_type.monthly_cost(),
            currency: billing::CURRENCY,
        }
    }
}

/// `POST /v1/phone-numbers`: a specific number, or the first one matching a search.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurchaseInput {
    /// A number from `GET /v1/phone-numbers/available`; omit to take the first match
    /// of `country`, `type` and `area_code`.
    pub number: Option<String>,
    /// `US` (default), `CA` or `GB`.
    #[schema(example = "US")]
    pub country: Option<String>,
    /// `local` (default), `mobile` or `toll_free`.
    #[serde(rename = "type")]
    pub number_type: Option<String>,
    pub area_code: Option<String>,
    pub name: Option<String>,
    pub agent_id: Option<String>,
    pub forward_to: Option<String>,
}

/// `POST /v1/phone-numbers/import`: a number the carrier account already owns.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportInput {
    /// E.164, a number of the live carrier account (e.g. your Twilio account).
    #[schema(pattern = "^\\s*\\+[1-9][0-9]{1,14}\\s*$", example = "+14155550123")]
    pub phone_number: String,
    pub name: Option<String>,
    pub agent_id: Option<String>,
    pub forward_to: Option<String>,
}

impl ImportInput {
    /// The number and its routing, checked.
    pub fn checked(self) -> Result<(String, Routing)> {
        let number = self.phone_number.trim().to_owned();
        let routing = Routing {
            name: self.name,
            agent_id: self.agent_id,
            forward_to: self.forward_to,
        }
        .checked();
        let mut v = Validator::new();
        v.check(
            is_e164(&number),
            "phone_number",
            "phone_number must be in E.164 format, e.g. +14155550123",
        );
        match (v.finish(), routing) {
            (Ok(()), Ok(r)) => Ok((number, r)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    }
}

/// `PATCH /v1/phone-numbers/{id}`: routing and name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "Support line")]
    pub name: Option<Option<String>>,
    /// The agent that answers (`agt_…`); `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "agt_01jd5x7c2m8n4p6q8r0s2t4v6w")]
    pub agent_id: Option<Option<String>>,
    /// E.164 number calls are forwarded to when no agent answers; `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "+14155550100")]
    pub forward_to: Option<Option<String>>,
}

/// Name and routing of a number, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    pub name: Option<String>,
    pub agent_id: Option<String>,
    pub forward_to: Option<String>,
}

impl Routing {
    pub fn checked(self) -> Result<Routing> {
        let r = Routing {
            name: clean(self.name),
            agent_id: clean(self.agent_id),
            forward_to: clean(self.forward_to),
        };
        let mut v = Validator::new();
        v.max_len("name", r.name.as_deref(), NAME_MAX);
        if let Some(f) = &r.forward_to {
            v.check(
                is_e164(f),
                "forward_to",
                "forward_to must be in E.164 format, e.g. +15551234567",
            );
        }
        if let Some(a) = &r.agent_id {
            v.check(
                crate::id::looks_like("agt", a),
                "agent_id",
                format!("no such agent: {a}"),
            );
        }
        v.finish()?;
        Ok(r)
    }
}

impl RoutingPatch {
    pub fn apply(self, current: &PhoneNumber) -> Result<Routing> {
        let mut r = Routing {
            name: current.name.clone(),
            agent_id: current.agent_id.clone(),
            forward_to: current.forward_to.clone(),
        };
        apply(&mut r.name, self.name);
        apply(&mut r.agent_id, self.agent_id);
        apply(&mut r.forward_to, self.forward_to);
        r.checked()
    }
}

/// What a purchase asks for, checked: either one number or a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    Number {
        number: String,
        country: &'static str,
        number_type: NumberType,
    },
    Search(Search),
}

impl PurchaseInput {
    pub fn checked(self) -> Result<(Wanted, Routing)> {
        let routing = Routing {
            name: self.name,
            agent_id: self.agent_id,
            forward_to: self.forward_to,
        }
        .checked()?;
        let number_type = self
            .number_type
            .as_deref()
            .map(NumberType::parse)
            .transpose()?;
        let wanted = match clean(self.number) {
            Some(number) => {
                if !is_e164(&number) {
                    return Err(Error::validation(
                        "number",
                        "number must be in E.164 format, e.g. +14155550123",
                    ));
                }
                let country = match self.country.as_deref() {
                    Some(code) => country(code)?,
                    None => COUNTRIES
                        .iter()
                        .find(|c| number.starts_with(c.prefix))
                        .ok_or_else(|| {
                            Error::validation(
                                "number",
                                "numbers can be bought in US, CA and GB only",
                            )
                        })?,
                };
                if !number.starts_with(country.prefix) {
                    return Err(Error::validation(
                        "number",
                        format!("number is not a {} number", country.code),
                    ));
                }
                let inferred = classify(&number).1;
                Wanted::Number {
                    number,
                    country: country.code,
                    number_type: number_type.unwrap_or(inferred),
                }
            }
            None => Wanted::Search(Search::new(
                self.country.as_deref(),
                number_type.map(NumberType::as_str),
                self.area_code.as_deref(),
                Some(1),
            )?),
        };
        Ok((wanted, routing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_shaped_like_real_numbers() {
        let s = Search::new(Some("US"), Some("local"), Some("415"), Some(5)).expect("valid");
        for n in s.offer(5) {
            assert!(
                n.number.starts_with("+1415") && n.number.len() == 12,
                "{}",
                n.number
            );
            assert!(is_e164(&n.number));
        }
        let tf = Search::new(Some("US"), Some("toll_free"), None, None).expect("valid");
        assert!(tf.offer(1)[0].number[2..5].parse::<u32>().is_ok());
        assert!(!tf.offer(1)[0].capabilities.sms);
        let gb = Search::new(Some("GB"), Some("mobile"), None, None).expect("valid");
        assert!(gb.offer(1)[0].number.starts_with("+447"));
    }

    #[test]
    fn bad_searches_are_refused() {
        assert!(Search::new(Some("FR"), None, None, None).is_err());
        assert!(Search::new(None, Some("fax"), None, None).is_err());
        assert!(Search::new(None, None, Some("041"), None).is_err());
        assert!(Search::new(None, Some("toll_free"), Some("415"), None).is_err());
        assert!(Search::new(None, None, None, Some(0)).is_err());
    }

    #[test]
    fn a_purchase_infers_country_and_type() {
        let (w, _) = PurchaseInput {
            number: Some("+18005550199".into()),
            ..Default::default()
        }
        .checked()
        .expect("valid");
        assert_eq!(
            w,
            Wanted::Number {
                number: "+18005550199".into(),
                country: "US",
                number_type: NumberType::TollFree
            }
        );
        assert!(
            PurchaseInput {
                number: Some("+33123456789".into()),
                ..Default::default()
            }
            .checked()
            .is_err()
        );
        assert!(
            PurchaseInput {
                forward_to: Some("555".into()),
                ..Default::default()
            }
            .checked()
            .is_err()
        );
    }
}

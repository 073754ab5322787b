//! The keys a scenario may set and how their values are read: the protocol's
//! and the simulator's keys come from their serde form (so a new field of
//! `Config` is a scenario key with no change here), and a value's unit from the
//! field's type (`Duration`) or its name (`_bytes`, `_bytes_per_s`, `_ms`, `_s`,
//! `_min`).

use distroweb_sim::{ChurnConfig, SimConfig};
use serde_json::Value as Json;
use toml::Value;

use crate::units::{parse_bytes, parse_duration, parse_rate};

/// The serde form of every simulator setting, churn included (it is off by
/// default, and its keys must still be known).
pub fn schema() -> Json {
    let config = SimConfig {
        churn: Some(ChurnConfig::default()),
        ..SimConfig::default()
    };
    serde_json::to_value(config).unwrap_or(Json::Null)
}

/// Simulator fields a scenario may not set under `[sim]`, and what to use instead.
pub const OWNED_BY_OTHERS: &[(&str, &str)] = &[
    ("seed", "the top-level `seed` (or --seed)"),
    ("nodes", "the experiment's `args.nodes`"),
    ("protocol", "the `[protocol]` table"),
];

/// True for a serde value that is set whole rather than key by key: a
/// `Duration` (`{secs, nanos}`) or an enum variant with data (`{Weibull: {..}}`).
pub fn is_whole(schema: &Json) -> bool {
    let Json::Object(map) = schema else {
        return true;
    };
    let duration = map.len() == 2 && map.contains_key("secs") && map.contains_key("nanos");
    let variant = map.len() == 1
        && map
            .keys()
            .next()
            .is_some_and(|k| k.starts_with(|c: char| c.is_ascii_uppercase()));
    duration || variant
}

/// Every settable dotted key under `prefix` (`protocol` or `sim`), tables too.
pub fn keys(prefix: &str, schema: &Json, out: &mut Vec<String>) {
    let Json::Object(map) = schema else {
        return;
    };
    for (key, value) in map {
        if prefix == "sim" && OWNED_BY_OTHERS.iter().any(|(k, _)| k == key) {
            continue;
        }
        let path = format!("{prefix}.{key}");
        out.push(path.clone());
        if !is_whole(value) {
            keys(&path, value, out);
        }
    }
}

/// The unit a numeric field's name implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Bytes (`_bytes`, `chunk_size`).
    Bytes,
    /// Bytes per second (`_bytes_per_s`).
    Rate,
    /// A duration counted in this many nanoseconds per unit.
    Time(u64),
}

/// The unit of a field named `name`, if its name carries one.
pub fn unit_of(name: &str) -> Option<Unit> {
    if name.ends_with("bytes_per_s") {
        Some(Unit::Rate)
    } else if name.ends_with("_bytes") || name == "chunk_size" || name == "bytes" {
        Some(Unit::Bytes)
    } else if name.ends_with("_us") {
        Some(Unit::Time(1_000))
    } else if name.ends_with("_ms") {
        Some(Unit::Time(1_000_000))
    } else if name.ends_with("_s") || name.ends_with("_secs") || name == "secs" {
        Some(Unit::Time(1_000_000_000))
    } else if name.ends_with("_min") {
        Some(Unit::Time(60_000_000_000))
    } else {
        None
    }
}

/// A quantity with a unit, as a number in the unit `unit` names: whole if
/// `whole`, else a float. `Err` says why (in words for a person).
pub fn quantity(given: &str, unit: Unit, whole: bool) -> Result<Json, String> {
    match unit {
        Unit::Bytes => parse_bytes(given)
            .map(Json::from)
            .map_err(|e| e.to_string()),
        Unit::Rate => parse_rate(given).map(Json::from).map_err(|e| e.to_string()),
        Unit::Time(per) => {
            let d = parse_duration(given).map_err(|e| e.to_string())?;
            let nanos = d.as_nanos();
            let per = u128::from(per);
            if whole {
                if nanos % per != 0 {
                    return Err(format!(
                        "{given:?} is not a whole number of this key's unit"
                    ));
                }
                u64::try_from(nanos / per)
                    .map(Json::from)
                    .map_err(|_| format!("{given:?} is too large"))
            } else {
                Ok(Json::from(nanos as f64 / per as f64))
            }
        }
    }
}

/// Converts a TOML value to serde's JSON form for the field named `name`
/// whose default is `schema`, reading unit strings as the field needs.
pub fn to_json(name: &str, value: &Value, schema: &Json) -> Result<Json, String> {
    Ok(match value {
        Value::String(s) => {
            if is_duration(schema) {
                let d = parse_duration(s).map_err(|e| e.to_string())?;
                serde_json::json!({ "secs": d.as_secs(), "nanos": d.subsec_nanos() })
            } else if let (Json::Number(n), Some(unit)) = (schema, unit_of(name)) {
                quantity(s, unit, !n.is_f64())?
            } else {
                Json::String(s.clone())
            }
        }
        Value::Integer(i) => {
            if is_duration(schema) {
                return Err(format!(
                    "a duration needs a unit: write e.g. \"{i}s\" or \"{i}ms\""
                ));
            }
            Json::from(*i)
        }
        Value::Float(f) => {
            if is_duration(schema) {
                return Err(format!("a duration needs a unit: write e.g. \"{f}s\""));
            }
            serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .ok_or_else(|| format!("{f} is not a finite number"))?
        }
        Value::Boolean(b) => Json::Bool(*b),
        Value::Datetime(d) => return Err(format!("a date ({d}) is not a setting here")),
        Value::Array(items) => {
            let element = schema.get(0).cloned().unwrap_or(Json::Null);
            Json::Array(
                items
                    .iter()
                    .map(|v| to_json(name, v, &element))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Table(t) => {
            let mut map = serde_json::Map::new();
            for (k, v) in t {
                let inner = schema
                    .get(k)
                    .or_else(|| schema.as_object().and_then(|m| m.values().next()?.get(k)))
                    .cloned()
                    .unwrap_or(Json::Null);
                map.insert(k.clone(), to_json(k, v, &inner)?);
            }
            Json::Object(map)
        }
    })
}

fn is_duration(schema: &Json) -> bool {
    schema
        .as_object()
        .is_some_and(|m| m.len() == 2 && m.contains_key("secs") && m.contains_key("nanos"))
}

/// A value as a command-line argument for a clap option named `name`: unit
/// strings become numbers in the option's unit (`warmup_min = "90s"` → `1.5`).
pub fn to_arg(name: &str, value: &Value) -> Result<String, String> {
    Ok(match value {
        Value::String(s) => match unit_of(name) {
            Some(unit)
                if s.trim_start()
                    .starts_with(|c: char| c.is_ascii_digit() || c == '.') =>
            {
                match quantity(s, unit, false)? {
                    Json::Number(n) => number_text(n.as_f64().unwrap_or(0.0)),
                    other => other.to_string(),
                }
            }
            _ => s.clone(),
        },
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => number_text(*f),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => return Err(format!("a date ({d}) is not a setting here")),
        Value::Array(_) | Value::Table(_) => {
            return Err("a list of lists or a table is not an option value".into())
        }
    })
}

/// A float as the shortest text that reads back as it, whole numbers without `.0`.
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_follow_the_field() {
        let duration = serde_json::json!({"secs": 2, "nanos": 0});
        assert_eq!(
            to_json("request_timeout", &Value::String("150ms".into()), &duration),
            Ok(serde_json::json!({"secs": 0, "nanos": 150_000_000}))
        );
        assert!(to_json("request_timeout", &Value::Integer(2), &duration).is_err());
        let n = Json::from(262_144u64);
        assert_eq!(
            to_json("chunk_size", &Value::String("64KiB".into()), &n),
            Ok(Json::from(65_536u64))
        );
        assert_eq!(
            to_json("upload_bytes_per_s", &Value::String("1.25MB/s".into()), &n),
            Ok(Json::from(1_250_000u64))
        );
        assert_eq!(
            to_json(
                "access_median_ms",
                &Value::String("1.5s".into()),
                &Json::from(9.0)
            ),
            Ok(Json::from(1500.0))
        );
        assert_eq!(
            to_arg("warmup_min", &Value::String("90s".into())),
            Ok("1.5".into())
        );
        assert_eq!(
            to_arg("warmup_min", &Value::String("1h".into())),
            Ok("60".into())
        );
        assert_eq!(
            to_arg("session_median_min", &Value::Float(1.4)),
            Ok("1.4".into())
        );
    }
}

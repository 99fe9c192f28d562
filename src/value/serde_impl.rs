//! serde for `PVal`: numbers print as jq prints them (a float that is a whole
//! number prints as an integer, NaN as null, infinities as ±f64::MAX).

use super::{PObj, PVal, Text};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::fmt;
use std::sync::Arc;

impl Serialize for PVal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PVal::Null => s.serialize_unit(),
            PVal::Bool(b) => s.serialize_bool(*b),
            PVal::Int(i) => s.serialize_i64(*i),
            PVal::Float(f) => {
                if f.is_nan() {
                    s.serialize_unit()
                } else if f.is_infinite() {
                    s.serialize_f64(if *f > 0.0 { f64::MAX } else { f64::MIN })
                } else if f.fract() == 0.0 && f.abs() < 1e17 {
                    s.serialize_i64(*f as i64)
                } else {
                    s.serialize_f64(*f)
                }
            }
            PVal::Str(v) => s.serialize_str(v),
            PVal::Arr(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for x in a.iter() {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            PVal::Obj(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    map.serialize_entry(&**k, v)?;
                }
                map.end()
            }
        }
    }
}

struct PValVisitor;

impl<'de> Visitor<'de> for PValVisitor {
    type Value = PVal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<PVal, E> {
        Ok(PVal::Null)
    }
    fn visit_none<E>(self) -> Result<PVal, E> {
        Ok(PVal::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<PVal, E> {
        Ok(PVal::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<PVal, E> {
        Ok(PVal::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<PVal, E> {
        Ok(i64::try_from(u).map_or(PVal::Float(u as f64), PVal::Int))
    }
    fn visit_f64<E>(self, f: f64) -> Result<PVal, E> {
        Ok(PVal::from_f64(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<PVal, E> {
        Ok(PVal::Str(Text::from(s)))
    }
    fn visit_string<E>(self, s: String) -> Result<PVal, E> {
        Ok(PVal::Str(Text::from(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PVal, A::Error> {
        let mut v = imbl::Vector::new();
        while let Some(x) = seq.next_element::<PVal>()? {
            v.push_back(x);
        }
        Ok(PVal::Arr(Arc::new(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PVal, A::Error> {
        let mut o = PObj::new();
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let v = map.next_value::<PVal>()?;
            // Later duplicates win, as in jq.
            o.insert(Text::from(&*k), v);
        }
        Ok(PVal::Obj(o))
    }
}

impl<'de> Deserialize<'de> for PVal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PVal, D::Error> {
        d.deserialize_any(PValVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_sorts_keys() {
        let v: PVal = serde_json::from_str(r#"{"b":[1,2.5,"x"],"a":{"z":null,"y":true}}"#).unwrap();
        assert_eq!(v.to_json(), r#"{"a":{"y":true,"z":null},"b":[1,2.5,"x"]}"#);
    }

    #[test]
    fn whole_floats_print_as_integers() {
        assert_eq!(PVal::Float(2.0).to_json(), "2");
        assert_eq!(PVal::Float(f64::NAN).to_json(), "null");
        assert_eq!(PVal::from_f64(3.0), PVal::Int(3));
        assert_eq!(PVal::Int(1), PVal::Float(1.0));
    }
}

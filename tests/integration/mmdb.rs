//! A small writer of MaxMind-format (`.mmdb`) databases, written for the tests
//! from the format's published specification: IPv4 networks mapped to GeoIP2
//! City or ASN records, so tests (and `scripts/bench probe`) can give geoctl
//! databases whose every answer they know.

use std::net::Ipv4Addr;

/// One value of the format's data section.
#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    I32(i32),
    Map(Vec<(String, Value)>),
}

pub fn s(text: &str) -> Value {
    Value::Str(text.into())
}

/// A GeoIP2 City record.
pub fn city(country: &str, city_name: &str, latitude: f64, longitude: f64) -> Value {
    Value::Map(vec![
        ("city".into(), Value::Map(vec![("names".into(), Value::Map(vec![("en".into(), s(city_name))]))])),
        ("country".into(), Value::Map(vec![("iso_code".into(), s(country))])),
        (
            "location".into(),
            Value::Map(vec![
                ("latitude".into(), Value::Double(latitude)),
                ("longitude".into(), Value::Double(longitude)),
            ]),
        ),
    ])
}

/// A GeoLite2 ASN record.
pub fn asn(number: u32, organisation: &str) -> Value {
    asn_as(Value::U32(number), organisation)
}

/// A GeoLite2-shaped ASN record whose number is stored as `number` (any type, as other writers do).
pub fn asn_as(number: Value, organisation: &str) -> Value {
    Value::Map(vec![
        ("autonomous_system_number".into(), number),
        ("autonomous_system_organization".into(), s(organisation)),
    ])
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (low, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if kind <= 7 {
        out.push((kind << 5) | low);
    } else {
        // Extended types: type 0 in the control byte, the type minus 7 after it.
        out.push(low);
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn unsigned(out: &mut Vec<u8>, kind: u8, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, bytes.len() - skip);
    out.extend(&bytes[skip..]);
}

fn encode(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Str(text) => {
            control(out, 2, text.len());
            out.extend(text.as_bytes());
        }
        Value::Double(v) => {
            control(out, 3, 8);
            out.extend(v.to_be_bytes());
        }
        Value::U16(v) => unsigned(out, 5, u64::from(*v)),
        Value::U32(v) => unsigned(out, 6, u64::from(*v)),
        Value::U64(v) => unsigned(out, 9, *v),
        // Two's complement in four bytes (the format allows fewer for small values; four is always valid).
        Value::I32(v) => {
            control(out, 8, 4);
            out.extend(v.to_be_bytes());
        }
        Value::Map(pairs) => {
            control(out, 7, pairs.len());
            for (key, value) in pairs {
                encode(out, &Value::Str(key.clone()));
                encode(out, value);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

/// An IPv4 database of `database_type` holding `networks` (address, prefix length, record).
/// Networks must not nest.
pub fn build(database_type: &str, networks: &[(Ipv4Addr, u8, Value)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    for (address, prefix, value) in networks {
        let offset = data.len();
        encode(&mut data, value);
        let bits = u32::from(*address);
        let mut node = 0;
        for depth in 0..*prefix {
            let bit = ((bits >> (31 - depth)) & 1) as usize;
            if depth + 1 == *prefix {
                nodes[node][bit] = Record::Data(offset);
            } else {
                node = match nodes[node][bit] {
                    Record::Node(next) => next,
                    _ => {
                        nodes.push([Record::Empty; 2]);
                        let next = nodes.len() - 1;
                        nodes[node][bit] = Record::Node(next);
                        next
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for pair in &nodes {
        for record in pair {
            let value = match record {
                Record::Empty => count,
                Record::Node(n) => *n,
                Record::Data(offset) => count + 16 + offset,
            } as u32;
            out.extend(&value.to_be_bytes()[1..]); // 24-bit records
        }
    }
    out.extend([0u8; 16]);
    out.extend(data);
    out.extend(b"\xAB\xCD\xEFMaxMind.com");
    let mut metadata = Vec::new();
    let fields: Vec<(&str, Value)> =
        vec![("node_count", Value::U32(count as u32)), ("database_type", s(database_type))];
    control(&mut metadata, 7, 9);
    for (key, value) in fields {
        encode(&mut metadata, &s(key));
        encode(&mut metadata, &value);
    }
    for (key, kind, value) in [
        ("record_size", 5, 24),
        ("ip_version", 5, 4),
        ("binary_format_major_version", 5, 2),
        ("binary_format_minor_version", 5, 0),
        ("build_epoch", 9, 1_764_374_400),
    ] {
        encode(&mut metadata, &s(key));
        unsigned(&mut metadata, kind, value);
    }
    encode(&mut metadata, &s("languages"));
    control(&mut metadata, 11, 1);
    encode(&mut metadata, &s("en"));
    encode(&mut metadata, &s("description"));
    encode(&mut metadata, &Value::Map(vec![("en".into(), s("geoctl test database"))]));
    out.extend(metadata);
    out
}

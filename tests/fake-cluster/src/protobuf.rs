//! Decoding of the few protobuf request bodies kubectl's typed clients send (`kubectl create
//! namespace|secret|configmap`): the `k8s\0` envelope and those kinds' fields, into JSON.

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// One protobuf field: number and payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((num, Field::Varint(varint(buf, &mut pos)?))),
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                out.push((num, Field::Bytes(&buf[pos..end])));
                pos = end;
            }
            1 => pos = pos.checked_add(8).filter(|e| *e <= buf.len())?,
            5 => pos = pos.checked_add(4).filter(|e| *e <= buf.len())?,
            _ => return None,
        }
    }
    Some(out)
}

fn text(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

/// A `map<string, string|bytes>` entry (key = 1, value = 2).
fn map_entry(b: &[u8], base64_value: bool) -> Option<(String, Value)> {
    let mut k = String::new();
    let mut v = Value::String(String::new());
    for (n, f) in fields(b)? {
        if let Field::Bytes(x) = f {
            match n {
                1 => k = String::from_utf8_lossy(x).into_owned(),
                2 if base64_value => {
                    v = Value::String(base64::engine::general_purpose::STANDARD.encode(x))
                }
                2 => v = text(x),
                _ => {}
            }
        }
    }
    Some((k, v))
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, f) in fields(b)? {
        if let Field::Bytes(x) = f {
            match n {
                // proto2 writes empty strings too; JSON clients would omit them.
                1..=3 if x.is_empty() => {}
                1 => {
                    m.insert("name".into(), text(x));
                }
                2 => {
                    m.insert("generateName".into(), text(x));
                }
                3 => {
                    m.insert("namespace".into(), text(x));
                }
                11 => {
                    let (k, v) = map_entry(x, false)?;
                    labels.insert(k, v);
                }
                12 => {
                    let (k, v) = map_entry(x, false)?;
                    annotations.insert(k, v);
                }
                14 => finalizers.push(text(x)),
                _ => {}
            }
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(m))
}

/// Decodes a `k8s\0`-enveloped protobuf body of a Namespace, Secret or ConfigMap.
/// Fields of a message that are all strings, by field number.
fn strings(b: &[u8], names: &[(u64, &str)]) -> Option<Value> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        if let (Field::Bytes(x), Some((_, name))) = (f, names.iter().find(|(k, _)| *k == n)) {
            m.insert((*name).into(), text(x));
        }
    }
    Some(Value::Object(m))
}

/// `SelfSubjectAccessReviewSpec`: resourceAttributes (1) or nonResourceAttributes (2).
fn review_spec(b: &[u8]) -> Option<Value> {
    let mut spec = Map::new();
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                let names = [
                    (1, "namespace"),
                    (2, "verb"),
                    (3, "group"),
                    (4, "version"),
                    (5, "resource"),
                    (6, "subresource"),
                    (7, "name"),
                ];
                spec.insert("resourceAttributes".into(), strings(x, &names)?);
            }
            (2, Field::Bytes(x)) => {
                let names = [(1, "path"), (2, "verb")];
                spec.insert("nonResourceAttributes".into(), strings(x, &names)?);
            }
            _ => {}
        }
    }
    Some(Value::Object(spec))
}

pub(crate) fn decode(body: &[u8]) -> Option<Value> {
    let unknown = body.strip_prefix(b"k8s\0")?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (n, f) in fields(unknown)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (n, f) in fields(tm)? {
                    if let Field::Bytes(x) = f {
                        match n {
                            1 => api_version = String::from_utf8_lossy(x).into_owned(),
                            2 => kind = String::from_utf8_lossy(x).into_owned(),
                            _ => {}
                        }
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let mut obj = json!({"apiVersion": api_version, "kind": kind});
    let mut data = Map::new();
    let mut binary = Map::new();
    for (n, f) in fields(raw)? {
        match (kind.as_str(), n, f) {
            (_, 1, Field::Bytes(x)) => obj["metadata"] = object_meta(x)?,
            ("Secret", 2, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, true)?;
                data.insert(k, v);
            }
            ("Secret", 3, Field::Bytes(x)) => obj["type"] = text(x),
            ("Secret" | "ConfigMap", 5 | 4, Field::Varint(v)) => obj["immutable"] = json!(v != 0),
            ("ConfigMap", 2, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, false)?;
                data.insert(k, v);
            }
            ("ConfigMap", 3, Field::Bytes(x)) => {
                let (k, v) = map_entry(x, true)?;
                binary.insert(k, v);
            }
            // `kubectl auth can-i`.
            ("SelfSubjectAccessReview", 2, Field::Bytes(x)) => obj["spec"] = review_spec(x)?,
            _ => {}
        }
    }
    if ![
        "Namespace",
        "Secret",
        "ConfigMap",
        "SelfSubjectAccessReview",
    ]
    .contains(&kind.as_str())
    {
        return None;
    }
    if !data.is_empty() {
        obj["data"] = Value::Object(data);
    }
    if !binary.is_empty() {
        obj["binaryData"] = Value::Object(binary);
    }
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, num: u8, bytes: &[u8]) {
        out.push(num << 3 | 2);
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }

    #[test]
    fn decodes_a_secret() {
        let mut meta = Vec::new();
        field(&mut meta, 1, b"s1");
        let mut entry = Vec::new();
        field(&mut entry, 1, b"a");
        field(&mut entry, 2, b"b");
        let mut secret = Vec::new();
        field(&mut secret, 1, &meta);
        field(&mut secret, 2, &entry);
        field(&mut secret, 3, b"Opaque");
        let mut tm = Vec::new();
        field(&mut tm, 1, b"v1");
        field(&mut tm, 2, b"Secret");
        let mut unknown = b"k8s\0".to_vec();
        field(&mut unknown, 1, &tm);
        field(&mut unknown, 2, &secret);
        assert_eq!(
            decode(&unknown).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}, "data": {"a": "Yg=="}, "type": "Opaque"})
        );
        assert!(decode(b"k8s\0\xff").is_none());

        let mut attrs = Vec::new();
        field(&mut attrs, 1, b"velero");
        field(&mut attrs, 2, b"create");
        field(&mut attrs, 3, b"velero.io");
        field(&mut attrs, 5, b"restores");
        let mut spec = Vec::new();
        field(&mut spec, 1, &attrs);
        let mut review = Vec::new();
        field(&mut review, 2, &spec);
        let mut tm = Vec::new();
        field(&mut tm, 1, b"authorization.k8s.io/v1");
        field(&mut tm, 2, b"SelfSubjectAccessReview");
        let mut unknown = b"k8s\0".to_vec();
        field(&mut unknown, 1, &tm);
        field(&mut unknown, 2, &review);
        assert_eq!(
            decode(&unknown).unwrap()["spec"],
            json!({"resourceAttributes": {"namespace": "velero", "verb": "create", "group": "velero.io", "resource": "restores"}})
        );
        assert!(decode(b"{}").is_none());
    }
}

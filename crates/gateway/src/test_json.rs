//! Arbitrary JSON for the property tests of body parsing. Random bytes are almost never JSON,
//! so the parsers' deeper paths need documents built from the field names they look for.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// JSON documents whose keys, and some of whose strings, come from `names`, so that they
/// often have the shape a parser expects with wrong types, sizes and values inside.
pub(crate) fn json_like(names: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let name = move || {
        prop_oneof![
            3 => proptest::sample::select(names).prop_map(str::to_string),
            1 => "\\PC{0,12}",
        ]
    };
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        name().prop_map(Value::from),
        "\\PC{0,64}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((name(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `template` (a valid body) with up to three edits: a value replaced by arbitrary JSON, or
/// removed. Reaches the checks behind a successful parse, which random documents rarely do.
pub(crate) fn edited(
    template: Value,
    names: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    let paths = pointers(&template, String::new());
    let edit = (
        proptest::sample::select(paths),
        proptest::option::of(json_like(names)),
    );
    proptest::collection::vec(edit, 0..4).prop_map(move |edits| {
        let mut v = template.clone();
        for (path, replacement) in edits {
            match replacement {
                Some(new) => {
                    if let Some(slot) = v.pointer_mut(&path) {
                        *slot = new;
                    }
                }
                None => remove(&mut v, &path),
            }
        }
        v
    })
}

/// Every JSON pointer below the root of `v` (the templates' keys need no escaping).
fn pointers(v: &Value, at: String) -> Vec<String> {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, c)| (format!("{at}/{k}"), c)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("{at}/{i}"), c))
            .collect(),
        _ => Vec::new(),
    };
    children
        .into_iter()
        .flat_map(|(p, c)| {
            let mut below = pointers(c, p.clone());
            below.insert(0, p);
            below
        })
        .collect()
}

fn remove(v: &mut Value, path: &str) {
    let Some((parent, last)) = path.rsplit_once('/') else {
        return;
    };
    match v.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.remove(last);
        }
        Some(Value::Array(a)) => {
            if let Ok(i) = last.parse::<usize>()
                && i < a.len()
            {
                a.remove(i);
            }
        }
        _ => {}
    }
}

//! Python objects ⇄ JSON values. `pythonize` does the plain conversions; the walk over Python
//! input is ours, so that it can take the anthropic SDK's objects and plain objects nested
//! anywhere, and so that it stops at a depth limit instead of overflowing the stack.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// How many dicts and lists (or objects standing for them) may enclose one another.
const MAX_DEPTH: usize = 256;

/// A Python value (dicts, lists, tuples, JSON scalars, the package's `Block`s, the anthropic
/// SDK's objects, plain objects) as JSON.
pub fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    convert(obj, 0)
}

/// `depth`: how many levels enclose `obj`. Kept small: its frame is on the stack once a level.
fn convert(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if let Some(value) = scalar(obj)? {
        return Ok(value);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return dict(d, depth);
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return array(list.iter(), list.len(), depth);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return array(tuple.iter(), tuple.len(), depth);
    }
    object(obj, depth)
}

/// Objects that stand for a dict.
fn object(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    // The anthropic SDK's objects (pydantic models): their dump stands at their own level.
    if obj.hasattr("model_dump")? {
        let kwargs = PyDict::new(obj.py());
        kwargs.set_item("mode", "json")?;
        kwargs.set_item("exclude_none", true)?;
        let dumped = obj.call_method("model_dump", (), Some(&kwargs))?;
        return match dumped.cast::<PyDict>() {
            Ok(d) => dict(d, depth),
            // Anything else counts as one more level, so a dump that gives another model (or
            // the object itself) still ends.
            Err(_) => convert(&dumped, enter(depth)?),
        };
    }
    // Plain objects (a test fake's SimpleNamespace blocks): their public attributes.
    if let Ok(attrs) = obj.getattr("__dict__") {
        if let Ok(d) = attrs.cast::<PyDict>() {
            let public = PyDict::new(obj.py());
            for (k, v) in d.iter() {
                if !k.cast::<PyString>().is_ok_and(|s| s.to_cow().is_ok_and(|s| s.starts_with('_')))
                {
                    public.set_item(k, v)?;
                }
            }
            return dict(&public, depth);
        }
    }
    Err(PyTypeError::new_err(format!(
        "cannot send a {} to the model: use str, dict, list, int, float, bool or None",
        type_name(obj)
    )))
}

fn array<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    len: usize,
    depth: usize,
) -> PyResult<Value> {
    let inner = enter(depth)?;
    let mut out = Vec::with_capacity(len);
    for item in items {
        out.push(convert(&item, inner)?);
    }
    Ok(Value::Array(out))
}

/// The level below `depth`, or ValueError past the limit (a dict or list that contains
/// itself always gets there).
fn enter(depth: usize) -> PyResult<usize> {
    if depth >= MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "value is nested too deeply (more than {MAX_DEPTH} levels) or contains itself; \
             it cannot be sent as JSON"
        )));
    }
    Ok(depth + 1)
}

fn dict(d: &Bound<'_, PyDict>, depth: usize) -> PyResult<Value> {
    let inner = enter(depth)?;
    let mut map = Map::new();
    for (k, v) in d.iter() {
        let Ok(key) = k.cast::<PyString>() else { return Err(key_error(&k)) };
        map.insert(key.to_cow()?.into_owned(), convert(&v, inner)?);
    }
    Ok(Value::Object(map))
}

fn key_error(key: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!("message keys must be strings, not {}", type_name(key)))
}

/// None, bool, int, float and str as JSON; `None` for anything else.
fn scalar(obj: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    if let Ok(f) = obj.cast::<PyFloat>() {
        // Checked here: JSON has no NaN or infinity, and a conversion would make them null.
        let v = f.value();
        return Number::from_f64(v)
            .map(|n| Some(Value::Number(n)))
            .ok_or_else(|| PyValueError::new_err(format!("{v} cannot be sent as JSON")));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        // A JSON number here holds an i64 or a u64; past that, the OverflowError of extracting.
        if i.extract::<i64>().is_err() {
            i.extract::<u64>()?;
        }
    } else if !(obj.is_none() || obj.is_instance_of::<PyString>()) {
        return Ok(None);
    }
    Ok(Some(pythonize::depythonize(obj)?))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

/// JSON to plain Python objects (dicts, lists, str ...).
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(pythonize::pythonize(py, value)?)
}

/// A JSON object as a `bgagent.Block` (attribute and key access); nested values stay plain.
pub fn to_block<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    let block = py.import("bgagent._blocks")?.getattr("Block")?;
    block.call1((to_py(py, value)?,))
}

/// What a value was made of when it was converted, to tell later, without converting it again,
/// that it is still the same: every object met, in the order the conversion meets them, with
/// the size of each dict, list and tuple. The objects are kept alive, so an address met again
/// is the same object: a str, int, float, bool or None is then the same value, and a dict,
/// list or tuple is if it holds the same objects in the same order.
pub struct Snapshot(Vec<Seen>);

struct Seen {
    object: Py<PyAny>,
    /// Entries of a dict, list or tuple (0 for the rest).
    len: usize,
}

impl Snapshot {
    /// The snapshot of `obj`, or None if it holds anything but dicts, lists, tuples and exact
    /// str, int, float, bool or None: an SDK object or a str subclass is converted by calling
    /// its code, whose answer may change without any of its objects changing.
    pub fn of(obj: &Bound<'_, PyAny>) -> Option<Snapshot> {
        let mut seen = Vec::new();
        record(obj, &mut seen, 0)?;
        Some(Snapshot(seen))
    }

    /// True if `obj` is still the value this snapshot was taken of.
    pub fn matches(&self, obj: &Bound<'_, PyAny>) -> bool {
        let mut rest = self.0.iter();
        unchanged(obj, &mut rest) && rest.next().is_none()
    }
}

fn is_plain_scalar(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_none()
        || obj.is_exact_instance_of::<PyString>()
        || obj.is_exact_instance_of::<PyInt>()
        || obj.is_exact_instance_of::<PyFloat>()
        || obj.is_exact_instance_of::<PyBool>()
}

fn record(obj: &Bound<'_, PyAny>, seen: &mut Vec<Seen>, depth: usize) -> Option<()> {
    let mut push = |o: &Bound<'_, PyAny>, len| seen.push(Seen { object: o.clone().unbind(), len });
    if is_plain_scalar(obj) {
        push(obj, 0);
        return Some(());
    }
    // As deep as a conversion goes; past that it fails, so there is nothing to keep.
    let inner = enter(depth).ok()?;
    if let Ok(d) = obj.cast::<PyDict>() {
        push(obj, d.len());
        for (k, v) in d.iter() {
            if !k.is_exact_instance_of::<PyString>() {
                return None;
            }
            seen.push(Seen { object: k.unbind(), len: 0 });
            record(&v, seen, inner)?;
        }
    } else if let Ok(list) = obj.cast::<PyList>() {
        push(obj, list.len());
        for item in list.iter() {
            record(&item, seen, inner)?;
        }
    } else if let Ok(tuple) = obj.cast::<PyTuple>() {
        push(obj, tuple.len());
        for item in tuple.iter() {
            record(&item, seen, inner)?;
        }
    } else {
        return None;
    }
    Some(())
}

/// Walks `obj` as `record` did, comparing each object met with the next one seen then.
fn unchanged<'a>(obj: &Bound<'_, PyAny>, rest: &mut impl Iterator<Item = &'a Seen>) -> bool {
    let Some(seen) = rest.next() else { return false };
    if !obj.is(&seen.object) {
        return false;
    }
    // The same object: a scalar is the same value; a container must hold the same objects.
    if let Ok(d) = obj.cast::<PyDict>() {
        d.len() == seen.len
            && d.iter()
                .all(|(k, v)| rest.next().is_some_and(|s| k.is(&s.object)) && unchanged(&v, rest))
    } else if let Ok(list) = obj.cast::<PyList>() {
        list.len() == seen.len && list.iter().all(|item| unchanged(&item, rest))
    } else if let Ok(tuple) = obj.cast::<PyTuple>() {
        tuple.len() == seen.len && tuple.iter().all(|item| unchanged(&item, rest))
    } else {
        true
    }
}

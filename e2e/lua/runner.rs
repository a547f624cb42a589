#![allow(dead_code)]
//! Runs an Argo CD Lua health check on an object with a real Lua interpreter, as Argo CD does:
//! the object is the global `obj`, the script's chunk returns `hs`. Shared by
//! `e2e/tests/health_lua.rs` (sample objects) and `e2e/tests/gitops.rs` (live objects).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `lua5.1` is the dialect of Argo CD's gopher-lua; `lua5.4` is today's Lua.
pub const INTERPRETERS: [&str; 2] = ["lua5.1", "lua5.4"];

/// A Lua table constructor for a JSON value. Numbers become floats (`2.0`), as in Argo CD, where
/// gopher-lua holds every number as a float64: a script that concatenates a number gives "2" in
/// Lua 5.1 but "2.0" in Lua 5.4, so such a slip shows up as a difference between the two.
pub fn lua_literal(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            let f = n.as_f64().expect("JSON numbers are finite");
            if f.fract() == 0.0 {
                format!("{f:.1}")
            } else {
                format!("{f}")
            }
        }
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

pub fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            0x20..=0x7e => out.push(b as char),
            // Decimal escapes are the same in Lua 5.1 and 5.4, and keep UTF-8 bytes intact.
            _ => out.push_str(&format!("\\{b}")),
        }
    }
    out.push('"');
    out
}

/// Runs the health script in `script` on `obj` with `lua`, as Argo CD does: `obj` is a global, the
/// script's chunk returns `hs`. Returns (status, message).
pub fn run_health(lua: &str, script: &Path, obj: &Value) -> (String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let harness = dir.path().join("harness.lua");
    let body = format!(
        "obj = {}\nlocal chunk = assert(loadfile({}))\nlocal hs = chunk()\n\
         assert(type(hs) == \"table\", \"the script must return a table\")\n\
         io.write(tostring(hs.status), \"\\n\", tostring(hs.message))\n",
        lua_literal(obj),
        lua_string(&script.display().to_string())
    );
    std::fs::write(&harness, body).expect("write harness");
    let out = Command::new(lua)
        .arg(&harness)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {lua} ({e}): install Debian's {lua} package (e2e/install-deps tools)"
            )
        });
    assert!(
        out.status.success(),
        "{lua} failed on {}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

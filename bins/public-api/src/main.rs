//! `public-api CRATE.json`: prints the public API that rustdoc's JSON
//! output describes, one sorted line per item — modules, types with their
//! public fields and variants, functions and methods with their
//! signatures, trait impls, constants and re-exports — so that a change to
//! it shows as a diff against the committed snapshot
//! (`cargo xtask library`).
//!
//! It reads the JSON as untyped values: only the parts named here are
//! used, so a newer rustdoc format that keeps them still works.

use std::collections::BTreeSet;
use std::process::ExitCode;

use serde_json::Value;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: public-api CRATE.json");
        return ExitCode::from(2);
    };
    let json = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("public-api: reading {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let doc: Value = match serde_json::from_slice(&json) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("public-api: {path} is not JSON: {e}");
            return ExitCode::FAILURE;
        }
    };
    match Api::list(&doc) {
        Some(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("public-api: {path} is not rustdoc's JSON output");
            ExitCode::FAILURE
        }
    }
}

struct Api<'a> {
    index: &'a serde_json::Map<String, Value>,
    lines: BTreeSet<String>,
    /// Modules already walked (a module re-exported twice is listed once).
    seen: BTreeSet<String>,
}

impl<'a> Api<'a> {
    fn list(doc: &'a Value) -> Option<BTreeSet<String>> {
        let index = doc.get("index")?.as_object()?;
        let root = id_key(doc.get("root")?)?;
        let root_item = index.get(&root)?;
        let name = root_item.get("name")?.as_str()?.to_owned();
        let mut api = Api {
            index,
            lines: BTreeSet::new(),
            seen: BTreeSet::new(),
        };
        api.module(root_item, &name);
        Some(api.lines)
    }

    fn module(&mut self, module: &'a Value, path: &str) {
        let index = self.index;
        if !self.seen.insert(path.to_owned()) {
            return;
        }
        let Some(items) = module
            .pointer("/inner/module/items")
            .and_then(Value::as_array)
        else {
            return;
        };
        for id in items {
            let Some(item) = lookup(index, id) else {
                continue;
            };
            if item.get("visibility").and_then(Value::as_str) != Some("public") {
                continue;
            }
            if let Some(reexport) = item.pointer("/inner/use") {
                self.reexport(reexport, path);
                continue;
            }
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                continue;
            };
            self.named(item, &format!("{path}::{name}"));
        }
    }

    /// `pub use`: the target's own listing under this path when it is of
    /// this crate; a line naming the source otherwise.
    fn reexport(&mut self, reexport: &'a Value, path: &str) {
        let index = self.index;
        let source = reexport
            .get("source")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let name = reexport.get("name").and_then(Value::as_str).unwrap_or("?");
        let glob = reexport.get("is_glob").and_then(Value::as_bool) == Some(true);
        let target = reexport.get("id").and_then(|id| lookup(index, id));
        match (target, glob) {
            (Some(module), true) => self.module(module, path),
            (Some(item), false) => self.named(item, &format!("{path}::{name}")),
            (None, true) => {
                self.lines
                    .insert(format!("pub use {path}::* = {source}::*"));
            }
            (None, false) => {
                self.lines
                    .insert(format!("pub use {path}::{name} = {source}"));
            }
        }
    }

    fn named(&mut self, item: &'a Value, path: &str) {
        let index = self.index;
        let Some(inner) = item.get("inner").and_then(Value::as_object) else {
            return;
        };
        let Some((kind, body)) = inner.iter().next() else {
            return;
        };
        match kind.as_str() {
            "module" => {
                self.lines.insert(format!("pub mod {path}"));
                self.module(item, path);
            }
            "struct" => {
                let generics = generics(body.get("generics"));
                self.lines.insert(format!(
                    "pub struct {path}{generics}{}",
                    non_exhaustive(item)
                ));
                if let Some(fields) = body.pointer("/kind/plain/fields").and_then(Value::as_array) {
                    for field in fields.iter().filter_map(|id| lookup(index, id)) {
                        self.field(field, path);
                    }
                }
                if let Some(fields) = body.pointer("/kind/tuple").and_then(Value::as_array) {
                    let shown: Vec<String> = fields
                        .iter()
                        .map(|id| match id.is_null() {
                            true => "_".to_owned(),
                            false => lookup(index, id)
                                .and_then(|f| f.pointer("/inner/struct_field"))
                                .map(ty)
                                .unwrap_or_else(|| "_".to_owned()),
                        })
                        .collect();
                    self.lines
                        .insert(format!("pub struct {path}({})", shown.join(", ")));
                }
                self.impls(body, path);
            }
            "enum" => {
                let generics = generics(body.get("generics"));
                self.lines
                    .insert(format!("pub enum {path}{generics}{}", non_exhaustive(item)));
                for variant in body
                    .get("variants")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| lookup(index, id))
                {
                    self.variant(variant, path);
                }
                self.impls(body, path);
            }
            "union" => {
                self.lines.insert(format!("pub union {path}"));
            }
            "function" => {
                self.lines.insert(function(body, path, "pub fn"));
            }
            "trait" => {
                self.lines.insert(format!(
                    "pub trait {path}{}{}",
                    generics(body.get("generics")),
                    bounds_suffix(body.get("bounds"))
                ));
                for member in body
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| lookup(index, id))
                {
                    let name = member.get("name").and_then(Value::as_str).unwrap_or("?");
                    if let Some(f) = member.pointer("/inner/function") {
                        let provided = f.get("has_body").and_then(Value::as_bool) == Some(true);
                        let line = function(f, &format!("{path}::{name}"), "fn");
                        self.lines.insert(match provided {
                            true => format!("{line} (provided)"),
                            false => line,
                        });
                    } else {
                        self.lines.insert(format!("{path}::{name}"));
                    }
                }
            }
            "constant" => {
                let t = body.get("type").map(ty).unwrap_or_default();
                self.lines.insert(format!("pub const {path}: {t}"));
            }
            "static" => {
                let t = body.get("type").map(ty).unwrap_or_default();
                self.lines.insert(format!("pub static {path}: {t}"));
            }
            "type_alias" => {
                let t = body.get("type").map(ty).unwrap_or_default();
                self.lines.insert(format!("pub type {path} = {t}"));
            }
            "macro" | "proc_macro" => {
                self.lines.insert(format!("macro {path}"));
            }
            _ => {}
        }
    }

    fn field(&mut self, field: &'a Value, owner: &str) {
        if field.get("visibility").and_then(Value::as_str) != Some("public") {
            return;
        }
        let name = field.get("name").and_then(Value::as_str).unwrap_or("?");
        let t = field
            .pointer("/inner/struct_field")
            .map(ty)
            .unwrap_or_default();
        self.lines.insert(format!("pub {owner}::{name}: {t}"));
    }

    fn variant(&mut self, variant: &'a Value, owner: &str) {
        let index = self.index;
        let name = variant.get("name").and_then(Value::as_str).unwrap_or("?");
        let kind = variant.pointer("/inner/variant/kind");
        let shown = match kind {
            Some(Value::Object(k)) if k.contains_key("tuple") => {
                let fields: Vec<String> = k["tuple"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|id| {
                        lookup(index, id)
                            .and_then(|f| f.pointer("/inner/struct_field"))
                            .map(ty)
                            .unwrap_or_else(|| "_".to_owned())
                    })
                    .collect();
                format!("({})", fields.join(", "))
            }
            Some(Value::Object(k)) if k.contains_key("struct") => {
                let fields: Vec<String> = k["struct"]
                    .get("fields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| lookup(index, id))
                    .map(|f| {
                        let n = f.get("name").and_then(Value::as_str).unwrap_or("?");
                        let t = f.pointer("/inner/struct_field").map(ty).unwrap_or_default();
                        format!("{n}: {t}")
                    })
                    .collect();
                format!(" {{ {} }}", fields.join(", "))
            }
            _ => String::new(),
        };
        self.lines.insert(format!(
            "variant {owner}::{name}{shown}{}",
            non_exhaustive(variant)
        ));
    }

    /// Inherent methods, and the traits a type implements (not the auto
    /// traits and blanket impls every type gets).
    fn impls(&mut self, body: &'a Value, path: &str) {
        let index = self.index;
        for imp in body
            .get("impls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|id| lookup(index, id))
        {
            let Some(imp) = imp.pointer("/inner/impl") else {
                continue;
            };
            if imp.get("is_synthetic").and_then(Value::as_bool) == Some(true)
                || !imp.get("blanket_impl").is_none_or(Value::is_null)
            {
                continue;
            }
            match imp.get("trait").filter(|t| !t.is_null()) {
                Some(trait_) => {
                    let negative = imp.get("is_negative").and_then(Value::as_bool) == Some(true);
                    let for_ = imp.get("for").map(ty).unwrap_or_default();
                    self.lines.insert(format!(
                        "impl {}{}{} for {for_}",
                        generics(imp.get("generics")),
                        if negative { "!" } else { "" },
                        path_ty(trait_)
                    ));
                }
                None => {
                    for method in imp
                        .get("items")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|id| lookup(index, id))
                    {
                        if method.get("visibility").and_then(Value::as_str) != Some("public") {
                            continue;
                        }
                        let name = method.get("name").and_then(Value::as_str).unwrap_or("?");
                        let member = format!("{path}::{name}");
                        if let Some(f) = method.pointer("/inner/function") {
                            self.lines.insert(function(f, &member, "pub fn"));
                        } else if let Some(c) = method.pointer("/inner/assoc_const") {
                            let t = c.get("type").map(ty).unwrap_or_default();
                            self.lines.insert(format!("pub const {member}: {t}"));
                        }
                    }
                }
            }
        }
    }
}

/// The item an id names, if the crate's index holds it.
fn lookup<'a>(index: &'a serde_json::Map<String, Value>, id: &Value) -> Option<&'a Value> {
    index.get(&id_key(id)?)
}

/// An id as the index's key (rustdoc writes ids as numbers, once as
/// strings).
fn id_key(id: &Value) -> Option<String> {
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn non_exhaustive(item: &Value) -> &'static str {
    let attrs = item.get("attrs").map(Value::to_string).unwrap_or_default();
    if attrs.contains("non_exhaustive") {
        " #[non_exhaustive]"
    } else {
        ""
    }
}

fn function(f: &Value, path: &str, keyword: &str) -> String {
    let header = f.get("header");
    let flag = |name: &str| header.and_then(|h| h.get(name)).and_then(Value::as_bool) == Some(true);
    let mut prefix = String::new();
    if flag("is_const") {
        prefix.push_str("const ");
    }
    if flag("is_async") {
        prefix.push_str("async ");
    }
    if flag("is_unsafe") {
        prefix.push_str("unsafe ");
    }
    let sig = f.get("sig");
    let inputs: Vec<String> = sig
        .and_then(|s| s.get("inputs"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|input| {
            let name = input.get(0).and_then(Value::as_str).unwrap_or("_");
            let t = input.get(1).map(ty).unwrap_or_default();
            match (name, t.as_str()) {
                ("self", "Self") => "self".to_owned(),
                ("self", "&Self") => "&self".to_owned(),
                ("self", "&mut Self") => "&mut self".to_owned(),
                _ => format!("{name}: {t}"),
            }
        })
        .collect();
    let output = sig
        .and_then(|s| s.get("output"))
        .filter(|o| !o.is_null())
        .map(|o| format!(" -> {}", ty(o)))
        .unwrap_or_default();
    // `pub fn` → `pub async fn`; `fn` → `async fn`.
    let (visibility, fn_word) = match keyword.strip_suffix("fn") {
        Some(visibility) => (visibility, "fn"),
        None => ("", keyword),
    };
    format!(
        "{visibility}{prefix}{fn_word} {path}{}({}){output}{}",
        generics(f.get("generics")),
        inputs.join(", "),
        where_clause(f.get("generics"))
    )
}

fn generics(generics: Option<&Value>) -> String {
    let params: Vec<String> = generics
        .and_then(|g| g.get("params"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| {
            p.pointer("/kind/type/is_synthetic")
                .and_then(Value::as_bool)
                != Some(true)
        })
        .map(|p| {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("?");
            match p.get("kind") {
                Some(k) if k.get("type").is_some() => {
                    format!("{name}{}", bounds_suffix(k.pointer("/type/bounds")))
                }
                Some(k) if k.get("const").is_some() => {
                    let t = k.pointer("/const/type").map(ty).unwrap_or_default();
                    format!("const {name}: {t}")
                }
                _ => name.to_owned(),
            }
        })
        .collect();
    if params.is_empty() {
        String::new()
    } else {
        format!("<{}>", params.join(", "))
    }
}

fn where_clause(generics: Option<&Value>) -> String {
    let predicates: Vec<String> = generics
        .and_then(|g| g.get("where_predicates"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("bound_predicate"))
        .map(|p| {
            let t = p.get("type").map(ty).unwrap_or_default();
            format!("{t}{}", bounds_suffix(p.get("bounds")))
        })
        .collect();
    if predicates.is_empty() {
        String::new()
    } else {
        format!(" where {}", predicates.join(", "))
    }
}

fn bounds_suffix(bounds: Option<&Value>) -> String {
    let shown = bounds_list(bounds);
    if shown.is_empty() {
        String::new()
    } else {
        format!(": {shown}")
    }
}

fn bounds_list(bounds: Option<&Value>) -> String {
    let shown: Vec<String> = bounds
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|b| {
            if let Some(t) = b.get("trait_bound") {
                t.get("trait").map(path_ty).unwrap_or_default()
            } else if let Some(o) = b.get("outlives") {
                o.as_str().unwrap_or("'_").to_owned()
            } else {
                "?".to_owned()
            }
        })
        .collect();
    shown.join(" + ")
}

/// A path with its generic arguments: `Result<Receipt, SendError>`.
fn path_ty(p: &Value) -> String {
    let name = p.get("path").and_then(Value::as_str).unwrap_or("?");
    let args = p.get("args").filter(|a| !a.is_null());
    let Some(args) = args else {
        return name.to_owned();
    };
    if let Some(angle) = args.get("angle_bracketed") {
        let mut shown: Vec<String> = angle
            .get("args")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| {
                if let Some(t) = a.get("type") {
                    ty(t)
                } else if let Some(l) = a.get("lifetime") {
                    l.as_str().unwrap_or("'_").to_owned()
                } else if let Some(c) = a.get("const") {
                    c.get("expr")
                        .and_then(Value::as_str)
                        .unwrap_or("_")
                        .to_owned()
                } else {
                    "_".to_owned()
                }
            })
            .collect();
        for c in angle
            .get("constraints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let n = c.get("name").and_then(Value::as_str).unwrap_or("?");
            let t = c
                .pointer("/binding/equality/type")
                .map(ty)
                .unwrap_or_else(|| "_".to_owned());
            shown.push(format!("{n} = {t}"));
        }
        if shown.is_empty() {
            name.to_owned()
        } else {
            format!("{name}<{}>", shown.join(", "))
        }
    } else if let Some(paren) = args.get("parenthesized") {
        let inputs: Vec<String> = paren
            .get("inputs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(ty)
            .collect();
        let output = paren
            .get("output")
            .filter(|o| !o.is_null())
            .map(|o| format!(" -> {}", ty(o)))
            .unwrap_or_default();
        format!("{name}({}){output}", inputs.join(", "))
    } else {
        name.to_owned()
    }
}

/// A type as Rust writes it.
fn ty(t: &Value) -> String {
    let Some((kind, body)) = t.as_object().and_then(|o| o.iter().next()) else {
        return "?".to_owned();
    };
    match kind.as_str() {
        "resolved_path" => path_ty(body),
        "generic" | "primitive" => body.as_str().unwrap_or("?").to_owned(),
        "borrowed_ref" => {
            let lifetime = body
                .get("lifetime")
                .and_then(Value::as_str)
                .map(|l| format!("{l} "))
                .unwrap_or_default();
            let mutable = if body.get("is_mutable").and_then(Value::as_bool) == Some(true) {
                "mut "
            } else {
                ""
            };
            let inner = body.get("type").map(ty).unwrap_or_default();
            format!("&{lifetime}{mutable}{inner}")
        }
        "raw_pointer" => {
            let mutable = body.get("is_mutable").and_then(Value::as_bool) == Some(true);
            let inner = body.get("type").map(ty).unwrap_or_default();
            format!("*{} {inner}", if mutable { "mut" } else { "const" })
        }
        "slice" => format!("[{}]", ty(body)),
        "array" => {
            let inner = body.get("type").map(ty).unwrap_or_default();
            let len = body.get("len").and_then(Value::as_str).unwrap_or("_");
            format!("[{inner}; {len}]")
        }
        "tuple" => {
            let parts: Vec<String> = body.as_array().into_iter().flatten().map(ty).collect();
            format!("({})", parts.join(", "))
        }
        "impl_trait" => format!("impl {}", bounds_list(Some(body))),
        "dyn_trait" => {
            let traits: Vec<String> = body
                .get("traits")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("trait"))
                .map(path_ty)
                .collect();
            let lifetime = body
                .get("lifetime")
                .and_then(Value::as_str)
                .map(|l| format!(" + {l}"))
                .unwrap_or_default();
            format!("dyn {}{lifetime}", traits.join(" + "))
        }
        "qualified_path" => {
            let name = body.get("name").and_then(Value::as_str).unwrap_or("?");
            let self_ty = body.get("self_type").map(ty).unwrap_or_default();
            match body.get("trait").filter(|t| !t.is_null()) {
                Some(trait_) => format!("<{self_ty} as {}>::{name}", path_ty(trait_)),
                None => format!("{self_ty}::{name}"),
            }
        }
        "function_pointer" => "fn(..)".to_owned(),
        "infer" => "_".to_owned(),
        "pat" => body.get("type").map(ty).unwrap_or_default(),
        _ => "?".to_owned(),
    }
}

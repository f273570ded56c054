//! The schema as the isolation matrix sees it, read by introspection so that a
//! new field is probed without anyone remembering to add it: every root field,
//! the places in its arguments where an `ID` goes (an argument, or a field of an
//! input-object argument), variables that fill everything else with a valid
//! value, and a selection set that reads as much of the result as the limits
//! allow.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// Introspection of what the walk needs: fields with their arguments, input
/// fields with defaults, enum values.
pub const INTROSPECTION: &str = r#"
{ __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { kind name
      fields { name args { ...InputValue } type { ...TypeRef } }
      inputFields { ...InputValue }
      enumValues { name }
    }
} }
fragment InputValue on __InputValue { name type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }
"#;

/// How deep below a root field the generic selection reads.
const SELECTION_DEPTH: usize = 3;
/// The page every paged field is asked for: enough to show another organisation's rows, and
/// small enough that pages nested three deep stay within the complexity limit.
const PAGE: u32 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Query,
    Mutation,
    Subscription,
}

impl Operation {
    pub fn keyword(self) -> &'static str {
        match self {
            Operation::Query => "query",
            Operation::Mutation => "mutation",
            Operation::Subscription => "subscription",
        }
    }
}

/// One field of the query, mutation or subscription root.
pub struct RootField {
    pub operation: Operation,
    pub name: String,
    /// The field's `__InputValue`s.
    args: Vec<Value>,
}

/// Where an id goes: `["roomId"]` for an argument, `["input", "replyToId"]` for
/// a field of an input-object argument.
pub type IdPath = Vec<String>;

pub struct SchemaWalk {
    types: HashMap<String, Value>,
    pub fields: Vec<RootField>,
}

impl SchemaWalk {
    /// Reads `__schema` (the `data` of [`INTROSPECTION`]).
    pub fn new(schema: &Value) -> SchemaWalk {
        let types: HashMap<String, Value> = schema["types"]
            .as_array()
            .expect("__schema.types")
            .iter()
            .map(|t| (t["name"].as_str().expect("a named type").to_owned(), t.clone()))
            .collect();
        let mut fields = Vec::new();
        for (operation, root) in [
            (Operation::Query, "queryType"),
            (Operation::Mutation, "mutationType"),
            (Operation::Subscription, "subscriptionType"),
        ] {
            let root_name = schema[root]["name"].as_str().expect("a root type");
            for field in types[root_name]["fields"].as_array().expect("root fields") {
                let name = field["name"].as_str().expect("field name").to_owned();
                let args = field["args"].as_array().cloned().unwrap_or_default();
                fields.push(RootField { operation, name, args });
            }
        }
        SchemaWalk { types, fields }
    }

    /// `Type.field(arg)` for every non-root field that takes an `ID` argument:
    /// the matrix probes root fields only, so such a field must be added to it.
    pub fn nested_id_arguments(&self) -> Vec<String> {
        let roots: Vec<&str> = ["QueryRoot", "MutationRoot", "SubscriptionRoot"].to_vec();
        let mut found = Vec::new();
        for (name, ty) in &self.types {
            if name.starts_with("__") || roots.contains(&name.as_str()) {
                continue;
            }
            for field in ty["fields"].as_array().into_iter().flatten() {
                for arg in field["args"].as_array().into_iter().flatten() {
                    if named(&arg["type"]) == "ID" {
                        found.push(format!("{name}.{}({})", field["name"], arg["name"]));
                    }
                }
            }
        }
        found
    }

    /// Every place in `field`'s arguments that takes an id.
    pub fn id_paths(&self, field: &RootField) -> Vec<IdPath> {
        let mut paths = Vec::new();
        for arg in &field.args {
            let name = arg["name"].as_str().expect("argument name").to_owned();
            let ty = named(&arg["type"]);
            if ty == "ID" {
                paths.push(vec![name]);
            } else if self.types[ty]["kind"] == "INPUT_OBJECT" {
                for input in self.types[ty]["inputFields"].as_array().expect("input fields") {
                    if named(&input["type"]) == "ID" {
                        let field = input["name"].as_str().expect("input field name").to_owned();
                        paths.push(vec![name.clone(), field]);
                    }
                }
            }
        }
        paths
    }

    /// The operation calling `field` with `probe` (an id) at `path`, every other
    /// required argument filled from `own` (ids by argument name) or a plain
    /// valid value; returns the document and its variables.
    pub fn call(
        &self,
        field: &RootField,
        path: Option<&[String]>,
        probe: &str,
        own: &HashMap<&str, String>,
    ) -> (String, Value) {
        let mut declarations = Vec::new();
        let mut arguments = Vec::new();
        let mut variables = Map::new();
        for arg in &field.args {
            let name = arg["name"].as_str().expect("argument name");
            let probed = path.filter(|p| p[0] == name);
            let value = match probed {
                Some(p) => self.value(&arg["type"], name, &p[1..], Some(probe), own),
                None if required(arg) => self.value(&arg["type"], name, &[], None, own),
                None if name == "first" => json!(PAGE),
                None => continue,
            };
            declarations.push(format!("${name}: {}", render(&arg["type"])));
            arguments.push(format!("{name}: ${name}"));
            variables.insert(name.to_owned(), value);
        }
        let (declarations, arguments) = if declarations.is_empty() {
            (String::new(), String::new())
        } else {
            (format!("({})", declarations.join(", ")), format!("({})", arguments.join(", ")))
        };
        let selection = self.selection(&self.field_type(field), SELECTION_DEPTH);
        let document = format!(
            "{} Probe{declarations} {{ {}{arguments} {selection} }}",
            field.operation.keyword(),
            field.name
        );
        (document, Value::Object(variables))
    }

    /// A value of type `ty` for the argument or input field `name`. `probe` is
    /// set on the way to the probed position, which `rest` leads to (empty: here).
    fn value(
        &self,
        ty: &Value,
        name: &str,
        rest: &[String],
        probe: Option<&str>,
        own: &HashMap<&str, String>,
    ) -> Value {
        match ty["kind"].as_str() {
            Some("NON_NULL") => self.value(&ty["ofType"], name, rest, probe, own),
            Some("LIST") => json!([self.value(&ty["ofType"], name, rest, probe, own)]),
            _ => {
                let type_name = ty["name"].as_str().expect("a named type");
                let info = &self.types[type_name];
                match (info["kind"].as_str(), type_name) {
                    (Some("SCALAR"), "ID") if rest.is_empty() && probe.is_some() => json!(probe),
                    (Some("SCALAR"), "ID") => json!(own.get(name).unwrap_or_else(|| panic!(
                        "the isolation matrix has no id of its own organisation for `{name}`: add one to `own_ids`"
                    ))),
                    (Some("SCALAR"), "String") => json!("probe"),
                    (Some("SCALAR"), "Int") => json!(1),
                    (Some("SCALAR"), "Boolean") => json!(false),
                    // An hour ahead: a valid time wherever a future one is required.
                    (Some("SCALAR"), "DateTime") => {
                        json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339())
                    }
                    (Some("ENUM"), _) => info["enumValues"][0]["name"].clone(),
                    (Some("INPUT_OBJECT"), _) => {
                        let mut object = Map::new();
                        for input in info["inputFields"].as_array().expect("input fields") {
                            let field = input["name"].as_str().expect("input field name");
                            let value = match rest.first() {
                                Some(next) if next == field && probe.is_some() => {
                                    self.value(&input["type"], field, &rest[1..], probe, own)
                                }
                                _ if required(input) => self.value(&input["type"], field, &[], None, own),
                                _ => continue,
                            };
                            object.insert(field.to_owned(), value);
                        }
                        Value::Object(object)
                    }
                    other => panic!("the isolation matrix cannot fill an argument of type {other:?}"),
                }
            }
        }
    }

    fn field_type(&self, field: &RootField) -> String {
        let root = match field.operation {
            Operation::Query => "QueryRoot",
            Operation::Mutation => "MutationRoot",
            Operation::Subscription => "SubscriptionRoot",
        };
        let fields = self.types[root]["fields"].as_array().expect("root fields");
        let def = fields.iter().find(|f| f["name"] == json!(field.name)).expect("the root field");
        named(&def["type"]).to_owned()
    }

    /// `{ __typename scalar… object { … } }` for an object or interface type
    /// (fields with required arguments left out), nothing for a leaf.
    fn selection(&self, type_name: &str, depth: usize) -> String {
        let info = &self.types[type_name];
        if !matches!(info["kind"].as_str(), Some("OBJECT" | "INTERFACE")) {
            return String::new();
        }
        let mut items = vec!["__typename".to_owned()];
        for field in info["fields"].as_array().expect("fields") {
            if field["args"].as_array().into_iter().flatten().any(required) {
                continue;
            }
            let name = field["name"].as_str().expect("field name");
            let inner = named(&field["type"]);
            let paged = field["args"].as_array().into_iter().flatten().any(|a| a["name"] == "first");
            let page = if paged { format!("(first: {PAGE})") } else { String::new() };
            match self.types[inner]["kind"].as_str() {
                Some("OBJECT" | "INTERFACE") if depth > 0 => {
                    items.push(format!("{name}{page} {}", self.selection(inner, depth - 1)));
                }
                Some("OBJECT" | "INTERFACE" | "UNION") => {}
                _ => items.push(name.to_owned()),
            }
        }
        format!("{{ {} }}", items.join(" "))
    }
}

/// The named type under any `NON_NULL`/`LIST` wrappers.
fn named(ty: &Value) -> &str {
    match ty["name"].as_str() {
        Some(name) => name,
        None => named(&ty["ofType"]),
    }
}

/// A non-null argument or input field without a default.
fn required(input: &Value) -> bool {
    input["type"]["kind"] == "NON_NULL" && input["defaultValue"].is_null()
}

/// The type as written in a variable declaration: `[ID!]!`.
fn render(ty: &Value) -> String {
    match ty["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", render(&ty["ofType"])),
        Some("LIST") => format!("[{}]", render(&ty["ofType"])),
        _ => ty["name"].as_str().expect("a named type").to_owned(),
    }
}

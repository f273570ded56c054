//! A limit async-graphql lacks: the number of aliases one request executes, which otherwise
//! lets a small query fan out into thousands of resolver calls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerResult, Variables};

use crate::error::{ErrorCode, graphql_error};

pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension(self.0))
    }
}

struct AliasLimitExtension(usize);

#[async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut counter = Counter { document: &document, counted: HashMap::new(), open: HashSet::new() };
        let aliases = document
            .operations
            .iter()
            .map(|(_, operation)| counter.aliases(&operation.node.selection_set.node))
            .fold(0, usize::saturating_add);
        if aliases > self.0 {
            return Err(graphql_error(
                ErrorCode::BadUserInput,
                format!("the query uses {aliases} aliases; at most {} are allowed", self.0),
            ));
        }
        Ok(document)
    }
}

/// Counts the aliases an operation executes: a fragment's once per spread, as it runs once
/// per spread (nested spreads multiply; counted once per fragment, so the count itself
/// stays cheap). This runs before validation, which refuses fragment cycles: a spread of a
/// fragment being counted counts nothing rather than recursing for ever.
struct Counter<'a> {
    document: &'a ExecutableDocument,
    counted: HashMap<&'a str, usize>,
    open: HashSet<&'a str>,
}

impl<'a> Counter<'a> {
    fn aliases(&mut self, set: &'a SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => usize::from(field.node.alias.is_some())
                    .saturating_add(self.aliases(&field.node.selection_set.node)),
                Selection::InlineFragment(fragment) => self.aliases(&fragment.node.selection_set.node),
                Selection::FragmentSpread(spread) => self.fragment(spread.node.fragment_name.node.as_str()),
            })
            .fold(0, usize::saturating_add)
    }

    fn fragment(&mut self, name: &'a str) -> usize {
        if let Some(count) = self.counted.get(name) {
            return *count;
        }
        let Some(fragment) = self.document.fragments.get(name) else { return 0 };
        if !self.open.insert(name) {
            return 0;
        }
        let count = self.aliases(&fragment.node.selection_set.node);
        self.open.remove(name);
        self.counted.insert(name, count);
        count
    }
}

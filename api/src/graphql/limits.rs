//! The limits checked on a document before async-graphql walks it: the aliases one operation
//! executes (a limit async-graphql lacks, which otherwise lets a small query fan out into
//! thousands of resolver calls) and the fields it executes once fragments are spread.

use std::collections::{HashMap, HashSet};

use async_graphql::ServerResult;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

use crate::error::{ErrorCode, graphql_error};

/// What a document executes, counted before anything else walks it: its fields and its
/// aliases, a fragment's once per spread. Refuses it when either is over its limit.
///
/// Counted first because async-graphql's own first walk (its recursion-depth check, run as
/// it parses) follows every spread again without remembering fragments: 28 fragments each
/// spreading the next twice, within every depth limit, kept a core busy past the test's 30 s
/// request timeout, and the work doubles with each level. Here each fragment is counted
/// once, so such a document is refused at once.
///
/// Fields are counted over the whole document, because async-graphql walks every operation
/// (twice) before it runs one: many operations each within the limit would otherwise add up
/// to any amount of work. Aliases are what one operation runs, and a request runs one, so
/// the operation with the most must fit: a GraphiQL tab holding several queries is not
/// refused for their sum. (The document is checked once, when it is not cached yet,
/// whichever of its operations a request then runs.)
pub fn check(document: &ExecutableDocument, max_fields: usize, max_aliases: usize) -> ServerResult<()> {
    let mut counter = Counter { document, counted: HashMap::new(), open: HashSet::new() };
    let (fields, aliases) = document
        .operations
        .iter()
        .map(|(_, operation)| counter.count(&operation.node.selection_set.node))
        .fold((0, 0), |(f1, a1): (usize, usize), (f2, a2)| (f1.saturating_add(f2), a1.max(a2)));
    if aliases > max_aliases {
        return Err(graphql_error(
            ErrorCode::BadUserInput,
            format!("the query uses {aliases} aliases; at most {max_aliases} are allowed"),
        ));
    }
    if fields > max_fields {
        return Err(graphql_error(
            ErrorCode::BadUserInput,
            format!(
                "the query selects {fields} fields once its fragments are spread; at most {max_fields} are allowed"
            ),
        ));
    }
    Ok(())
}

/// Fields and aliases of two selections, run one after the other.
fn add((f1, a1): (usize, usize), (f2, a2): (usize, usize)) -> (usize, usize) {
    (f1.saturating_add(f2), a1.saturating_add(a2))
}

/// Counts (fields, aliases) as they run: a fragment's once per spread (nested spreads
/// multiply; each fragment is counted once, so the count itself stays linear). Before
/// validation, a fragment cycle can reach here: a spread of a fragment being counted counts
/// nothing rather than recursing for ever, and async-graphql's depth check refuses it next.
struct Counter<'a> {
    document: &'a ExecutableDocument,
    counted: HashMap<&'a str, (usize, usize)>,
    open: HashSet<&'a str>,
}

impl<'a> Counter<'a> {
    fn count(&mut self, set: &'a SelectionSet) -> (usize, usize) {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => add(
                    (1, usize::from(field.node.alias.is_some())),
                    self.count(&field.node.selection_set.node),
                ),
                Selection::InlineFragment(fragment) => self.count(&fragment.node.selection_set.node),
                Selection::FragmentSpread(spread) => self.fragment(spread.node.fragment_name.node.as_str()),
            })
            .fold((0, 0), add)
    }

    fn fragment(&mut self, name: &'a str) -> (usize, usize) {
        if let Some(count) = self.counted.get(name) {
            return *count;
        }
        let Some(fragment) = self.document.fragments.get(name) else { return (0, 0) };
        if !self.open.insert(name) {
            return (0, 0);
        }
        let count = self.count(&fragment.node.selection_set.node);
        self.open.remove(name);
        self.counted.insert(name, count);
        count
    }
}

//! Context access for resolvers: the shared state, the viewer, and the request's loaders.

use async_graphql::Context;
use async_graphql::dataloader::DataLoader;

use super::loaders::Loaders;
use super::pages::KeyCursor;
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult};
use crate::paging::{Keyset, PageSize};
use crate::state::{AppState, Ctx};
use entity::enums::UserRole;

pub trait ContextExt {
    fn state(&self) -> ApiResult<&AppState>;
    /// The authenticated caller, or UNAUTHENTICATED; FORBIDDEN for an integration token,
    /// which may only call what asks for [`ContextExt::integration`].
    fn viewer(&self) -> ApiResult<&Viewer>;
    /// The authenticated caller, integration tokens included.
    fn integration(&self) -> ApiResult<&Viewer>;
    fn loaders(&self) -> ApiResult<&DataLoader<Loaders>>;
    /// The page size a client asked for, within the server's largest page.
    fn page_size(&self, requested: Option<i32>) -> ApiResult<PageSize> {
        PageSize::parse(requested, self.state()?.limits.max_page_size)
    }
    /// The keyset a page's Relay arguments ask for ([`super::pages::keyset`]).
    fn keyset<K: KeyCursor>(
        &self,
        first: Option<i32>,
        after: Option<&str>,
        last: Option<i32>,
        before: Option<&str>,
    ) -> ApiResult<Keyset<K>> {
        super::pages::keyset(first, after, last, before, self.state()?.limits.max_page_size)
    }
    /// The state and the viewer, as services take them.
    fn service(&self) -> ApiResult<Ctx<'_>> {
        Ok(Ctx { app: self.state()?, viewer: self.viewer()? })
    }
}

impl ContextExt for Context<'_> {
    fn state(&self) -> ApiResult<&AppState> {
        self.data_opt::<AppState>().ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))
    }

    fn viewer(&self) -> ApiResult<&Viewer> {
        let viewer = self.integration()?;
        if viewer.role == UserRole::Integration {
            return Err(ApiError::forbidden("an integration token may only ingest inbound messages"));
        }
        Ok(viewer)
    }

    fn integration(&self) -> ApiResult<&Viewer> {
        self.data_opt::<Viewer>().ok_or_else(|| ApiError::unauthenticated("authentication required"))
    }

    fn loaders(&self) -> ApiResult<&DataLoader<Loaders>> {
        self.data_opt::<DataLoader<Loaders>>()
            .ok_or_else(|| ApiError::unauthenticated("authentication required"))
    }
}

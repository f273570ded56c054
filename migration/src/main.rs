//! `cargo run -p migration -- up`: sea-orm-migration's CLI over Parley's migrations.

use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migration::Migrator).await;
}

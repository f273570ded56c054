//! The commands of the `parley` binary. Each prints its result on the last line of stdout so
//! scripts can take it with `tail -n1`.

use clap::error::{ContextKind, ContextValue};
use clap::{CommandFactory, Parser};

use crate::app::{App, shutdown_signal};
use crate::auth::JwtAuth;
use crate::config::{
    Cli, Command, DatabaseConfig, OrgCommand, ServeConfig, SignArgs, TokenArgs, UserCommand,
};
use crate::db::{Store, WarmUp};
use crate::error::ErrorCode;
use crate::users::input::{DisplayName, EmailAddress, Handle};
use crate::users::service::{self as users, NewUser};
use crate::{graphql, secrets, telemetry};
use entity::enums::UserKind;

/// Parses the command line (a bad setting stops here with one line naming it) and runs.
pub async fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version.
            let _ = err.print();
            return std::process::ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{}", one_line(&err));
            return std::process::ExitCode::from(2);
        }
    };
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// clap's error, first line only, naming the environment variable behind the flag.
fn one_line(err: &clap::Error) -> String {
    let first = err.to_string().lines().next().unwrap_or("invalid arguments").to_owned();
    let Some(ContextValue::String(flag)) = err.get(ContextKind::InvalidArg) else { return first };
    let long = flag.trim_start_matches('-').split(' ').next().unwrap_or_default();
    let command = Cli::command();
    let env = std::iter::once(&command)
        .chain(command.get_subcommands())
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    match env {
        Some(env) => format!("{first} (from {env} or {flag})"),
        None => first,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(config)) => serve(*config).await,
        Some(Command::Schema) => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Some(Command::Migrate(database)) => {
            connect(&database).await?;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::Token(args)) => token(args).await,
        Some(Command::Sign(args)) => sign(args).await,
        Some(Command::Org(OrgCommand::Create { database, slug, name })) => {
            let store = connect(&database).await?;
            let name = name.unwrap_or_else(|| slug.clone());
            let org = users::create_org(&store, &slug, &name).await?;
            println!("{}", org.id);
            Ok(())
        }
        Some(Command::User(UserCommand::Create { database, org, handle, display_name, email, role })) => {
            let store = connect(&database).await?;
            let org = users::find_org_by_slug(&store, &org).await?;
            let handle = Handle::parse(&handle)?;
            let display_name = display_name.as_deref().map(DisplayName::parse).transpose()?;
            let email = email.as_deref().map(EmailAddress::parse).transpose()?;
            let new = NewUser { handle, display_name, email, role, kind: UserKind::Human };
            let user = users::create(&store, org.id, new).await?;
            println!("{}", user.id);
            Ok(())
        }
    }
}

/// Prints a `curl` command posting `body` to an inbox's webhook, signed with its secret
/// (read from the database) as the server checks it.
async fn sign(args: SignArgs) -> anyhow::Result<()> {
    use sea_orm::{EntityTrait, QueryOrder, QuerySelect};
    let store = connect(&args.database).await?;
    let inbox = match args.inbox {
        Some(id) => entity::support_inboxes::Entity::find_by_id(id).one(&store.db).await?,
        None => {
            let first_two = entity::support_inboxes::Entity::find()
                .order_by_asc(entity::support_inboxes::Column::CreatedAt)
                .limit(2)
                .all(&store.db)
                .await?;
            if first_two.len() > 1 {
                anyhow::bail!("more than one inbox: name one with --inbox");
            }
            first_two.into_iter().next()
        }
    };
    let inbox =
        inbox.ok_or_else(|| anyhow::anyhow!("no such inbox (the demo seeds one; or createSupportInbox)"))?;
    let now = chrono::Utc::now();
    let timestamp = now.timestamp();
    let signature = crate::notifications::render::signature(&inbox.webhook_secret, now, args.body.as_bytes())
        .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let url = format!("{}/webhooks/inboxes/{}/messages", args.url.trim_end_matches('/'), inbox.id);
    println!(
        "curl -sS -X POST {} -H 'Content-Type: application/json' -H 'X-Parley-Timestamp: {timestamp}' \
         -H 'X-Parley-Signature: {signature}' --data-binary {}",
        quote(&url),
        quote(&args.body)
    );
    Ok(())
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    telemetry::init(config.log_format == "json");
    let app = App::build(config).await?;
    let addr = app.local_addr()?;
    tracing::info!(%addr, "listening");
    // Scripts and tests wait for this line.
    println!("listening on http://{addr}");
    app.run_until_stopped(shutdown_signal()).await
}

/// Connects and applies pending migrations.
async fn connect(database: &DatabaseConfig) -> anyhow::Result<Store> {
    let store = Store::connect(database, WarmUp::default()).await?;
    store.migrate_then(|_| async { Ok(()) }).await?;
    Ok(store)
}

async fn token(args: TokenArgs) -> anyhow::Result<()> {
    args.auth.validate(&args.database)?;
    let store = connect(&args.database).await?;
    let secret = secrets::jwt_secret(&store, &args.database, &args.auth).await?;
    let auth = JwtAuth::new(&args.auth, secret.as_deref())?;
    let slug = args.org.as_deref().unwrap_or("demo");
    let org =
        users::find_org_by_slug(&store, slug).await.map_err(|error| match (error.code(), &args.org) {
            (ErrorCode::NotFound, Some(_)) => {
                anyhow::anyhow!("--org: no organisation `{slug}` (`parley org create` makes one)")
            }
            // A new user's first try: say how to get the demo rather than that an org is missing.
            (ErrorCode::NotFound, None) => anyhow::anyhow!(
                "no demo organisation yet: start the server once (it seeds the demo) \
             or create one with `parley org create`"
            ),
            _ => anyhow::anyhow!("{error}"),
        })?;
    let user = users::find_by_handle(&store, org.id, &Handle::lookup(&args.user))
        .await
        .map_err(|_| anyhow::anyhow!("--user: no user `{}` in `{}`", args.user, org.slug))?;
    let role = sea_orm::ActiveEnum::to_value(&user.role);
    println!("{}", auth.mint(user.id, org.id, &role, args.ttl)?);
    Ok(())
}

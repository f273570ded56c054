//! The admin CLI run against a test deployment's configuration, as an operator runs it:
//! organisations, users and their tokens (`Org`, `TestUser`), and any other command.

use std::process::Stdio;

use tokio::process::Command;

use super::app::Env;

/// A test user and a token minted for it by `parley token`.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub handle: String,
    pub token: String,
}

/// An organisation created through `parley org create` with a unique slug.
pub struct Org {
    pub id: String,
    pub slug: String,
    pub(super) env: Env,
}

impl Org {
    /// A member user of this organisation with a CLI-minted token.
    pub async fn user(&self, handle: &str) -> TestUser {
        self.user_with_role(handle, "member").await
    }

    /// A user with an organisation role: `owner`, `admin`, `agent` or `member`.
    pub async fn user_with_role(&self, handle: &str, role: &str) -> TestUser {
        let display = display_name(handle);
        let id = run_cli(
            &self.env,
            &[
                "user",
                "create",
                "--org",
                &self.slug,
                "--handle",
                handle,
                "--display-name",
                &display,
                "--role",
                role,
            ],
        )
        .await;
        uuid::Uuid::parse_str(&id).unwrap_or_else(|_| panic!("`user create` printed {id:?}, not a uuid"));
        let token = run_cli(&self.env, &["token", "--user", handle, "--org", &self.slug]).await;
        TestUser { id, handle: handle.to_owned(), token }
    }
}

/// `alice` → `Alice`: the display name the fixture gives every user.
pub fn display_name(handle: &str) -> String {
    let mut chars = handle.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A `parley` command with exactly `env` as its configuration: inherited
/// `PARLEY_*`, `DATABASE_URL` and `REDIS_URL` variables are removed first.
pub fn parley_command(env: &[(String, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parley"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PARLEY_") || key == "DATABASE_URL" || key == "REDIS_URL" {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    command
}

pub(super) async fn run_cli(env: &Env, args: &[&str]) -> String {
    let output =
        parley_command(env).args(args).stdin(Stdio::null()).output().await.expect("run the parley CLI");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "`parley {}` failed ({}):\n{stdout}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or_else(|| panic!("`parley {}` printed nothing", args.join(" ")))
        .to_owned()
}

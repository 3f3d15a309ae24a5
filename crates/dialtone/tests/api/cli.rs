//! The operator commands of the real binary, on the same database the server uses.

use serde_json::Value;
use tokio::process::Command;

use crate::common::{SECRET, TestDb, drop_db, fresh_db, with_database};

struct Cli {
    env: Vec<(&'static str, String)>,
}

impl Cli {
    async fn json(&self, args: &[&str]) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .await
            .expect("run dialtone");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    async fn fails(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .await
            .expect("run dialtone");
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

#[tokio::test]
async fn operator_commands_manage_orgs_workspaces_keys_and_credit() {
    let (store, db) = fresh_db().await;
    store.close().await;
    let mut env = vec![("DIALTONE_SECRET_KEY", SECRET.to_owned())];
    match &db {
        TestDb::Sqlite(dir) => env.push(("DIALTONE_DATA_DIR", dir.display().to_string())),
        TestDb::Postgres { admin_url, name } => {
            env.push(("DATABASE_URL", with_database(admin_url, name)))
        }
    }
    let cli = Cli { env };
    let org = cli
        .json(&["org", "create", "--name", "Ops", "--json"])
        .await;
    let org_id = org["id"].as_str().expect("id");
    assert!(
        org["default_workspace_id"]
            .as_str()
            .is_some_and(|w| w.starts_with("ws_"))
    );
    let ws = cli
        .json(&[
            "workspace",
            "create",
            "--org",
            org_id,
            "--name",
            "EU",
            "--json",
        ])
        .await;
    let ws_id = ws["id"].as_str().expect("id");
    let key = cli
        .json(&[
            "keys",
            "create",
            "--org",
            org_id,
            "--name",
            "scoped",
            "--workspace",
            ws_id,
            "--test",
            "--permissions",
            "contacts:read,calls:write",
            "--json",
        ])
        .await;
    assert!(
        key["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("dt_test_"))
    );
    assert_eq!(key["workspace_id"], ws_id);
    assert_eq!(
        key["permissions"],
        serde_json::json!(["contacts:read", "calls:read", "calls:write"])
    );
    let key_id = key["id"].as_str().expect("id");
    let list = cli.json(&["keys", "list", "--org", org_id, "--json"]).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert!(list[0].get("secret").is_none());
    let revoked = cli.json(&["keys", "revoke", key_id, "--json"]).await;
    assert_eq!(revoked["status"], "revoked");
    let wallet = cli
        .json(&[
            "billing", "credit", "--org", org_id, "--amount", "12.34", "--json",
        ])
        .await;
    assert_eq!(wallet["balance"], 1234);
    let wallet = cli
        .json(&[
            "billing", "credit", "--org", org_id, "--amount", "1", "--json",
        ])
        .await;
    assert_eq!(wallet["balance"], 1334);
    assert!(
        cli.fails(&["billing", "credit", "--org", org_id, "--amount", "-5"])
            .await
            .contains("amount")
    );
    assert!(
        cli.fails(&[
            "keys",
            "create",
            "--org",
            org_id,
            "--name",
            "x",
            "--permissions",
            "nope:read"
        ])
        .await
        .contains("permission")
    );
    let wrong_secret = Cli {
        env: cli
            .env
            .iter()
            .map(|(k, v)| {
                (
                    *k,
                    if *k == "DIALTONE_SECRET_KEY" {
                        "another-secret-0123456789".to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect(),
    };
    assert!(
        wrong_secret
            .fails(&["org", "list", "--json"])
            .await
            .contains("secret")
    );
    drop_db(&db).await;
}

//! The SQL fixtures on the throwaway PostgreSQL agree with the cluster fixtures: every
//! credential a fixture secret holds logs in (passwords are really checked), and the
//! Houston rows, dates and databases are the ones research/astronomer-fixtures.md §4 names.

use e2e_tests::{FIXTURE_DB_HOST, pg, render_fixtures};
use serde_json::Value;

fn secret_value(secret: &Value, key: &str) -> Option<String> {
    secret["stringData"][key].as_str().map(str::to_owned)
}

/// (user, password, database) of every DB URL pointing at the fixture DB host, with the
/// password percent-decoded, plus every users.txt entry with the database of its ini.
fn fixture_credentials(variants: &[&str]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for o in render_fixtures(variants, &[]) {
        if o["kind"] != "Secret" {
            continue;
        }
        for key in ["connection", "kedaConnection"] {
            let Some(url) = secret_value(&o, key) else {
                continue;
            };
            if !url.contains(&format!("@{FIXTURE_DB_HOST}:5432")) {
                continue;
            }
            let (_, rest) = url.split_once("://").unwrap();
            let (userinfo, hostpath) = rest.split_once('@').unwrap();
            let (user, password) = userinfo.split_once(':').unwrap();
            let database = hostpath
                .split_once('/')
                .map(|(_, db)| db.split('?').next().unwrap().to_owned())
                .unwrap_or_else(|| "postgres".into());
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .unwrap()
                    .into_owned()
            };
            out.push((decode(user), decode(password), database));
        }
        if let Some(users) = secret_value(&o, "users.txt") {
            let ini = secret_value(&o, "pgbouncer.ini").unwrap();
            let db = ini
                .split("dbname=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned();
            for line in users.lines() {
                let f: Vec<&str> = line.split('"').collect();
                out.push((f[1].to_owned(), f[3].to_owned(), db.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_fixture_credential_logs_in_and_wrong_ones_do_not() {
    let pg = pg();
    let mut creds = fixture_credentials(&[]);
    for variant in ["variant-c", "variant-d", "renamed-release"] {
        creds.extend(fixture_credentials(&[variant]));
    }
    creds.sort();
    creds.dedup();
    assert!(creds.len() >= 12, "{creds:?}");
    for (user, password, database) in &creds {
        let client = pg
            .connect_as(user, password, database)
            .await
            .unwrap_or_else(|e| panic!("{user}@{database}: {e}"));
        let who: String = client
            .query_one("select current_user::text", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(&who, user);
        let wrong = pg.connect_as(user, &format!("{password}x"), database).await;
        assert!(wrong.is_err(), "{user}: a wrong password was accepted");
    }
    // The role whose password needs percent-encoding is among them.
    assert!(
        creds
            .iter()
            .any(|(u, p, _)| u == "quiet_nebula_3391_airflow" && p == "qN3b@l:a/5%x#y?z")
    );
}

#[test]
fn houston_rows_and_dates_follow_the_spec() {
    let pg = pg();
    let deleted_days = |db: &str, release: &str| -> Option<i64> {
        pg.query_one(
            db,
            &format!(
                "select extract(day from (now() at time zone 'UTC') - \"deletedAt\")::bigint \
                 from houston$default.\"Deployment\" where \"releaseName\" = '{release}'"
            ),
        )
        .map(|d| d.parse().unwrap())
    };
    for db in ["astronomer_houston", "astro_houston", "legacy_houston"] {
        let cz = deleted_days(db, "celestial-zenith-1234").unwrap();
        assert!(
            (2..=3).contains(&cz),
            "{db}: celestial-zenith deleted {cz} days ago"
        );
        let ba = deleted_days(db, "boreal-aphelion-0042").unwrap();
        assert!(
            (19..=20).contains(&ba),
            "{db}: boreal-aphelion deleted {ba} days ago"
        );
        assert_eq!(deleted_days(db, "weightless-meteor-5042"), None);
        let gusty = pg.query(
            db,
            "select 1 from houston$default.\"Deployment\" where \"releaseName\" = 'gusty-perihelion-7311'",
        );
        assert!(
            gusty.is_empty(),
            "{db}: gusty-perihelion must be hard-deleted"
        );
        let ws = pg.query(
            db,
            "select 1 from houston$default.\"Workspace\" where id = 'ckoy0e0ws000601l5zzzzzzzz'",
        );
        assert!(ws.is_empty(), "{db}: boreal's workspace must be gone");
    }
    // Variant A vs C: the workspace column differs.
    let column = |db: &str| {
        pg.query(
            db,
            "select column_name from information_schema.columns where table_schema = 'houston$default' \
             and table_name = 'Deployment' and column_name in ('workspaceId', 'workspace')",
        )
    };
    assert_eq!(
        column("astronomer_houston"),
        vec![vec![Some("workspaceId".to_owned())]]
    );
    assert_eq!(
        column("legacy_houston"),
        vec![vec![Some("workspace".to_owned())]]
    );
    // RoleBindings of the soft-deleted deployment are still there.
    assert_eq!(
        pg.query_one(
            "astronomer_houston",
            "select count(*) from houston$default.\"RoleBinding\" where \"deploymentId\" = 'ckoy0d2mm000401l5e5f6g7h8'"
        )
        .as_deref(),
        Some("1")
    );
}

#[test]
fn airflow_databases_exist_except_the_hard_deleted_one() {
    let pg = pg();
    let dbs: Vec<String> = pg
        .query(
            "postgres",
            "select datname from pg_database where datname like '%\\_airflow' order by 1",
        )
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    for db in [
        "weightless_meteor_5042_airflow",
        "traditional_precession_8767_airflow",
        "celestial_zenith_1234_airflow",
        "boreal_aphelion_0042_airflow",
        "dt_prod_airflow",
    ] {
        assert!(dbs.contains(&db.to_owned()), "{db} missing from {dbs:?}");
        let release = db.trim_end_matches("_airflow");
        assert_eq!(
            pg.query_one(
                db,
                "select dag_id from airflow.dag where dag_id like '%daily_etl'"
            ),
            Some(format!("{release}_daily_etl")),
        );
    }
    assert!(!dbs.contains(&"gusty_perihelion_7311_airflow".to_owned()));
    // Deployment roles are plain logins.
    let flags = pg.query_one(
        "postgres",
        "select concat(rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolcanlogin) \
         from pg_roles where rolname = 'weightless_meteor_5042_airflow'",
    );
    assert_eq!(flags.as_deref(), Some("fffft"));
}

#[test]
fn clone_database_gives_a_private_copy() {
    let pg = pg();
    let copy = pg.clone_database("astronomer_houston");
    pg.query(
        &copy,
        "update houston$default.\"Deployment\" set \"deletedAt\" = null where \"releaseName\" = 'celestial-zenith-1234'",
    );
    let deleted = |db: &str| {
        pg.query_one(
            db,
            "select \"deletedAt\" is not null from houston$default.\"Deployment\" where \"releaseName\" = 'celestial-zenith-1234'",
        )
    };
    assert_eq!(deleted(&copy).as_deref(), Some("f"));
    assert_eq!(deleted("astronomer_houston").as_deref(), Some("t"));
    pg.drop_database(&copy);
    assert!(
        pg.query(
            "postgres",
            &format!("select 1 from pg_database where datname = '{copy}'")
        )
        .is_empty()
    );
}

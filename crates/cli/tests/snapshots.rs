//! What people read, pinned: the table and `-o json` output of `baton plan`, `preflight`,
//! `network plan`, `migrate --dry-run`, `migrate --yes`, `status` (before and after a real
//! migrate) and `permissions`, as insta snapshots under `tests/snapshots/`. One
//! `baton sim up` for the whole file (the default scenario); what differs between runs
//! (EC2 and Kubernetes ids, uids, migration and plan ids, timestamps, durations, ports,
//! temp dirs, ARNs' account and random parts) is redacted, so a snapshot changes only when
//! the output does. To review and accept a change, see CONTRIBUTING.md ("Snapshots").

mod common;

use std::fmt;

use common::{Sim, sim_up};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// What a redacted uid reads as: as long as one, so that tables keep their alignment.
const UID: &str = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

/// Regex filters for what changes from run to run, applied to every snapshot (tables, and
/// the ids inside JSON strings such as a finding's object or fix), in this order. Ids
/// become x's of their own length, so a table's columns stay aligned in the snapshot.
const FILTERS: &[(&str, &str)] = &[
    // RFC 3339 timestamps (plans' `created`, windows opened and closed).
    (
        r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[timestamp]",
    ),
    // Kubernetes uids (and the PV names made of a claim's uid).
    (
        r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        UID,
    ),
    // …and cut to their first 8 characters for reading (`pvc-747a3a33…`).
    (r"\b[0-9a-f]{8}…", "xxxxxxxx…"),
    // EC2 ids: volumes, snapshots, instances, subnets, VPCs, security groups, ENIs…
    (
        r"\b(vol|snap|i|subnet|vpc|sg|eni|igw|rtb|nat)-[0-9a-f]{17}\b",
        "${1}-xxxxxxxxxxxxxxxxx",
    ),
    (
        r"\b(vol|snap|i|subnet|vpc|sg|eni|igw|rtb|nat)-[0-9a-f]{8}\b",
        "${1}-xxxxxxxx",
    ),
    // A volume's zone is where the scheduler placed its first pod: the seed's pods start
    // together, so which zone each replica gets varies from run to run.
    (r"(vol-x{17} +)us-east-1[a-z]\b", "${1}us-east-1?"),
    (
        r#"("volume_id": "vol-x{17}",\s+"az": )"us-east-1[a-z]""#,
        r#"${1}"us-east-1?""#,
    ),
    (r"aws://us-east-1[a-z]/vol-", "aws://us-east-1?/vol-"),
    (
        r#"("key":"topology\.(kubernetes\.io|ebs\.csi\.aws\.com)/zone","operator":"In","values":\[)"us-east-1[a-z]""#,
        r#"${1}"us-east-1?""#,
    ),
    // Migration ids: FROM-to-TO-SECONDS-PIDNANOS.
    (r"\b([a-z0-9]+-to-[a-z0-9]+)-\d{9,}-[0-9a-f]+\b", "$1-[id]"),
    // Network plan ids: net-SECONDS-PIDNANOS.
    (r"\bnet-\d{9,}-[0-9a-f]+\b", "net-[id]"),
    // ARNs: the account, and the random part of load balancers, listeners, target groups.
    (
        r"(arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:)\d{12}:",
        "$1[account]:",
    ),
    (r"/[0-9a-f]{16}\b", "/[hash]"),
    // Durations (a window of 1.1s, a wait of 250ms; not a count of /28s).
    (r"\b\d+\.\d+s\b", "[duration]"),
    (r"\b\d+(\.\d+)? s\b", "[duration]"),
    (r"\b\d+ms\b", "[duration]"),
    // The emulator's and moto's loopback ports.
    (r"\b(127\.0\.0\.1|localhost):\d+", "$1:[port]"),
    // Temp dirs (tempfile's /tmp/.tmpXXXXXX, wherever TMPDIR is).
    (r"(/[\w.-]+)*/\.tmp\w{6}", "[tmp]"),
];

/// Snapshots go to `tests/snapshots/NAME.snap` (no module prefix), filtered by [`FILTERS`].
fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    for (re, with) in FILTERS {
        s.add_filter(re, *with);
    }
    s
}

/// Pins a table (or any text) as printed.
fn snap_text(name: &str, text: &str) {
    settings().bind(|| insta::assert_snapshot!(name, text));
}

/// JSON as baton printed it, keys in baton's order (`serde_json::Value` would sort them,
/// and turning on serde_json's `preserve_order` for the tests would change the binary
/// under test, whose `json!` output is sorted).
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(v) => s.serialize_str(v),
            Json::Array(v) => v.serialize(s),
            Json::Object(fields) => {
                let mut m = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
                Ok(Json::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Number(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(v)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("not a JSON number"))
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Json::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut v = Vec::new();
                while let Some(kv) = a.next_entry()? {
                    v.push(kv);
                }
                Ok(Json::Object(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses stdout as JSON (it must be JSON: `-o json` is for scripts).
fn json_of(what: &str, stdout: &[u8]) -> Json {
    serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "{what} -o json printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(stdout)
        )
    })
}

/// `baton ARGS…` with its exit code checked; returns stdout.
fn run(sim: &Sim, args: &[&str], code: i32) -> Vec<u8> {
    let o = sim.baton(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "baton {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// `ARGS… -o json`.
fn with_json<'a>(args: &[&'a str]) -> Vec<&'a str> {
    [args, &["-o", "json"]].concat()
}

fn text(stdout: Vec<u8>) -> String {
    String::from_utf8(stdout).unwrap()
}

/// A map keyed by EC2 ids, ordered by its values instead (its keys are redacted, so their
/// order would change from run to run).
fn by_value() -> insta::internals::Redaction {
    insta::dynamic_redaction(|mut value, _| {
        if let insta::internals::Content::Map(entries) = &mut value {
            entries.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
        }
        value
    })
}

#[test]
fn permissions_as_printed() {
    let bin = env!("CARGO_BIN_EXE_baton");
    let out = |args: &[&str]| {
        let o = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    snap_text("permissions_table", &text(out(&["permissions"])));
    let json = json_of("permissions", &out(&["permissions", "-o", "json"]));
    settings().bind(|| insta::assert_json_snapshot!("permissions_json", json));
}

#[test]
fn what_each_command_prints_on_the_default_scenario() {
    let sim = sim_up();
    sim.grant_keys();
    sim.trust_green();
    let facts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
    )
    .unwrap();
    let vpc = facts["vpc_id"].as_str().unwrap().to_string();

    // baton plan (exit 0: nothing blocks the default scenario).
    let plan = ["plan", "--from", "blue", "--to", "green"];
    snap_text("plan_table", &text(run(&sim, &plan, 0)));
    let json = json_of("plan", &run(&sim, &with_json(&plan), 0));
    settings().bind(|| insta::assert_json_snapshot!("plan_json", json));

    // baton preflight (exit 2: the database's security group admits blue only).
    let preflight = [
        "preflight",
        "--from",
        "blue",
        "--to",
        "green",
        "--vpc",
        &vpc,
    ];
    snap_text("preflight_table", &text(run(&sim, &preflight, 2)));
    let json = json_of("preflight", &run(&sim, &with_json(&preflight), 2));
    settings().bind(|| insta::assert_json_snapshot!("preflight_json", json));

    // baton network plan: green's pods in CG-NAT space next to blue's (network.rs's plan).
    let network = [
        "network",
        "plan",
        "--vpc",
        &vpc,
        "--cluster-name",
        "green",
        "--azs",
        "us-east-1a,us-east-1b,us-east-1c",
        "--nodes",
        "6",
        "--pods",
        "240",
        "--instance-type",
        "m6i.xlarge",
        "--custom-networking",
        "--blue",
        "blue",
    ];
    snap_text("network_plan_table", &text(run(&sim, &network, 0)));
    let json = json_of("network plan", &run(&sim, &with_json(&network), 0));
    settings().bind(|| {
        insta::assert_json_snapshot!("network_plan_json", json, {
            ".observed.subnets" => by_value(),
        })
    });

    // baton migrate --dry-run: the requests in order, nothing changed. It has no JSON
    // form: `-o json` (the final summary's format) prints the same requests, pinned by the
    // same snapshot.
    let dry = ["migrate", "--from", "blue", "--to", "green", "--dry-run"];
    for args in [dry.to_vec(), with_json(&dry)] {
        snap_text("migrate_dry_run", &text(run(&sim, &args, 0)));
    }

    // baton status before any migrate (in the dir migrate will use): nothing to show yet,
    // refused (exit 3) with a hint, in either form.
    let status_before = ["status", "--state-dir", ".baton/blue-to-green"];
    for args in [status_before.to_vec(), with_json(&status_before)] {
        let o = sim.baton(&args);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
        snap_text(
            "status_before_migrate_stderr",
            &String::from_utf8_lossy(&o.stderr),
        );
    }

    // baton migrate --yes, table summary, then status.
    let o = sim.migrate(".baton/blue-to-green", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    snap_text("migrate_summary_table", &text(o.stdout));
    let status = ["status", "--state-dir", ".baton/blue-to-green"];
    snap_text("status_table", &text(run(&sim, &status, 0)));
    let json = json_of("status", &run(&sim, &with_json(&status), 0));
    settings().bind(|| insta::assert_json_snapshot!("status_json", json));
}

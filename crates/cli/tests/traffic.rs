//! `baton traffic shift/status/rollback` as a user runs them against `baton sim up` (the
//! `default` scenario on moto: an ALB whose listener forwards to blue's target group,
//! green's group empty while green's apps are stopped). Green's pods are scaled up and
//! registered as an AWS Load Balancer Controller would; the bed's ALB clients are off and
//! a thread publishes green's ALB metrics to CloudWatch instead, with the errors or the
//! silence a test needs. Intervals are a second or two.
//! `--dry-run` prints exactly the ModifyListener requests the shift and the rollback then
//! send: each printed field is on the ALB (or in the journal's record of the write).

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use baton_aws::{AlbMetricDims, Aws, AwsConfig, ForwardConfig, ForwardTarget, RequestStats};
use common::{Sim, sim_up_with};
use serde_json::Value;

/// `baton sim up` without the bed's ALB clients: the tests publish green's metrics
/// themselves (errors, silence), and the bed's requests would be counted with them.
fn sim_up_quiet() -> Sim {
    sim_up_with(&["--alb-requests-per-second", "0"])
}

struct Alb {
    rt: tokio::runtime::Runtime,
    aws: Aws,
    listener: String,
    lb: String,
    blue: String,
    green: String,
    vpc: String,
}

impl Alb {
    fn of(sim: &Sim) -> Self {
        let seeded: Value = serde_json::from_str(
            &std::fs::read_to_string(sim.dir.path().join("sim/scenario.json")).unwrap(),
        )
        .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let aws = rt.block_on(connect(sim)).unwrap();
        let s = |v: &Value| v.as_str().unwrap().to_string();
        Self {
            rt,
            aws,
            listener: s(&seeded["listener_arn"]),
            lb: s(&seeded["load_balancer_arn"]),
            blue: s(&seeded["target_groups"]["storefront-blue"]),
            green: s(&seeded["target_groups"]["storefront-green"]),
            vpc: s(&seeded["vpc_id"]),
        }
    }

    fn forward(&self) -> ForwardConfig {
        self.rt
            .block_on(
                self.aws
                    .forward(&ForwardTarget::ListenerDefault(self.listener.clone())),
            )
            .unwrap()
    }

    fn weights(&self) -> Vec<(String, u32)> {
        self.forward()
            .target_groups
            .into_iter()
            .map(|g| (g.arn, g.weight))
            .collect()
    }

    fn set(&self, weights: &[(&str, u32)]) {
        let config = ForwardConfig {
            target_groups: weights
                .iter()
                .map(|(arn, weight)| baton_aws::WeightedTargetGroup {
                    arn: (*arn).to_string(),
                    weight: *weight,
                })
                .collect(),
            stickiness: None,
        };
        self.rt
            .block_on(self.aws.set_forward(
                &ForwardTarget::ListenerDefault(self.listener.clone()),
                None,
                &config,
            ))
            .unwrap();
    }

    fn green_weight(&self) -> u32 {
        self.weights()
            .iter()
            .find(|(arn, _)| *arn == self.green)
            .map_or(0, |(_, w)| *w)
    }

    /// Waits until green's weight reaches `weight` (baton wrote a step).
    fn wait_green_weight(&self, weight: u32, child: &mut Child) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.green_weight() != weight {
            assert!(
                child.try_wait().unwrap().is_none(),
                "baton ended before green reached {weight}"
            );
            assert!(Instant::now() < deadline, "green never reached {weight}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Green's pods, scaled up in green and registered in green's group.
    fn register_green(&self, sim: &Sim) -> Vec<String> {
        let o = Command::new("kubectl")
            .args([
                "--context",
                "green",
                "-n",
                "web",
                "scale",
                "deploy/web",
                "--replicas=2",
            ])
            .env("KUBECONFIG", &sim.env["KUBECONFIG"])
            .env("HOME", sim.dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let deadline = Instant::now() + Duration::from_secs(60);
        let ips = loop {
            let pods = sim.kubectl_json("green", &["-n", "web", "get", "pods", "-l", "app=web"]);
            let ips: Vec<String> = pods["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p["status"]["podIP"].as_str().map(String::from))
                .collect();
            if ips.len() == 2 {
                break ips;
            }
            assert!(Instant::now() < deadline, "green's web pods got no IPs");
            std::thread::sleep(Duration::from_millis(200));
        };
        self.rt
            .block_on(self.aws.register_ip_targets(&self.green, &ips, 8080))
            .unwrap();
        ips
    }

    /// Publishes green's ALB metrics every 200 ms until dropped: `requests` per tick, of
    /// which `errors` were 5xx.
    fn traffic(&self, sim: &Sim, requests: f64, errors: f64) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicU64::new(0));
        let dims = AlbMetricDims::from_arns(&self.lb, &self.green).unwrap();
        let env = sim.env.clone();
        let (stop2, ticks2) = (stop.clone(), ticks.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let aws = rt.block_on(connect_env(&env)).unwrap();
            while !stop2.load(Ordering::SeqCst) {
                let stats = RequestStats {
                    requests,
                    target_5xx: errors,
                };
                rt.block_on(aws.put_target_group_request_stats(&dims, SystemTime::now(), stats))
                    .unwrap();
                ticks2.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Traffic {
            stop,
            ticks,
            thread: Some(thread),
        }
    }
}

struct Traffic {
    stop: Arc<AtomicBool>,
    ticks: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        assert!(self.ticks.load(Ordering::SeqCst) > 0 || std::thread::panicking());
    }
}

async fn connect(sim: &Sim) -> Result<Aws, baton_aws::Error> {
    connect_env(&sim.env).await
}

async fn connect_env(
    env: &std::collections::BTreeMap<String, String>,
) -> Result<Aws, baton_aws::Error> {
    Aws::connect(
        &AwsConfig::default()
            .endpoint_url(&env["AWS_ENDPOINT_URL"])
            .region(&env["AWS_REGION"])
            .static_credentials(baton_aws::StaticCredentials::new("testing", "testing")),
    )
    .await
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn shift_args<'a>(alb: &'a Alb, dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    shift_args_with(&alb.listener, &alb.blue, &alb.green, dir, extra)
}

fn shift_args_with<'a>(
    listener: &'a str,
    from: &'a str,
    to: &'a str,
    dir: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "traffic",
        "shift",
        "--listener",
        listener,
        "--from-tg",
        from,
        "--to-tg",
        to,
        "--state-dir",
        dir,
        "--yes",
    ];
    args.extend_from_slice(extra);
    args
}

/// `baton ARGS…` in the background (to act on the ALB while it shifts).
fn spawn(sim: &Sim, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .envs(&sim.env)
        .current_dir(sim.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn bad_input_is_refused_and_nothing_changes() {
    let sim = sim_up_quiet();
    let alb = Alb::of(&sim);
    let before = alb.weights();
    assert_eq!(
        before,
        [(alb.blue.clone(), 1)],
        "the seed forwards to blue only"
    );
    let missing_listener = alb.listener.replace("listener/app/", "listener/app/x");
    let (l, b, g) = (alb.listener.as_str(), alb.blue.as_str(), alb.green.as_str());
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        // Green's group is empty: green's apps are stopped.
        (
            shift_args_with(l, b, g, "state", &[]),
            3,
            "baton traffic bindings --from BLUE --to GREEN --apply",
        ),
        (
            shift_args_with(&missing_listener, b, g, "state", &[]),
            3,
            "failed to find listener",
        ),
        (
            shift_args_with(l, g, b, "state", &[]),
            3,
            "storefront-blue=1",
        ),
        (
            shift_args_with(l, b, g, "state", &["--steps", "50,25"]),
            3,
            "increasing order",
        ),
        (
            shift_args_with(l, b, g, "state", &["--steps", "10,150"]),
            2,
            "150",
        ),
        (
            shift_args_with(l, b, g, "state", &["--interval", "5 parsecs"]),
            2,
            "not a duration",
        ),
        (
            shift_args_with(l, b, g, "state", &["--max-5xx-ratio", "5"]),
            2,
            "between 0 and 1",
        ),
    ];
    for (args, expected, says) in &cases {
        let o = sim.baton(args);
        assert_eq!(code(&o), Some(*expected), "{args:?}: {}", text(&o));
        assert!(
            text(&o).contains(says),
            "{args:?} should say {says:?}: {}",
            text(&o)
        );
        assert_eq!(alb.weights(), before, "{args:?} changed the weights");
    }
    assert!(
        !sim.dir.path().join("state/traffic.jsonl").exists(),
        "a refused shift journals nothing"
    );

    // Weights out of AWS's range: next to a third group, blue and green together would
    // need 1998 at 100 %.
    alb.register_green(&sim);
    let canary = alb
        .rt
        .block_on(
            alb.aws
                .create_target_group("storefront-canary", &alb.vpc, 8080),
        )
        .unwrap();
    alb.set(&[(&alb.blue, 999), (&alb.green, 999), (&canary, 1)]);
    let set = alb.weights();
    let o = sim.baton(&shift_args(&alb, "state", &[]));
    assert_eq!(code(&o), Some(3), "{}", text(&o));
    assert!(text(&o).contains("maximum of 999"), "{}", text(&o));
    assert_eq!(alb.weights(), set);
}

#[test]
fn a_full_shift_reaches_green_and_rolls_back_on_request() {
    let sim = sim_up_quiet();
    let alb = Alb::of(&sim);
    alb.register_green(&sim);
    let _traffic = alb.traffic(&sim, 100.0, 0.0);
    let o = sim.baton(&shift_args(
        &alb,
        "state",
        &["--interval", "1s", "-o", "json"],
    ));
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["outcome"], "completed", "{summary}");
    assert_eq!(summary["percent"], 100);
    let gates = summary["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 4, "{summary}");
    for g in gates {
        assert_eq!(g["verdict"]["verdict"], "pass", "{g}");
        assert_eq!(g["reading"]["healthy"], 2, "{g}");
        assert!(g["reading"]["requests"].as_f64().unwrap() >= 100.0, "{g}");
    }
    assert_eq!(
        alb.weights(),
        [(alb.blue.clone(), 0), (alb.green.clone(), 100)],
        "blue stays in the action at 0"
    );
    let journal = std::fs::read_to_string(sim.dir.path().join("state/traffic.jsonl")).unwrap();
    assert_eq!(
        journal.matches("\"event\":\"writing\"").count(),
        5,
        "prepare + 4 steps"
    );
    assert_eq!(journal.matches("\"event\":\"written\"").count(), 5);

    let status: Value = serde_json::from_str(&sim.ok(&[
        "traffic",
        "status",
        "--listener",
        &alb.listener,
        "--window",
        "1m",
        "--state-dir",
        "state",
        "-o",
        "json",
    ]))
    .unwrap();
    let green = status["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "storefront-green")
        .unwrap();
    assert_eq!(green["percent"], 100.0, "{status}");
    assert_eq!(green["reading"]["healthy"], 2, "{status}");
    assert!(
        green["reading"]["requests"].as_f64().unwrap() > 0.0,
        "{status}"
    );
    assert_eq!(status["shift"]["outcome"], "completed");
    let table = sim.ok(&["traffic", "status", "--listener", &alb.listener]);
    assert!(table.contains("storefront-green  100"), "{table}");

    // The shift ended; rollback still puts the original action back from its record.
    sim.ok(&["traffic", "rollback", "--state-dir", "state", "--yes"]);
    assert_eq!(
        alb.weights(),
        [(alb.blue.clone(), 1)],
        "the original plain forward"
    );
}

#[test]
fn failed_gates_roll_back_to_the_original_weights() {
    let sim = sim_up_quiet();
    let alb = Alb::of(&sim);
    let ips = alb.register_green(&sim);

    // 5xx: 10 of every 100 requests.
    {
        let _traffic = alb.traffic(&sim, 100.0, 10.0);
        let o = sim.baton(&shift_args(&alb, "five", &["--interval", "1s"]));
        assert_eq!(code(&o), Some(5), "{}", text(&o));
        assert!(
            text(&o).contains("above --max-5xx-ratio 0.01"),
            "{}",
            text(&o)
        );
        assert!(
            text(&o).contains("original weights are back"),
            "{}",
            text(&o)
        );
        assert_eq!(alb.weights(), [(alb.blue.clone(), 1)]);
    }

    // No traffic at all: inconclusive, held twice, then failed. (A gate's window starts
    // at the whole second before its step was written: let the last 5xx second pass.)
    std::thread::sleep(Duration::from_secs(2));
    let o = sim.baton(&shift_args(
        &alb,
        "quiet",
        &["--interval", "500ms", "--max-holds", "2"],
    ));
    assert_eq!(code(&o), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains("still inconclusive after 2 re-measures"),
        "{}",
        text(&o)
    );
    assert_eq!(alb.weights(), [(alb.blue.clone(), 1)]);

    // Green's targets go away mid-shift.
    let _traffic = alb.traffic(&sim, 100.0, 0.0);
    let mut child = spawn(
        &sim,
        &shift_args(&alb, "gone", &["--interval", "4s", "--steps", "50,100"]),
    );
    alb.wait_green_weight(50, &mut child);
    alb.rt
        .block_on(alb.aws.deregister_ip_targets(&alb.green, &ips, 8080))
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains("0 healthy of 0 registered"),
        "{}",
        text(&o)
    );
    assert_eq!(alb.weights(), [(alb.blue.clone(), 1)]);
}

#[test]
fn an_outside_change_stops_the_shift_and_a_crash_resumes_or_rolls_back() {
    let sim = sim_up_quiet();
    let alb = Alb::of(&sim);
    alb.register_green(&sim);
    let _traffic = alb.traffic(&sim, 100.0, 0.0);

    // Someone sets 70/30 by hand while step 1 (10 %) runs (4 s: time to react under load).
    let mut child = spawn(
        &sim,
        &shift_args(
            &alb,
            "outside",
            &["--interval", "4s", "--steps", "10,50,100"],
        ),
    );
    alb.wait_green_weight(10, &mut child);
    alb.set(&[(&alb.blue, 70), (&alb.green, 30)]);
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), Some(1), "{}", text(&o));
    assert!(text(&o).contains("changed by someone else"), "{}", text(&o));
    assert!(text(&o).contains("storefront-blue=70"), "{}", text(&o));
    let theirs = [(alb.blue.clone(), 70), (alb.green.clone(), 30)];
    assert_eq!(alb.weights(), theirs, "their weights are kept");
    let o = sim.baton(&["traffic", "rollback", "--state-dir", "outside", "--yes"]);
    assert_eq!(code(&o), Some(1), "{}", text(&o));
    assert_eq!(
        alb.weights(),
        theirs,
        "rollback does not overwrite them either"
    );
    sim.ok(&[
        "traffic",
        "rollback",
        "--state-dir",
        "outside",
        "--yes",
        "--force",
    ]);
    assert_eq!(alb.weights(), [(alb.blue.clone(), 1)]);

    // A crash right after step 1's weights landed (mutation 2, after adding green at 0),
    // before the journal recorded it: rollback from the record.
    let crash = |dir: &str, after: u64| {
        let o = sim.baton_with(
            &shift_args(&alb, dir, &["--interval", "1s", "--steps", "50,100"]),
            &[("BATON_CRASH_AFTER_MUTATIONS", after.to_string())],
        );
        assert!(!o.status.success(), "{}", text(&o));
        assert!(
            text(&o).contains(&format!("crashing after mutation {after}")),
            "{}",
            text(&o)
        );
    };
    crash("crash", 2);
    assert_eq!(alb.green_weight(), 50, "the crash left green at 50");
    let status = sim.ok(&[
        "traffic",
        "status",
        "--listener",
        &alb.listener,
        "--state-dir",
        "crash",
    ]);
    assert!(status.contains("shift running"), "{status}");
    sim.ok(&["traffic", "rollback", "--state-dir", "crash", "--yes"]);
    assert_eq!(alb.weights(), [(alb.blue.clone(), 1)]);

    // The same crash, then --resume: confirmed, gated, and on to 100.
    crash("crash", 2);
    let o = sim.baton(&[
        "traffic",
        "shift",
        "--resume",
        "--state-dir",
        "crash",
        "--yes",
    ]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("found written before the crash"),
        "{}",
        text(&o)
    );
    assert_eq!(
        alb.weights(),
        [(alb.blue.clone(), 0), (alb.green.clone(), 100)]
    );
    // A second resume finds the shift over and changes nothing.
    let o = sim.baton(&["traffic", "shift", "--resume", "--state-dir", "crash"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    assert!(text(&o).contains("already ended"), "{}", text(&o));
}

/// The requests a `--dry-run` printed: `elbv2  ModifyListener {json}` per line.
fn requests(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| {
            let (service, rest) = l.split_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            assert_eq!(service, "elbv2", "{l}");
            let (op, body) = rest.trim_start().split_once(' ').unwrap();
            assert_eq!(op, "ModifyListener", "{l}");
            serde_json::from_str(body).unwrap()
        })
        .collect()
}

/// The weights a printed request writes: its forward action's groups, in order.
fn printed_weights(req: &Value) -> Vec<(String, u32)> {
    let actions = req["DefaultActions"].as_array().unwrap();
    let forward = actions
        .iter()
        .find(|a| a["Type"] == "forward")
        .unwrap_or_else(|| panic!("no forward action: {req}"));
    forward["ForwardConfig"]["TargetGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["TargetGroupArn"].as_str().unwrap().to_string(),
                u32::try_from(g["Weight"].as_u64().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// The listener's actions on the ALB are the printed request's, field by field.
fn assert_on_alb(alb: &Alb, req: &Value) {
    assert_eq!(req["ListenerArn"], alb.listener.as_str(), "{req}");
    let listener = alb
        .rt
        .block_on(alb.aws.describe_listener(&alb.listener))
        .unwrap();
    let printed = req["DefaultActions"].as_array().unwrap();
    assert_eq!(listener.default_actions.len(), printed.len(), "{req}");
    for (on_alb, sent) in listener.default_actions.iter().zip(printed) {
        assert_eq!(sent["Type"], on_alb.kind.as_str(), "{req}");
        assert_eq!(
            sent.get("Order").and_then(Value::as_i64),
            on_alb.order.map(i64::from),
            "{req}"
        );
        let forward = on_alb.forward.as_ref().unwrap();
        let sticky = sent["ForwardConfig"]["TargetGroupStickinessConfig"]["Enabled"]
            .as_bool()
            .unwrap_or(false);
        assert_eq!(
            forward.stickiness.is_some_and(|s| s.enabled),
            sticky,
            "{req}"
        );
    }
    assert_eq!(alb.weights(), printed_weights(req), "{req}");
}

/// The journal's records of one kind, as JSON.
fn journal(sim: &Sim, dir: &str, event: &str) -> Vec<Value> {
    std::fs::read_to_string(sim.dir.path().join(dir).join("traffic.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"] == event)
        .collect()
}

#[test]
fn dry_run_prints_the_requests_shift_and_rollback_send() {
    let sim = sim_up_quiet();
    let alb = Alb::of(&sim);
    alb.register_green(&sim);
    let original = alb.weights();
    let args = ["--interval", "1s", "--steps", "50,100"];

    // A new shift: green added at 0, then step 1's weights; nothing written, no journal.
    let o = sim.baton(&shift_args(
        &alb,
        "dry",
        &[&args[..], &["--dry-run"]].concat(),
    ));
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let dry = requests(&stdout);
    assert_eq!(dry.len(), 2, "{}", text(&o));
    assert!(text(&o).contains("step 1/2: green 50%"), "{}", text(&o));
    assert_eq!(
        printed_weights(&dry[1]),
        [(alb.blue.clone(), 50), (alb.green.clone(), 50)]
    );
    assert_eq!(alb.weights(), original, "a dry run changed the weights");
    assert!(!sim.dir.path().join("dry").exists(), "a dry run journaled");

    // The same shift for real, crashed right after its second write: the first write is
    // in the journal as AWS answered it, the second on the ALB.
    let o = sim.baton_with(
        &shift_args(&alb, "real", &args),
        &[("BATON_CRASH_AFTER_MUTATIONS", "2".to_string())],
    );
    assert!(
        text(&o).contains("crashing after mutation 2"),
        "{}",
        text(&o)
    );
    let written = journal(&sim, "real", "written");
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0]["to"], "prepared");
    let first: Vec<(String, u32)> = written[0]["forward"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["arn"].as_str().unwrap().to_string(),
                u32::try_from(g["weight"].as_u64().unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(printed_weights(&dry[0]), first);
    assert_on_alb(&alb, &dry[1]);

    // Resuming would first confirm that write: no request before step 1's gate.
    let o = sim.baton(&[
        "traffic",
        "shift",
        "--resume",
        "--state-dir",
        "real",
        "--dry-run",
    ]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    assert!(o.stdout.is_empty(), "{}", text(&o));
    assert!(text(&o).contains("on the ALB already"), "{}", text(&o));

    // Rollback's dry run prints the write of the original weights and changes nothing,
    // the journal included; the rollback then sends it.
    let journal_before =
        std::fs::read_to_string(sim.dir.path().join("real/traffic.jsonl")).unwrap();
    let at_step_1 = alb.weights();
    let out = sim.ok(&["traffic", "rollback", "--state-dir", "real", "--dry-run"]);
    let dry = requests(&out);
    assert_eq!(dry.len(), 1, "{out}");
    assert_eq!(printed_weights(&dry[0]), original);
    assert_eq!(alb.weights(), at_step_1, "a dry run changed the weights");
    assert_eq!(
        std::fs::read_to_string(sim.dir.path().join("real/traffic.jsonl")).unwrap(),
        journal_before,
        "a dry run journaled"
    );
    sim.ok(&["traffic", "rollback", "--state-dir", "real", "--yes"]);
    assert_on_alb(&alb, &dry[0]);
}

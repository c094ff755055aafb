//! The benchmark suite cannot rot: `bench/run --quick` runs every workload on
//! a tiny input with this build's warden, and its results must be well
//! formed. Timings are not judged here (performance lives in bench/ and
//! BENCHMARKS.md), only that each workload ran and reported its metrics.
//!
//! Only warden runs by default, so the test is quick and the same whether or
//! not fail2ban and fail2ban-rs are installed (CI installs neither);
//! `WARDEN_BENCH_PEERS=1` also runs the installed peers. The namespace
//! workloads (d) and (e) need root: without it they must be reported as
//! skipped, and with `CI=true` they must have run.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const WORKLOADS: [(&str, &[&str]); 5] = [
    ("filter_throughput", &["lines_per_s", "lines_per_cpu_s", "peak_rss_mib"]),
    ("daemon_ingest", &["time_to_last_ban_s", "cpu_s", "peak_rss_mib", "lines_per_s"]),
    ("idle", &["cpu_percent", "rss_mib", "startup_s"]),
    ("ban_enforcement", &["wall_s", "bans_per_s", "peak_processes", "cpu_s"]),
    ("restart", &["restore_s", "bans_per_s"]),
];

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

#[test]
fn bench_run_quick_reports_every_workload_in_well_formed_json_and_markdown() {
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(!in_ci(), "CI=true but python3 is missing: bench/run needs it (apt-get install python3)");
        eprintln!("bench smoke test skipped: python3 is not installed");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().expect("temp dir");
    let tools = if std::env::var("WARDEN_BENCH_PEERS").is_ok_and(|v| v == "1") {
        "warden,fail2ban,fail2ban-rs"
    } else {
        "warden"
    };
    let run = Command::new(root.join("bench/run"))
        .args([
            "--quick",
            "--no-install",
            "--tools",
            tools,
            "--warden",
            env!("CARGO_BIN_EXE_warden"),
            "--out",
        ])
        .arg(out.path())
        .output()
        .expect("bench/run starts");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench/run --quick failed ({}):\n{stderr}", run.status);

    let text = std::fs::read_to_string(out.path().join("results.json")).expect("results.json written");
    let results: Value = serde_json::from_str(&text).expect("results.json is JSON");
    assert_eq!(results["meta"]["quick"], Value::Bool(true));
    assert_eq!(results["meta"]["runs"], 1);
    let namespaces = is_root();
    for (workload, metrics) in WORKLOADS {
        let entry = &results["workloads"][workload];
        assert!(entry["title"].is_string(), "{workload}: no title in {entry}");
        let warden = &entry["tools"]["warden"];
        let needs_namespaces = matches!(workload, "ban_enforcement" | "restart");
        if needs_namespaces && !namespaces {
            assert!(!in_ci(), "CI=true but {workload} was skipped: {warden}");
            assert!(
                warden["skipped"].is_string(),
                "{workload}: without root it must say it was skipped: {warden}"
            );
            continue;
        }
        let runs =
            warden["runs"].as_array().unwrap_or_else(|| panic!("{workload}: no warden runs: {warden}"));
        assert_eq!(runs.len(), 1, "{workload}: one run with --quick: {warden}");
        let run = &runs[0];
        assert!(run.get("error").is_none(), "{workload}: warden's run failed: {run}\n{stderr}");
        for metric in metrics {
            let value =
                run[metric].as_f64().unwrap_or_else(|| panic!("{workload}: {metric} missing in {run}"));
            assert!(value.is_finite() && value >= 0.0, "{workload}: {metric} = {value}");
            let summary = &warden["summary"][metric];
            assert_eq!(summary["median"].as_f64(), Some(value), "{workload}: {metric} summary: {summary}");
        }
    }
    // Detection checks that hold whatever the timings: every attacker of the
    // ingest workload banned once, and every enforced ban in the kernel.
    let ingest = &results["workloads"]["daemon_ingest"]["tools"]["warden"]["runs"][0];
    assert_eq!(ingest["bans"], ingest["expected_bans"], "ingest: every attacker banned: {ingest}");
    assert_eq!(ingest["bans_reported"], ingest["expected_bans"], "ingest: `warden bans` agrees: {ingest}");
    if namespaces {
        for workload in ["ban_enforcement", "restart"] {
            let run = &results["workloads"][workload]["tools"]["warden"]["runs"][0];
            assert_eq!(run["enforced"], run["expected"], "{workload}: every ban in the kernel: {run}");
        }
    }
    let targets = results["targets"].as_array().expect("targets listed");
    assert!(
        targets.iter().all(|t| t["target"].is_string() && t.get("met").is_some()),
        "targets: {targets:?}"
    );

    let markdown = std::fs::read_to_string(out.path().join("results.md")).expect("results.md written");
    for (workload, _) in WORKLOADS {
        let title = results["workloads"][workload]["title"].as_str().unwrap_or_default();
        assert!(
            markdown.contains(&format!("### {title}")),
            "results.md lacks the section {title:?}:\n{markdown}"
        );
    }
    assert!(markdown.contains("| warden |"), "results.md has a warden row:\n{markdown}");
}

//! The `tinyfit` binary end to end: real data, real processes, real kills.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn tinyfit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tinyfit"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs and expects failure with one clear line on stderr and no panic.
fn fails_with(cmd: &mut Command, expected: &str) {
    let out = cmd.output().unwrap();
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(expected),
        "expected {expected:?} in stderr: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn inspect_prints_the_ditmos_counts() {
    let out = tinyfit()
        .arg("inspect")
        .arg(repo().join("examples/graphs/ditmos_strong.json"))
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(stdout.contains("parameters: 117,031"), "{stdout}");
    assert!(stdout.contains("(9.02 M)"), "{stdout}");
    let out = tinyfit()
        .arg("inspect")
        .arg(repo().join("examples/graphs/ditmos_selector.json"))
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert!(stdout.contains("parameters: 4,944"), "{stdout}");
    assert!(stdout.contains("MACs: 91,752"), "{stdout}");
}

#[test]
fn data_inspect_counts_each_split() {
    let out = tinyfit()
        .args(["data", "inspect"])
        .arg(repo().join("../shared/data/hapt"))
        .output()
        .unwrap();
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        stdout.contains("10,411 samples of shape [6, 128], 6 classes, 30 subjects"),
        "{stdout}"
    );
    assert!(
        stdout.contains("total                  6005     1410     2996"),
        "{stdout}"
    );
    assert!(stdout.contains("rate: 50 Hz"), "{stdout}");
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn unknown_layer_kind_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let g = write(
        dir.path(),
        "g.json",
        r#"{"inputs": [{"name": "x", "shape": [3, 20]}],
            "nodes": [{"name": "c1", "op": "conv1d", "out_channels": 4, "kernel": 3},
                      {"name": "c2", "op": "conv3d", "out_channels": 4, "kernel": 3}]}"#,
    );
    fails_with(
        tinyfit().arg("inspect").arg(&g),
        "g.json: node #1 'c2': unknown layer kind `conv3d`",
    );
}

#[test]
fn mismatched_shapes_name_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let g = write(
        dir.path(),
        "g.toml",
        r#"
[[inputs]]
name = "x"
shape = [3, 20]

[[nodes]]
name = "c1"
op = "conv1d"
out_channels = 4
kernel = 3

[[nodes]]
name = "fc"
op = "linear"
out_features = 2
"#,
    );
    fails_with(
        tinyfit().arg("inspect").arg(&g),
        "g.toml: layer 'fc' (linear): expects a feature vector [features], got [4, 18]",
    );
}

#[test]
fn missing_data_folder_is_named() {
    fails_with(
        tinyfit()
            .args(["train", "--config"])
            .arg(fixture("tiny_har.toml"))
            .args(["--data", "/nonexistent/hapt", "--out"])
            .arg(tempfile::tempdir().unwrap().path()),
        "error: HAPT folder not found: /nonexistent/hapt",
    );
}

#[test]
fn malformed_hapt_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("RawData");
    std::fs::create_dir(&raw).unwrap();
    let shared = repo().join("../shared/data/hapt");
    std::fs::copy(
        shared.join("activity_labels.txt"),
        dir.path().join("activity_labels.txt"),
    )
    .unwrap();
    for entry in std::fs::read_dir(shared.join("RawData")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), raw.join(entry.file_name())).unwrap();
    }
    std::fs::remove_file(raw.join("acc_exp05_user03.txt.gz")).unwrap();
    write(&raw, "acc_exp05_user03.txt", "1.0 0.5 0.25\n1.0 0.5 x\n");
    fails_with(
        tinyfit()
            .args(["train", "--config"])
            .arg(fixture("tiny_har.toml"))
            .arg("--data")
            .arg(dir.path())
            .arg("--out")
            .arg(dir.path().join("run")),
        "acc_exp05_user03.txt, line 2: 'x' is not a number",
    );
}

/// Kills `child` as soon as `marker` (its first checkpoint) exists.
fn kill_when_exists(child: std::process::Child, marker: &Path) {
    kill_when(child, "a checkpoint", 300, || marker.exists());
}

/// Kills `child` as soon as `ready` holds (`what` it waits for, for the failure message);
/// fails if that takes over `seconds` or the child ends first.
fn kill_when(mut child: std::process::Child, what: &str, seconds: u64, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(
            started.elapsed() < Duration::from_secs(seconds),
            "{what} did not come within {seconds} s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Starts `tinyfit COMMAND --config CONFIG --out OUT`, kills it once `OUT/progress.json`
/// exists (before `OUT/finished` does), checks that a rerun without `--resume` is refused
/// with `refusal`, then resumes it; returns the resumed run's stdout.
fn kill_refuse_resume(
    command: &str,
    config: &Path,
    out: &Path,
    finished: &str,
    refusal: &str,
) -> String {
    let run = || {
        let mut cmd = tinyfit();
        cmd.args([command, "--config"])
            .arg(config)
            .arg("--out")
            .arg(out);
        cmd
    };
    let child = run()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_when_exists(child, &out.join("progress.json"));
    assert!(
        !out.join(finished).exists(),
        "the run finished before the kill"
    );
    fails_with(&mut run(), refusal);
    let resumed = run().arg("--resume").output().unwrap();
    let (stdout, stderr) = text(&resumed);
    assert!(resumed.status.success(), "{stderr}");
    stdout
}

fn train(out: &Path, resume: bool) -> Output {
    let mut cmd = tinyfit();
    cmd.args(["train", "--config"])
        .arg(fixture("tiny_har.toml"))
        .arg("--out")
        .arg(out);
    if resume {
        cmd.arg("--resume");
    }
    let output = cmd.output().unwrap();
    assert!(output.status.success(), "{:?}", text(&output));
    output
}

/// Acceptance: two runs with one seed give bit-identical weights; a run killed after its first
/// checkpoint and resumed continues from there and ends with the same weights; `eval`
/// reproduces the recorded test accuracy.
#[test]
fn seeded_runs_are_identical_and_resume_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, killed) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("killed"),
    );
    let (stdout, _) = text(&train(&a, false));
    assert!(
        stdout.contains(
            "train 6005 (17 subjects), validation 1410 (4 subjects), test 2996 (9 subjects)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("val acc"), "{stdout}");
    train(&b, false);
    let weights = |run: &Path| std::fs::read(run.join("model.safetensors")).unwrap();
    assert_eq!(weights(&a), weights(&b), "same seed, different weights");

    let child = tinyfit()
        .args(["train", "--config"])
        .arg(fixture("tiny_har.toml"))
        .arg("--out")
        .arg(&killed)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_when_exists(child, &killed.join("checkpoints/epoch-0001"));
    assert!(
        !killed.join("model.safetensors").exists(),
        "the run finished before the kill"
    );

    // Without --resume the interrupted run is refused, not overwritten.
    let saved = std::fs::read(killed.join("experiment.json")).unwrap();
    fails_with(
        tinyfit()
            .args(["train", "--config"])
            .arg(fixture("tiny_har.toml"))
            .arg("--out")
            .arg(&killed),
        "already holds a training run; pass --resume",
    );
    assert_eq!(
        std::fs::read(killed.join("experiment.json")).unwrap(),
        saved
    );

    let (stdout, _) = text(&train(&killed, true));
    let resumed_after: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("resuming after epoch "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume line in {stdout}"));
    assert!((1..4).contains(&resumed_after), "{stdout}");
    assert!(
        !stdout.contains(&format!(" {resumed_after}/4 ")),
        "re-ran a finished epoch: {stdout}"
    );
    assert_eq!(
        weights(&a),
        weights(&killed),
        "resumed run differs from the uninterrupted one"
    );

    let out = tinyfit().arg("eval").arg(&a).output().unwrap();
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        stdout.contains("matches the figures recorded at training"),
        "{stdout}"
    );
}

/// DESIGN.md: with the MLPerf front-end, the reference KWS model scores about 92 % on the
/// Speech Commands v0.02 test folder; tinyfit's runtime must reach at least 91 %.
#[test]
fn kws_reference_model_scores_on_the_test_set() {
    let model = repo().join("../shared/models/mlperf_tiny/kws_ref_model.tflite");
    let out = tinyfit()
        .args(["eval", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(repo().join("examples/kws/mlperf_ref.toml"))
        .args(["--split", "all"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let accuracy: f64 = stdout
        .split("int8 accuracy ")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in: {stdout}"));
    assert!(stdout.contains("(4890 samples)"), "{stdout}");
    assert!(
        accuracy >= 91.0,
        "int8 accuracy {accuracy}% on the KWS test set: {stdout}"
    );
}

#[test]
fn tflite_eval_names_a_shape_mismatch() {
    let model = repo().join("../shared/models/mlperf_tiny/vww_96_int8.tflite");
    fails_with(
        tinyfit()
            .args(["eval", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(fixture("tiny_har.toml")),
        "takes inputs of shape [3, 96, 96]",
    );
}

/// Acceptance (int8 runtime): a HAR model trained by tinyfit, quantised by PTQ and exported,
/// runs in LiteRT with the same int8 outputs as in tinyfit, and its int8 test accuracy is within
/// one point of the float model's.
#[test]
fn ptq_export_matches_litert_and_keeps_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("har");
    train(&run, false);
    let out = tinyfit().arg("quantize").arg(&run).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    println!("{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("quantization.json")).unwrap())
            .unwrap();
    let test = &report["test"];
    let (float, int8) = (
        test["float_accuracy"].as_f64().unwrap(),
        test["int8_accuracy"].as_f64().unwrap(),
    );
    assert!(
        (float - int8).abs() <= 0.01,
        "int8 test accuracy {int8} vs float {float}"
    );

    // The exported file, run by tinyfit and by LiteRT on the (normalised, quantised) test split.
    let tflite = run.join("model_int8.tflite");
    let quant = tinyfit_deploy::tflite::import(&std::fs::read(&tflite).unwrap()).unwrap();
    let program = tinyfit_deploy::lower(&quant).unwrap();
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("experiment.json")).unwrap())
            .unwrap();
    let config: tinyfit_data::DataConfig = serde_json::from_value(exp["data"].clone()).unwrap();
    let norm: tinyfit_data::ChannelNorm =
        serde_json::from_str(&std::fs::read_to_string(run.join("normalization.json")).unwrap())
            .unwrap();
    let splits = config.load(Some(norm)).unwrap();
    let data = &splits.test;
    let (mut xs, mut ours) = (Vec::new(), Vec::new());
    for i in 0..data.len() {
        let x = program
            .quantize_input(0, data.sample(i), &data.sample_shape)
            .unwrap();
        ours.extend(program.run(&[&x]).unwrap().remove(0));
        xs.extend(x.iter().map(|&v| v as u8));
    }
    let (inputs, litert, reference) = (
        dir.path().join("in.bin"),
        dir.path().join("litert.bin"),
        dir.path().join("ref.bin"),
    );
    std::fs::write(&inputs, &xs).unwrap();
    let script = repo().join("crates/tinyfit-deploy/tests/reference/litert_reference.py");
    let status = Command::new("python3")
        .arg(&script)
        .args([&tflite, &inputs, &litert, &reference])
        .status()
        .unwrap();
    assert!(status.success(), "the LiteRT reference failed");
    let read = |p: &Path| {
        std::fs::read(p)
            .unwrap()
            .into_iter()
            .map(|b| b as i8)
            .collect::<Vec<_>>()
    };
    let (litert, reference) = (read(&litert), read(&reference));
    let differ = |other: &[i8]| ours.iter().zip(other).filter(|(a, b)| a != b).count();
    println!(
        "{} test windows: {} outputs differ from LiteRT, {} from the double-rounding reference",
        data.len(),
        differ(&litert),
        differ(&reference)
    );
    assert_eq!(ours.len(), reference.len());
    assert_eq!(
        differ(&reference),
        0,
        "tinyfit and LiteRT (TFLM rounding) disagree"
    );

    // Deployed for the L4R5ZI: the C package, built for a Cortex-M4 and run in QEMU on the first
    // 20 test windows, gives the runtime's integers.
    let package = dir.path().join("har_c");
    let out = tinyfit()
        .args(["deploy", "--board", "l4r5zi", "--out"])
        .arg(&package)
        .arg(&run)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("built for the Cortex-M4F"), "{stdout}");
    let deployed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(package.join("deploy.json")).unwrap())
            .unwrap();
    assert_eq!(deployed["arena_bytes"], program.memory().arena_bytes);
    let n = program.input(0).unwrap().shape.len();
    let per_sample = ours.len() / data.len();
    let got = tinyfit_deploy::emulator::run(
        &package.join("model.elf"),
        tinyfit_deploy::emulator::Core::M4,
        &xs[..20 * n],
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let expected: Vec<u8> = ours[..20 * per_sample].iter().map(|&v| v as u8).collect();
    assert_eq!(
        got, expected,
        "the Cortex-M4 build disagrees with the runtime"
    );
}

#[test]
fn corrupt_tflite_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "broken.tflite", "not a flatbuffer at all");
    fails_with(
        tinyfit().arg("inspect").arg(&bad),
        "broken.tflite: not a valid TFLite flatbuffer",
    );
}

/// `tinyfit train --seed 1,2` trains one run per seed and prints, and records, the mean and
/// spread of their accuracy.
#[test]
fn several_seeds_report_their_spread() {
    let dir = tempfile::tempdir().unwrap();
    let out = tinyfit()
        .args(["train", "--config"])
        .arg(fixture("tiny_har.toml"))
        .args(["--seed", "1,2", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("over seeds 1, 2:"), "{stdout}");
    let spread: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("seeds.json")).unwrap())
            .unwrap();
    let test = &spread["test_accuracy"];
    let each: Vec<f64> = test["per_seed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(each.len(), 2);
    for (k, seed) in [1, 2].iter().enumerate() {
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(format!("seed-{seed}/report.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(report["test"]["accuracy"].as_f64().unwrap(), each[k]);
    }
    let mean = test["mean"].as_f64().unwrap();
    assert!((mean - (each[0] + each[1]) / 2.0).abs() < 1e-12, "{spread}");
}

/// `tinyfit prune` writes a smaller, fine-tuned run whose figures it records, and which
/// `quantize` and `deploy` take like any run: the package needs fewer MACs and less flash.
#[test]
fn prune_writes_a_smaller_run_that_deploys() {
    let dir = tempfile::tempdir().unwrap();
    let (run, pruned) = (dir.path().join("har"), dir.path().join("pruned"));
    train(&run, false);
    let out = tinyfit()
        .arg("prune")
        .arg(&run)
        .args(["--keep-macs", "0.6", "--epochs", "2", "--out"])
        .arg(&pruned)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("prunable channels"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pruned.join("prune.json")).unwrap()).unwrap();
    let (before, after) = (
        report["macs"][0].as_u64().unwrap(),
        report["macs"][1].as_u64().unwrap(),
    );
    assert!(after as f64 <= 0.6 * before as f64, "{report}");
    assert!(report["params"][1].as_u64() < report["params"][0].as_u64());
    let tuned = report["test_accuracy"][1].as_f64().unwrap();
    assert!(tuned > 0.5, "six classes, fine-tuned test accuracy {tuned}");

    let deployed = |run: &Path| -> serde_json::Value {
        let q = tinyfit().arg("quantize").arg(run).output().unwrap();
        assert!(q.status.success(), "{:?}", text(&q));
        let package = run.join("package");
        let d = tinyfit()
            .arg("deploy")
            .arg(run)
            .args(["--board", "nrf52840", "--out"])
            .arg(&package)
            .output()
            .unwrap();
        assert!(d.status.success(), "{:?}", text(&d));
        serde_json::from_str(&std::fs::read_to_string(package.join("deploy.json")).unwrap())
            .unwrap()
    };
    let (a, b) = (deployed(&run), deployed(&pruned));
    assert!(b["macs"].as_u64() < a["macs"].as_u64());
    assert!(
        b["const_bytes"].as_u64() < a["const_bytes"].as_u64(),
        "{a}\n{b}"
    );
    assert!(
        b["elf"]["flash"].as_u64() < a["elf"]["flash"].as_u64(),
        "{a}\n{b}"
    );
    let latency = |d: &serde_json::Value| d["estimate"]["latency_ms"].as_f64().unwrap();
    assert!(latency(&b) < latency(&a), "{a}\n{b}");
}

/// `tinyfit prune --sparsity` holds the smallest weights at zero through a gradual schedule
/// and fine-tuning (the selected model is at the target sparsity, never an earlier, denser
/// epoch), and `deploy` stores its filters sparse: less flash than the dense filters of the
/// same model, the latency change measured.
#[test]
fn magnitude_pruning_keeps_its_zeros_and_deploys_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let (run, pruned) = (dir.path().join("har"), dir.path().join("sparse"));
    train(&run, false);
    fails_with(
        tinyfit().arg("prune").arg(&run).args([
            "--sparsity",
            "0.8",
            "--epochs",
            "2",
            "--ramp-epochs",
            "3",
        ]),
        "leaves no epoch under the final masks",
    );
    let out = tinyfit()
        .arg("prune")
        .arg(&run)
        .args(["--sparsity", "0.8", "--epochs", "3", "--ramp-epochs", "2"])
        .arg("--out")
        .arg(&pruned)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pruned.join("prune.json")).unwrap()).unwrap();
    assert_eq!(report["method"], "magnitude", "{report}");
    let sparsity = report["sparsity"].as_f64().unwrap();
    assert!((sparsity - 0.8).abs() < 1e-3, "{report}");
    let runs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pruned.join("report.json")).unwrap())
            .unwrap();
    let history = runs["history"].as_array().unwrap();
    // Epoch 1 is half way (7/8 of the target by the cubic schedule), epochs 2 and 3 at it.
    let at = |e: usize| history[e]["sparsity"].as_f64().unwrap();
    assert!(
        (at(0) - 0.7).abs() < 1e-3 && (at(2) - 0.8).abs() < 1e-3,
        "{history:?}"
    );
    assert!(runs["best_epoch"].as_u64().unwrap() >= 1, "{stdout}");

    let q = tinyfit().arg("quantize").arg(&pruned).output().unwrap();
    assert!(q.status.success(), "{:?}", text(&q));
    let deployed = |dense: bool| -> serde_json::Value {
        let package = pruned.join(if dense { "dense" } else { "sparse" });
        let mut cmd = tinyfit();
        cmd.arg("deploy")
            .arg(&pruned)
            .args(["--board", "nrf52840", "--out"])
            .arg(&package);
        if dense {
            cmd.arg("--dense-filters");
        }
        let d = cmd.output().unwrap();
        assert!(d.status.success(), "{:?}", text(&d));
        serde_json::from_str(&std::fs::read_to_string(package.join("deploy.json")).unwrap())
            .unwrap()
    };
    let (sparse, dense) = (deployed(false), deployed(true));
    let compact = sparse["compact_layers"].as_array().unwrap();
    assert!(!compact.is_empty() && compact.iter().all(|l| l["format"] == "sparse"));
    assert!(dense["compact_layers"].as_array().unwrap().is_empty());
    assert!(
        sparse["elf"]["flash"].as_u64() < dense["elf"]["flash"].as_u64(),
        "{sparse}\n{dense}"
    );
    assert!(sparse["estimate"]["latency_ms"].as_f64().is_some());
}

/// `tinyfit qat --weights binary` fine-tunes on the binary grid and records it; `quantize`
/// exports the same grid through batch-norm folding (every code ±1), prints the int8 model's
/// accuracy computed by the runtime, and `deploy` packs those layers in one bit a weight.
#[test]
fn binary_qat_runs_end_to_end_packed() {
    let dir = tempfile::tempdir().unwrap();
    let (run, qat) = (dir.path().join("har"), dir.path().join("binary"));
    train(&run, false);
    fails_with(
        tinyfit()
            .arg("qat")
            .arg(&run)
            .args(["--weights", "binary", "--int8-layers", "bn1"]),
        "'bn1', which is no convolution or linear layer",
    );
    let out = tinyfit()
        .arg("qat")
        .arg(&run)
        .args([
            "--weights",
            "binary",
            "--int8-layers",
            "fc",
            "--epochs",
            "2",
        ])
        .arg("--out")
        .arg(&qat)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("quantisation-aware training"), "{stdout}");
    let q = tinyfit().arg("quantize").arg(&qat).output().unwrap();
    let (stdout, stderr) = text(&q);
    assert!(q.status.success(), "{stderr}");
    assert!(stdout.contains("test: float"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(qat.join("quantization.json")).unwrap())
            .unwrap();
    assert_eq!(report["weight_bits"]["conv1"], "binary", "{report}");
    assert!(report["weight_bits"].get("fc").is_none(), "{report}");
    let int8 = report["test"]["int8_accuracy"].as_f64().unwrap();
    assert!(int8 > 1.0 / 6.0, "binary model's int8 test accuracy {int8}");

    let package = qat.join("package");
    let d = tinyfit()
        .arg("deploy")
        .arg(&qat)
        .args(["--board", "nrf52840", "--out"])
        .arg(&package)
        .output()
        .unwrap();
    assert!(d.status.success(), "{:?}", text(&d));
    let deployed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(package.join("deploy.json")).unwrap())
            .unwrap();
    // The two convolutions packed (the deployed model's node names are its TFLite
    // operators'); the int8 linear layer dense.
    let formats: Vec<&str> = deployed["compact_layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["format"].as_str().unwrap())
        .collect();
    assert_eq!(formats, ["packed1", "packed1"], "{deployed}");
}

/// `tinyfit quantize --flash-budget` picks each layer's weight grid by its validation
/// sensitivity so that the constants, as the generated C stores them, fit the budget; a
/// budget below binary weights everywhere is refused with the figure.
#[test]
fn mixed_precision_meets_a_flash_budget() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("har");
    train(&run, false);
    fails_with(
        tinyfit()
            .arg("quantize")
            .arg(&run)
            .args(["--flash-budget", "10"]),
        "out of reach: binary weights everywhere need",
    );
    let q = tinyfit()
        .arg("quantize")
        .arg(&run)
        .args(["--flash-budget", "700"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&q);
    assert!(q.status.success(), "{stderr}");
    assert!(stdout.contains("by validation sensitivity"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("quantization.json")).unwrap())
            .unwrap();
    let flash = report["flash_bytes"].as_u64().unwrap();
    assert!(flash <= 700, "{report}");
    assert!(
        !report["weight_bits"].as_object().unwrap().is_empty(),
        "{report}"
    );
}

/// `tinyfit compress` chains structured pruning, magnitude pruning and 4-bit QAT on a graph
/// with a residual sum and a concatenation (coupled channels, inputs of different ranges
/// rescaled before the concatenation): every step keeps its shapes, is quantised, deployed and
/// measured, and the table in `compress.json` shows each step's effect.
#[test]
fn compress_pipeline_measures_every_step_of_a_residual_concat_graph() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("res");
    let trained = tinyfit()
        .args(["train", "--config"])
        .arg(fixture("tiny_res_concat.toml"))
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(trained.status.success(), "{:?}", text(&trained));
    let pipeline = write(
        dir.path(),
        "pipeline.toml",
        "source = \"res\"\nboard = \"nrf52840\"\n\n\
         [[step]]\nkind = \"prune\"\nkeep_macs = 0.6\nepochs = 1\n\n\
         [[step]]\nkind = \"prune\"\nsparsity = 0.6\nepochs = 2\nramp_epochs = 1\n\n\
         [[step]]\nkind = \"qat\"\nweights = \"int4\"\nint8_layers = [\"conv1\"]\nepochs = 1\n",
    );
    let out = dir.path().join("compress");
    let run_pipeline = || {
        tinyfit()
            .args(["compress", "--config"])
            .arg(&pipeline)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let first = run_pipeline();
    let (stdout, stderr) = text(&first);
    assert!(first.status.success(), "{stderr}");
    assert!(stdout.contains("val int8"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compress.json")).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let steps: Vec<&str> = rows.iter().map(|r| r["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["baseline", "prune", "prune", "qat"]);
    for r in rows {
        assert!(r["latency_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["flash_bytes"].as_u64().unwrap() > 0, "{r}");
        assert!(r["validation_int8"].as_f64().unwrap() > 1.0 / 6.0, "{r}");
    }
    let at = |i: usize, key: &str| rows[i][key].as_u64().unwrap();
    assert!(
        at(1, "macs") as f64 <= 0.6 * at(0, "macs") as f64,
        "{report}"
    );
    assert!(
        at(2, "nonzero_params") < at(1, "nonzero_params"),
        "{report}"
    );
    assert_eq!(rows[3]["weight_bits"]["conv2"], "int4", "{report}");
    assert!(rows[3]["weight_bits"].get("conv1").is_none(), "{report}");
    // The test split only for the source and the final model.
    assert!(rows[0]["test"].is_array() && rows[3]["test"].is_array());
    assert!(rows[1].get("test").is_none() && rows[2].get("test").is_none());

    // Run again: every step is found done, nothing retrains.
    let again = run_pipeline();
    let (stdout, stderr) = text(&again);
    assert!(again.status.success(), "{stderr}");
    assert_eq!(stdout.matches("already trained").count(), 3, "{stdout}");
    // An edited step is not mistaken for the one that ran.
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(
        &pipeline,
        text.replace("keep_macs = 0.6", "keep_macs = 0.7"),
    )
    .unwrap();
    fails_with(
        tinyfit()
            .args(["compress", "--config"])
            .arg(&pipeline)
            .arg("--out")
            .arg(&out),
        "was made by another step",
    );
}

/// `tinyfit ditmos` runs every phase from a trained strong model, resumes after a kill from
/// its last checkpoint, refuses to overwrite a run without `--resume`, and records routed and
/// union accuracy on validation and test.
#[test]
fn ditmos_runs_resumes_after_a_kill_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let strong = dir.path().join("strong");
    train(&strong, false);
    let graphs = repo().join("examples/graphs");
    let config = write(
        dir.path(),
        "ditmos.toml",
        &format!(
            "[ditmos]\nstrong = {:?}\nfeature_layer = \"relu2\"\nselector = {:?}\n\
             classifier = {:?}\nclassifiers = 3\nbatch_size = 64\nrestarts = 2\n\n\
             [ditmos.pretrain]\nepochs = 2\nlr = 0.01\nhalve_every = 6\n\n\
             [ditmos.selector_pretrain]\nepochs = 1\nlr = 0.01\nhalve_every = 8\n\n\
             [ditmos.adversarial]\nrounds = 2\nepochs = 1\nlr = 0.001\nhalve_every = 30\n",
            strong,
            graphs.join("hapt_ditmos_selector.json"),
            graphs.join("hapt_ditmos_classifier.json"),
        ),
    );
    let out = dir.path().join("ditmos");
    let stdout = kill_refuse_resume(
        "ditmos",
        &config,
        &out,
        "ditmos.json",
        "already holds a DiTMoS run; pass --resume",
    );
    assert!(stdout.contains("resuming after"), "{stdout}");
    assert!(stdout.contains("union"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ditmos.json")).unwrap()).unwrap();
    let history = report["progress"]["history"].as_array().unwrap();
    assert_eq!(
        history.len(),
        4,
        "two rounds of one selector and one classifier epoch"
    );
    for split in ["validation", "test"] {
        let (routed, union) = (
            report[split]["accuracy"].as_f64().unwrap(),
            report[split]["union_accuracy"].as_f64().unwrap(),
        );
        assert!(union >= routed && routed > 1.0 / 6.0, "{split}: {report}");
    }
    assert_eq!(report["cluster_sizes"].as_array().unwrap().len(), 3);

    // The int8 system, routed: close to the float one, and the C package gives the runtime's
    // bytes on the whole test split in QEMU, with and without slicing.
    let (float, int8) = (
        report["test"]["accuracy"].as_f64().unwrap(),
        report["int8"]["test_accuracy"].as_f64().unwrap(),
    );
    assert!((float - int8).abs() < 0.05, "float {float}, int8 {int8}");
    let deployed = |slicing: bool| -> serde_json::Value {
        let package = dir.path().join(if slicing { "sliced" } else { "routed" });
        let mut cmd = tinyfit();
        cmd.arg("deploy")
            .arg(&out)
            .args(["--board", "f767zi", "--verify", "--out"])
            .arg(&package);
        if slicing {
            cmd.arg("--slicing");
        }
        let output = cmd.output().unwrap();
        assert!(output.status.success(), "{:?}", text(&output));
        serde_json::from_str(&std::fs::read_to_string(package.join("deploy.json")).unwrap())
            .unwrap()
    };
    let (routed, sliced) = (deployed(false), deployed(true));
    for d in [&routed, &sliced] {
        let v = &d["verification"];
        assert!(v["samples"].as_u64().unwrap() > 100, "{v}");
        assert_eq!(v["differing_bytes"], 0, "{v}");
        assert!((v["accuracy"].as_f64().unwrap() - int8).abs() < 1e-9, "{v}");
        assert_eq!(d["routing"]["branches"], 3);
    }
    // Slicing is kept only where it lowers the arena.
    let bytes = |d: &serde_json::Value, key: &str| d[key].as_u64().unwrap();
    let kept = sliced["routing"]["sliced"].as_bool().unwrap();
    assert_eq!(
        kept,
        bytes(&sliced, "arena_bytes") < bytes(&routed, "arena_bytes"),
        "{sliced}\n{routed}"
    );
    assert!(bytes(&sliced, "arena_bytes") <= bytes(&routed, "arena_bytes"));
    assert_eq!(bytes(&sliced, "const_bytes"), bytes(&routed, "const_bytes"));
}

/// A `[distill]` section trains the student on the teacher's soft targets as well (the run
/// records it), after a FitNets hint stage where `[distill.hints]` asks for one; a teacher
/// trained on other data is refused with the reason.
#[test]
fn distillation_trains_from_a_teacher_run_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = dir.path().join("teacher");
    train(&teacher, false);
    let data = fixture("../../../../../shared/data/hapt");
    let config = |test_users: &str, guided: &str| {
        format!(
            "[data]\nkind = \"hapt\"\npath = {:?}\n{test_users}\n[model]\ngraph = {:?}\n\n\
             [train]\nepochs = 2\nbatch_size = 64\nseed = 3\n\n\
             [train.optimizer]\nkind = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n\n\
             [distill]\nteacher = {:?}\ntemperature = 3.0\nalpha = 0.5\n\n\
             [distill.hints]\nteacher = \"relu2\"\nstudent = \"{guided}\"\nepochs = 2\n",
            data,
            fixture("tiny_har.json"),
            teacher
        )
    };
    // relu1 has 62 positions, the teacher's relu2 13: a 1×1 regressor cannot join them.
    let mismatched = dir.path().join("mismatched.toml");
    std::fs::write(&mismatched, config("", "relu1")).unwrap();
    fails_with(
        tinyfit()
            .args(["train", "--config"])
            .arg(&mismatched)
            .arg("--out")
            .arg(dir.path().join("mismatched")),
        "has 13 positions and the guided layer 'relu1' 62",
    );
    let student = dir.path().join("student.toml");
    std::fs::write(&student, config("", "relu2")).unwrap();
    let out = tinyfit()
        .args(["train", "--config"])
        .arg(&student)
        .arg("--out")
        .arg(dir.path().join("student"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("distilling from"), "{stdout}");
    assert!(stdout.contains("T = 3, α = 0.5"), "{stdout}");
    let recorded = std::fs::read_to_string(dir.path().join("student/experiment.json")).unwrap();
    assert!(recorded.contains("\"alpha\": 0.5"), "{recorded}");
    // FitNets: the student's relu2 learns the teacher's relu2 through the 1×1
    // regressor before stage two; its hint loss falls.
    assert!(stdout.contains("hint loss by epoch"), "{stdout}");
    let losses: Vec<f64> = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("student/hints.json")).unwrap(),
    )
    .unwrap();
    assert!(losses.len() == 2 && losses[1] < losses[0], "{losses:?}");

    let other = dir.path().join("other.toml");
    std::fs::write(&other, config("test_users = [2, 4, 9]", "relu2")).unwrap();
    fails_with(
        tinyfit()
            .args(["train", "--config"])
            .arg(&other)
            .arg("--out")
            .arg(dir.path().join("other")),
        "was trained on other data",
    );
}

/// Two HAPT anchors (S and M of `examples/graphs/hapt_anchor_*`) trained briefly for the
/// stitching tests, and a `[stitch]` config over them.
fn stitch_setup(dir: &Path, epochs: usize) -> PathBuf {
    let graphs = repo().join("examples/graphs");
    for size in ["s", "m"] {
        let config = write(
            dir,
            &format!("anchor_{size}.toml"),
            &format!(
                "[data]\nkind = \"hapt\"\npath = {:?}\n\n[model]\ngraph = {:?}\n\n\
                 [train]\nepochs = 2\nbatch_size = 64\nseed = 1\n\n[train.optimizer]\n\
                 kind = \"adam_w\"\nlr = 0.003\nweight_decay = 0.01\n",
                repo().join("../shared/data/hapt"),
                graphs.join(format!("hapt_anchor_{size}.json")),
            ),
        );
        let out = tinyfit()
            .args(["train", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(dir.join(format!("anchor-{size}")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", text(&out));
    }
    write(
        dir,
        "stitch.toml",
        &format!(
            "[stitch]\nanchors = [\"anchor-s\", \"anchor-m\"]\n\
             blocks = [\"relu1\", \"pool2\", \"pool3\", \"relu4\"]\n\
             epochs = {epochs}\nbatch_size = 64\nlr = 0.0003\nweight_decay = 0.05\nseed = 2\n"
        ),
    )
}

/// A stitching config whose baselines are not trained yet is refused before any work, naming
/// the field and the run.
#[test]
fn stitch_refuses_untrained_baselines_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "stitch.toml",
        "[stitch]\nanchors = [\"anchor-s\", \"anchor-m\"]\nblocks = [\"relu1\"]\n\
         epochs = 1\nbatch_size = 64\nlr = 0.001\nbaselines = [\"widths/w10\"]\n",
    );
    let out = tinyfit()
        .args(["stitch", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stitch.baselines lists") && stderr.contains("widths/w10"),
        "{stderr}"
    );
    assert!(!dir.path().join("run").exists());
}

/// Acceptance (#8): `tinyfit stitch` builds the space, resumes after a kill from its last
/// checkpoint, refuses to overwrite a run without `--resume`, and reports every route with its
/// cost and the validation frontier; least-squares stitching layers start far better than
/// PyTorch's default ones on trained anchors.
#[test]
fn stitch_runs_resumes_after_a_kill_and_least_squares_beats_default_init() {
    let dir = tempfile::tempdir().unwrap();
    let config = stitch_setup(dir.path(), 3);

    // Before any joint training: least squares against the default initialisation.
    let init_accuracy = |init: &str| -> f64 {
        let out = dir.path().join(format!("init-{init}"));
        let run = tinyfit()
            .args(["stitch", "--config"])
            .arg(&config)
            .args(["--epochs", "0", "--init", init, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(run.status.success(), "{:?}", text(&run));
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("stitch.json")).unwrap())
                .unwrap();
        let stitched: Vec<f64> = report["routes"].as_array().unwrap()[2..]
            .iter()
            .map(|r| r["validation_accuracy"].as_f64().unwrap())
            .collect();
        stitched.iter().sum::<f64>() / stitched.len() as f64
    };
    let (ls, default) = (init_accuracy("least-squares"), init_accuracy("default"));
    assert!(
        ls > default + 0.2,
        "mean validation accuracy of the stitches at epoch 0: least squares {ls}, default {default}"
    );

    let out = dir.path().join("stitch");
    let stdout = kill_refuse_resume(
        "stitch",
        &config,
        &out,
        "stitch.json",
        "already holds a stitching run; pass --resume",
    );
    assert!(stdout.contains("resuming from"), "{stdout}");
    assert!(
        stdout.contains("2 anchors, 6 routes (4 stitched; 6 stitches of the space dropped"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("stitch.json")).unwrap()).unwrap();
    assert_eq!(report["progress"]["losses"].as_array().unwrap().len(), 3);
    let routes = report["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 6);
    let cheapest = routes
        .iter()
        .min_by_key(|r| r["macs"].as_u64().unwrap())
        .unwrap();
    assert_eq!(cheapest["frontier"], true, "{report}");
    let svg = std::fs::read_to_string(out.join("stitch.svg")).unwrap();
    assert!(svg.contains("frontier (chosen on validation)") && svg.contains("<polyline"));
    for r in routes {
        assert!(r["test_accuracy"].as_f64().unwrap() > 1.0 / 6.0, "{r}");
        let int8 = r["int8"]["test_accuracy"].as_f64().unwrap();
        assert!(int8 > 1.0 / 6.0, "{r}");
    }
    // One switchable package holds every route, each shared layer once.
    let separate: u64 = routes
        .iter()
        .map(|r| r["int8"]["const_bytes"].as_u64().unwrap())
        .sum();
    let package = report["package"]["const_bytes"].as_u64().unwrap();
    assert!(package < separate / 2, "{package} B against {separate} B");
    let header = std::fs::read_to_string(out.join("package/model.h")).unwrap();
    assert!(header.contains("#define TINYFIT_ROUTES 6"), "{header}");
}

/// Acceptance (#9): `tinyfit search` logs every trial as it finishes; killed mid-way, it
/// refuses to start over without `--resume` and resumes without re-running finished trials;
/// it then trains the best candidate and the baseline scaled to its latency, both measured
/// on the board (within its limits) and in int8. Shards run apart and merge.
#[test]
fn search_resumes_after_a_kill_without_rerunning_trials_and_shards_merge() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture("tiny_search.toml");
    let out = dir.path().join("search");
    let run = || {
        let mut cmd = tinyfit();
        cmd.args(["search", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(&out);
        cmd
    };
    let log = out.join("trials.jsonl");
    let lines = || {
        std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let child = run()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_when(child, "a finished trial", 300, || lines() >= 2);
    let before = std::fs::read_to_string(&log).unwrap();
    let finished = before.lines().count();
    assert!(finished < 6, "the search finished before the kill");
    assert!(!out.join("search.json").exists());

    fails_with(&mut run(), "already holds a search");
    let resumed = run().arg("--resume").output().unwrap();
    let (stdout, stderr) = text(&resumed);
    assert!(resumed.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!("resuming: {finished} of 6 trials finished")),
        "{stdout}"
    );
    let after = std::fs::read_to_string(&log).unwrap();
    assert!(after.starts_with(&before), "finished trials were rewritten");
    let mut indices: Vec<u64> = after
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    indices.sort_unstable();
    assert_eq!(
        indices,
        (0..6).collect::<Vec<_>>(),
        "a trial ran twice or not at all"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("search.json")).unwrap()).unwrap();
    for name in ["best", "baseline"] {
        let f = &report[name];
        assert_eq!(f["fits"], true, "{f}");
        assert!(f["int8_test"].as_f64().unwrap() > 0.3, "{f}");
        assert!(f["cost"]["latency_ms"].as_f64().unwrap() > 0.0, "{f}");
    }
    let searched = report["best"]["cost"]["latency_ms"].as_f64().unwrap();
    let baseline = report["baseline"]["cost"]["latency_ms"].as_f64().unwrap();
    assert!(
        (baseline / searched - 1.0).abs() < 0.25,
        "baseline at {baseline} ms, searched model at {searched} ms"
    );
    assert!(out.join("searched/model.safetensors").exists());

    // Two shards into one folder, then merged.
    let sharded = dir.path().join("sharded");
    for shard in ["1/2", "2/2"] {
        let out = tinyfit()
            .args(["search", "--config"])
            .arg(&config)
            .args(["--trials", "4", "--shard", shard, "--out"])
            .arg(&sharded)
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let merged = tinyfit()
        .args(["search", "--config"])
        .arg(&config)
        .args(["--trials", "4", "--merge", "--search-only", "--out"])
        .arg(&sharded)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&merged);
    assert!(merged.status.success(), "{stderr}");
    assert!(stdout.contains("merged 4 trials of 2 shard(s)"), "{stdout}");
}

/// The fields of summary.json that do not depend on timing or on the output folder: each
/// candidate's name and figures, and the winner.
fn summary_figures(out: &Path) -> serde_json::Value {
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let candidates: Vec<serde_json::Value> = s["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut c = c.clone();
            let o = c.as_object_mut().unwrap();
            o.remove("run");
            o.remove("train_seconds");
            c
        })
        .collect();
    serde_json::json!({
        "candidates": candidates,
        "winner": s["winner"]["candidate"],
        "confusion": s["winner"]["confusion"],
    })
}

/// Acceptance (#10): `tinyfit run` runs every configured method as a stage, writes
/// summary.json (valid against its documented schema) and report.html, and the winner's
/// package and .tflite; killed during the DiTMoS stage and rerun, it reuses the finished
/// stages (its log says so) and ends with the figures of an uninterrupted run.
#[test]
fn run_reuses_finished_stages_after_a_kill_and_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = fixture("tiny_run.toml");
    let run = |out: &Path| {
        let mut cmd = tinyfit();
        cmd.arg("run")
            .arg(&config)
            .args(["--quick", "--out"])
            .arg(out);
        cmd
    };
    let whole = dir.path().join("whole");
    let done = run(&whole).output().unwrap();
    assert!(done.status.success(), "{:?}", text(&done));

    let killed = dir.path().join("killed");
    let child = run(&killed)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ditmos_checkpoint = || {
        std::fs::read_dir(killed.join("stages"))
            .map(|entries| {
                entries.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with("ditmos-")
                        && e.path().join("run/progress.json").exists()
                })
            })
            .unwrap_or(false)
    };
    kill_when(child, "a DiTMoS checkpoint", 600, ditmos_checkpoint);
    assert!(
        !killed.join("summary.json").exists(),
        "the run finished before the kill"
    );
    let rerun = run(&killed).output().unwrap();
    let (stdout, stderr) = text(&rerun);
    assert!(rerun.status.success(), "{stderr}");
    let log = std::fs::read_to_string(killed.join("run.log")).unwrap();
    for reused in ["strong", "compress"] {
        assert!(
            log.contains(&format!("stage {reused}: reused, not recomputed")),
            "{log}"
        );
    }
    assert!(log.contains("stage ditmos: resuming"), "{log}");
    assert!(stdout.contains("winner:"), "{stdout}");
    assert_eq!(summary_figures(&killed), summary_figures(&whole));

    // The summary validates against the documented schema, which is the one the code writes.
    let schema = tinyfit().args(["run", "--schema"]).output().unwrap();
    let (generated, _) = text(&schema);
    let documented = std::fs::read_to_string(repo().join("docs/summary.schema.json")).unwrap();
    assert_eq!(
        generated.trim(),
        documented.trim(),
        "docs/summary.schema.json is stale"
    );
    let validate = Command::new("python3")
        .args(["-c", "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))"])
        .arg(killed.join("summary.json"))
        .arg(repo().join("docs/summary.schema.json"))
        .output()
        .unwrap();
    assert!(validate.status.success(), "{:?}", text(&validate));

    // The winner's artefacts.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("summary.json")).unwrap())
            .unwrap();
    let winner = &summary["winner"];
    assert_eq!(winner["qemu_differing_bytes"], 0, "{winner}");
    assert!(killed.join("winner/package/model.c").exists());
    renders_in_chromium(&killed.join("report.html"));

    // A budget nothing meets: refused, naming the closest candidates; the report still written.
    let tight = run(&killed)
        .args(["--latency-ms", "0.01"])
        .output()
        .unwrap();
    let (_, stderr) = text(&tight);
    assert_eq!(tight.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no candidate meets the budget (0.01 ms")
            && stderr.contains("the closest:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("latency") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// Loads `report` in headless Chromium: every table and plot is in the rendered page, the
/// page logs no errors, and a screenshot goes to `target/ci-artifacts/report.png`.
fn renders_in_chromium(report: &Path) {
    let url = format!("file://{}", report.display());
    let chromium = |extra: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap_or_else(|e| panic!("chromium (installed by .ci/setup): {e}"))
    };
    let dom = chromium(&["--dump-dom"]);
    let (page, log) = text(&dom);
    assert!(dom.status.success(), "{log}");
    for id in [
        "winner",
        "comparison",
        "plot-latency",
        "plot-sram",
        "compress",
        "ditmos-routing",
        "ditmos-cka",
        "plot-search",
        "confusion",
        "stages",
    ] {
        assert!(
            page.contains(&format!("id=\"{id}\"")),
            "no #{id} in the rendered page"
        );
    }
    assert!(
        page.matches("<svg").count() >= 3,
        "fewer than three plots rendered"
    );
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Failed to load"))
        .collect();
    assert!(errors.is_empty(), "the page logged: {errors:?}");
    let artefacts = repo().join("target/ci-artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("report.png");
    let screenshot = format!("--screenshot={}", shot.display());
    let out = chromium(&[&screenshot, "--window-size=1280,4000", "--hide-scrollbars"]);
    assert!(out.status.success() && shot.exists(), "{:?}", text(&out));
}

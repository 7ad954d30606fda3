#!/usr/bin/env python3
"""GPU check: the packed `ee` (built for CUDA) against the CPU backend and PyTorch.

Made by `cargo xtask gpu-check` together with `ee.xz` (unpacked to `ee` on
first use), `train_step.py`,
`gpu_train.toml` and `cpu_reference.json` (the same probes and training run on
the CPU backend, computed where the folder was packed). Needs Python 3 with
PyTorch (CUDA) and numpy; no Rust toolchain. Writes one JSON report:

    python3 gpu_check.py --out results        # results/report.json

1. CUDA against the CPU backend: EE + HPHN loss and gradient, GoogLeNet-512
   forward on fixed (seeded) weights in eval and train mode, one Adam step.
2. Train-step images/s (GoogLeNet-512 + EE/HPHN, batch 128, 227 px) against
   PyTorch's same step (train_step.py) on the same GPU.
3. Recall@K and MAP@R at N = 60,502, D = 512 against PyTorch matmul + topk on
   the same embeddings (written by `ee probe`).
4. A short training run on synthetic data (`ee train gpu_train.toml`): R@1 per
   evaluation, against the CPU backend's run of the same config.

With `ee-tch.xz` in the folder (`cargo xtask gpu-check --with-tch`), 1 and 2
also run on LibTorch (`ee` built with burn-tch), through this machine's own
torch `lib/` folder when its PyTorch is the torch it was built against
(2.9.0); otherwise that part is skipped and the report says why.

`--quick` shrinks 2 and 3 (and the run) for a dry run of the whole folder on a
CPU build. Every step has a time limit; a step that fails is recorded with its
error and the others still run.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# Largest relative gap (max |ours - reference| / max |reference|) that passes.
# float32 on both sides; CUDA's reductions and convolutions sum in other orders.
TOLERANCE = {
    "loss": 1e-4,
    "loss_gradient": 1e-3,
    "forward_eval": 1e-3,
    "forward_train": 1e-3,
    "step_loss": 1e-4,
    "step_embeddings": 1e-3,
}


def run(command, timeout, log_path, env=None):
    """Runs `command`, its output going to `log_path`; (ok, seconds, tail)."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout, cwd=HERE, env=env)
            ok = done.returncode == 0
            why = None if ok else f"exit code {done.returncode}"
        except subprocess.TimeoutExpired:
            ok, why = False, f"timed out after {timeout} s"
        except OSError as error:
            ok, why = False, str(error)
    seconds = time.perf_counter() - start
    with open(log_path) as log:
        tail = log.read()[-2000:]
    if not ok:
        print(f"  failed ({why}): {' '.join(command)}\n{tail}", file=sys.stderr)
    return ok, seconds, (why, tail)


def rel_gap(ours, reference):
    """max |ours - reference| / max |reference| over two equal-length lists."""
    if len(ours) != len(reference):
        return math.inf
    scale = max((abs(r) for r in reference), default=0.0) or 1.0
    return max((abs(a - b) for a, b in zip(ours, reference)), default=0.0) / scale


def compare_probes(ours, reference):
    """The CUDA-vs-CPU part of the report."""
    pairs = {
        "loss": ([ours["loss"]["loss"]], [reference["loss"]["loss"]]),
        "loss_gradient": (ours["loss"]["grad"], reference["loss"]["grad"]),
        "forward_eval": (ours["forward"]["eval"], reference["forward"]["eval"]),
        "forward_train": (ours["forward"]["train"], reference["forward"]["train"]),
        "step_loss": ([ours["step"]["loss_before"]], [reference["step"]["loss_before"]]),
        "step_embeddings": (ours["step"]["embeddings_after"],
                            reference["step"]["embeddings_after"]),
    }
    result = {}
    for name, (a, b) in pairs.items():
        gap = rel_gap(a, b)
        result[name] = {"relative_gap": gap, "tolerance": TOLERANCE[name],
                        "pass": gap <= TOLERANCE[name]}
    result["loss"]["ours"] = ours["loss"]["loss"]
    result["loss"]["reference"] = reference["loss"]["loss"]
    result["pass"] = all(v["pass"] for v in result.values() if isinstance(v, dict))
    return result


def torch_recall(embeddings_path, labels_path, ks, device):
    """Recall@K (each item left out of its own results) and MAP@R with torch
    matmul + topk, in query chunks; the time excludes reading the files."""
    import numpy as np
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    x_host = np.load(embeddings_path)
    y_host = np.load(labels_path)
    start = time.perf_counter()
    x = torch.from_numpy(x_host).to(device)
    y = torch.from_numpy(y_host).to(device)
    n = x.shape[0]
    counts = torch.bincount(y)
    r_of = counts[y] - 1  # same-class items per query, itself excluded
    k_max = int(min(n - 1, max(max(ks), int(r_of.max()))))
    hits_at = {k: 0 for k in ks}
    map_sum = 0.0
    chunk = 4096
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        sim = x[lo:hi] @ x.T
        sim[torch.arange(hi - lo, device=device), torch.arange(lo, hi, device=device)] = -math.inf
        idx = sim.topk(k_max, dim=1).indices
        rel = (y[idx] == y[lo:hi, None])
        for k in ks:
            hits_at[k] += int(rel[:, :k].any(dim=1).sum())
        r = r_of[lo:hi]
        ranks = torch.arange(1, k_max + 1, device=device)
        within = ranks[None, :] <= r[:, None]
        relw = rel & within
        precision = relw.cumsum(1) / ranks[None, :]
        ap = (precision * relw).sum(1) / r.clamp(min=1)
        map_sum += float(ap[r > 0].sum())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    queries = int((r_of > 0).sum())
    return {
        "seconds": seconds,
        "recall": {str(k): hits_at[k] / n for k in ks},
        "map_at_r": map_sum / max(queries, 1),
        "torch": torch.__version__, "device": device, "tf32": False,
    }


def unpack(path):
    """`path` from `path`.xz (packed xz-compressed: the stripped CUDA binary is
    ~63 MB), once; True if `path` is there."""
    if not os.path.exists(path):
        if not os.path.exists(path + ".xz"):
            return False
        import lzma
        with lzma.open(path + ".xz") as packed, open(path + ".tmp", "wb") as unpacked:
            unpacked.write(packed.read())
        os.chmod(path + ".tmp", 0o755)
        os.replace(path + ".tmp", path)
    return True


def libtorch_part(out, reference, shape, torch_ips):
    """Probes and train step of `ee-tch` (LibTorch) on this machine's torch.
    Returns the report's `tch` entry: skipped (with why) unless the torch here
    is the version ee-tch was built against."""
    ee_tch = os.path.join(HERE, "ee-tch")
    if not unpack(ee_tch):
        return {"skipped": "not packed (cargo xtask gpu-check --with-tch)"}
    try:
        import torch
    except ImportError as error:
        return {"skipped": f"PyTorch not importable: {error}"}
    wanted = reference.get("tch_torch_version", "2.9.0")
    have = torch.__version__.split("+")[0]
    if have != wanted:
        return {"skipped": f"torch {torch.__version__} here; ee-tch was built against "
                           f"libtorch {wanted} and cannot load another"}
    lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        [lib] + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])
    result = {"torch": torch.__version__, "lib": lib}
    probe_dir = os.path.join(out, "tch_probe")
    ok, _, (why, tail) = run([ee_tch, "probe", "--what", "loss,forward,step", "--out",
                              probe_dir], 600, os.path.join(out, "tch_probe.log"), env)
    if ok:
        with open(os.path.join(probe_dir, "probe.json")) as f:
            ours = json.load(f)
        result["device"] = ours["device"]
        result["against_cpu"] = compare_probes(ours["probes"], reference["probes"])
    else:
        result["against_cpu"] = {"error": why, "log": tail}
    thr_dir = os.path.join(out, "tch_throughput")
    ok, _, (why, tail) = run([ee_tch, "probe", "--what", "throughput", "--out", thr_dir]
                             + shape, 600, os.path.join(out, "tch_throughput.log"), env)
    if ok:
        with open(os.path.join(thr_dir, "probe.json")) as f:
            result["throughput"] = json.load(f)["probes"]["throughput"]
        tch_ips = result["throughput"].get("images_per_second")
        if tch_ips and torch_ips:
            result["pytorch_over_tch"] = torch_ips / tch_ips
    else:
        result["throughput"] = {"error": why, "log": tail}
    return result


def recall_curve(metrics_path):
    """[(epoch, R@1)] of the test-split evaluations in a run's metrics.jsonl."""
    curve = []
    with open(metrics_path) as f:
        for line in f:
            row = json.loads(line)
            if row.get("kind") == "eval" and row.get("split") is None:
                curve.append((row["epoch"], row["recall"]["1"]))
    return curve


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results", help="folder for report.json and logs")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a dry run of the folder on a CPU build")
    parser.add_argument("--device", default=None,
                        help="PyTorch device (default: cuda when available, else cpu)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads of both sides")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    ee = os.path.join(HERE, "ee")
    if not unpack(ee):
        sys.exit(f"{ee}.xz is missing: pack the folder again with cargo xtask gpu-check")
    with open(os.path.join(HERE, "cpu_reference.json")) as f:
        reference = json.load(f)
    env_threads = {"RAYON_NUM_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    os.environ.update(env_threads)

    report = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "quick": args.quick, "machine": {"platform": platform.platform(),
                                               "threads": args.threads}}
    try:
        report["machine"]["gpus"] = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        report["machine"]["gpus"] = f"nvidia-smi: {error}"
    try:
        import torch
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        report["machine"]["torch"] = torch.__version__
        report["machine"]["torch_cuda"] = torch.version.cuda
    except ImportError as error:
        torch, device = None, None
        report["machine"]["torch"] = f"not importable: {error}"
    report["machine"]["torch_device"] = device

    def save():
        path = os.path.join(out, "report.json")
        with open(path + ".tmp", "w") as f:
            json.dump(report, f, indent=2)
        os.replace(path + ".tmp", path)

    # 1. CUDA against the CPU backend.
    print("== 1/4 probes: loss + gradient, GoogLeNet forward, one Adam step")
    probe_dir = os.path.join(out, "probe")
    ok, seconds, (why, tail) = run(
        [ee, "probe", "--what", "loss,forward,step", "--out", probe_dir], 600,
        os.path.join(out, "probe.log"))
    if ok:
        with open(os.path.join(probe_dir, "probe.json")) as f:
            ours = json.load(f)
        report["backend"] = ours["backend"]
        report["device"] = ours["device"]
        report["against_cpu"] = compare_probes(ours["probes"], reference["probes"])
        report["against_cpu"]["reference_backend"] = reference["backend"]
    else:
        report["against_cpu"] = {"error": why, "log": tail}
    report.setdefault("backend", reference.get("packed_backend"))
    save()

    # 2. Train-step throughput against PyTorch.
    batch, size, warmup, steps = (16, 64, 1, 2) if args.quick else (128, 227, 3, 10)
    print(f"== 2/4 train step, batch {batch}, {size} px: ee and PyTorch")
    shape = ["--batch", str(batch), "--image-size", str(size), "--instances", "4",
             "--warmup", str(warmup), "--steps", str(steps)]
    throughput = {"batch": batch, "image_size": size, "embed_dim": 512, "instances": 4}
    thr_dir = os.path.join(out, "throughput")
    ok, _, (why, tail) = run([ee, "probe", "--what", "throughput", "--out", thr_dir] + shape,
                             600, os.path.join(out, "throughput.log"))
    if ok:
        with open(os.path.join(thr_dir, "probe.json")) as f:
            throughput["ee"] = json.load(f)["probes"]["throughput"]
    else:
        throughput["ee"] = {"error": why, "log": tail}
    if torch is not None:
        torch_json = os.path.join(out, "train_step_torch.json")
        ok, _, (why, tail) = run(
            [sys.executable, "-B", os.path.join(HERE, "train_step.py"), "--threads",
             str(args.threads), "--device", device, "--embed-dim", "512", "--n-inner-pts", "2",
             "--json", torch_json] + shape, 600, os.path.join(out, "train_step_torch.log"))
        if ok:
            with open(torch_json) as f:
                throughput["pytorch"] = json.load(f)
        else:
            throughput["pytorch"] = {"error": why, "log": tail}
    ee_ips = throughput["ee"].get("images_per_second")
    torch_ips = throughput.get("pytorch", {}).get("images_per_second")
    if ee_ips and torch_ips:
        throughput["pytorch_over_ee"] = torch_ips / ee_ips
    report["throughput"] = throughput
    save()

    # 2b. The same probes and step on LibTorch, when packed and loadable here.
    print("== 2b/4 LibTorch (ee-tch): probes and train step, if packed")
    report["tch"] = libtorch_part(out, reference, shape, torch_ips)
    if "skipped" in report["tch"]:
        print(f"  skipped: {report['tch']['skipped']}")
    save()

    # 3. Recall@K at scale against matmul + topk.
    n, classes, ks = (8131, 98, [1, 10, 100]) if args.quick else (60502, 11316, [1, 10, 100, 1000])
    print(f"== 3/4 Recall@K at N = {n}, D = 512: ee and PyTorch matmul + topk")
    recall = {"n": n, "classes": classes, "dim": 512}
    rec_dir = os.path.join(out, "recall")
    ok, _, (why, tail) = run(
        [ee, "probe", "--what", "recall", "--out", rec_dir, "--recall-n", str(n),
         "--recall-classes", str(classes), "--recall-ks", ",".join(map(str, ks))],
        600, os.path.join(out, "recall.log"))
    if ok:
        with open(os.path.join(rec_dir, "probe.json")) as f:
            recall["ee"] = json.load(f)["probes"]["recall"]
        if torch is not None:
            try:
                recall["pytorch"] = torch_recall(
                    os.path.join(rec_dir, "recall_embeddings.npy"),
                    os.path.join(rec_dir, "recall_labels.npy"), ks, device)
                gaps = {k: abs(recall["ee"]["recall"][k] - recall["pytorch"]["recall"][k])
                        for k in recall["pytorch"]["recall"]}
                recall["recall_gap"] = gaps
                recall["map_at_r_gap"] = abs(recall["ee"]["map_at_r"]
                                             - recall["pytorch"]["map_at_r"])
                # Exact on both sides: a gap is only a near-tie decided differently.
                recall["pass"] = max(gaps.values()) <= 2.0 / n
                recall["ee_over_pytorch_seconds"] = (recall["ee"]["seconds"]
                                                     / recall["pytorch"]["seconds"])
            except Exception as error:  # noqa: BLE001 (recorded in the report)
                recall["pytorch"] = {"error": repr(error)}
    else:
        recall["ee"] = {"error": why, "log": tail}
    report["recall"] = recall
    save()

    # 4. A short training run.
    print("== 4/4 training on synthetic data (gpu_train.toml)")
    run_dir = os.path.join(out, "train")
    backend = report.get("backend") or "cuda"
    sets = ["--set", f"run.output_dir={run_dir}", "--set", f"run.backend={backend}"]
    if args.quick:
        sets += ["--set", "schedule.epochs=20", "--set", "schedule.eval_every_epochs=10"]
    ok, seconds, (why, tail) = run(
        [ee, "train", os.path.join(HERE, "gpu_train.toml"), "--quiet"] + sets, 900,
        os.path.join(out, "train.log"))
    training = {"seconds": seconds}
    if ok:
        curve = recall_curve(os.path.join(run_dir, "metrics.jsonl"))
        training["recall1"] = curve
        training["rising"] = len(curve) >= 2 and curve[-1][1] > curve[0][1] + 0.05
        if not args.quick:
            training["cpu_reference_recall1"] = reference.get("train_recall1")
    else:
        training["error"] = why
        training["log"] = tail
    report["training"] = training
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save()

    summary = {
        "against_cpu": report["against_cpu"].get("pass"),
        "pytorch_over_ee_images_per_second": throughput.get("pytorch_over_ee"),
        "recall_matches_pytorch": recall.get("pass"),
        "ee_over_pytorch_recall_seconds": recall.get("ee_over_pytorch_seconds"),
        "training_r1_rising": training.get("rising"),
        "tch_against_cpu": report["tch"].get("against_cpu", {}).get("pass"),
        "pytorch_over_tch_images_per_second": report["tch"].get("pytorch_over_tch"),
        "tch_skipped": report["tch"].get("skipped"),
    }
    report["summary"] = summary
    save()
    print(json.dumps(summary, indent=2))
    print(f"wrote {os.path.join(out, 'report.json')}")


if __name__ == "__main__":
    main()

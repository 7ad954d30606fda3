#!/usr/bin/env python3
"""faiss-cpu baseline of ee-eval: exact kNN retrieval metrics and k-means NMI.

`cargo xtask bench eval` runs this script and ee-eval's `eval_speed` benchmark on the
same .npy inputs with the same thread count. Times (median of --repeats, in-process,
loading excluded), each repeat building a fresh `faiss.IndexFlatL2`:

- knn_k9_seconds: add + search with k = 9 (the query itself included), the query
  dropped, Recall@1,2,4,8: the least work that gives Recall@K.
- retrieval_seconds: add + search with k = max(8, R_max) + 1 (R_max = largest class
  size - 1), the query dropped, Recall@1,2,4,8 and MAP@R (Musgrave et al. 2020): the
  same work as ee-eval's Recall@K + MAP@R.

The query is dropped from its row by index: the entry equal to its own index if it is
among the k + 1, otherwise the last one. Recall@K counts every query in the
denominator (a query whose class has no other item is a miss); MAP@R averages AP@R
over the queries with R = class size - 1 >= 1 only.

With --kmeans: `faiss.Kmeans` with k = the number of distinct labels, --kmeans-iters
iterations, seed 0, trained on all embeddings, points assigned with its index, and NMI
(I / ((H(U) + H(V)) / 2), natural logs, 1 when both partitions are a single set)
against the labels; kmeans_seconds is train + assign, one run.

Prints one JSON line.
"""
import argparse
import json
import os
import statistics
import sys
import time

RECALL_KS = (1, 2, 4, 8)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--embeddings", required=True, help="f32 [n, d] .npy")
    p.add_argument("--labels", required=True, help="integer [n] .npy")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--kmeans", action="store_true",
                   help="also time faiss k-means and report its NMI")
    p.add_argument("--kmeans-iters", type=int, default=20)
    args = p.parse_args()
    if args.threads < 1 or args.repeats < 1 or args.kmeans_iters < 1:
        p.error("need --threads, --repeats and --kmeans-iters >= 1")
    return args


ARGS = parse_args()
# Before numpy and faiss load their OpenMP / BLAS runtimes.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)

try:
    import faiss
    import numpy as np
except ImportError as error:
    print(f"faiss baseline unavailable: {error}", file=sys.stderr)
    sys.exit(3)


def drop_self(ids):
    """[n, k + 1] neighbour ids -> [n, k]: each row without its query.

    The entry equal to the query's own index is removed if present, else the last.
    """
    n = ids.shape[0]
    drop = ids == np.arange(n, dtype=ids.dtype)[:, None]
    drop[~drop.any(axis=1), -1] = True
    return ids[~drop].reshape(n, ids.shape[1] - 1)


def relevance(ids, labels):
    """[n, k] bool: neighbour j of query i shares its label (-1 ids never do)."""
    return (labels[ids] == labels[:, None]) & (ids >= 0)


def recalls(rel):
    """Recall@1,2,4,8 over all queries (denominator n)."""
    return {str(k): float(rel[:, :k].any(axis=1).mean()) for k in RECALL_KS}


def map_at_r(rel, r):
    """Mean AP@R over the queries with r >= 1 (None when there is none)."""
    has = r > 0
    if not has.any():
        return None
    cols = np.arange(rel.shape[1])
    hits = rel & (cols[None, :] < r[:, None])
    precision = np.cumsum(hits, axis=1) / (cols + 1.0)
    ap = (precision * hits).sum(axis=1)[has] / r[has]
    return float(ap.mean())


def search(x, k):
    """Fresh IndexFlatL2, add all of x, search x for k neighbours; ids [n, k]."""
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    _, ids = index.search(x, k)
    return ids


def knn_k9(x, labels):
    ids = drop_self(search(x, min(9, x.shape[0])))
    return recalls(relevance(ids, labels))


def retrieval(x, labels, r, k):
    rel = relevance(drop_self(search(x, k)), labels)
    return recalls(rel), map_at_r(rel, r)


def timed(repeats, work):
    """(median seconds over `repeats` runs of `work`, its last result)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def entropy(counts):
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(u, v):
    """NMI with arithmetic-mean normalisation of two labelings, natural logs."""
    n = u.shape[0]
    _, u = np.unique(u, return_inverse=True)
    _, v = np.unique(v, return_inverse=True)
    a = np.bincount(u).astype(np.float64)
    b = np.bincount(v).astype(np.float64)
    # Sparse contingency table: the non-zero cells only (SOP has 11k x 11k).
    cells, n_ij = np.unique(u.astype(np.int64) * b.size + v, return_counts=True)
    n_ij = n_ij.astype(np.float64)
    a_i = a[cells // b.size]
    b_j = b[cells % b.size]
    mutual = float((n_ij / n * np.log(n * n_ij / (a_i * b_j))).sum())
    h_u, h_v = entropy(a), entropy(b)
    if h_u == 0.0 and h_v == 0.0:
        return 1.0
    return max(mutual, 0.0) / ((h_u + h_v) / 2)


def kmeans_nmi(x, labels, iters):
    k = int(np.unique(labels).size)
    start = time.perf_counter()
    kmeans = faiss.Kmeans(x.shape[1], k, niter=iters, seed=0)
    kmeans.train(x)
    _, assign = kmeans.index.search(x, 1)
    seconds = time.perf_counter() - start
    return seconds, nmi(labels, assign[:, 0])


def main():
    faiss.omp_set_num_threads(ARGS.threads)
    x = np.ascontiguousarray(np.load(ARGS.embeddings), dtype=np.float32)
    labels = np.asarray(np.load(ARGS.labels)).astype(np.int64).reshape(-1)
    if x.ndim != 2 or x.shape[0] != labels.shape[0] or x.shape[0] < 2:
        sys.exit(f"need embeddings [n, d] with n >= 2 and n labels; got "
                 f"{x.shape} and {labels.shape}")
    n, d = x.shape
    _, inverse, sizes = np.unique(labels, return_inverse=True,
                                  return_counts=True)
    r = sizes[inverse] - 1
    k = min(max(8, int(r.max())) + 1, n)

    knn_k9_seconds, k9_recall = timed(ARGS.repeats, lambda: knn_k9(x, labels))
    retrieval_seconds, (recall, map_r) = timed(
        ARGS.repeats, lambda: retrieval(x, labels, r, k))
    result = {
        "framework": "faiss-cpu", "faiss_version": faiss.__version__,
        "n": n, "dim": d, "threads": ARGS.threads, "repeats": ARGS.repeats,
        "knn_k9_seconds": knn_k9_seconds,
        "retrieval_seconds": retrieval_seconds, "retrieval_k": k,
        "recall_at_k": recall, "map_at_r": map_r,
        "recall_at_k_from_k9": k9_recall,
    }
    if ARGS.kmeans:
        seconds, score = kmeans_nmi(x, labels, ARGS.kmeans_iters)
        result.update(kmeans_seconds=seconds, kmeans_iters=ARGS.kmeans_iters,
                      nmi=score)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

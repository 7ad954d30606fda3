//! Shared test support: an independent f64 implementation of METHOD.md sections 2-5 written
//! with plain loops (every synthetic point built separately, as the reference does), with a
//! hand-written backward pass that follows the reference's tie rule, and random batches.

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Result of the reference computation.
pub struct Reference {
    pub per_anchor: Vec<f64>,
    pub d_ap: Vec<f64>,
    pub d_an: Vec<f64>,
    /// d(sum of per-anchor losses)/dx, [B][D].
    pub grad: Vec<Vec<f64>>,
    /// How many extra elements received gradient because of ties (0 = no tie was used).
    pub ties: usize,
}

pub struct Params {
    pub n: usize,
    pub l2_norm: bool,
    pub margin: f64,
    pub soft_margin: bool,
}

fn partner(i: usize) -> usize {
    i ^ 1
}

/// Where a synthetic point comes from: (anchor i, step t, the unnormalised point u).
type Origin = Option<(usize, usize, Vec<f64>)>;

/// Builds the expanded points as the reference does: one loop per synthetic point.
/// Returns (points, per point: None for originals or Some((i, t, unnormalised u))).
fn expand(x: &[Vec<f64>], p: &Params) -> (Vec<Vec<f64>>, Vec<Origin>) {
    let b = x.len();
    let mut points: Vec<Vec<f64>> = x.to_vec();
    let mut origin = vec![None; b];
    let total = (p.n + 1) as f64;
    for t in 1..=p.n {
        for i in 0..b {
            let (anchor, pos) = (&x[partner(i)], &x[i]);
            let left = t as f64;
            let right = total - left;
            let u: Vec<f64> = anchor
                .iter()
                .zip(pos)
                .map(|(a, q)| (a * left + q * right) / total)
                .collect();
            let s = if p.l2_norm {
                let norm = (u.iter().map(|v| v * v).sum::<f64>() + 1e-10).sqrt();
                u.iter().map(|v| v / norm).collect()
            } else {
                u.clone()
            };
            points.push(s);
            origin.push(Some((i, t, u)));
        }
    }
    (points, origin)
}

fn squared(a: &[f64], b: &[f64]) -> f64 {
    let aa: f64 = a.iter().map(|v| v * v).sum();
    let bb: f64 = b.iter().map(|v| v * v).sum();
    let ab: f64 = a.iter().zip(b).map(|(u, v)| u * v).sum();
    aa + bb - 2.0 * ab
}

/// The reference forward and backward (METHOD.md sections 2-5).
pub fn reference(x: &[Vec<f64>], labels: &[i64], p: &Params) -> Reference {
    let b = x.len();
    let dim = x[0].len();
    let (points, origin) = expand(x, p);
    let n_rows = points.len();
    let label = |r: usize| labels[r % b];
    let mut dist = vec![vec![0.0; n_rows]; n_rows];
    let mut clipped = vec![vec![false; n_rows]; n_rows];
    for r in 0..n_rows {
        for c in 0..n_rows {
            let sq = squared(&points[r], &points[c]);
            clipped[r][c] = !(1e-12..=1e12).contains(&sq);
            dist[r][c] = sq.clamp(1e-12, 1e12).sqrt();
        }
    }
    let row_max: Vec<f64> = dist
        .iter()
        .map(|row| row.iter().cloned().fold(f64::MIN, f64::max))
        .collect();
    // m_r and its minimising entries.
    let neg_value = |r: usize, c: usize| {
        if label(r) != label(c) {
            dist[r][c]
        } else {
            row_max[r]
        }
    };
    let m: Vec<f64> = (0..n_rows)
        .map(|r| {
            (0..n_rows)
                .map(|c| neg_value(r, c))
                .fold(f64::MAX, f64::min)
        })
        .collect();

    // Gradient with respect to each distance entry.
    let mut g_dist = vec![vec![0.0; n_rows]; n_rows];
    let mut ties = 0;
    let mut per_anchor = vec![0.0; b];
    let mut d_ap = vec![0.0; b];
    let mut d_an = vec![0.0; b];
    for i in 0..b {
        let positives: Vec<usize> = (0..b).filter(|&j| label(j) == label(i)).collect();
        let ap = positives
            .iter()
            .map(|&j| dist[i][j])
            .fold(f64::MIN, f64::max);
        let groups: Vec<usize> = (0..=p.n).map(|g| g * b + i).collect();
        let an = groups.iter().map(|&r| m[r]).fold(f64::MAX, f64::min);
        let z = ap - an;
        let (loss, upstream) = if p.soft_margin {
            ((1.0 + z.exp()).ln(), 1.0 / (1.0 + (-z).exp()))
        } else {
            let v = z + p.margin;
            (v.max(0.0), if v > 0.0 { 1.0 } else { 0.0 })
        };
        per_anchor[i] = loss;
        d_ap[i] = ap;
        d_an[i] = an;
        if upstream == 0.0 {
            continue;
        }
        let arg_ap: Vec<usize> = positives
            .into_iter()
            .filter(|&j| dist[i][j] == ap)
            .collect();
        ties += arg_ap.len() - 1;
        for j in arg_ap {
            g_dist[i][j] += upstream;
        }
        let arg_groups: Vec<usize> = groups.into_iter().filter(|&r| m[r] == an).collect();
        ties += arg_groups.len() - 1;
        for r in arg_groups {
            let arg_c: Vec<usize> = (0..n_rows).filter(|&c| neg_value(r, c) == m[r]).collect();
            ties += arg_c.len() - 1;
            for c in arg_c {
                if label(r) != label(c) {
                    g_dist[r][c] -= upstream;
                } else {
                    // A positive entry holds the row maximum: the gradient goes to every argmax.
                    let arg_max: Vec<usize> =
                        (0..n_rows).filter(|&k| dist[r][k] == row_max[r]).collect();
                    ties += arg_max.len() - 1;
                    for k in arg_max {
                        g_dist[r][k] -= upstream;
                    }
                }
            }
        }
    }

    // Back to the points: dD_rc/dP_r = (P_r - P_c) / D_rc unless clipped.
    let mut g_points = vec![vec![0.0; dim]; n_rows];
    for r in 0..n_rows {
        for c in 0..n_rows {
            let g = g_dist[r][c];
            if g == 0.0 || clipped[r][c] {
                continue;
            }
            for k in 0..dim {
                let d = (points[r][k] - points[c][k]) / dist[r][c];
                g_points[r][k] += g * d;
                g_points[c][k] -= g * d;
            }
        }
    }
    // Back through the normalisation and the interpolation.
    let mut grad: Vec<Vec<f64>> = g_points[..b].to_vec();
    let total = (p.n + 1) as f64;
    for r in b..n_rows {
        let (i, t, u) = origin[r].as_ref().unwrap();
        let gy = &g_points[r];
        let gu: Vec<f64> = if p.l2_norm {
            let s = (u.iter().map(|v| v * v).sum::<f64>() + 1e-10).sqrt();
            let ug: f64 = u.iter().zip(gy).map(|(a, b)| a * b).sum();
            u.iter()
                .zip(gy)
                .map(|(uk, gk)| gk / s - uk * ug / (s * s * s))
                .collect()
        } else {
            gy.clone()
        };
        let left = *t as f64 / total;
        let right = (total - *t as f64) / total;
        for k in 0..dim {
            grad[partner(*i)][k] += left * gu[k];
            grad[*i][k] += right * gu[k];
        }
    }
    Reference {
        per_anchor,
        d_ap,
        d_an,
        grad,
        ties,
    }
}

/// A batch of `classes` x `instances` unit-norm embeddings around per-class centres, with
/// arbitrary non-contiguous labels. `spread` sets how much classes overlap.
pub fn random_batch(
    seed: u64,
    classes: usize,
    instances: usize,
    dim: usize,
    spread: f64,
) -> (Vec<Vec<f64>>, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for class in 0..classes {
        let centre: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let label = 1000 - 37 * class as i64 * class as i64;
        for _ in 0..instances {
            let v: Vec<f64> = centre
                .iter()
                .map(|c| c + spread * rng.random_range(-1.0..1.0))
                .collect();
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            x.push(v.iter().map(|a| a / norm).collect());
            labels.push(label);
        }
    }
    (x, labels)
}

/// Rounds to f32 and back, so the reference sees exactly what an f32 backend sees.
pub fn to_f32_precision(x: &[Vec<f64>]) -> Vec<Vec<f64>> {
    x.iter()
        .map(|row| row.iter().map(|&v| v as f32 as f64).collect())
        .collect()
}

pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(u, v)| (u - v).abs())
        .fold(0.0, f64::max)
}

//! The evaluation report: printable as a table, serialisable to JSON.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether queries were searched among themselves or in a separate gallery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalMode {
    /// One set, each item a query against all the others (the query itself excluded).
    SelfRetrieval,
    /// Separate query and gallery sets; nothing is excluded.
    QueryGallery,
}

/// Recall at one K.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecallAtK {
    /// K.
    pub k: usize,
    /// Fraction of all queries with a same-class item among their K nearest.
    pub recall: f64,
}

/// Clustering metrics of the k-means run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusteringReport {
    /// Number of clusters (= number of classes among the clustered items).
    pub clusters: usize,
    /// Normalised mutual information (arithmetic mean of the entropies).
    pub nmi: f64,
    /// Pairwise F1 of the clustering.
    pub f1: f64,
    /// Pairwise precision.
    pub precision: f64,
    /// Pairwise recall.
    pub recall: f64,
    /// k-means inertia of the kept run.
    pub inertia: f64,
    /// Iterations of the kept run (Lloyd iterations, or mini-batch steps).
    pub iterations: usize,
    /// The k-means algorithm that ran: `lloyd` or `mini_batch`.
    #[serde(default)]
    pub algorithm: String,
    /// Whether the kept run converged (no assignment changed) within `max_iter`.
    pub converged: bool,
}

/// Everything measured on one set of embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// How queries were matched against the gallery.
    pub mode: EvalMode,
    /// Number of queries.
    pub queries: usize,
    /// Number of gallery items (equal to `queries` in self mode).
    pub gallery: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// Number of distinct labels among the queries.
    pub classes: usize,
    /// Queries with no same-class item to retrieve: misses in Recall@K, left out of MAP@R
    /// and R-precision.
    pub queries_without_positive: usize,
    /// Recall@K, in the order of the configured Ks.
    pub recall_at_k: Vec<RecallAtK>,
    /// MAP@R over queries with a positive (`None` when not computed or no query has one).
    pub map_at_r: Option<f64>,
    /// R-precision over queries with a positive (same conditions as `map_at_r`).
    pub r_precision: Option<f64>,
    /// NMI and F1 of a k-means clustering of the queries (`None` when not computed).
    pub clustering: Option<ClusteringReport>,
}

impl EvalReport {
    /// Recall at `k`, if it was computed.
    pub fn recall(&self, neighbours: usize) -> Option<f64> {
        self.recall_at_k
            .iter()
            .find(|r| r.k == neighbours)
            .map(|r| r.recall)
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report holds only serialisable values")
    }

    /// Parses a report written by [`EvalReport::to_json`].
    pub fn from_json(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }
}

fn percent(value: f64) -> String {
    format!("{:.2}", 100.0 * value)
}

impl fmt::Display for EvalReport {
    /// A two-column table, metrics in percent; "n/a" for MAP@R and R-precision when they
    /// were not computed or no query has a positive.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            EvalMode::SelfRetrieval => "self".to_string(),
            EvalMode::QueryGallery => format!("query/gallery ({} gallery)", self.gallery),
        };
        let mut rows: Vec<(String, String)> = vec![
            ("mode".into(), mode),
            ("queries".into(), self.queries.to_string()),
            ("classes".into(), self.classes.to_string()),
            ("dim".into(), self.dim.to_string()),
        ];
        if self.queries_without_positive > 0 {
            rows.push((
                "queries without positive".into(),
                self.queries_without_positive.to_string(),
            ));
        }
        for r in &self.recall_at_k {
            rows.push((format!("Recall@{} (%)", r.k), percent(r.recall)));
        }
        let na = |v: Option<f64>| v.map(percent).unwrap_or_else(|| "n/a".into());
        rows.push(("MAP@R (%)".into(), na(self.map_at_r)));
        rows.push(("R-precision (%)".into(), na(self.r_precision)));
        if let Some(c) = &self.clustering {
            rows.push(("NMI (%)".into(), percent(c.nmi)));
            rows.push(("F1 (%)".into(), percent(c.f1)));
            rows.push((
                "k-means".into(),
                if c.algorithm == "mini_batch" {
                    format!("k={} mini-batch steps={}", c.clusters, c.iterations)
                } else {
                    format!(
                        "k={} Lloyd iters={}{}",
                        c.clusters,
                        c.iterations,
                        if c.converged { "" } else { " (not converged)" }
                    )
                },
            ));
        }
        let width = rows.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        let value_width = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        writeln!(formatter, "{:<width$}  {:>value_width$}", "metric", "value")?;
        writeln!(
            formatter,
            "{}  {}",
            "-".repeat(width),
            "-".repeat(value_width)
        )?;
        for (m, v) in rows {
            writeln!(formatter, "{m:<width$}  {v:>value_width$}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> EvalReport {
        EvalReport {
            mode: EvalMode::SelfRetrieval,
            queries: 10,
            gallery: 10,
            dim: 4,
            classes: 3,
            queries_without_positive: 1,
            recall_at_k: vec![
                RecallAtK { k: 1, recall: 0.5 },
                RecallAtK { k: 2, recall: 0.75 },
            ],
            map_at_r: Some(0.25),
            r_precision: None,
            clustering: Some(ClusteringReport {
                clusters: 3,
                nmi: 0.125,
                f1: 0.5,
                precision: 0.5,
                recall: 0.5,
                inertia: 1.0,
                iterations: 4,
                algorithm: "lloyd".into(),
                converged: true,
            }),
        }
    }

    #[test]
    fn json_round_trips() {
        let r = report();
        let json = r.to_json();
        assert!(json.contains("\"map_at_r\": 0.25"), "{json}");
        assert!(json.contains("\"mode\": \"self_retrieval\""), "{json}");
        assert_eq!(EvalReport::from_json(&json).unwrap(), r);
    }

    #[test]
    fn table_lists_every_metric() {
        let table = report().to_string();
        for needle in [
            "Recall@1 (%)",
            "50.00",
            "Recall@2 (%)",
            "75.00",
            "MAP@R (%)",
            "25.00",
            "n/a",
            "NMI (%)",
            "12.50",
        ] {
            assert!(table.contains(needle), "missing {needle} in\n{table}");
        }
        assert_eq!(report().recall(2), Some(0.75));
        assert_eq!(report().recall(4), None);
    }
}

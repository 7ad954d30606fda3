//! Choosing a loss by name from a config file, and using every loss through [`Loss`].

mod loss_support;

use ee_loss::{
    HphnTripletLossConfig, LossConfig, LossError, PairLoss, TripletNegatives, LOSS_NAMES,
};
use loss_support::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct File {
    loss: LossConfig,
}

fn parse(text: &str) -> Result<LossConfig, String> {
    toml::from_str::<File>(text)
        .map(|file| file.loss)
        .map_err(|e| e.to_string())
}

#[test]
fn a_name_alone_gives_the_defaults() {
    for name in LOSS_NAMES {
        let config = parse(&format!("[loss]\nname = \"{name}\"\n")).unwrap();
        assert_eq!(config, LossConfig::default_for(name).unwrap());
        assert_eq!(config.name(), name);
        assert_eq!(config.init().unwrap().name(), name);
    }
    let LossConfig::MultiSimilarity(ms) = parse("[loss]\nname = \"multi_similarity\"").unwrap()
    else {
        panic!("wrong variant");
    };
    assert_eq!(
        (ms.alpha, ms.beta, ms.lambda, ms.epsilon),
        (2.0, 50.0, 1.0, 0.1)
    );
}

#[test]
fn given_parameters_override_the_defaults_even_nested_ones() {
    let config = parse(
        "[loss]\nname = \"triplet\"\nmargin = 1\nnegatives = \"all_valid\"\nreduction = \"Sum\"\n\
         [loss.expansion]\nn_inner_pts = 0\n",
    )
    .unwrap();
    let LossConfig::Triplet(triplet) = &config else {
        panic!("wrong variant: {config:?}");
    };
    assert_eq!(triplet.margin, 1.0);
    assert_eq!(triplet.negatives, TripletNegatives::AllValid);
    assert_eq!(triplet.reduction, ee_loss::Reduction::Sum);
    assert_eq!(triplet.expansion.n_inner_pts, 0);
    assert!(
        triplet.expansion.l2_norm,
        "the untouched nested default stays"
    );
}

#[test]
fn the_config_round_trips_through_json_and_toml() {
    for name in LOSS_NAMES {
        let config = LossConfig::default_for(name).unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert!(json.contains(&format!("\"name\":\"{name}\"")), "{json}");
        assert_eq!(serde_json::from_str::<LossConfig>(&json).unwrap(), config);
        let toml_text = toml::to_string(&config).unwrap();
        assert_eq!(parse(&format!("[loss]\n{toml_text}")).unwrap(), config);
    }
}

#[test]
fn unknown_names_and_parameters_are_named_in_the_error() {
    let error = parse("[loss]\nname = \"contrastive\"").unwrap_err();
    assert!(
        error.contains("unknown loss `contrastive`") && error.contains("multi_similarity"),
        "{error}"
    );
    let error = parse("[loss]\nname = \"lifted\"\nmargn = 1.0").unwrap_err();
    assert!(error.contains("`loss `lifted`.margn`"), "{error}");
    let error = parse("[loss]\nname = \"npair\"\n[loss.expansion]\ninner = 2").unwrap_err();
    assert!(error.contains("expansion.inner"), "{error}");
    let error = parse("[loss]\nmargin = 1.0").unwrap_err();
    assert!(error.contains("needs a `name`"), "{error}");
    let error = parse("[loss]\nname = \"lifted\"\nmargin = \"big\"").unwrap_err();
    assert!(error.contains("lifted"), "{error}");
}

#[test]
fn invalid_values_fail_when_the_loss_is_built() {
    let config = parse("[loss]\nname = \"multi_similarity\"\nbeta = -1.0").unwrap();
    assert!(matches!(
        config.init(),
        Err(LossError::InvalidParameter { name: "beta", .. })
    ));
    let config = parse("[loss]\nname = \"triplet\"\nmargin = -0.2").unwrap();
    assert!(matches!(
        config.init(),
        Err(LossError::InvalidParameter { name: "margin", .. })
    ));
}

#[test]
fn every_loss_trains_through_the_enum() {
    device();
    let (rows, label_values) = random_batch(3, 4, 6, true, 3);
    for name in LOSS_NAMES {
        let loss = LossConfig::default_for(name).unwrap().init().unwrap();
        assert_eq!(loss.expansion().n_inner_pts(), 2, "{name}");
        let x = embeddings(&rows).require_grad();
        let output = loss.forward(x.clone(), labels(&label_values)).unwrap();
        let value = scalar(output.loss.clone());
        assert!(value.is_finite() && value > 0.0, "{name}: {value}");
        assert_eq!(vector(output.per_anchor.clone()).len(), rows.len());
        let grads = output.loss.backward();
        let gradient: Vec<f64> = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .convert::<f64>()
            .to_vec()
            .unwrap();
        assert!(gradient.iter().all(|g| g.is_finite()), "{name}");
        assert!(gradient.iter().any(|g| *g != 0.0), "{name}");
        let stats = output.stats();
        assert!(
            stats.active_fraction > 0.0 && stats.loss == value,
            "{name}: {stats:?}"
        );
    }
}

#[test]
fn the_hphn_variant_is_the_hphn_loss() {
    device();
    let (rows, label_values) = random_batch(2, 4, 5, true, 9);
    let config = HphnTripletLossConfig::new().with_margin(0.1);
    let direct = config
        .init()
        .unwrap()
        .forward(embeddings(&rows), labels(&label_values))
        .unwrap();
    let through_enum = LossConfig::HphnTriplet(config)
        .init()
        .unwrap()
        .forward(embeddings(&rows), labels(&label_values))
        .unwrap();
    assert_eq!(vector(direct.per_anchor), vector(through_enum.per_anchor));
}

#[test]
fn bad_batches_are_refused_by_every_loss() {
    device();
    let rows = on_circle(&[0.0, 10.0, 90.0, 100.0]);
    for name in LOSS_NAMES {
        let loss = LossConfig::default_for(name).unwrap().init().unwrap();
        let error = loss
            .forward(embeddings(&rows), labels(&[1, 2, 1, 2]))
            .unwrap_err();
        assert!(
            matches!(error, LossError::PartnerMismatch { row: 0, .. }),
            "{name}: {error}"
        );
    }
}

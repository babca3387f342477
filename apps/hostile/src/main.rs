//! `hostile [--good N]`: the hostile-input suite against the broker at `KAFKA_BOOTSTRAP` (scripts/kafka starts
//! one), one table row per service. Exits non-zero if any service mishandled a record.

use clap::Parser;
use hostile::run::{run, Row};
use hostile::services;
use streamcore::testkit::kafka::{bootstrap, unique};

/// The hostile-input suite.
#[derive(Parser)]
struct Cli {
    /// Good records per counted input topic.
    #[arg(long, default_value_t = 2000)]
    good: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bs = bootstrap();
    let state = tempfile::tempdir()?;
    let mut rows: Vec<Row> = Vec::new();
    type Build = fn(&str, &str, usize) -> anyhow::Result<services::Service>;
    let all: [(&str, Build); 4] =
        [("mailer", services::mailer), ("ticker", services::ticker), ("fraud", services::fraud), ("iot", services::iot)];
    for (name, build) in all {
        let (prefix, app) = (format!("{}.", unique(&format!("hostile-{name}"))), unique(&format!("hostile-{name}-app")));
        rows.push(run(build(&prefix, &app, cli.good)?, &bs, &prefix, &app, state.path())?);
    }
    println!(
        "| service | bad records sent | dead-lettered (expected) | late (expected) | good records in | outputs (expected) | restarts |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} ({}) | {} ({}) | {} | {} ({}) | {} |{}",
            r.service,
            r.bad_sent,
            r.dead_lettered,
            r.dead_letters_expected,
            r.late.0,
            r.late.1,
            r.good_in,
            r.outputs_out,
            r.outputs_expected,
            r.restarts,
            if r.passed() { "" } else { " FAILED" }
        );
    }
    anyhow::ensure!(rows.iter().all(Row::passed), "a service mishandled hostile input");
    Ok(())
}

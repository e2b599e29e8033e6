//! Rounds: every environment gets a fresh instance per round, in an order shuffled per round
//! (A B C, C A B, …) so drift of a shared machine hits all alike. The artifact is handed to
//! the caller after every instance's round, so a later failure or an interrupt loses nothing.
//!
//! A failed round does not end the run: it is recorded (phase, reason, log tail), the
//! environment's label says which rounds failed, and the other environments go on. An
//! environment none of whose rounds completed is moved to the artifact's unavailable list
//! with the reason.

use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::artifact::{Artifact, EnvironmentLabel, EnvironmentResult, Round, Unavailable};
use crate::env::{Environment, Prepared};
use crate::measure::plan::{Plan, PlanError};
use crate::measure::protocol::{self, Observer};
use crate::measure::quiet;

/// Why a run of rounds stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RoundsError {
    /// The plan cannot be run.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The caller's per-round hook (writing the artifact) failed.
    #[error("after round {round} of {env}: {source}")]
    AfterRound {
        /// The round.
        round: u32,
        /// The environment.
        env: String,
        /// What failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What is called after every instance's round with the artifact as it stands (write it).
pub type AfterRound<'a> =
    dyn FnMut(&mut Artifact) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + 'a;

/// Runs `plan` on every environment in `prepared`, appending their results to `artifact`
/// (whose other fields the caller set), and calls `after_round` after each instance's round.
/// The environments stay the caller's, for what comes after the rounds (the soak).
pub fn run(
    plan: &Plan,
    prepared: &[Prepared],
    artifact: &mut Artifact,
    observer: &mut dyn Observer,
    after_round: &mut AfterRound<'_>,
) -> Result<(), RoundsError> {
    plan.validate()?;
    let note = plan.describe();
    let first = artifact.environments.len();
    for Prepared { env, preparation } in prepared {
        artifact.environments.push(EnvironmentResult {
            label: label_of(env.as_ref(), &note, None, &[]),
            preparation: preparation.clone(),
            rounds: Vec::new(),
        });
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(plan.seed);
    for index in 0..plan.repetitions {
        let mut order: Vec<usize> = (0..prepared.len()).collect();
        order.shuffle(&mut rng);
        for position in order {
            let env = prepared[position].env.as_ref();
            let outcome = protocol::run_round(env, plan, index, observer);
            let result = &mut artifact.environments[first + position];
            result.rounds.push(outcome.round);
            // Part of the label (how traffic reaches a container, say) is learnt by starting.
            let detected = result.label.detected.take().or(outcome.detected);
            result.label = label_of(env, &note, detected, &result.rounds);
            after_round(artifact).map_err(|source| RoundsError::AfterRound {
                round: index,
                env: env.name().into(),
                source,
            })?;
        }
    }
    drop_all_failed(artifact, first);
    after_round(artifact).map_err(|source| RoundsError::AfterRound {
        round: plan.repetitions,
        env: "all".into(),
        source,
    })?;
    Ok(())
}

/// The environment's own label, the plan's note, the detected environment, and one note per
/// failed round, so the report marks the environment.
fn label_of(
    env: &dyn Environment,
    note: &str,
    detected: Option<String>,
    rounds: &[Round],
) -> EnvironmentLabel {
    let mut label = env.label();
    label.notes.push(note.to_owned());
    label.detected = detected;
    for round in rounds {
        if let Some(note) = round
            .quiet_wait
            .as_ref()
            .and_then(|wait| quiet::busy_note(round.round, wait))
        {
            label.notes.push(note);
        }
        if let Some(failure) = &round.failure {
            label.notes.push(format!(
                "round {} failed at {}: {}",
                round.round + 1,
                failure.phase,
                failure.reason
            ));
        }
    }
    label
}

/// Moves environments (from index `first` on) none of whose rounds completed to
/// `unavailable`, with the first failure as the reason.
fn drop_all_failed(artifact: &mut Artifact, first: usize) {
    let mut index = first;
    while index < artifact.environments.len() {
        let result = &artifact.environments[index];
        let failures: Vec<_> = result
            .rounds
            .iter()
            .filter_map(|r| r.failure.as_ref())
            .collect();
        if !result.rounds.is_empty() && failures.len() == result.rounds.len() {
            let first_failure = failures[0];
            let reason = format!(
                "every one of its {} rounds failed; round 1 at {}: {}",
                result.rounds.len(),
                first_failure.phase,
                first_failure.reason
            );
            let name = result.label.name.clone();
            artifact.environments.remove(index);
            artifact.unavailable.push(Unavailable { name, reason });
        } else {
            index += 1;
        }
    }
}

//! A batch enqueue in the model: every key is checked before anything is stored (a key used
//! with another request refuses the whole batch), a key repeated within the batch answers with
//! the job its first use made, and the new jobs of one queue wait in batch order.

use std::collections::HashMap;

use super::model::Model;
use super::ops::NewSpec;
use super::outcome::{Facts, Outcome};

/// What one job of a batch turns out to be.
enum Plan {
    New,
    /// The job an earlier request with its key made.
    Existing(String),
    /// The same as job `i` of this batch.
    SameAs(usize),
}

impl Model {
    pub(crate) fn enqueue_bulk(
        &mut self,
        ids: &[String],
        jobs: &[NewSpec],
        facts: &Facts,
    ) -> Outcome {
        let plan = match self.plan_bulk(jobs) {
            Ok(plan) => plan,
            Err(i) => return Outcome::BulkKeyReused(i),
        };
        let mut items = Vec::new();
        for (i, (job, plan)) in jobs.iter().zip(plan).enumerate() {
            let item = match plan {
                Plan::New => {
                    let made = self.enqueue(
                        &ids[i],
                        job.queue,
                        job.delay_ms.is_some(),
                        job.idem,
                        job.max_attempts,
                        facts,
                    );
                    let Outcome::Created { id, status } = made else {
                        unreachable!("a planned new job is created: {made:?}")
                    };
                    (true, id, status)
                }
                Plan::Existing(id) => {
                    let status = self.jobs[&id].status;
                    (false, id, status)
                }
                Plan::SameAs(j) => {
                    let (_, id, status): &(bool, String, _) = &items[j];
                    (false, id.clone(), *status)
                }
            };
            items.push(item);
        }
        Outcome::Bulk(items)
    }

    /// The plan, or the index of the first job whose key was used with another request.
    fn plan_bulk(&self, jobs: &[NewSpec]) -> Result<Vec<Plan>, usize> {
        let mut seen: HashMap<(usize, u8), (bool, usize)> = HashMap::new();
        let mut plan = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let Some((key, variant)) = job.idem else {
                plan.push(Plan::New);
                continue;
            };
            let key = (job.queue, key);
            if let Some(&(first, j)) = seen.get(&key) {
                if first != variant {
                    return Err(i);
                }
                plan.push(Plan::SameAs(j));
                continue;
            }
            seen.insert(key, (variant, i));
            match self.idem.get(&key) {
                Some((existing, first)) if !self.jobs[existing].deleted => {
                    if *first != variant {
                        return Err(i);
                    }
                    plan.push(Plan::Existing(existing.clone()));
                }
                _ => plan.push(Plan::New),
            }
        }
        Ok(plan)
    }
}

//! Worker threads: one current-thread tokio runtime per thread (one thread per generator CPU,
//! pinned when asked), each driving its share of the connections as local tasks that record
//! into the thread's own [`Recorder`]. No lock or shared counter on the hot path except the
//! thread's own progress counters (its own cache line) and, when a closed-loop run is
//! bounded by count, the shared ticket counter that makes the count exact.
//!
//! Every worker also watches the plan's stop signal: when one worker fails, the run sets it
//! and the others stop sending at once instead of loading the server with nobody measuring.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use super::client::Connection;
use super::plan::{LoadPlan, Pacing, Rate};
use super::recorder::{Outcome, Recorder};
use super::scenario::Picker;
use super::series::SeriesRecorder;
use crate::probe::usage;

/// Live counters of one worker, read by the progress display. Aligned to its own cache line
/// so workers never contend on it.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Live {
    /// Measured requests finished (any outcome).
    pub done: AtomicU64,
    /// Measured requests that were `ok`.
    pub ok: AtomicU64,
}

/// Everything one worker records.
#[derive(Debug, Clone)]
pub struct Records {
    /// Requests that ended before the plan's `head_end` (the end of the window's first
    /// quarter, where it can be cut), warm-up requests among them.
    pub head: Recorder,
    /// Requests that ended from `head_end` on, and those the window's end cut off.
    pub body: Recorder,
    /// The window's time series.
    pub series: SeriesRecorder,
}

impl Records {
    fn new(plan: &LoadPlan) -> Self {
        let recorder = || Recorder::new(plan.weights.len(), plan.open_loop());
        Self {
            head: recorder(),
            body: recorder(),
            series: SeriesRecorder::new(plan.measure_start, plan.slice, plan.timeout),
        }
    }

    /// The part a request that ended at `done` belongs to.
    fn part(&mut self, plan: &LoadPlan, done: Instant) -> &mut Recorder {
        if done < plan.head_end {
            &mut self.head
        } else {
            &mut self.body
        }
    }
}

/// What a worker hands back when it stops.
#[derive(Debug)]
pub struct WorkerResult {
    /// Its measurements.
    pub records: Records,
    /// When its last measured request finished (`None` if it measured none).
    pub last_done: Option<Instant>,
    /// CPU time the thread used.
    pub thread_cpu: Duration,
    /// Wall time the thread ran.
    pub wall: Duration,
}

/// Starts worker `index` on its own thread; it sends its result on `results` when done.
pub fn spawn(
    plan: Arc<LoadPlan>,
    index: usize,
    live: Arc<Live>,
    results: Sender<(usize, std::io::Result<WorkerResult>)>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("isobench-load-{index}"))
        .spawn(move || {
            let result = run_worker(&plan, index, &live);
            // The receiver only goes away if the run was abandoned; nothing to report then.
            let _ = results.send((index, result));
        })?;
    Ok(())
}

fn run_worker(
    plan: &Arc<LoadPlan>,
    index: usize,
    live: &Arc<Live>,
) -> std::io::Result<WorkerResult> {
    if let Some(cpu) = plan.threads[index] {
        crate::probe::pin::pin_current_thread(&[cpu])?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let cpu_before = usage::thread_cpu();
    let shared = Rc::new(RefCell::new(Records::new(plan)));
    let last_done: Rc<RefCell<Option<Instant>>> = Rc::new(RefCell::new(None));
    let mut stop = plan.stop.subscribe();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let threads = plan.threads.len();
        let tasks: Vec<_> = (index..plan.connections)
            .step_by(threads)
            .map(|connection| {
                let task = Task {
                    plan: Arc::clone(plan),
                    connection,
                    recorder: Rc::clone(&shared),
                    last_done: Rc::clone(&last_done),
                    live: Arc::clone(live),
                };
                tokio::task::spawn_local(task.run())
            })
            .collect();
        let all = async {
            for task in tasks {
                let _ = task.await;
            }
        };
        // Past the hard deadline, or when told to stop, the remaining tasks are dropped with
        // the runtime: a server that never answers cannot keep the run alive.
        tokio::select! {
            _ = tokio::time::timeout_at(plan.hard_deadline.into(), all) => {}
            _ = stop.wait_for(|stop| *stop) => {}
        }
    });
    drop(local);
    drop(runtime);
    let records = Rc::try_unwrap(shared)
        .map(RefCell::into_inner)
        .unwrap_or_else(|shared| shared.borrow().clone());
    let last_done = *last_done.borrow();
    Ok(WorkerResult {
        records,
        last_done,
        thread_cpu: usage::thread_cpu().saturating_sub(cpu_before),
        wall: started.elapsed(),
    })
}

/// One connection's loop.
struct Task {
    plan: Arc<LoadPlan>,
    connection: usize,
    recorder: Rc<RefCell<Records>>,
    last_done: Rc<RefCell<Option<Instant>>>,
    live: Arc<Live>,
}

impl Task {
    async fn run(self) {
        tokio::time::sleep_until(self.plan.start.into()).await;
        match &self.plan.pacing {
            Pacing::Closed {
                end,
                requests,
                claimed,
            } => self.closed(*end, *requests, claimed).await,
            Pacing::Open {
                rate,
                warmup,
                measured,
                send_limit,
            } => self.open(*rate, *warmup, *measured, *send_limit).await,
        }
    }

    /// Closed loop: send, wait for the answer, send again. A duration-bounded window counts
    /// every answer that comes inside it, also one to a request sent during the warm-up: the
    /// service's CPU over the window paid for it, and dropping it would lose about one
    /// request per connection per window. A count-bounded run decides at the send, so it
    /// sends exactly `requests` measured requests. A request still unanswered at `end` (the
    /// end of the window) is cut off there and counted unfinished, so the window never
    /// stretches to wait for a straggler.
    async fn closed(&self, end: Instant, requests: Option<u64>, claimed: &AtomicU64) {
        let plan = &self.plan;
        let mut connection = Connection::new(&plan.target);
        let mut picker = Picker::new(&plan.weights, self.connection);
        loop {
            let sent_at = Instant::now();
            let measured = sent_at >= plan.measure_start;
            if measured {
                if sent_at >= end {
                    break;
                }
                // Claiming a ticket before sending makes a count-bounded run send exactly
                // `requests` measured requests, however many connections race for them.
                if let Some(limit) = requests
                    && claimed.fetch_add(1, Ordering::Relaxed) >= limit
                {
                    break;
                }
            }
            let path = picker.next_index();
            let timeout_at = sent_at + plan.timeout;
            let cut_off = measured && end < timeout_at;
            let deadline = if cut_off { end } else { timeout_at };
            let outcome = connection.request(path, deadline).await;
            let done = Instant::now();
            // A warm-up request answered inside the window is one of the window's answers.
            let answered_in_window =
                !measured && requests.is_none() && done >= plan.measure_start && done <= end;
            if measured || answered_in_window {
                // An answer that came after the window's end (the timer fired late) is no
                // more inside the window than one still awaited.
                if cut_off && (outcome == Outcome::Timeout || done > end) {
                    let mut records = self.recorder.borrow_mut();
                    records.body.record_unfinished(path);
                    records.series.record_unfinished(sent_at, end);
                    break;
                }
                let latency = done - sent_at;
                self.record(path, outcome, latency, latency, sent_at, done);
            } else {
                self.recorder.borrow_mut().head.warmup_sent += 1;
            }
        }
    }

    /// Open loop: request `k` is due at `start + k / rate`; this connection sends
    /// `connection, connection + C, …`. Latency counts from the due time whenever the server
    /// made the connection late (its previous answer came after the due time), which is the
    /// coordinated-omission correction. When the connection was idle and merely woke a
    /// little late (timer granularity), the generator caused the delay, so latency counts
    /// from the actual send instead.
    ///
    /// A connection still held up at `send_limit` sends nothing more: each measured request
    /// left in its schedule is counted `unsent` and recorded in the corrected histogram with
    /// its latency from its due time to `send_limit`, so overload shows instead of vanishing.
    async fn open(&self, rate: Rate, warmup: u64, measured: u64, send_limit: Instant) {
        let plan = &self.plan;
        let mut connection = Connection::new(&plan.target);
        let mut picker = Picker::new(&plan.weights, self.connection);
        let step = plan.connections as u64;
        let mut previous_done = plan.start;
        let mut k = self.connection as u64;
        while k < warmup + measured {
            let due = plan.due(k, rate);
            let now = Instant::now();
            if now >= send_limit {
                self.give_up(
                    &mut picker,
                    k,
                    step,
                    warmup + measured,
                    warmup,
                    rate,
                    send_limit,
                );
                break;
            }
            // Behind schedule (the server held us up): send at once, without a timer turn.
            if due > now {
                tokio::time::sleep_until(due.into()).await;
            }
            let sent_at = Instant::now();
            let path = picker.next_index();
            let outcome = connection.request(path, sent_at + plan.timeout).await;
            let done = Instant::now();
            if k >= warmup {
                let from = if previous_done > due { due } else { sent_at };
                self.record(path, outcome, done - from, done - sent_at, sent_at, done);
            } else {
                self.recorder.borrow_mut().head.warmup_sent += 1;
            }
            previous_done = done;
            k += step;
        }
    }

    /// Counts requests `k, k + step, …` below `end` as never sent (the measured ones, from
    /// `warmup` on), each with its latency from its due time to `send_limit`.
    #[allow(clippy::too_many_arguments)]
    fn give_up(
        &self,
        picker: &mut Picker,
        mut k: u64,
        step: u64,
        end: u64,
        warmup: u64,
        rate: Rate,
        send_limit: Instant,
    ) {
        let mut records = self.recorder.borrow_mut();
        while k < end {
            let path = picker.next_index();
            if k >= warmup {
                let due = self.plan.due(k, rate);
                let latency = send_limit.saturating_duration_since(due);
                records
                    .part(&self.plan, send_limit)
                    .record_unsent(path, latency);
                records.series.record_unsent(send_limit, latency);
                self.live.done.fetch_add(1, Ordering::Relaxed);
            }
            k += step;
        }
    }

    fn record(
        &self,
        path: usize,
        outcome: Outcome,
        latency: Duration,
        uncorrected: Duration,
        sent: Instant,
        done: Instant,
    ) {
        let mut records = self.recorder.borrow_mut();
        records
            .part(&self.plan, done)
            .record(path, outcome, latency, uncorrected);
        records.series.record(sent, done, outcome, latency);
        drop(records);
        let mut last = self.last_done.borrow_mut();
        if last.is_none_or(|last| done > last) {
            *last = Some(done);
        }
        self.live.done.fetch_add(1, Ordering::Relaxed);
        if outcome == Outcome::Ok {
            self.live.ok.fetch_add(1, Ordering::Relaxed);
        }
    }
}

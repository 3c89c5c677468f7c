//! Terminal progress for training: a bar per epoch and one line of figures per finished epoch;
//! one bar over all of a FitNets hint stage.

use indicatif::{ProgressBar, ProgressStyle};
use tinyfit_train::{EpochRecord, Observer};

/// Draws training progress with indicatif and prints the validation curve.
pub struct TrainProgress {
    bar: Option<ProgressBar>,
    epochs: usize,
    steps: usize,
    loss_sum: f64,
    losses: usize,
}

impl TrainProgress {
    /// A fresh progress display.
    pub fn new() -> Self {
        TrainProgress {
            bar: None,
            epochs: 0,
            steps: 0,
            loss_sum: 0.0,
            losses: 0,
        }
    }

    fn new_bar(&mut self, epoch: usize) {
        let bar = ProgressBar::new(self.steps as u64).with_style(
            ProgressStyle::with_template(
                "epoch {prefix:>3} [{bar:30}] {pos}/{len} steps, loss {msg} ({elapsed}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, self.epochs));
        self.bar = Some(bar);
        self.loss_sum = 0.0;
        self.losses = 0;
    }
}

impl Observer for TrainProgress {
    fn start(&mut self, done: usize, epochs: usize, steps: usize) {
        self.epochs = epochs;
        self.steps = steps;
        if done > 0 {
            println!("resuming after epoch {done} of {epochs} (from its checkpoint)");
        }
        println!(
            "{:>7} {:>9} {:>10} {:>9} {:>9} {:>8} {:>8} {:>7}",
            "epoch", "lr", "train loss", "train acc", "val loss", "val acc", "val F1", "time"
        );
        if done < epochs {
            self.new_bar(done);
        }
    }

    fn step(&mut self, loss: f64) {
        self.loss_sum += loss;
        self.losses += 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{:.4}", self.loss_sum / self.losses as f64));
            bar.inc(1);
        }
    }

    fn epoch(&mut self, r: &EpochRecord, improved: bool) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!(
            "{:>7} {:>9.2e} {:>10.4} {:>8.2}% {:>9.4} {:>7.2}% {:>8.4} {:>6.1}s{}",
            format!("{}/{}", r.epoch + 1, self.epochs),
            r.lr,
            r.train_loss,
            100.0 * r.train_accuracy,
            r.val_loss,
            100.0 * r.val_accuracy,
            r.val_macro_f1,
            r.seconds,
            if improved { "  * best" } else { "" }
        );
        if r.epoch + 1 < self.epochs {
            self.new_bar(r.epoch + 1);
        }
    }
}

/// Draws a FitNets hint stage's progress: one bar over every step of every epoch.
#[derive(Default)]
pub struct HintProgress {
    bar: Option<ProgressBar>,
}

impl Observer for HintProgress {
    fn start(&mut self, _done: usize, epochs: usize, steps: usize) {
        let bar = ProgressBar::new((epochs * steps) as u64).with_style(
            ProgressStyle::with_template(
                "hints [{bar:30}] {pos}/{len} steps, hint loss {msg} ({elapsed}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar = Some(bar);
    }

    fn step(&mut self, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{loss:.4}"));
            bar.inc(1);
        }
    }
}

impl Drop for HintProgress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

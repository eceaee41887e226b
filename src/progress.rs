//! Progress on stderr: a spinner per task on a terminal, one plain line per
//! finished task otherwise (logs and CI output stay readable), nothing with `-q`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Spinners,
    Lines,
    Silent,
}

pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
}

pub struct Task {
    mode: Mode,
    label: String,
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Silent
        } else if std::io::stderr().is_terminal() {
            Mode::Spinners
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        }
    }

    pub fn start(&self, label: &str, doing: &str) -> Task {
        let bar = (self.mode == Mode::Spinners).then(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} {elapsed:.dim}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(label.to_string());
            bar.set_message(doing.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Task {
            mode: self.mode,
            label: label.to_string(),
            started: Instant::now(),
            bar,
        }
    }
}

impl Task {
    pub fn succeed(self, message: &str) {
        self.end("✓", message);
    }

    pub fn fail(self, message: &str) {
        self.end("✗", message);
    }

    fn end(self, mark: &str, message: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let line = format!("{mark} {}: {message} ({elapsed:.1}s)", self.label);
        match (self.mode, self.bar) {
            (Mode::Spinners, Some(bar)) => {
                bar.set_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.finish_with_message(line);
            }
            (Mode::Lines, _) => eprintln!("{line}"),
            _ => {}
        }
    }
}

impl codemode_mcp::catalog::Watch for Progress {
    type Task = Task;

    fn started(&self, server: &str, doing: &str) -> Task {
        self.start(server, doing)
    }

    fn succeeded(&self, task: Task, note: &str) {
        task.succeed(note);
    }

    fn failed(&self, task: Task, error: &str) {
        task.fail(error);
    }
}

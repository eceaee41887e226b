//! `--input`, `--out` and `--max-out-bytes`, shared by `exec` and `ask`:
//! the files a script reads under /workspace/in/ and those it leaves under
//! /workspace/out/ (docs/ARCHITECTURE.md, "Files in and out").

use crate::cli::FileArgs;
use crate::context::Context;
use crate::error::Error;
use std::sync::Arc;

use codemode_run::{InputFiles, Options, OutDir, OutFile, OutputCaps, Report, Staging};
use codemode_text::{human_bytes, plural};

/// Gives `options` the inputs the flags name and, when files are to come
/// back, the caps; says what of the inputs was left out.
pub fn apply(ctx: &Context, options: &mut Options, args: &FileArgs) -> Result<(), Error> {
    let inputs = InputFiles::scan(&args.inputs).map_err(Error::Usage)?;
    for note in &inputs.notes {
        ctx.say(&format!("codemode: note: {note}"));
    }
    options.input_files = inputs;
    if args.out.is_some() || args.max_out_bytes.is_some() {
        let mut caps = OutputCaps::default();
        if let Some(size) = args.max_out_bytes {
            caps.max_bytes = size.0;
        }
        options.outputs = Some(caps);
    }
    Ok(())
}

/// Makes the `--out` directory, before anything runs: a directory that
/// cannot be made is better said before the script's work is done.
pub fn out_dir(args: &FileArgs) -> Result<Option<OutDir>, Error> {
    args.out
        .as_ref()
        .map(|path| {
            OutDir::create(path)
                .map_err(|err| Error::Usage(format!("--out {}: {err}", path.display())))
        })
        .transpose()
}

/// Notes for what of out/ did not come back, on stderr.
pub fn say_skipped(ctx: &Context, report: &Report) {
    for skipped in &report.files_skipped {
        ctx.say(&format!(
            "codemode: note: out/{} skipped: {}",
            skipped.name, skipped.reason
        ));
    }
    match report.files_dropped {
        0 => {}
        1 => ctx.say("codemode: note: 1 entry of out/ past the caps left out"),
        n => ctx.say(&format!(
            "codemode: note: {n} entries of out/ past the caps left out"
        )),
    }
    if let Some(error) = &report.files_error {
        ctx.say(&format!("codemode: note: {error}"));
    }
}

/// Saves the report's files into `dir`, saying how many.
pub fn save(ctx: &Context, dir: &OutDir, report: &Report) {
    let failed = report.save_files(dir);
    said_saved(ctx, dir, &report.files, &failed);
}

/// Saves the newest version of each file `ask`'s scripts produced.
pub fn save_newest(ctx: &Context, dir: &OutDir, files: &[&(OutFile, Arc<Staging>)]) {
    let failed = dir.save_all(files.iter().map(|(file, staging)| (file, staging.as_ref())));
    let files: Vec<OutFile> = files.iter().map(|(file, _)| file.clone()).collect();
    said_saved(ctx, dir, &files, &failed);
}

fn said_saved(ctx: &Context, dir: &OutDir, files: &[OutFile], failed: &[String]) {
    for note in failed {
        ctx.say(&format!("codemode: note: {note}"));
    }
    let saved = files.len() - failed.len();
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    ctx.say(&format!(
        "codemode: saved {} ({}) in {}",
        plural(saved, "file"),
        human_bytes(bytes),
        dir.path().display()
    ));
}

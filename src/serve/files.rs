//! The files a cell left in /workspace/out/ as MCP content: images (PNG,
//! JPEG, GIF, WebP, told by their bytes) as image content, UTF-8 text as
//! embedded text resources, the rest named with its size; the structured
//! result lists them all (the report's `files`).

use base64::Engine;
use rmcp::model::{ContentBlock, ResourceContents};

use codemode_run::{OutputCaps, Report};
use codemode_text::human_bytes;

/// What a result may bring back of out/ when neither `--max-out-bytes` nor
/// `[serve] max_out_bytes` says: small enough that a whole result, images
/// in base64 included, stays under the 1 MiB message some clients take at
/// most (the Python SDK's HTTP client refuses a larger server-sent event).
pub const DEFAULT_MAX_OUT_BYTES: u64 = 512 * 1024;
/// Files one result lists at most; past these they are counted.
const MAX_FILES: usize = 100;

pub fn caps(max_bytes: u64) -> OutputCaps {
    OutputCaps {
        max_bytes,
        max_files: MAX_FILES,
    }
}

/// The blocks that follow a result's text: a listing of what came back (or
/// did not), then each image and text file as content of its own.
pub fn blocks(report: &Report) -> Vec<ContentBlock> {
    if report.files.is_empty() && report.files_skipped.is_empty() && report.files_error.is_none() {
        return Vec::new();
    }
    let mut listing = String::from("--- files in /workspace/out ---\n");
    let mut blocks = Vec::new();
    for file in &report.files {
        let bytes = report.staging.as_ref().and_then(|s| s.read(file).ok());
        let how = match bytes {
            Some(bytes) if file.media_type.starts_with("image/") => {
                let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                blocks.push(ContentBlock::image(data, file.media_type.clone()));
                "shown below"
            }
            Some(bytes) if file.text => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let uri = format!("file:///workspace/out/{}", file.name);
                blocks.push(ContentBlock::resource(
                    ResourceContents::text(text, uri).with_mime_type(file.media_type.clone()),
                ));
                "below"
            }
            Some(_) => "not shown",
            None => "lost on the way",
        };
        listing.push_str(&format!(
            "{}: {}, {} ({how})\n",
            file.name,
            file.media_type,
            human_bytes(file.size)
        ));
    }
    for skipped in &report.files_skipped {
        listing.push_str(&format!("{}: skipped: {}\n", skipped.name, skipped.reason));
    }
    if report.files_dropped > 0 {
        listing.push_str(&format!("… and {} more left out\n", report.files_dropped));
    }
    if let Some(error) = &report.files_error {
        listing.push_str(&format!("{error}\n"));
    }
    blocks.insert(0, ContentBlock::text(listing));
    blocks
}
